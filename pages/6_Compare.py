"""Compare: 2-4 saved plans side by side (A / B / delta), their maps and differing lines, and the service-level trade-off."""

import numpy as np
import streamlit as st

from pages.components import state, widgets
from rebal_core.services import (
    SWEEPS,
    Commitments,
    Scenario,
    bands,
    differing_lines,
    kpi_table,
    plan_positions,
    simulate,
    site_summary,
    tradeoff,
    tradeoff_notes,
    units_by_region,
    workflow,
)
from rebal_core.views.figures import (
    compare_bars,
    cost_waterfall,
    region_units_figure,
    text_label,
    tradeoff_figure,
    transfer_map,
    uncertainty_bands,
    waterfall_top,
)
from rebal_core.views.tables import kpi_display

st.set_page_config(page_title="Compare - Rebal", layout="wide")
st.title("Compare scenarios")
dataset, net, pos = state.require_dataset()
engine, v = state.engine(), state.version(dataset)

solved = [s for s in workflow.list_scenarios(engine=engine, dataset_id=dataset.id) if s.solved_at is not None]
if len(solved) < 2:
    st.info(
        "Compare needs at least two solved scenarios of this dataset: save them from the **Scenario lab** or clone one on the **Plans** page."
    )
by_id = {s.id: s for s in solved}


@st.cache_data(show_spinner="Scoring the plan...", max_entries=16)
def plan_view(scenario_id: int, revision: int, version: str) -> dict:  # noqa: ARG001 - revision and version key the cache
    """A stored plan's lines and per-site figures after it (for its map)."""
    record = workflow.get_scenario(engine=engine, scenario_id=scenario_id)
    lines = workflow.in_plan(workflow.lines(engine=engine, scenario_id=scenario_id))
    plan, _ = workflow.score_lines(state.network(dataset.id, version), record, lines)
    before, after = plan_positions(plan)
    return {
        "lines": lines,
        "sites_after": site_summary(plan.score.positions_after, net.sites),
        "uncertainty": bands(simulate(before, after, draws=500)),
    }


if len(solved) >= 2:
    default = [s.id for s in solved[:2]]
    chosen = st.multiselect(
        "Scenarios (2 to 4)",
        list(by_id),
        default=default,
        max_selections=4,
        format_func=lambda i: f"{by_id[i].name} ({by_id[i].status})",
        key="cmp-pick",
    )
    if len(chosen) < 2:
        st.warning("Pick at least two scenarios.")
    else:
        names = [by_id[i].name for i in chosen]
        base = st.radio("Base (the A in A / B / delta)", names, horizontal=True, key="cmp-base")
        summaries = {by_id[i].name: workflow.summary(by_id[i]) for i in chosen}
        table = kpi_table(summaries, base)
        shown = kpi_display(table)
        st.dataframe(shown, hide_index=True, width="stretch", key="cmp-kpis", height=35 * (len(shown) + 1) + 3)
        st.caption(
            "Expected fill rate: share of expected demand over the horizon served from stock (a fill rate, not a cycle service level). "
            f"Deltas are each scenario minus {base}; costs: lower is better. Shortage and network costs are measured against each "
            "scenario's own targets, which move with the service level: across service levels compare transfer cost with the fill rate (trade-off below)."
        )
        widgets.download_csv(table, "compare-kpis.csv", "Download the KPI table", key="cmp-kpis-csv")

        views = {by_id[i].name: plan_view(i, by_id[i].revision, v) for i in chosen}
        cols = st.columns(len(chosen))
        top = waterfall_top([summaries[n] for n in names])  # one scale for every plan
        for col, name in zip(cols, names):
            col.plotly_chart(
                cost_waterfall(summaries[name], title=text_label(name), y_max=top),
                width="stretch",
                key=f"cmp-wf-{name}",
            )
        c1, c2, c3 = st.columns(3)
        c1.plotly_chart(
            compare_bars({n: summaries[n].fill_rate_after for n in names}, "Expected fill rate after", percent=True),
            width="stretch",
            key="cmp-fill",
        )
        c2.plotly_chart(
            compare_bars({n: summaries[n].transfer_cost for n in names}, "Transfer spend"),
            width="stretch",
            key="cmp-spend",
        )
        c3.plotly_chart(
            region_units_figure(units_by_region({n: views[n]["lines"] for n in names}, net.sites)),
            width="stretch",
            key="cmp-regions",
        )

        st.subheader("Uncertainty")
        st.caption(
            "500 demand draws from the forecast (the same draws for every plan): thin line 5th-95th percentile, thick 25th-75th, mark the median."
        )
        u1, u2 = st.columns(2)
        u1.plotly_chart(
            uncertainty_bands({n: views[n]["uncertainty"] for n in names}, "fill_rate", "Fill rate", percent=True),
            width="stretch",
            key="cmp-mc-fill",
        )
        u2.plotly_chart(
            uncertainty_bands(
                {n: views[n]["uncertainty"] for n in names}, "shortage_cost", "Shortage cost (units lost x penalty)"
            ),
            width="stretch",
            key="cmp-mc-cost",
        )

        st.subheader("Transfers on the map")
        cols = st.columns(min(len(chosen), 2))
        for j, name in enumerate(names):
            with cols[j % len(cols)]:
                st.markdown(f"**{name}**: {len(views[name]['lines']):,} lines")
                st.pydeck_chart(
                    transfer_map(views[name]["sites_after"], views[name]["lines"], net.sites, width_px=440),
                    height=360,
                    key=f"cmp-map-{j}",
                )

        st.subheader("Lines that differ")
        diff = differing_lines({n: views[n]["lines"] for n in names})
        st.caption(f"{len(diff):,} line(s) with a different quantity (0 = not in that plan), largest difference first.")
        st.dataframe(diff, hide_index=True, width="stretch", height=320, key="cmp-diff")
        widgets.download_csv(diff, "lines-that-differ.csv", "Download the differing lines", key="cmp-diff-csv")

