"""Plans: saved scenarios, their plan lines with decisions, the lifecycle from draft to received, and transfer orders."""

import streamlit as st

from pages.components import state, widgets
from rebal_core.services import PLAN_STATES, Scenario, jobs, workflow
from rebal_core.views.figures import cost_waterfall, money, plain, signed_money
from rebal_core.views.tables import PLAN_LINE_COLUMNS, picked_totals, plan_lines_view

st.set_page_config(page_title="Plans - Rebal", layout="wide")
st.title("Plans")
dataset, net, pos = state.require_dataset()
actor, engine, v = state.actor(), state.engine(), state.version(dataset)
REFUSED = workflow.REFUSALS
LABEL = {
    "draft": "Draft",
    "in_review": "In review",
    "approved": "Approved",
    "released": "Released",
    "received": "Received",
}
widgets.flash()

scenarios = workflow.list_scenarios(engine=engine, dataset_id=dataset.id)
with st.expander("New scenario", expanded=not scenarios):
    st.caption(
        "Starts from the spec's default rules; tune them in the **Scenario lab** and save from there, or clone a scenario below."
    )
    new_name = st.text_input("Name", key="plans-new-name")
    if st.button("Create", disabled=not actor.can("save_scenario"), key="plans-new"):
        widgets.attempt(
            lambda: workflow.save_scenario(
                engine=engine,
                actor=actor,
                dataset_id=dataset.id,
                scenario=Scenario(name=new_name or "default"),
                name=new_name,
            ),
            lambda r: (st.session_state.update(scenario_id=r.id), f"Saved {r.name!r}. Solve it to get its plan.")[1],
            REFUSED,
        )
if not scenarios:
    st.info(f"No saved scenarios for {plain(dataset.name)} yet.")
    st.stop()

ids = [s.id for s in scenarios]
by_id = {s.id: s for s in scenarios}
if st.session_state.get("scenario_id") not in by_id:
    st.session_state["scenario_id"] = ids[0]
st.session_state["plans-pick"] = st.session_state[
    "scenario_id"
]  # the shared choice (set by the lab, Compare...) wins over stale widget state
st.selectbox(
    "Scenario",
    ids,
    format_func=lambda i: f"{by_id[i].name} - {LABEL[by_id[i].status]}",
    key="plans-pick",
    on_change=lambda: st.session_state.update(scenario_id=st.session_state["plans-pick"]),
)
record = by_id[st.session_state["scenario_id"]]
summary = workflow.summary(record)
lines = workflow.lines(engine=engine, scenario_id=record.id)

st.markdown(" → ".join(f"**:blue-background[{LABEL[s]}]**" if s == record.status else LABEL[s] for s in PLAN_STATES))
solved = (
    f"solved by {record.solved_by} on {record.solved_at:%Y-%m-%d %H:%M} UTC" if record.solved_at else "not solved yet"
)
st.caption(
    f"By {record.author}, {record.created_at:%Y-%m-%d %H:%M} UTC · {solved} · {record.solver_version} · policy v{record.policy_version or '-'} · "
    f"method {record.method}, time limit {record.time_limit:g} s"
)

