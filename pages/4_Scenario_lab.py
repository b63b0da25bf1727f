"""Scenario lab: tune the planning rules, re-solve, see what the plan does and why."""

import time

import pandas as pd
import streamlit as st

from pages.components import state, widgets
from rebal_core import services
from rebal_core.services import Scenario, ScenarioInvalid, lab, workflow
from rebal_core.views.figures import cost_waterfall, money, plain, signed_money, transfer_map, uncertainty_bands

st.set_page_config(page_title="Scenario lab - Rebal", layout="wide")
MC_DRAWS = lab.MC_DRAWS
DRAW_SECONDS = 0.25  # what drawing a plan takes before this session has drawn one (then the last draw's time)
BROWSER_SECONDS = 0.15  # a change's trip to the server and the browser's paint (Chromium on the sample: 0.1-0.2 s)
st.title("Scenario lab")

dataset, net, pos = state.require_dataset()
v = state.version(dataset)


@st.cache_resource(max_entries=4)
def problem_for(dataset_id: int, version: str, scenario: Scenario, moving: tuple):
    """The planning problem of a scenario, built once for both methods (solvers only read it).

    ``moving``: the lines released by saved plans and not yet received; they are in transit, never proposed again.
    """
    return lab.problem(state.network(dataset_id, version), scenario, moving)


def plan_shown(scenario: Scenario, moving: tuple, time_limit: float, started: float) -> lab.LabPlan | None:
    """The plan to draw for ``scenario``: the reproducible one when it is ready within the limit shown
    (counted from the move), else a provisional one, labelled. The solve this session waits for is
    kept under a non-widget key; moving on leaves it (the last to leave stops it)."""
    solving = lab.request(
        engine=state.engine(), dataset=state.dataset_record(dataset.id), network=net, scenario=scenario, moving=moving
    )
    previous = st.session_state.get("lab_solve")
    if previous is solving:
        lab.leave(solving)  # joined again on a rerun: this session holds it once
    else:
        lab.leave(previous)
    st.session_state["lab_solve"] = solving
    bar = st.progress(0.0, text="Solving...")
    try:
        # The wait ends early enough for the plan to be drawn within the limit (the last draw's time,
        # and the browser's share: the change's trip to the server and the paint).
        drawing = st.session_state.get("lab_draw_seconds", DRAW_SECONDS) + BROWSER_SECONDS
        return lab.answer(
            engine=state.engine(),
            lab_solve=solving,
            seconds=time_limit - drawing - (time.monotonic() - started),
            tick=lambda f, m: bar.progress(min(f, 1.0), text=m),  # a new move interrupts the wait here
        )
    finally:
        bar.empty()


def follow(solving: lab.LabSolve) -> None:
    """Below a provisional plan: wait for the reproducible one, then redraw the lab with it."""
    note = st.empty()
    while not solving.done.is_set():
        solving.done.wait(0.25)
        note.caption(
            f"Provisional plan shown; the optimizer's is being made in the background "
            f"({time.monotonic() - solving.started:.0f} s): {solving.message}"
        )  # a new move or Stop interrupts here
    if solving.result is not None:
        try:
            st.rerun(scope="fragment")  # a slider's rerun: only the lab redraws
        except st.errors.StreamlitAPIException:  # the page's first run (not a fragment rerun): the whole page
            st.rerun()
    note.caption("The optimizer stopped; the plan shown is provisional.")


@st.cache_data(show_spinner="Drawing demand...", max_entries=16)
def uncertainty(dataset_id: int, version: str, scenario: Scenario, moving: tuple, _table, table_key: str):
    """The plan's uncertainty bands (``table_key`` identifies the plan: its lines are not hashed)."""
    return lab.uncertainty(problem_for(dataset_id, version, scenario, moving), _table)


