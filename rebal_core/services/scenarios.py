"""Scenarios and their plans: save, clone, rename, delete, solve around decisions, read, reproduce.

Part of the plan workflow (:mod:`rebal_core.services.workflow` names them all): each use case
checks the role, runs in one unit of work and writes its audit event there."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, replace

import numpy as np
import ortools
import pandas as pd
from sqlalchemy import Engine

from rebal_core import __version__, store
from rebal_core.decisions.planning import (
    LINE_KEYS,
    Commitments,
    Plan,
    PlanningProblem,
    PlanSummary,
    Violation,
    apply_moves,
    around,
    build_problem,
    evaluate,
    explain,
    violations,
)
from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import SAVED_PLAN_SECONDS, Scenario
from rebal_core.decisions.solvers.optimizer import plan_network
from rebal_core.errors import REFUSALS, Conflict, PlanningBlocked, WorkflowError  # noqa: F401 (re-exported: callers name them here)
from rebal_core.execution.files import jsonable
from rebal_core.governance.identity import Actor
from rebal_core.governance.policy import (
    FIXED_STATUSES,
    STATE_WORDS,
    IllegalTransition,
    Policy,
)
from rebal_core.progress import Progress, quiet  # noqa: F401
from rebal_core.services import datasets
from rebal_core.services.policy import current_policy
from rebal_core.store import audit
from rebal_core.store.tables import (
    PlanLine,
    SavedScenario,
    ScenarioPublic,
)
from rebal_core.store.unit_of_work import UnitOfWork

SCENARIO_NAME_CHARS = 160  # models.ScenarioBase.name


SOLVER_VERSION = f"rebal {__version__}; ortools {ortools.__version__}"


def list_scenarios(*, engine: Engine, dataset_id: int | None = None) -> list[ScenarioPublic]:
    """Saved scenarios (on one dataset, or all), most recently changed first."""
    with UnitOfWork(engine) as uow:
        return [ScenarioPublic.model_validate(r) for r in uow.plans.list(dataset_id)]


def _get(uow: UnitOfWork, scenario_id: int) -> SavedScenario:
    record = uow.plans.get(scenario_id)
    if record is None:
        raise WorkflowError(f"no saved scenario with id {scenario_id}")
    return record


def get_scenario(*, engine: Engine, scenario_id: int) -> ScenarioPublic:
    with UnitOfWork(engine) as uow:
        return ScenarioPublic.model_validate(_get(uow, scenario_id))


def find_scenario(*, engine: Engine, name: str, dataset_id: int | None = None) -> ScenarioPublic | None:
    """The scenario of that name (on that dataset, else the most recently changed one)."""
    with UnitOfWork(engine) as uow:
        row = uow.plans.find(name, dataset_id)
        return ScenarioPublic.model_validate(row) if row else None


def parameters(record: ScenarioPublic) -> Scenario:
    """A saved scenario's rules. Scenarios saved before the expected objective existed were
    planned on the target objective, and keep it (so re-running them reproduces them)."""
    raw = json.loads(record.params)
    raw.setdefault("objective", "target")
    return Scenario.from_mapping(raw)


def summary(record: ScenarioPublic) -> PlanSummary | None:
    """The saved plan's summary; None while the scenario has not been solved."""
    raw = json.loads(record.summary or "{}")
    return PlanSummary.from_dict(raw) if raw else None


def lines(*, engine: Engine, scenario_id: int) -> pd.DataFrame:
    """Every line of a scenario's plan with its decision (rejected lines included, marked)."""
    columns = list(PlanLine.model_fields)
    with UnitOfWork(engine) as uow:
        rows = [r.model_dump() for r in uow.plans.lines(scenario_id)]
    frame = pd.DataFrame(rows, columns=columns)
    if len(frame):
        frame["lane_id"] = frame["from_site_id"] + ">" + frame["to_site_id"]
        frame["pack_size"] = pack_size_of(frame["qty"], frame["packs"])  # the step of a quantity edit
        frame["cost"] = frame["line_cost"] + frame["truck_share"]
        frame["released"] = frame["released_at"].notna()
    return frame


def in_plan(frame: pd.DataFrame) -> pd.DataFrame:
    """The lines that make up the plan (rejected ones are remembered but not part of it)."""
    return frame[frame["status"] != "rejected"] if len(frame) else frame


