"""Rebal home: the network at a glance and where imbalances are forming.

The pages under pages/ are found by Streamlit's file-based navigation. st.navigation is not
used: mixed with a folder named pages/ it falls back to file-based pages on reruns.
"""

from pathlib import Path

import streamlit as st

from pages.components import state, widgets
from rebal_core import services
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


@st.cache_data(show_spinner=False, max_entries=4)
def where_it_hurts(dataset_id: int, version: str):
    network = state.network(dataset_id, version)
    return services.briefing.briefing(
        network=network, positions=state.positions(dataset_id, version, services.Scenario())
    )


@st.fragment(run_every=1.0)
def refresh_when_ready() -> None:
    """While the recommended plan is provisional: redraw the page once the optimizer's plan is ready."""
    solving = st.session_state.get("home_solving")
    if solving is None:
        return
    st.caption(f"The optimizer's plan is being made in the background: {solving.message}.")
    if solving.done.is_set():
        del st.session_state["home_solving"]
        st.rerun()


moving = tuple(
    services.workflow.released_in_transit(engine=state.engine(), dataset_id=dataset.id).itertuples(
        index=False, name=None
    )
)
brief = where_it_hurts(dataset.id, state.version(dataset))
rec = services.briefing.recommendation(
    engine=state.engine(), dataset=state.dataset_record(dataset.id), network=net, moving=moving
)
st.subheader("Where it hurts")
c = st.columns(4)
c[0].metric(
    "Value at risk today", money(brief.value_at_risk), help="Expected lost margin plus excess value across the network"
)
c[1].metric(
    "Doing nothing costs",
    money(brief.cost_of_inaction),
    help=f"Shortage and excess cost over each position's horizon with no transfer; {money(brief.expected_lost_value)} of margin expected lost",
)
if rec.plan is not None:
    s = rec.plan.summary
    c[2].metric(
        "The recommended plan saves",
        money(s.net_benefit),
        help=f"{s.lines:,} transfer lines, {s.units_moved:,} units, {money(s.transfer_cost)} transfer cost (expected-cost model, default scenario)",
    )
    c[3].metric(
        "Expected fill rate with it",
        f"{s.fill_rate_after:.2%}",
        delta=f"{(s.fill_rate_after - s.fill_rate_before) * 100:+.2f} pts",
    )
    if s.nothing_pays:
        st.info(s.nothing_pays)
    if rec.plan.provisional:
        st.caption(f"Provisional: {plain(rec.plan.label)}.")
        st.session_state["home_solving"] = rec.solving
        refresh_when_ready()
else:
    st.warning(rec.blocked)
if len(brief.sites):
    st.dataframe(
        brief.sites[["name", "region", "status", "value_at_risk", "shortage_value", "excess_value", "fill_rate"]],
        hide_index=True,
        width="stretch",
        key="home-hurting",
        column_config={
            "name": st.column_config.TextColumn("Site"),
            "region": st.column_config.TextColumn("Region"),
            "status": st.column_config.TextColumn("Status"),
            "value_at_risk": st.column_config.NumberColumn("Value at risk", format="$%,.0f"),
            "shortage_value": st.column_config.NumberColumn("Shortage value", format="$%,.0f"),
            "excess_value": st.column_config.NumberColumn("Excess value", format="$%,.0f"),
            "fill_rate": st.column_config.NumberColumn("Fill rate", format="percent"),
        },
    )
if rec.plan is not None and st.button("Open the recommended plan in the Scenario lab", type="primary", key="home-open"):
    st.switch_page("pages/4_Scenario_lab.py")

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