def scenario_inputs() -> Scenario | None:
    """Every scenario parameter of the spec; sliders where a range makes sense. None when invalid."""
    c1, c2, c3, c4 = st.columns(4)
    values = {
        "service_level": c1.slider(
            "Service level",
            0.50,
            0.999,
            0.95,
            0.005,
            format="%.3f",
            key="lab-sl",
            help="Cycle service level over the horizon (0.5 to 0.9999)",
        ),
        "horizon_days": c1.slider("Horizon (days)", 1, 365, 28, key="lab-h"),
        "excess_cover_days": c1.slider(
            "Excess cover (days)",
            1,
            730,
            90,
            key="lab-x",
            help="Stock beyond this many days of demand plus safety stock is excess; must be >= the horizon",
        ),
        "donor_reserve": c2.slider("Donor reserve (share of safety stock kept)", 0.0, 1.0, 1.0, 0.05, key="lab-dr"),
        "min_move_units": int(c2.number_input("Minimum move (units)", min_value=1, value=1, step=1, key="lab-mm")),
        "cost_per_move": float(c2.number_input("Cost per move ($)", min_value=0.0, value=0.0, step=5.0, key="lab-cpm")),
        "shortage_cost_factor": c3.slider("Shortage cost factor (no price known)", 0.0, 3.0, 0.5, 0.05, key="lab-scf"),
        "excess_cost_rate": c3.slider("Excess cost rate (share of unit cost)", 0.0, 0.5, 0.05, 0.01, key="lab-ecr"),
    }
    if c3.toggle("Limit lead time", key="lab-lt-on"):
        values["max_lead_time_days"] = c3.slider("Maximum lead time (days)", 0.0, 30.0, 5.0, 0.5, key="lab-lt")
    if c4.toggle(
        "Cost-ratio threshold",
        key="lab-ratio-on",
        help="A lane is not used for a SKU when its cost per unit exceeds this share of the unit cost",
    ):
        values["max_unit_cost_ratio"] = c4.slider("Max lane cost / unit cost", 0.0, 1.0, 0.10, 0.01, key="lab-ratio")
    if c4.toggle("Budget", key="lab-budget-on"):
        values["budget"] = float(
            c4.number_input("Budget ($)", min_value=0.0, value=50_000.0, step=1_000.0, key="lab-budget")
        )
    expected = c1.toggle(
        "Expected lost sales (spec default)",
        value=True,
        key="lab-objective",
        help="On: expected lost sales and expected excess over each position's horizon (up to its replenishment). Off: shortfall below target and stock above the excess level (rules-based reading).",
    )
    values["objective"] = "expected" if expected else "target"
    if expected and c2.toggle(
        "Fill-rate target",
        key="lab-fr-on",
        help="The least-cost plan whose expected fill rate over the positions in scope reaches the target",
    ):
        values["target_fill_rate"] = c2.slider(
            "Target expected fill rate", 0.50, 0.999, 0.95, 0.005, format="%.3f", key="lab-fr"
        )
    values["categories"] = tuple(
        c4.multiselect("Categories in scope", sorted(pos["category"].unique()), key="lab-cat", placeholder="All")
    )
    values["regions"] = tuple(
        c4.multiselect("Regions in scope", sorted(pos["region"].unique()), key="lab-reg", placeholder="All")
    )
    try:
        return Scenario(**values)
    except ScenarioInvalid as exc:
        st.error("This scenario cannot be planned:\n\n" + "\n".join(f"- {p}" for p in exc.problems))
        return None


LAB_SETTINGS = (
    "lab-sl", "lab-h", "lab-x", "lab-dr", "lab-mm", "lab-cpm", "lab-scf", "lab-ecr", "lab-lt-on", "lab-lt",
    "lab-ratio-on", "lab-ratio", "lab-budget-on", "lab-budget", "lab-objective", "lab-fr-on", "lab-fr", "lab-cat",
    "lab-reg", "lab-tl", "lab-mc",
)  # fmt: skip