with st.expander("Parameters, clone, rename, delete, reproduce"):
    st.json(workflow.parameters(record).as_dict(), expanded=False)
    if st.button(
        "Re-run from the record",
        disabled=record.solved_at is None,
        key="plans-reproduce",
        help="Solves again with the stored parameters, method, time limit and decisions, and lists any line that comes out different",
    ):
        with st.spinner("Re-running..."):
            check = workflow.reproduce(engine=engine, scenario_id=record.id, network=state.network(dataset.id, v))
        if check.same:
            st.success(f"Reproduced: the same lines, network cost {money(check.new_cost)}.")
        else:
            st.warning(
                f"{len(check.differences)} line(s) differ (network cost {money(check.stored_cost)} stored, {money(check.new_cost)} now): "
                "a time limit that cut a step short, or a different solver version."
            )
            st.dataframe(check.differences, hide_index=True, key="plans-repro-diff")
    c1, c2, c3 = st.columns(3)
    clone_name = c1.text_input("Clone as", value=f"{record.name} (copy)", key="plans-clone-name")
    if c1.button("Clone", disabled=not actor.can("save_scenario"), key="plans-clone"):
        widgets.attempt(
            lambda: workflow.clone_scenario(engine=engine, actor=actor, scenario_id=record.id, name=clone_name),
            lambda r: (st.session_state.update(scenario_id=r.id), f"Cloned as {r.name!r}; solve it to get its plan.")[
                1
            ],
            REFUSED,
        )
    new = c2.text_input("Rename to", value=record.name, key="plans-rename-name")
    if c2.button("Rename", disabled=not actor.can("edit_scenario"), key="plans-rename"):
        widgets.attempt(
            lambda: workflow.rename_scenario(engine=engine, actor=actor, scenario_id=record.id, name=new),
            "Renamed.",
            REFUSED,
        )
    with c3.popover("Delete", disabled=not actor.can("edit_scenario")):
        st.write(f"Delete **{plain(record.name)}** and its plan? The audit log keeps the record.")
        if st.button("Delete", type="primary", key="plans-delete"):
            widgets.attempt(
                lambda: workflow.delete_scenario(engine=engine, actor=actor, scenario_id=record.id),
                f"Deleted {record.name!r}.",
                REFUSED,
            )

# ----------------------------------------------------------------------------- lifecycle actions
cols = st.columns(6)
solving = jobs.active_solve(engine=engine, scenario_id=record.id)  # a solve job under way (anyone's)
if solving is not None and solving.status == "lost":
    st.warning(f"Solve job {solving.id} stopped reporting ({solving.message}); solve again.")
    solving = None
if cols[0].button(
    "Solve" if record.solved_at is None else "Re-solve",
    disabled=record.status != "draft" or not actor.can("edit_scenario") or solving is not None,
    key="plans-solve",
    help="Re-plans around the decisions: rejected lines stay out, approved and firm lines are kept, other plans' released lines count as in transit",
):
    if jobs.solves_as_job(record.time_limit):  # a long solve runs on the server, off this page
        widgets.attempt(
            lambda: jobs.submit_solve(engine=engine, actor=actor, scenario_id=record.id),
            lambda r: f"Solving as job {r[0].id} ({record.time_limit:g} s limit): the page follows it; you may leave.",
            REFUSED,
        )
    else:
        bar = st.progress(0.0, text="Solving...")
        widgets.attempt(
            lambda: workflow.solve_scenario(
                engine=engine,
                actor=actor,
                scenario_id=record.id,
                network=state.network(dataset.id, v),
                progress=lambda f, m: bar.progress(min(f, 1.0), text=m),
            ),
            lambda r: f"Solved: {getattr(workflow.summary(r), 'lines', 0)} lines.",
            REFUSED,
        )


@st.fragment(run_every=1.0)
def solve_progress(scenario_id: int) -> None:
    """A solve job's progress, read from the store every second; the page redraws when it ends."""
    view = jobs.active_solve(engine=engine, scenario_id=scenario_id)
    if view is None:
        st.rerun()
    st.progress(
        min(view.progress, 1.0), text=f"Solving as job {view.id} ({view.created_by}): {view.message or view.status}"
    )


if solving is not None:
    solve_progress(record.id)
events = [
    ("submit", "Submit for review", "submit"),
    ("approve", "Approve plan", "approve_plan"),
    ("send_back", "Back to draft", "send_back"),
    ("release", "Release", "release"),
    ("receive", "Confirm receipt", "receive"),
]
for col, (event, label, permission) in zip(cols[1:], events):
    allowed = record.status in workflow.TRANSITIONS[event][0] and actor.can(permission)
    if col.button(
        label,
        disabled=not allowed,
        key=f"plans-{event}",
        type="primary" if allowed and event in ("submit", "approve", "release") else "secondary",
    ):
        if event == "release":  # irreversible: confirm with what it hands over
            st.session_state["plans_confirm_release"] = record.id
        else:
            widgets.attempt(
                lambda event=event: workflow.transition(engine=engine, actor=actor, scenario_id=record.id, event=event),
                lambda r: f"{r.name!r} is now {LABEL[r.status].lower()}.",
                REFUSED,
            )
