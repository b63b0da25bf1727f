"""Rebal home: the network at a glance and where imbalances are forming.

The pages under pages/ are found by Streamlit's file-based navigation. st.navigation is not
used: mixed with a folder named pages/ it falls back to file-based pages on reruns.
"""

from pathlib import Path

import streamlit as st

from pages.components import state, widgets
from rebal_core.views.figures import money, plain, status_bar

st.set_page_config(
    page_title="Rebal - inventory rebalancing",
    page_icon=str(Path(__file__).parent / "data" / "favicon.png"),  # served locally: no icon font from the internet
    layout="wide",
)

st.title("Rebal")
st.caption(
    "Multi-location inventory rebalancing: see where stock sits idle and where demand has moved, before stockouts or write-offs force the decision."
)

dataset, net, pos = state.require_dataset()
unstocked = len(pos) - dataset.positions  # positions with forecast demand but no inventory row (stock 0)
st.markdown(
    f"**Dataset:** {plain(dataset.name)} · planning date **{dataset.as_of}** · {dataset.sites} sites · {dataset.skus} SKUs · {len(pos):,} positions"
    + (
        f" ({dataset.positions:,} with a stock record, {unstocked:,} with demand and no stock record)"
        if unstocked > 0
        else ""
    )
)

widgets.kpi_cards(pos)

left, right = st.columns([3, 2])
with left:
    st.subheader("Positions by status and region")
    st.plotly_chart(status_bar(pos), width="stretch", key="status-bar")
with right:
    st.subheader("Where imbalances are forming")
    st.caption("Projected from on hand + in transit, inbound by ETA and the daily forecast.")
    for days in (7, 14, 28):
        soon = pos[pos["days_until_stockout"] < days]
        st.metric(
            f"Stockouts within {days} days",
            f"{len(soon):,} positions",
            help=f"Stock value at those positions today: {money(float(soon['stock_value'].sum()))}",
        )
    excess_soon = pos[pos["days_until_excess"] < 28]
    st.metric("Into excess within 28 days", f"{len(excess_soon):,} positions")

st.markdown("Explore on the **Network** map, drill into **Hotspots**, or load your own data on the **Data** page.")
