"""Monitor: what released plans did, from a later snapshot of the same network, and the trend across snapshots."""

import streamlit as st

from pages.components import state, widgets
from rebal_core import services
from rebal_core.services import snapshot_trend, workflow
from rebal_core.views.figures import money_whole, plain, trend_figure
from rebal_core.views.tables import TREND_COLUMNS, in_order

st.set_page_config(page_title="Monitor - Rebal", layout="wide")
st.title("Monitor")
dataset, net, pos = state.require_dataset()
engine, v = state.engine(), state.version(dataset)
sites = set(net.sites["site_id"])
same = services.snapshots_of(engine=engine, dataset=dataset, site_ids=sites)


@st.cache_data(show_spinner="Reading the snapshots...", max_entries=4)
def trend(ids: tuple[int, ...], names: tuple[str, ...], versions: tuple[str, ...]):
    return snapshot_trend([(name, state.network(i, ver)) for i, name, ver in zip(ids, names, versions)])


st.subheader("Across snapshots of this network")
t = trend(tuple(d.id for d in same), tuple(d.name for d in same), tuple(state.version(d) for d in same))
if len(t) < 2:
    st.caption("One snapshot so far: import a later one of the same network on the Data page to see a trend.")
for col, field in zip(st.columns(3), ("network_cost", "fill_rate", "turns")):
    col.plotly_chart(trend_figure(t, field), width="stretch", key=f"mon-{field}")
st.dataframe(
    in_order(t, TREND_COLUMNS),
    hide_index=True,
    width="stretch",
    key="mon-trend",
    column_config=widgets.column_config(TREND_COLUMNS),
)

st.subheader("What a released plan did")
released = [
    s
    for s in workflow.list_scenarios(engine=engine, dataset_id=dataset.id)
    if s.status in ("released", "received", "in_review")
    and workflow.lines(engine=engine, scenario_id=s.id).get("released", []).any()
]
later = [d for d in same if d.as_of > dataset.as_of]
if not released:
    st.info(f"No plan of {plain(dataset.name)} has released lines yet (approve and release one on the Plans page).")
elif not later:
    st.info(
        f"Import a later snapshot of this network (same sites, planning date after {dataset.as_of}) on the Data page to see what the released plans did."
    )
else:
    by_id = {s.id: s for s in released}
    chosen = st.selectbox("Released plan", list(by_id), format_func=lambda i: by_id[i].name, key="mon-plan")
    after = st.selectbox(
        "Later snapshot",
        [d.id for d in later],
        format_func=lambda i: next(f"{d.name} ({d.as_of})" for d in later if d.id == i),
        key="mon-later",
    )
    later_ds = next(d for d in later if d.id == after)
    out = workflow.plan_outcomes(
        engine=engine,
        scenario_id=chosen,
        later_dataset_id=after,
        network=net,
        later=state.network(after, state.version(later_ds)),
    )
    was_short = out["stockout_avoided"].notna()
    k = st.columns(4)
    k[0].metric("Released lines followed", f"{len(out):,}")
    k[1].metric("Receivers short at planning", f"{int(was_short.sum()):,}")
    k[2].metric(
        "Stockouts avoided",
        f"{int(out.loc[was_short, 'stockout_avoided'].sum()):,}",
        help="Receivers that were short and have stock on hand in the later snapshot",
    )
    k[3].metric("Donors out of stock later", f"{int(out['donor_short_later'].sum()):,}")
    st.caption(
        f"Transfer spend of the plan: {money_whole(getattr(workflow.summary(by_id[chosen]), 'transfer_cost', 0))}. Positions: planned = the plan's view after the transfers; actual = on hand + in transit in the later snapshot."
    )
    st.dataframe(out, hide_index=True, width="stretch", key="mon-lines")
    widgets.download_csv(out, "plan-outcomes.csv", "Download the outcomes", key="mon-csv")