def _line_records(scenario_id: int, plan: Plan, old: dict[str, PlanLine], policy: Policy) -> list[PlanLine]:
    """Plan lines for the store: figures from ``plan``, decisions carried over from ``old``."""
    table = plan.table
    if table.empty:
        return []
    unit_cost = plan.problem.positions.drop_duplicates("sku_id").set_index("sku_id")["unit_cost"]
    value = table["qty"].to_numpy(float) * table["sku_id"].map(unit_cost).fillna(0).to_numpy(float)
    assessed = policy.assess(table.assign(value=value, cost=table["line_cost"] + table["truck_share"]))
    out = []
    for i, row in enumerate(table.to_dict("records")):
        prior = old.get(row["transfer_id"])
        days = row.get("days_until_stockout")
        record = PlanLine(
            scenario_id=scenario_id,
            **{
                k: row[k]
                for k in (
                    "transfer_id",
                    "sku_id",
                    "from_site_id",
                    "to_site_id",
                    "qty",
                    "packs",
                    "lead_time_days",
                    "cost_per_unit",
                    "line_cost",
                    "truck_share",
                    "shortage_avoided",
                    "excess_avoided",
                    "reason",
                )
            },
            sku_name=str(row.get("sku_name") or ""),
            category=str(row.get("category") or ""),
            from_site=str(row.get("from_site") or ""),
            to_site=str(row.get("to_site") or ""),
            proposed_qty=prior.proposed_qty if prior else row["qty"],
            value=float(value[i]),
            days_until_stockout=None if days is None or not math.isfinite(days) else float(days),
            needs_approval=bool(assessed["needs_approval"].iat[i]),
            approval_rule=assessed["approval_rule"].iat[i],
        )
        if prior is not None:
            for k in ("status", "decided_by", "decided_at", "note", "released_at", "released_by"):
                setattr(record, k, getattr(prior, k))
            record.version = prior.version + 1
        out.append(record)
    return out


def _plan_summary(plan: Plan, extra: dict | None = None) -> str:
    """Plan.summary plus the lines as solved (``result``), so a re-run can be checked against it."""
    s = plan.summary().as_dict()
    s["trucks_by_lane"] = s.pop("trucks")
    s["result"] = plan.table[LINE_KEYS + ["qty"]].to_dict("records")
    s.update(extra or {})
    return json.dumps(jsonable(s), default=str)


def save_scenario(
    *,
    engine: Engine,
    actor: Actor,
    dataset_id: int,
    scenario: Scenario,
    name: str | None = None,
    method: str = "optimize",
    time_limit: float = SAVED_PLAN_SECONDS,
) -> ScenarioPublic:
    """Persist a scenario as a draft without a plan (:func:`solve_scenario` makes and stores its plan)."""
    actor.require("save_scenario")
    with UnitOfWork(engine) as uow:
        record = _new_scenario(uow, engine, actor, dataset_id, scenario, name, method, time_limit)
        uow.record(
            actor=actor,
            action="scenario_saved",
            object_type="scenario",
            object_id=record.id,
            dataset_id=dataset_id,
            summary=f"saved scenario {record.name!r}",
            after={"params": scenario.as_dict(), "method": method, "time_limit": time_limit},
        )
        uow.commit()
        return ScenarioPublic.model_validate(uow.refresh(record))


def _new_scenario(
    uow: UnitOfWork,
    engine: Engine,
    actor: Actor,
    dataset_id: int,
    scenario: Scenario,
    name: str | None,
    method: str,
    time_limit: float,
) -> SavedScenario:
    """A new draft scenario in ``uow`` (validated; not committed)."""
    name = (name or scenario.name).strip()
    if not name:
        raise WorkflowError("a scenario needs a name")
    if len(name) > SCENARIO_NAME_CHARS:
        raise WorkflowError(f"a scenario name has at most {SCENARIO_NAME_CHARS} characters; this one has {len(name)}")
    if store.get_dataset(engine=engine, dataset_id=dataset_id) is None:
        raise WorkflowError(f"no dataset with id {dataset_id}")
    if method not in ("optimize", "greedy"):
        raise WorkflowError(f"method must be 'optimize' or 'greedy', got {method!r}")
    if not time_limit > 0:
        raise WorkflowError(f"the time limit must be > 0 seconds, got {time_limit!r}")
    if uow.plans.name_taken(dataset_id, name):
        raise WorkflowError(f"a scenario named {name!r} already exists for this dataset; choose another name")
    now = audit.now()
    return uow.plans.add(
        SavedScenario(
            dataset_id=dataset_id,
            name=name,
            params=json.dumps(scenario.as_dict()),
            method=method,
            time_limit=time_limit,
            author=actor.username,
            created_at=now,
            updated_at=now,
            solver_version=SOLVER_VERSION,
        )
    )


