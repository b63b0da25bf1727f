"""Small reusable page parts: filters, KPI cards, a download button for tables."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rebal_core.services import filter_positions, kpis, to_csv_bytes
from rebal_core.views.figures import money, plain


def position_filters(pos: pd.DataFrame, key: str) -> pd.DataFrame:
    """Category, region and site-kind filters in the sidebar; returns the filtered positions."""
    with st.sidebar:
        st.subheader("Filters")
        categories = st.multiselect(
            "Category", sorted(pos["category"].unique()), key=f"{key}-cat", placeholder="All categories"
        )
        regions = st.multiselect("Region", sorted(pos["region"].unique()), key=f"{key}-reg", placeholder="All regions")
        kinds = st.multiselect("Site kind", sorted(pos["kind"].unique()), key=f"{key}-kind", placeholder="All kinds")
    return filter_positions(pos, categories=categories, regions=regions, kinds=kinds)


def kpi_cards(pos: pd.DataFrame) -> dict[str, float]:
    """Headline KPIs of a set of positions; returns them for the caller to reuse."""
    k = kpis(pos)
    cols = st.columns(5)
    cols[0].metric(
        "Expected fill rate",
        f"{k['fill_rate']:.1%}",
        help="1 - expected units short / expected demand over the horizon (a fill rate, not a cycle service level)",
    )
    cols[1].metric("Shortage value", money(k["shortage_value"]), help="Units below target x standard cost")
    cols[2].metric("Excess value", money(k["excess_value"]), help="Units above the excess level x standard cost")
    cols[3].metric(
        "At stockout risk",
        f"{k['n_stockout_risk']:,}",
        help="Positions whose stock position is below expected demand over the horizon",
    )
    cols[4].metric(
        "Network cost of inaction", money(k["network_cost"]), help="Shortage cost + excess cost if nothing is moved"
    )
    return k


def download_csv(frame: pd.DataFrame, file_name: str, label: str, key: str) -> None:
    # Deferred: the file is written when someone clicks, not on every run (0.1 s a redraw for a 1,000-line plan).
    st.download_button(label, lambda: to_csv_bytes(frame), file_name=file_name, mime="text/csv", key=key)


def flash(message: str | None = None) -> None:
    """Show the message left by the last action (actions rerun the page), or leave one for the next run."""
    if message is not None:
        st.session_state["flash"] = message
        return
    left = st.session_state.pop("flash", None)
    if left:
        st.success(plain(left))  # messages carry names: shown as text, never markdown


def attempt(action, done: str, refusals: tuple[type[Exception], ...]) -> bool:
    """Run a core action; on success leave ``done`` for the next run and rerun, on refusal show why."""
    from rebal_core.services import StoreBusy, when_busy

    try:
        result = when_busy(action)
    except (*refusals, StoreBusy) as exc:
        st.error(plain(exc))
        return False
    flash(done(result) if callable(done) else done)
    st.rerun()
    return True


def download_orders(orders: pd.DataFrame, stem: str, key: str, on_download=None) -> None:
    """Transfer orders as CSV and .xlsx (formula-neutralised); ``on_download`` records the export."""
    from rebal_core.services import to_xlsx_bytes

    left, right = st.columns(2)
    left.download_button(
        f"Transfer orders CSV ({len(orders):,})",
        lambda: to_csv_bytes(orders),  # written on click, not on every run
        file_name=f"{stem}.csv",
        mime="text/csv",
        key=f"{key}-csv",
        on_click=on_download,
        args=("csv",),
        type="primary",
    )
    right.download_button(
        "Transfer orders .xlsx",
        lambda: to_xlsx_bytes(orders),
        file_name=f"{stem}.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key=f"{key}-xlsx",
        on_click=on_download,
        args=("xlsx",),
    )


def column_config(columns: dict[str, tuple[str, str]]) -> dict:
    """Streamlit column settings from a view's (label, kind) per column (views stay free of Streamlit)."""
    kinds = {
        "count": lambda label: st.column_config.NumberColumn(label, format="%,d"),
        "money": lambda label: st.column_config.NumberColumn(label, format="$%,.0f"),
        "money2": lambda label: st.column_config.NumberColumn(label, format="$%,.2f"),
        "days": lambda label: st.column_config.NumberColumn(label, format="%.0f"),
        "rate2": lambda label: st.column_config.NumberColumn(label, format="%.2f"),
        "rate3": lambda label: st.column_config.NumberColumn(label, format="%.3f"),
        "pct": lambda label: st.column_config.NumberColumn(label, format="percent"),
        "date": lambda label: st.column_config.DateColumn(label, format="YYYY-MM-DD"),
        "long": lambda label: st.column_config.TextColumn(label, width="large"),
        "flag": lambda label: st.column_config.CheckboxColumn(label),
        "time": lambda label: st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm"),
    }
    return {
        c: kinds.get(kind, lambda label: st.column_config.TextColumn(label))(label)
        for c, (label, kind) in columns.items()
    }