@st.fragment
def scenario_lab() -> None:
    state.keep_settings(LAB_SETTINGS)  # the lab's settings are still there after a visit to Plans or Compare
    started = time.monotonic()
    with st.expander("Scenario", expanded=True):
        scenario = scenario_inputs()
        time_limit = st.select_slider(
            "Wait for the optimizer (seconds)",
            [1, 2, 5, 10, 30, 60, 120],
            value=1,
            key="lab-tl",
            help="The longest a change waits for the optimizer's plan. Past it the page shows a provisional plan "
            "(the greedy rule's, or the nearest settings solved before) and replaces it when the optimizer's is ready. "
            "The optimizer's plan does not depend on this wait: the same settings always give the same plan.",
        )
    if scenario is None:
        return
    blocked = services.planning_blocked(dataset)
    if blocked:
        st.error(blocked)
        return
    st.caption(
        "Each change re-solves this part of the page only; a running solve stops when you change a value or press Stop."
    )
    if st.button("Stop", key="lab-stop", help="Interrupts a running solve"):
        lab.stop(st.session_state.get("lab_solve"))
        st.info("Solve stopped. Change any value to solve again.")
        return
    moving = tuple(
        workflow.released_in_transit(engine=state.engine(), dataset_id=dataset.id).itertuples(index=False, name=None)
    )
    if moving:
        st.caption(
            f"{len(moving):,} released transfer line(s) not yet received count as in transit and are not proposed again."
        )
    best = plan_shown(scenario, moving, float(time_limit), started)
    if best is None:
        st.info("Solve stopped. Change any value to solve again.")
        return
    drawn_from = time.monotonic()
    s, g = best.summary, best.rule  # the greedy rule's plan: the optimizer's starting point
    st.session_state["lab_scenario"] = scenario.as_dict()
    if best.provisional:
        st.warning(f"Provisional: {plain(best.label)}. The optimizer's plan replaces it when it is ready.")

    cols = st.columns(5)
    cols[0].metric(
        "Network cost",
        money(s.network_cost_after),
        delta=signed_money(s.network_cost_after - s.network_cost_before),
        delta_color="inverse",
        help="Transfer + shortage + excess cost after the plan (change against doing nothing)",
    )
    cols[1].metric(
        "Expected fill rate",
        f"{s.fill_rate_after:.2%}",
        delta=f"{(s.fill_rate_after - s.fill_rate_before) * 100:+.2f} pts",
    )
    cols[2].metric(
        "Shortage value",
        money(s.kpis_after["shortage_value"]),
        delta=signed_money(s.kpis_after["shortage_value"] - s.kpis_before["shortage_value"]),
        delta_color="inverse",
    )
    cols[3].metric(
        "Excess value",
        money(s.kpis_after["excess_value"]),
        delta=signed_money(s.kpis_after["excess_value"] - s.kpis_before["excess_value"]),
        delta_color="inverse",
    )
    cols[4].metric(
        "Transfer cost",
        money(s.transfer_cost),
        help=f"{s.lines:,} lines, {s.units_moved:,} units, {sum(s.trucks.values()):,} trucks",
    )
    bound = f"proven gap {s.gap:.2%} (lower bound {money(s.lower_bound)})" if s.gap == s.gap else "no proven bound"
    st.caption(
        f"Solver: {s.solver_status}, {bound}, {s.solve_seconds:.1f} s."
        + (" The greedy rule's plan was better within the time limit and is kept." if s.kept_greedy_plan else "")
    )
    if s.nothing_pays:
        st.info(s.nothing_pays)
    if s.fill_rate_target is not None and not s.fill_rate_target_met:
        st.warning(
            f"No plan reaches an expected fill rate of {s.fill_rate_target:.1%} over the positions in scope: this is the plan that comes closest "
            f"({s.fill_rate_after:.2%} over the whole network). Transfers cannot create stock the network does not hold."
        )

    # Lazy: the draws run only while the expander is open (0.15 s a move on the sample otherwise).
    drawn = st.expander(
        f"Uncertainty: {MC_DRAWS} demand draws from the forecast, without and with the plan",
        key="lab-mc",
        on_change="rerun",
    )
    if drawn.open:
        bands = uncertainty(dataset.id, v, scenario, moving, best.table, f"{best.kind}:{s.network_cost_after!r}")
        u1, u2 = drawn.columns(2)
        u1.plotly_chart(
            uncertainty_bands({"with the plan": bands}, "fill_rate", "Fill rate", percent=True),
            width="stretch",
            key="lab-mc-fill",
        )
        u2.plotly_chart(
            uncertainty_bands({"with the plan": bands}, "shortage_cost", "Shortage cost (units lost x penalty)"),
            width="stretch",
            key="lab-mc-cost",
        )
        drawn.caption(
            "Thin line: 5th to 95th percentile; thick: 25th to 75th; mark: median. The same draws for both, so the gap is the plan's."
        )
    left, right = st.columns([3, 2])
    left.plotly_chart(cost_waterfall(s), width="stretch", key="lab-waterfall")
    rows = [
        ("Network cost", s.network_cost_after, g.network_cost_after, money),
        ("Net benefit", s.net_benefit, g.net_benefit, money),
        ("Transfer cost", s.transfer_cost, g.transfer_cost, money),
        ("Expected fill rate", s.fill_rate_after, g.fill_rate_after, lambda x: f"{x:.2%}"),
        ("Transfer lines", s.lines, g.lines, lambda x: f"{x:,}"),
        ("Units moved", s.units_moved, g.units_moved, lambda x: f"{x:,}"),
    ]
    compare = pd.DataFrame(
        [(name, fmt(a), fmt(b)) for name, a, b, fmt in rows], columns=["", "Optimized", "Greedy rule"]
    )
    right.markdown("**Optimized against the greedy rule** (largest shortage first, nearest donor)")
    right.dataframe(compare, hide_index=True, width="stretch")
    right.caption(
        f"Optimization saves {money(g.network_cost_after - s.network_cost_after)} of network cost over the greedy rule on this scenario."
    )

    st.subheader("Transfers")
    event = st.pydeck_chart(
        transfer_map(best.sites_after, best.table, net.sites),
        height=460,
        key="lab-map",
        on_select="rerun",
        selection_mode="single-object",
    )
    picked = event.selection.objects if event and event.selection else {}
    if picked.get("transfers"):  # a lane's arc: its lines
        st.session_state["lab_lane"] = (picked["transfers"][0]["from_site_id"], picked["transfers"][0]["to_site_id"])
    elif picked.get("sites"):  # a site: every line from or to it
        st.session_state["lab_lane"] = (picked["sites"][0]["site_id"], None)
    table = best.table
    f1, f2, f3 = st.columns([1, 2, 1])
    categories = f1.multiselect(
        "Category",
        sorted(table["category"].dropna().unique()) if len(table) else [],
        key="lab-table-cat",
        placeholder="All categories",
    )
    text = f2.text_input("Search site, SKU or reason", key="lab-table-q")
    shown = table if not categories else table[table["category"].isin(categories)]
    lane = st.session_state.get("lab_lane")
    if lane:
        origin, destination = lane
        names = dict(zip(net.sites["site_id"], net.sites["name"]))
        if destination is None:
            shown = shown[(shown["from_site_id"] == origin) | (shown["to_site_id"] == origin)]
            label = f"Lines from or to {names.get(origin, origin)}"
        else:
            shown = shown[(shown["from_site_id"] == origin) & (shown["to_site_id"] == destination)]
            label = f"Lines {names.get(origin, origin)} to {names.get(destination, destination)}"
        if f3.button(
            f"{label} (show all)", key="lab-clear-lane", help="Click an arc or a site on the map to pick its lines"
        ):
            st.session_state["lab_lane"] = None
            st.rerun(scope="fragment")
    if text:
        hay = shown[["sku_id", "sku_name", "from_site", "to_site", "reason"]].astype(str).agg(" ".join, axis=1)
        shown = shown[hay.str.contains(text, case=False, regex=False)]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        height=380,
        column_config={
            "reason": st.column_config.TextColumn(width="large"),
            "line_cost": st.column_config.NumberColumn(format="$%.2f"),
            "shortage_avoided": st.column_config.NumberColumn(format="$%.0f"),
            "excess_avoided": st.column_config.NumberColumn(format="$%.0f"),
            "truck_share": st.column_config.NumberColumn(format="$%.0f"),
        },
        key="lab-table",
    )
    widgets.download_csv(table, "PLAN.csv", f"Download the plan (PLAN.csv, {len(table):,} lines)", key="lab-download")
    save(scenario, float(time_limit), shown=(best.table, best.summary), provisional=best.provisional)
    st.session_state["lab_draw_seconds"] = min(time.monotonic() - drawn_from, 0.5 * time_limit)
    if best.provisional:
        follow(st.session_state["lab_solve"])