st.subheader("Trade-off: what service costs")
st.caption(
    "Solves the chosen scenario's rules at each fill-rate target (the least-cost plan that reaches it) or each service level, and plots transfer "
    "and network cost against the expected fill rate reached. Blue points are on the Pareto front: no other point serves as well for less transfer spend."
)
params_from = st.selectbox(
    "Rules from",
    [None, *by_id],
    format_func=lambda i: "Default rules" if i is None else by_id[i].name,
    key="cmp-sweep-base",
)
over = st.radio(
    "Sweep over", list(SWEEPS), format_func=lambda k: SWEEPS[k].capitalize(), horizontal=True, key="cmp-sweep-over"
)
if over == "target_fill_rate":
    lo, hi = st.slider("Fill-rate targets", 0.50, 0.999, (0.90, 0.99), 0.005, format="%.3f", key="cmp-sweep-fr")
else:
    lo, hi = st.slider("Service levels", 0.80, 0.995, (0.90, 0.995), 0.005, format="%.3f", key="cmp-sweep-range")
points = st.slider("Points", 3, 12, 6, key="cmp-sweep-n")
limit = st.select_slider("Time limit per solve (s)", [1, 2, 5, 10], value=1, key="cmp-sweep-tl")
if st.button("Run the sweep", type="primary", key="cmp-sweep"):
    base_rules = workflow.parameters(by_id[params_from]) if params_from else Scenario()
    bar = st.progress(0.0, text="Sweeping...")
    moving = Commitments(in_transit=workflow.released_in_transit(engine=engine, dataset_id=dataset.id))
    st.session_state["cmp_sweep"] = (
        dataset.id,
        tradeoff(
            net,
            base_rules,
            np.linspace(lo, hi, points),
            over=over,
            commitments=moving,
            time_limit=float(limit),
            progress=lambda f, m: bar.progress(min(f, 1.0), text=m),
        ),
    )
    bar.empty()
swept_on, sweep = st.session_state.get("cmp_sweep", (None, None))
if sweep is not None and swept_on == dataset.id:
    for note in tradeoff_notes(sweep):
        st.info(note)
    st.plotly_chart(tradeoff_figure(sweep), width="stretch", key="cmp-sweep-fig")
    st.dataframe(sweep, hide_index=True, width="stretch", key="cmp-sweep-table")
    widgets.download_csv(sweep, "service-tradeoff.csv", "Download the sweep", key="cmp-sweep-csv")
