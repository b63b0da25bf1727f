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


# A plan's lines as the Plans page shows them: the planner's words, the reason early, units and
# currency, the most urgent receivers first (then the biggest moves), not sorted by hash id.
PLAN_LINE_COLUMNS: dict[str, tuple[str, str]] = {
    "transfer_id": ("Transfer", "text"),
    "status": ("Status", "text"),
    "sku_name": ("Item", "text"),
    "from_site": ("From", "text"),
    "to_site": ("To", "text"),
    "qty": ("Units", "count"),
    "reason": ("Why", "long"),
    "days_until_stockout": ("Receiver runs out in (days)", "days"),
    "value": ("Stock value moved", "money"),
    "cost": ("Transfer cost", "money2"),
    "needs_approval": ("Needs approval", "flag"),
    "approval_rule": ("Approval rule", "text"),
    "proposed_qty": ("Proposed units", "count"),
    "sku_id": ("SKU", "text"),
    "decided_by": ("Decided by", "text"),
    "note": ("Note", "text"),
    "released_at": ("Released", "time"),
    "version": ("Version", "count"),
}


def plan_lines_view(lines: pd.DataFrame) -> pd.DataFrame:
    """The lines in PLAN_LINE_COLUMNS' order, most urgent receiver first, then the largest value."""
    if lines.empty:
        return lines.reindex(columns=list(PLAN_LINE_COLUMNS))
    ordered = lines.assign(_urgency=lines["days_until_stockout"].astype(float).fillna(float("inf")))
    ordered = ordered.sort_values(["_urgency", "value", "transfer_id"], ascending=[True, False, True], kind="stable")
    return ordered[[c for c in PLAN_LINE_COLUMNS if c in ordered.columns]].reset_index(drop=True)


def picked_totals(lines: pd.DataFrame, picked: list[str]) -> str:
    """What a bulk action touches, in words: "12 lines · 3,400 units · $48.2k moved · $1.9k transfer cost"."""
    chosen = lines[lines["transfer_id"].isin(picked)]
    return (
        f"{len(chosen):,} line(s) · {int(chosen['qty'].sum()):,} units · {money(float(chosen['value'].sum()))} moved · "
        f"{money(float(chosen['cost'].sum()))} transfer cost"
    )


# Positions as Hotspots and the Network drill-down show them, in the planner's words.
POSITION_COLUMNS: dict[str, tuple[str, str]] = {
    "site_id": ("Site", "text"),
    "site_name": ("Site name", "text"),
    "sku_id": ("SKU", "text"),
    "sku_name": ("Item", "text"),
    "category": ("Category", "text"),
    "status": ("Status", "text"),
    "on_hand": ("On hand", "count"),
    "in_transit": ("In transit", "count"),
    "inbound": ("Inbound", "count"),
    "position": ("Position (units)", "count"),
    "mean_daily": ("Forecast / day", "rate2"),
    "target": ("Target", "count"),
    "excess_level": ("Excess level", "count"),
    "shortage_units": ("Short (units)", "count"),
    "excess_units": ("Excess (units)", "count"),
    "shortage_value": ("Shortage value", "money"),
    "excess_value": ("Excess value", "money"),
    "days_of_cover": ("Days of cover", "days"),
    "days_until_stockout": ("Runs out in (days)", "days"),
    "days_until_excess": ("Into excess in (days)", "days"),
}


def position_columns(columns: list[str]) -> dict[str, tuple[str, str]]:
    """POSITION_COLUMNS for the columns a table shows."""
    return {c: POSITION_COLUMNS[c] for c in columns if c in POSITION_COLUMNS}


