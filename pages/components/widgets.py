"""Small reusable page parts: filters, KPI cards, a download button for tables."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rebal_core.export import to_csv_bytes
from rebal_core.figures import money
from rebal_core.positions import filter_positions, kpis


def position_filters(pos: pd.DataFrame, key: str) -> pd.DataFrame:
    """Category, region and site-kind filters in the sidebar; returns the filtered positions."""
    with st.sidebar:
        st.subheader("Filters")
        categories = st.multiselect("Category", sorted(pos["category"].unique()), key=f"{key}-cat", placeholder="All categories")
        regions = st.multiselect("Region", sorted(pos["region"].unique()), key=f"{key}-reg", placeholder="All regions")
        kinds = st.multiselect("Site kind", sorted(pos["kind"].unique()), key=f"{key}-kind", placeholder="All kinds")
    return filter_positions(pos, categories=categories, regions=regions, kinds=kinds)


def kpi_cards(pos: pd.DataFrame) -> dict[str, float]:
    """Headline KPIs of a set of positions; returns them for the caller to reuse."""
    k = kpis(pos)
    cols = st.columns(5)
    cols[0].metric("Expected fill rate", f"{k['fill_rate']:.1%}", help="1 - expected units short / expected demand over the horizon (a fill rate, not a cycle service level)")
    cols[1].metric("Shortage value", money(k["shortage_value"]), help="Units below target x standard cost")
    cols[2].metric("Excess value", money(k["excess_value"]), help="Units above the excess level x standard cost")
    cols[3].metric("At stockout risk", f"{k['n_stockout_risk']:,}", help="Positions whose stock position is below expected demand over the horizon")
    cols[4].metric("Network cost of inaction", money(k["network_cost"]), help="Shortage cost + excess cost if nothing is moved")
    return k


def download_csv(frame: pd.DataFrame, file_name: str, label: str, key: str) -> None:
    st.download_button(label, to_csv_bytes(frame), file_name=file_name, mime="text/csv", key=key)
