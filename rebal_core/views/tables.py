"""Tables as people read them: values formatted by kind (money, rate, count), changes signed.

Pure: a frame in, a frame of strings out (pages hand it to ``st.dataframe``)."""

from __future__ import annotations

import pandas as pd

from rebal_core.format import money, signed_money


def kpi_cell(value: float, kind: str, delta: bool) -> str:
    """One KPI value: money compact ($1.2M), rates in % (changes in points), counts with separators;
    a change carries its sign. NaN reads as "-"."""
    if value != value:
        return "-"
    if kind == "rate":
        return f"{value * 100:+.2f} pts" if delta else f"{value:.2%}"
    if kind == "count":
        return f"{value:+,.0f}" if delta else f"{value:,.0f}"
    return signed_money(value) if delta else money(value)


def kpi_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`rebal_core.decisions.what_if.compare.kpi_table` formatted: the columns the table says are
    differences (``attrs["delta_columns"]``) signed, every other column a plain value."""
    deltas = set(table.attrs.get("delta_columns", []))
    shown = pd.DataFrame({"KPI": table["KPI"]})
    for column in table.columns:
        if column in ("KPI", "kind"):
            continue
        shown[column] = [kpi_cell(x, k, column in deltas) for x, k in zip(table[column], table["kind"])]
    return shown