# The Backtest's totals and the Monitor's trend, in the planner's words.
BACKTEST_COLUMNS: dict[str, tuple[str, str]] = {
    "arm": ("Arm", "text"),
    "realised_net": ("Realised net vs none", "money"),
    "promised_net": ("Promised by the plans", "money"),
    "realised_over_promised": ("Realised / promised", "pct"),
    "share_of_hindsight": ("Share of hindsight", "pct"),
    "fill_rate": ("Fill rate", "pct"),
    "lost_units": ("Lost sales (units)", "count"),
    "lost_value": ("Lost sales value", "money"),
    "transfer_spend": ("Transfer spend", "money"),
    "units_moved": ("Units moved", "count"),
    "lines": ("Transfer lines", "count"),
    "excess_value": ("Excess value", "money"),
    "demand_units": ("Demand (units)", "count"),
    "net_gain_vs_none": ("Net gain vs none", "money"),
    "inside_80": ("Actual inside the 80 % interval", "pct"),
    "inside_95": ("Actual inside the 95 % interval", "pct"),
}
TREND_COLUMNS: dict[str, tuple[str, str]] = {
    "snapshot": ("Snapshot", "text"),
    "as_of": ("Planning date", "date"),
    "network_cost": ("Network cost of inaction", "money"),
    "fill_rate": ("Expected fill rate", "pct"),
    "shortage_value": ("Shortage value", "money"),
    "excess_value": ("Excess value", "money"),
    "stock_value": ("Stock value", "money"),
    "turns": ("Inventory turns", "rate2"),
}


# The Data page: what the import and the signal checks found, forecast accuracy, cycle counts.
ISSUE_COLUMNS: dict[str, tuple[str, str]] = {
    "severity": ("Severity", "text"),
    "table": ("File", "text"),
    "line": ("Line", "count"),
    "column": ("Column", "text"),
    "message": ("What is wrong", "long"),
}
SIGNAL_COLUMNS: dict[str, tuple[str, str]] = {
    "severity": ("Severity", "text"),
    "check": ("Check", "text"),
    "message": ("Finding", "long"),
    "site_id": ("Site", "text"),
    "sku_id": ("SKU", "text"),
    "category": ("Category", "text"),
    "figure": ("Figure", "rate2"),
}
ACCURACY_COLUMNS: dict[str, tuple[str, str]] = {
    "pattern": ("Demand pattern", "text"),
    "series": ("Series", "count"),
    "model": ("Model", "text"),
    "mase": ("MASE (model)", "rate3"),
    "mase_naive": ("MASE (naive)", "rate3"),
    "bias": ("Bias (model)", "pct"),
    "bias_naive": ("Bias (naive)", "pct"),
}
RECORD_ACCURACY_COLUMNS: dict[str, tuple[str, str]] = {
    "site_id": ("Site", "text"),
    "category": ("Category", "text"),
    "record_accuracy": ("Record accuracy", "pct"),
    "value_accuracy": ("Value accuracy", "pct"),
    "counts": ("Counted positions", "count"),
    "agree": ("Agree", "count"),
    "abs_value": ("Value off", "money"),
    "system_value": ("Value on record", "money"),
}
DISCREPANCY_COLUMNS: dict[str, tuple[str, str]] = {
    "date": ("Counted on", "date"),
    "count_date": ("Counted on", "date"),
    "site_id": ("Site", "text"),
    "sku_id": ("SKU", "text"),
    "discrepancy_class": ("Likely cause", "text"),
    "evidence": ("Evidence", "long"),
    "system_qty": ("On record (units)", "count"),
    "counted_qty": ("Counted (units)", "count"),
    "difference": ("Difference (units)", "count"),
    "abs_value": ("Value off", "money"),
    "adjustment": ("Adjustment (units)", "count"),
    "adjustment_value": ("Adjustment value", "money"),
    "value": ("Adjustment value", "money"),
    "status": ("Status", "text"),
    "decided_by": ("Decided by", "text"),
    "decided_at": ("Decided", "time"),
    "note": ("Note", "text"),
}


def in_order(frame: pd.DataFrame, columns: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """The frame's columns in the spec's order (the ones it names first, any others after)."""
    named = [c for c in columns if c in frame.columns]
    return frame[named + [c for c in frame.columns if c not in columns]]
