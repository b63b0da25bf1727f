"""Watching outcomes: what released plans did in a later snapshot, and the nightly autopilot.

Part of the plan workflow (:mod:`rebal_core.services.workflow` names them all): each use case
checks the role, runs in one unit of work and writes its audit event there."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine

from rebal_core import store
from rebal_core.decisions.planning import (
    LINE_KEYS,
)
from rebal_core.decisions.positions import Network
from rebal_core.errors import REFUSALS, Conflict, PlanningBlocked, WorkflowError  # noqa: F401 (re-exported: callers name them here)
from rebal_core.governance.identity import AUTOPILOT, Actor
from rebal_core.governance.policy import (
    STATE_WORDS,
)
from rebal_core.progress import Progress, quiet  # noqa: F401
from rebal_core.services import datasets
from rebal_core.services.approvals import open_decisions, transition
from rebal_core.services.release import release_approved
from rebal_core.services.scenarios import (
    _network,
    find_scenario,
    get_scenario,
    lines,
    parameters,
    save_scenario,
    score_lines,
    solve_scenario,
    summary,
)
from rebal_core.store.tables import (
    ScenarioPublic,
)


@dataclass
class AutopilotReport:
    scenario: ScenarioPublic
    solved: bool
    auto_approved: int
    waiting: int
    released: int
    messages: list[str]


def autopilot(
    *,
    engine: Engine,
    scenario_name: str,
    dataset_id: int | None = None,
    time_limit: float | None = None,
    actor: Actor = AUTOPILOT,
    progress: Progress = quiet,
) -> AutopilotReport:
    """Nightly run: plan the dataset with a saved scenario's parameters, approve what the policy lets through, release it.

    The run's plan is the scenario ``"<name> (autopilot)"`` on the target
    dataset (default: the most recent). Running again is safe: a plan already
    submitted is not re-planned, lines already released are not released again,
    and each step that has nothing to do says so.
    """
    stored = store.list_datasets(engine=engine)
    if dataset_id is None:
        if not stored:
            raise WorkflowError("no dataset is stored; import one first")
        dataset_id = stored[0].id
    template = find_scenario(engine=engine, name=scenario_name, dataset_id=dataset_id) or find_scenario(
        engine=engine, name=scenario_name
    )
    if template is None:
        raise WorkflowError(
            f"no saved scenario named {scenario_name!r}; save one in the Scenario lab or the Scenarios page first"
        )
    name = template.name if template.name.endswith("(autopilot)") else f"{template.name} (autopilot)"
    run = find_scenario(engine=engine, name=name, dataset_id=dataset_id)
    messages = []
    if run is None:
        run = save_scenario(
            engine=engine,
            actor=actor,
            dataset_id=dataset_id,
            scenario=parameters(template),
            name=name,
            method=template.method,
            time_limit=time_limit or template.time_limit,
        )
        messages.append(f"created {name!r} from {template.name!r}")
    solved = False
    if run.status == "draft":
        run = solve_scenario(engine=engine, actor=actor, scenario_id=run.id, time_limit=time_limit, progress=progress)
        solved = True
        s = summary(run)
        messages.append(
            f"planned {s.lines} line(s), network cost {s.network_cost_before:,.0f} -> {s.network_cost_after:,.0f}"
        )
        before = lines(engine=engine, scenario_id=run.id)
        run = transition(engine=engine, actor=actor, scenario_id=run.id, event="submit", note="autopilot")
        after = lines(engine=engine, scenario_id=run.id)
        approved = (
            int((after["status"] == "approved").sum() - (before["status"] == "approved").sum()) if len(after) else 0
        )
    else:
        approved = 0
        messages.append(f"{name!r} is already {STATE_WORDS[run.status]}; not re-planned")
    released = release_approved(engine=engine, actor=actor, scenario_id=run.id) if run.status == "in_review" else 0
    messages.append(f"released {released} approved line(s)" if released else "no new lines to release")
    waiting = len(open_decisions(lines(engine=engine, scenario_id=run.id)))
    if waiting:
        messages.append(f"{waiting} line(s) above the policy thresholds wait for an approver")
    return AutopilotReport(
        get_scenario(engine=engine, scenario_id=run.id), solved, approved, waiting, released, messages
    )


def plan_outcomes(
    *,
    engine: Engine,
    scenario_id: int,
    later_dataset_id: int,
    network: Network | None = None,
    later: Network | None = None,
) -> pd.DataFrame:
    """What a plan's released lines did, read from a later snapshot (:func:`rebal_core.monitor.line_outcomes`)."""
    from rebal_core.execution.outcomes import line_outcomes

    record = get_scenario(engine=engine, scenario_id=scenario_id)
    frame = lines(engine=engine, scenario_id=scenario_id)
    released = frame[frame["released"]] if len(frame) else frame
    if released.empty:
        raise WorkflowError(f"{record.name!r} has no released lines to follow up")
    net = _network(engine, record, network)
    plan, _ = score_lines(net, record, frame)
    later = later if later is not None else datasets.load_network(engine=engine, dataset_id=later_dataset_id)
    return line_outcomes(
        released[["transfer_id", *LINE_KEYS, "qty", "released_at"]],
        plan.problem.positions,
        plan.score.positions_after.iloc[: len(plan.problem.positions)],
        later,
    )