def save(scenario: Scenario, time_limit: float, shown, provisional: bool = False) -> None:
    """Persist these rules as a saved scenario with the plan shown above (not a new solve), for
    comparison and approval; not while the plan shown is provisional."""
    actor = state.actor()
    with st.expander("Save as a scenario (for Compare and Plans)"):
        name = st.text_input("Scenario name", key="lab-save-name", placeholder="e.g. 98% service, no budget")
        if st.button(
            "Save this plan",
            disabled=provisional or not name.strip() or not actor.can("save_scenario"),
            key="lab-save",
            help="Wait for the optimizer's plan: the plan shown is provisional"
            if provisional
            else (None if actor.can("save_scenario") else "Needs the planner or admin role"),
        ):
            bar = st.progress(0.0, text="Saving the plan shown...")
            try:
                record = workflow.save_scenario(
                    engine=state.engine(),
                    actor=actor,
                    dataset_id=dataset.id,
                    scenario=lab.settled(scenario),  # the numbers the plan shown was made with
                    name=name,
                    time_limit=time_limit,
                )
                record = workflow.solve_scenario(
                    engine=state.engine(),
                    actor=actor,
                    scenario_id=record.id,
                    network=net,
                    progress=lambda f, m: bar.progress(min(f, 1.0), text=m),
                    shown=shown,
                )
            except workflow.REFUSALS as exc:
                st.error(str(exc))
                return
            finally:
                bar.empty()
            st.session_state["scenario_id"] = record.id
            st.success(
                f"Saved {plain(repr(record.name))} with a plan of {getattr(workflow.summary(record), 'lines', 0)} lines."
            )
            st.markdown("Review and approve it on the **Plans** page.")


scenario_lab()
