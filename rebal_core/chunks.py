"""Walking a table of a hundred million rows (a national network's year of daily demand) in chunks.

On this kind of machine a step over a whole column takes a fresh gigabyte, and the page faults
that fill it cost more than the arithmetic (a year's import spent over 30 s in them). Chunks of
CHUNK_ROWS keep each step's temporaries at 16 MB, which the heap hands back chunk after chunk."""

from __future__ import annotations

from collections.abc import Iterator

CHUNK_ROWS = 1 << 21


def row_chunks(rows: int, size: int | None = None) -> Iterator[slice]:
    """Slices of ``size`` rows (CHUNK_ROWS by default) covering ``rows`` rows, in order."""
    step = max(1, int(size or CHUNK_ROWS))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))
