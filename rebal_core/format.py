"""Money in words, defined once: labels, reasons, rule texts and tables all write it the same way.

Every layer may import this module (reasons and approval rules are written by the pure
layers, labels by the views); it imports nothing of Rebal's.
"""

from __future__ import annotations


def money(value: float) -> str:
    """Compact currency for labels: $1.2M, $34.5k, $870, -$4.7k (the sign before the symbol)."""
    sign, a = ("-" if value < 0 else ""), abs(value)
    if a >= 1e6:
        return f"{sign}${a / 1e6:,.1f}M"
    if a >= 1e4:
        return f"{sign}${a / 1e3:,.1f}k"
    return f"{sign}${a:,.0f}"


def money_whole(value: float) -> str:
    """Whole currency units with thousands separators, for reasons and rules: $12,389, -$462."""
    return ("-" if value < 0 else "") + f"${abs(value):,.0f}"


def signed_money(value: float) -> str:
    """A change in money with its sign first ("-$4.7k", "+$870"), as metric deltas need."""
    return ("-" if value < 0 else "+") + money(abs(value))
