"""The progress sink, defined once: ``progress(fraction, message)`` with ``fraction`` in [0, 1].

Long steps (import, forecast, solve, backtest) report through it; a page draws a bar, the
command line prints lines, and everything else passes :func:`quiet`. Every layer may
import this module; it imports nothing of Rebal's.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]


def quiet(fraction: float, message: str) -> None:
    """The sink that says nothing (the default wherever nobody is watching)."""
    return None


def stage(progress: Progress, lo: float, hi: float) -> Progress:
    """A sub-step's sink: its 0..1 mapped into [lo, hi] of the whole."""
    return lambda f, m: progress(lo + (hi - lo) * max(0.0, min(1.0, f)), m)