if st.session_state.get("plans_confirm_release") == record.id and record.status == "approved":
    going = workflow.release_preview(engine=engine, scenario_id=record.id)
    st.warning(
        f"Release {going.lines:,} line(s), {going.units:,} units worth {money(going.value)}, for {money(going.cost)} of transfer? "
        "Released transfer orders go to the ERP/WMS and cannot be changed or withdrawn here."
    )
    yes, no = st.columns(2)
    if yes.button("Confirm release", type="primary", key="plans-release-confirm"):
        st.session_state.pop("plans_confirm_release", None)
        widgets.attempt(
            lambda: workflow.transition(engine=engine, actor=actor, scenario_id=record.id, event="release"),
            lambda r: f"{r.name!r} is now {LABEL[r.status].lower()}.",
            REFUSED,
        )
    if no.button("Cancel", key="plans-release-cancel"):
        st.session_state.pop("plans_confirm_release", None)
        st.rerun()

if not summary:
    st.info("This scenario has no plan yet: press **Solve**.")
    st.stop()
if summary.edited:
    st.warning(
        "Lines were rejected or edited since the last solve: the figures below are the plan as it now stands (re-solve a draft to re-optimize around the decisions)."
    )

# ----------------------------------------------------------------------------- KPIs
k = st.columns(5)
k[0].metric(
    "Network cost",
    money(summary.network_cost_after),
    delta=signed_money(summary.network_cost_after - summary.network_cost_before),
    delta_color="inverse",
)
k[1].metric(
    "Expected fill rate",
    f"{summary.fill_rate_after:.2%}",
    delta=f"{(summary.fill_rate_after - summary.fill_rate_before) * 100:+.2f} pts",
)
k[2].metric("Transfer cost", money(summary.transfer_cost))
k[3].metric("Lines", f"{summary.lines:,}", help=f"{summary.units_moved:,} units")
waiting = workflow.open_decisions(lines)
k[4].metric(
    "Waiting for a decision", f"{len(waiting):,}", help="Proposed lines, and firm lines above the policy thresholds"
)
with st.expander("Cost waterfall"):
    st.plotly_chart(cost_waterfall(summary), width="stretch", key="plans-waterfall")

# ----------------------------------------------------------------------------- lines and decisions
st.subheader("Lines")
f1, f2, f3 = st.columns([2, 1, 2])
statuses = f1.multiselect(
    "Status", ["proposed", "approved", "rejected", "firm"], key="plans-status", placeholder="All statuses"
)
only_big = f2.toggle("Only lines needing approval", key="plans-big")
text = f3.text_input("Search SKU, site or reason", key="plans-q")
shown = lines
if statuses:
    shown = shown[shown["status"].isin(statuses)]
if only_big:
    shown = shown[shown["needs_approval"]]
if text:
    hay = (
        shown[["transfer_id", "sku_id", "sku_name", "from_site", "to_site", "reason"]].astype(str).agg(" ".join, axis=1)
    )
    shown = shown[hay.str.contains(text, case=False, regex=False)]
st.dataframe(
    plan_lines_view(shown),
    hide_index=True,
    width="stretch",
    height=360,
    key="plans-lines",
    column_config=widgets.column_config(PLAN_LINE_COLUMNS),
)