def clone_scenario(
    *, engine: Engine, actor: Actor, scenario_id: int, name: str, dataset_id: int | None = None
) -> ScenarioPublic:
    """A new draft with the same parameters (on the same or another dataset); solve it to get its plan."""
    actor.require("save_scenario")
    with UnitOfWork(engine) as uow:
        source = _get(uow, scenario_id)
        params = parameters(ScenarioPublic.model_validate(source))
        out = _new_scenario(
            uow, engine, actor, dataset_id or source.dataset_id, params, name, source.method, source.time_limit
        )
        uow.record(
            actor=actor,
            action="scenario_cloned",
            object_type="scenario",
            object_id=out.id,
            dataset_id=out.dataset_id,
            summary=f"cloned {source.name!r} (id {source.id}) as {out.name!r}",
            before={"id": source.id},
            after={"id": out.id, "params": params.as_dict(), "method": source.method, "time_limit": source.time_limit},
        )
        uow.commit()
        return ScenarioPublic.model_validate(uow.refresh(out))


def rename_scenario(*, engine: Engine, actor: Actor, scenario_id: int, name: str) -> ScenarioPublic:
    actor.require("edit_scenario")
    name = name.strip()
    if not name:
        raise WorkflowError("a scenario needs a name")
    with UnitOfWork(engine) as uow:
        record = _get(uow, scenario_id)
        if uow.plans.name_taken(record.dataset_id, name, but=scenario_id):
            raise WorkflowError(f"a scenario named {name!r} already exists for this dataset; choose another name")
        old = record.name
        record.name, record.updated_at, record.revision = name, audit.now(), record.revision + 1
        uow.plans.add(record)
        uow.record(
            actor=actor,
            action="scenario_renamed",
            object_type="scenario",
            object_id=scenario_id,
            dataset_id=record.dataset_id,
            summary=f"renamed {old!r} to {name!r}",
            before={"name": old},
            after={"name": name},
        )
        uow.commit()
        return ScenarioPublic.model_validate(uow.refresh(record))


def delete_scenario(*, engine: Engine, actor: Actor, scenario_id: int) -> None:
    """Delete a scenario and its plan; refused while released transfers are on their way."""
    actor.require("edit_scenario")
    with UnitOfWork(engine) as uow:
        record = _get(uow, scenario_id)
        released = uow.plans.released_ids(scenario_id)
        if released and record.status != "received":
            raise IllegalTransition(
                f"{record.name!r} has {len(released)} released transfer(s) in transit; confirm their receipt before deleting it"
            )
        before = {
            "name": record.name,
            "status": record.status,
            "params": json.loads(record.params),
            "summary": {k: v for k, v in json.loads(record.summary or "{}").items() if k != "result"},
        }
        uow.plans.delete(record)
        uow.record(
            actor=actor,
            action="scenario_deleted",
            object_type="scenario",
            object_id=scenario_id,
            dataset_id=record.dataset_id,
            summary=f"deleted scenario {record.name!r}",
            before=before,
        )
        uow.commit()


def released_in_transit(*, engine: Engine, dataset_id: int, exclude_scenario: int | None = None) -> pd.DataFrame:
    """Lines released by plans on ``dataset_id`` and not yet received: moving now (sku, from, to, qty).

    The dataset's own in_transit column predates these releases (see the README).
    """
    with UnitOfWork(engine) as uow:
        return uow.plans.released_in_transit(dataset_id, exclude_scenario)


def commitments_for(*, engine: Engine, scenario_id: int) -> Commitments:
    """What a re-plan of this scenario must respect.

    Fixed: its approved, firm and released lines. Forbidden: its rejected lines.
    In transit: lines released by *other* plans on the same dataset (:func:`released_in_transit`).
    """
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    own = lines(engine=engine, scenario_id=scenario_id)
    moving = released_in_transit(engine=engine, dataset_id=record.dataset_id, exclude_scenario=scenario_id)
    if own.empty:
        return Commitments(in_transit=moving)
    fixed = own[own["status"].isin(FIXED_STATUSES) | own["released"]]
    return Commitments(fixed=fixed, forbidden=own[own["status"] == "rejected"], in_transit=moving)


def _network(engine: Engine, record: ScenarioPublic, network: Network | None) -> Network:
    return network if network is not None else datasets.load_network(engine=engine, dataset_id=record.dataset_id)


def _refused(engine: Engine, scenario_id: int, doing: str) -> WorkflowError:
    """Why a conditional change did not apply, in words."""
    try:
        record = get_scenario(engine=engine, scenario_id=scenario_id)
    except WorkflowError as exc:
        return exc
    return Conflict(
        f"cannot {doing}: {record.name!r} is now {STATE_WORDS.get(record.status, record.status)} (changed meanwhile); reload and try again"
    )


def solve_scenario(
    *,
    engine: Engine,
    actor: Actor,
    scenario_id: int,
    scenario: Scenario | None = None,
    method: str | None = None,
    time_limit: float | None = None,
    network: Network | None = None,
    progress: Progress = quiet,
    cancel: threading.Event | None = None,
    shown: tuple[pd.DataFrame, PlanSummary] | None = None,
) -> ScenarioPublic:
    """(Re-)plan a draft around its decisions, optionally with new parameters.

    Rejected lines stay out, approved / firm / released lines are kept as they
    are, other plans' released lines count as in transit; the rest is
    re-optimized. Refused with :class:`Conflict` if the plan changed while solving.

    ``shown``: the lines and summary of a plan the planner saw (the Scenario lab) are stored
    as they are, scored by the judge, instead of solving again: what you see is what you save
    (a time-limited solve need not find the same plan twice). Refused when the plan would break
    a rule or was made for other parameters, or when the draft has decisions it did not see.
    """
    actor.require("edit_scenario")
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    if record.status != "draft":
        raise IllegalTransition(
            f"{record.name!r} is {STATE_WORDS[record.status]}; only a draft is re-planned (send it back to draft first)"
        )
    datasets.require_planning_allowed(store.get_dataset(engine=engine, dataset_id=record.dataset_id))
    params = scenario or parameters(record)
    method = method or record.method
    time_limit = time_limit or record.time_limit
    commitments = commitments_for(engine=engine, scenario_id=scenario_id)
    net = _network(engine, record, network)
    if shown is not None:
        plan = _plan_shown(net, params, commitments, method, *shown)
    else:
        try:
            plan = plan_network(
                net,
                params,
                commitments=commitments,
                method=method,
                time_limit=time_limit,
                progress=progress,
                cancel=cancel,
            )
        except ValueError as exc:  # CommitmentsInvalid: fixed lines that break a rule
            raise WorkflowError(f"the kept lines break the plan's rules: {exc}") from None
    policy = current_policy(engine=engine)
    with UnitOfWork(engine) as uow:
        if not uow.plans.lock(scenario_id, ("draft",), revision=record.revision):
            if get_scenario(engine=engine, scenario_id=scenario_id).status != "draft":
                raise _refused(engine, scenario_id, "store the new plan")
            raise Conflict(
                f"{record.name!r} was changed while it was being solved; solve again to include those changes"
            )
        old = {r.transfer_id: r for r in uow.plans.lines(scenario_id)}
        keep = {t for t, r in old.items() if r.status == "rejected"}
        records = _line_records(scenario_id, plan, {t: r for t, r in old.items() if t not in keep}, policy)
        uow.plans.replace_lines(scenario_id, keep, records)
        now = audit.now()
        values = {
            "params": json.dumps(params.as_dict()),
            "method": method,
            "time_limit": time_limit,
            "summary": _plan_summary(plan),
            "commitments": json.dumps(commitments.as_dict()),
            "solved_at": now,
            "solved_by": actor.username,
            "solver_version": SOLVER_VERSION,
            "policy_version": policy.version,
        }
        uow.plans.update(scenario_id, **values)
        s = plan.summary()
        uow.record(
            actor=actor,
            action="plan_solved",
            object_type="scenario",
            object_id=scenario_id,
            dataset_id=record.dataset_id,
            summary=f"solved {record.name!r}: {s.lines} lines, network cost {s.network_cost_after:,.0f} ({plan.solver_status}); "
            f"kept {len(commitments.fixed)}, excluded {len(commitments.forbidden)}, in transit {len(commitments.in_transit)}",
            before={
                "network_cost_after": getattr(summary(record), "network_cost_after", None),
                "params": json.loads(record.params),
            },
            after={
                "network_cost_after": s.network_cost_after,
                "lines": s.lines,
                "params": params.as_dict(),
                "status": plan.solver_status,
            },
        )
        uow.commit()
    return get_scenario(engine=engine, scenario_id=scenario_id)