def decisions() -> None:
    """Pick lines and decide them; set one line's quantity (only while the plan is a draft or in review)."""
    labels = {
        r.transfer_id: f"{r.transfer_id} · {r.sku_id} {r.from_site} → {r.to_site} · {r.qty} ({r.status})"
        for r in lines.itertuples()
    }
    versions = dict(zip(lines["transfer_id"], lines["version"]))
    st.markdown("**Decide**: pick lines (or all shown), then approve, reject with a reason, or undo a decision.")
    if st.session_state.pop("plans_clear", False):
        st.session_state["plans-picked"] = []
    if st.button(f"Pick all {len(shown):,} shown", key="plans-pick-shown"):
        st.session_state["plans-picked"] = shown["transfer_id"].tolist()
    st.session_state["plans-picked"] = [
        t for t in st.session_state.get("plans-picked", []) if t in labels
    ]  # lines gone after a re-solve
    picked = st.multiselect("Lines", list(labels), format_func=labels.get, key="plans-picked", placeholder="Pick lines")
    reason = st.text_input("Reason (needed to reject)", key="plans-reason")
    in_review = record.status == "in_review"
    may = {action: workflow.may_decide(actor, record.status, action) for action in ("approve", "reject", "reset")}
    for col, (action, label) in zip(
        st.columns(3), (("approve", "Approve"), ("reject", "Reject"), ("reset", "Undo decision"))
    ):
        if col.button(
            f"{label} {picked_totals(lines, picked)}" if picked else f"{label} (pick lines first)",
            disabled=not picked or not may[action] or (action == "approve" and not in_review),
            key=f"plans-{action}-lines",
        ):

            def run(action=action):
                result = workflow.decide_lines(
                    engine=engine,
                    actor=actor,
                    scenario_id=record.id,
                    transfer_ids=picked,
                    action=action,
                    note=reason,
                    versions={t: versions[t] for t in picked},
                    network=state.network(dataset.id, v),
                )
                st.session_state["plans_clear"] = True  # the next run starts with nothing picked
                return result

            widgets.attempt(
                run,
                lambda r, label=label: (
                    f"{label}: {len(r.changed)} line(s)." + (" Skipped: " + "; ".join(r.skipped) if r.skipped else "")
                ),
                REFUSED,
            )

    with st.expander("Edit a line's quantity (makes it firm: every re-plan keeps it)"):
        one = st.selectbox("Line", list(labels), format_func=labels.get, key="plans-edit-line")
        if one:
            row = lines.set_index("transfer_id").loc[one]
            qty = st.number_input(
                "Quantity (units)",
                min_value=1,
                value=int(row["qty"]),
                step=int(row["pack_size"]),
                key="plans-edit-qty",
            )
            why = st.text_input("Note", key="plans-edit-note")
            if st.button("Set quantity", disabled=not actor.can("edit_line"), key="plans-edit"):
                widgets.attempt(
                    lambda: workflow.firm_line(
                        engine=engine,
                        actor=actor,
                        scenario_id=record.id,
                        transfer_id=one,
                        qty=int(qty),
                        note=why,
                        version=int(row["version"]),
                        network=state.network(dataset.id, v),
                    ),
                    lambda r: (
                        f"{one} is firm at {int(qty)} units." if r.changed else "Not changed: " + "; ".join(r.skipped)
                    ),
                    REFUSED,
                )


if record.status in ("draft", "in_review"):
    decisions()
else:
    st.caption(
        f"The plan is {LABEL[record.status].lower()}: its lines no longer change (send an approved plan back to draft to change it)."
    )

# ----------------------------------------------------------------------------- transfer orders
st.subheader("Transfer orders")
orders = workflow.transfer_orders(engine=engine, scenario_id=record.id)
if orders.empty:
    st.caption("Orders appear here once lines are released: approve the plan, then **Release**.")
else:
    st.caption(
        f"{len(orders):,} released line(s), {int(orders['qty'].sum()):,} units. Every export carries the same transfer ids, so the ERP/WMS can skip what it already has."
    )
    stem = f"transfer-orders-{record.name}".replace(" ", "-").replace("/", "-")
    widgets.download_orders(
        orders,
        stem,
        "plans-orders",
        on_download=lambda fmt: workflow.export_orders(
            engine=engine, actor=actor, scenario_id=record.id, file_format=fmt
        ),
    )
    st.dataframe(orders, hide_index=True, width="stretch", key="plans-orders-table")