def _plan_shown(
    net: Network, params: Scenario, commitments: Commitments, method: str, lines: pd.DataFrame, summary: PlanSummary
) -> Plan:
    """The plan the planner saw, scored on this draft's problem; refused when it does not fit it."""
    if not commitments.fixed.empty or not commitments.forbidden.empty:
        raise WorkflowError("this plan has decisions the plan shown did not see; solve it instead")
    if summary.scenario and replace(Scenario.from_mapping(summary.scenario), name=params.name) != params:
        raise WorkflowError("the plan shown was made for other parameters; solve it instead")
    base = around(build_problem(apply_moves(net, commitments.in_transit), params), commitments)
    rows = lines[LINE_KEYS + ["qty"]] if len(lines) else lines
    plan, broken = _plan_of_lines(base, rows, method, summary.solver_status, summary.lower_bound)
    if broken:
        raise WorkflowError("the plan shown breaks the plan's rules here: " + "; ".join(map(str, broken[:3])))
    plan.build_seconds, plan.solve_seconds = summary.build_seconds, summary.solve_seconds
    plan.stats = {"kept_greedy": summary.kept_greedy_plan}
    return plan


def _plan_of_lines(
    base: PlanningProblem, rows: pd.DataFrame, method: str, status: str, bound: float = float("nan")
) -> tuple[Plan, list[Violation]]:
    """Lines (sku, from, to, qty) as a plan on ``base``: scored and explained by the judge, with the
    rules they break; a bound is kept only as far as it stays below the plan's cost."""
    score = evaluate(base, rows)
    if bound == bound:
        bound = min(bound, score.network_cost_after)
    plan = Plan(
        problem=base,
        score=score,
        table=explain(base, score),
        method=method,
        solver_status=status,
        lower_bound=bound,
        build_seconds=0.0,
        solve_seconds=0.0,
    )
    return plan, violations(base, rows) if len(rows) else []


def score_lines(net: Network, record: ScenarioPublic, frame: pd.DataFrame) -> tuple[Plan, list[Violation]]:
    """The plan made of ``frame``'s lines (decisions applied) scored by the spec, with the rules it breaks."""
    stored = Commitments.from_dict(json.loads(record.commitments or "{}"))
    base = build_problem(apply_moves(net, stored.in_transit), parameters(record))
    plan_rows = in_plan(frame)[LINE_KEYS + ["qty"]] if len(frame) else frame
    return _plan_of_lines(base, plan_rows, record.method, "EDITED")


@dataclass
class Reproduction:
    same: bool
    stored_cost: float
    new_cost: float
    differences: pd.DataFrame  # sku, from, to, qty stored, qty now


def reproduce(*, engine: Engine, scenario_id: int, network: Network | None = None) -> Reproduction:
    """Re-run a stored plan from its record (parameters, method, time limit, the decisions it was solved around)."""
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    if record.solved_at is None:
        raise WorkflowError(f"{record.name!r} has no plan to reproduce; solve it first")
    stored = summary(record)
    commitments = Commitments.from_dict(json.loads(record.commitments or "{}"))
    plan = plan_network(
        _network(engine, record, network),
        parameters(record),
        commitments=commitments,
        method=record.method,
        time_limit=record.time_limit,
    )
    was = pd.DataFrame(stored.result, columns=LINE_KEYS + ["qty"])
    now = plan.table[LINE_KEYS + ["qty"]]
    both = was.merge(now, on=LINE_KEYS, how="outer", suffixes=("_stored", "_now")).fillna(
        {"qty_stored": 0, "qty_now": 0}
    )
    diff = both[both["qty_stored"] != both["qty_now"]].reset_index(drop=True)
    solved_cost = (stored.solved or {}).get("network_cost_after", stored.network_cost_after)
    return Reproduction(diff.empty, float(solved_cost), plan.score.network_cost_after, diff)


def pack_size_of(qty, packs):
    """Units per pack of stored lines (qty and packs always agree; 1 for a line of no packs).
    Works on numbers and on columns: the one rule behind the line's ``pack_size``."""
    return np.where(np.asarray(packs) > 0, np.asarray(qty) // np.maximum(np.asarray(packs), 1), 1).clip(min=1)


def _pack(line: PlanLine) -> int:
    return int(pack_size_of(line.qty, line.packs))
