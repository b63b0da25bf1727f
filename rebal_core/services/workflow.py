"""S&OP use cases: saved scenarios, re-plans around decisions, approvals, release, export, autopilot.

Every function takes the acting user (:class:`rebal_core.governance.identity.Actor`),
checks the role here (not only in the pages), changes the store in one
transaction and records an audit event in that same transaction.

Concurrency: every change to a plan first bumps its scenario's ``revision``
with a conditional UPDATE (the plan must still be in a state that allows the
change). That statement takes the write lock (SQLite) or the row lock
(PostgreSQL), so two approvers working on the same plan are serialized and
neither's decisions are lost; a re-solve writes only if the revision it
started from is unchanged, else it is refused as a conflict. Line changes can
also carry the line version the user saw, so a decision taken on stale data is
refused rather than silently overwriting someone else's.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import ortools
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from rebal_core import __version__, store
from rebal_core.decisions.planning import (
    LINE_KEYS,
    Commitments,
    Plan,
    PlanSummary,
    Violation,
    apply_moves,
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
from rebal_core.format import money_whole
from rebal_core.governance.identity import AUTOPILOT, Actor
from rebal_core.governance.policy import (
    FIXED_STATUSES,
    LINE_ACTIONS,
    STATE_WORDS,
    TRANSITIONS,
    IllegalTransition,
    Policy,
    check_line_action,
    next_state,
)
from rebal_core.progress import Progress, quiet  # noqa: F401
from rebal_core.services import accounts, datasets
from rebal_core.signals.accuracy import Tolerance, classify_counts
from rebal_core.signals.quality import blocking
from rebal_core.store import audit
from rebal_core.store.plans import PlanRepository
from rebal_core.store.tables import (
    AuditEvent,
    PlanLine,
    PolicyVersion,
    SavedScenario,
    ScenarioPublic,
    StockAdjustment,
)
from rebal_core.store.unit_of_work import UnitOfWork

SCENARIO_NAME_CHARS = 160  # models.ScenarioBase.name
SOLVER_VERSION = f"rebal {__version__}; ortools {ortools.__version__}"
SYSTEM_FIRST_START = datasets.FIRST_START


# What a user is told in words (pages show it, the CLI exits 2): refusals, not bugs.


# ----------------------------------------------------------------------------- policy


def ensure_governance(*, engine: Engine) -> str | None:
    """First start: approval policy v1 and the admin account; returns how to sign in (or None)."""
    with UnitOfWork(engine) as uow:
        if uow.policies.latest() is None:
            default = Policy(version=1)
            uow.policies.add(
                version=1, created_by=SYSTEM_FIRST_START.username, note="defaults", thresholds=default.to_json()
            )
            uow.record(
                actor=SYSTEM_FIRST_START,
                action="policy_changed",
                object_type="policy",
                object_id=1,
                summary="approval policy v1 (defaults)",
                after=json.loads(default.to_json()),
            )
            uow.commit()
    return accounts.ensure_admin(engine=engine)


def current_policy(*, engine: Engine) -> Policy:
    with UnitOfWork(engine) as uow:
        row = uow.policies.latest()
        return Policy.from_json(row.thresholds, row.version) if row else Policy()


def policy_history(*, engine: Engine) -> list[PolicyVersion]:
    with UnitOfWork(engine) as uow:
        return uow.policies.history()


def set_policy(*, engine: Engine, actor: Actor, policy: Policy, note: str = "") -> Policy:
    """Store ``policy`` as the next version (versions are never changed, so old decisions stay explained)."""
    actor.require("set_policy")
    problems = policy.problems()
    if problems:
        raise WorkflowError("; ".join(problems))
    for attempt in range(5):
        try:
            return _save_policy(engine, actor, policy, note)
        except IntegrityError:  # someone saved the same version number at the same moment: take the next
            if attempt == 4:
                raise Conflict(
                    "the policy was changed by someone else at the same moment; reload and save again"
                ) from None
    raise AssertionError("unreachable")


def _save_policy(engine: Engine, actor: Actor, policy: Policy, note: str) -> Policy:
    before = current_policy(engine=engine)
    with UnitOfWork(engine) as uow:
        version = before.version + 1
        uow.policies.add(version=version, created_by=actor.username, note=note, thresholds=policy.to_json())
        switched = (
            ""
            if before.four_eyes == policy.four_eyes
            else (
                "; four eyes switched ON"
                if policy.four_eyes
                else "; four eyes switched OFF: authors may approve their own plans"
            )
        )
        uow.record(
            actor=actor,
            action="policy_changed",
            object_type="policy",
            object_id=version,
            summary=f"approval policy v{version}{switched}" + (f": {note}" if note else ""),
            before=json.loads(before.to_json()),
            after=json.loads(policy.to_json()),
        )
        uow.commit()
    return current_policy(engine=engine)


# ----------------------------------------------------------------------------- reading scenarios


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


# ----------------------------------------------------------------------------- writing plans


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


# ----------------------------------------------------------------------------- solving around decisions


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
) -> ScenarioPublic:
    """(Re-)plan a draft around its decisions, optionally with new parameters.

    Rejected lines stay out, approved / firm / released lines are kept as they
    are, other plans' released lines count as in transit; the rest is
    re-optimized. Refused with :class:`Conflict` if the plan changed while solving.
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
    try:
        plan = plan_network(
            net, params, commitments=commitments, method=method, time_limit=time_limit, progress=progress, cancel=cancel
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


def score_lines(net: Network, record: ScenarioPublic, frame: pd.DataFrame) -> tuple[Plan, list[Violation]]:
    """The plan made of ``frame``'s lines (decisions applied) scored by the spec, with the rules it breaks."""
    stored = Commitments.from_dict(json.loads(record.commitments or "{}"))
    base = build_problem(apply_moves(net, stored.in_transit), parameters(record))
    plan_rows = in_plan(frame)[LINE_KEYS + ["qty"]] if len(frame) else frame
    score = evaluate(base, plan_rows)
    plan = Plan(
        problem=base,
        score=score,
        table=explain(base, score),
        method=record.method,
        solver_status="EDITED",
        lower_bound=float("nan"),
        build_seconds=0.0,
        solve_seconds=0.0,
    )
    return plan, violations(base, plan_rows) if len(plan_rows) else []


# ----------------------------------------------------------------------------- line decisions


def pack_size_of(qty, packs):
    """Units per pack of stored lines (qty and packs always agree; 1 for a line of no packs).
    Works on numbers and on columns: the one rule behind the line's ``pack_size``."""
    return np.where(np.asarray(packs) > 0, np.asarray(qty) // np.maximum(np.asarray(packs), 1), 1).clip(min=1)


def _pack(line: PlanLine) -> int:
    return int(pack_size_of(line.qty, line.packs))


LINE_EVENTS = {"approve": "line_approved", "reject": "line_rejected", "reset": "line_reset"}


@dataclass
class LineResult:
    changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "TR-...: why"


def _line_refusal(line: PlanLine, action: str, version: int | None) -> str | None:
    if version is not None and line.version != version:
        return f"{line.transfer_id}: changed by {line.decided_by or 'someone'} meanwhile (now {line.status}); reload"
    if line.released_at is not None:
        return f"{line.transfer_id}: already released on {line.released_at:%Y-%m-%d %H:%M}; it cannot change"
    if action == "approve" and line.status not in ("proposed", "firm"):
        return f"{line.transfer_id}: is {line.status}" + (
            "; reset it first to approve it" if line.status == "rejected" else ""
        )
    if action == "reject" and line.status == "rejected":
        return f"{line.transfer_id}: already rejected"
    if action == "reset" and line.status == "proposed":
        return f"{line.transfer_id}: has no decision to undo"
    return None


def decide_lines(
    *,
    engine: Engine,
    actor: Actor,
    scenario_id: int,
    transfer_ids: Iterable[str],
    action: str,
    note: str = "",
    versions: dict[str, int] | None = None,
    network: Network | None = None,
) -> LineResult:
    """Approve, reject (a reason is required) or reset (undo) lines; per line or in bulk.

    Lines that cannot take the action are skipped with the reason; the rest
    change together. Rejections and resets re-score the plan.
    """
    ids = list(dict.fromkeys(transfer_ids))
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    check_line_action(record.status, action)
    if action == "approve" or (action == "reject" and record.status == "in_review"):
        actor.require("decide_line")
    elif action == "reject":
        actor.require("exclude_line")
    elif not (actor.can("edit_line") or actor.can("decide_line")):
        actor.require("edit_line")
    note = note.strip()
    if action == "reject" and not note:
        raise WorkflowError("a rejection needs a reason (it is shown to the planner and kept in the audit log)")
    net = _network(engine, record, network) if action in ("reject", "reset") else None
    four_eyes = current_policy(engine=engine).four_eyes
    result = LineResult()
    with UnitOfWork(engine) as uow:
        if not uow.plans.lock(scenario_id, LINE_ACTIONS[action][0]):
            raise _refused(engine, scenario_id, f"{action} lines")
        rows = uow.plans.lines_by_id(scenario_id, ids)
        now = audit.now()
        changes = []
        for tid in ids:
            line = rows.get(tid)
            why = (
                f"{tid}: not a line of this plan"
                if line is None
                else _line_refusal(line, action, (versions or {}).get(tid))
            )
            if why is None and action == "approve" and four_eyes and line.edited_by == actor.username:
                why = f"{tid}: you set its quantity; it needs another approver (four eyes)"
            if why:
                result.skipped.append(why)
                continue
            before = {"status": line.status, "qty": line.qty}
            if action == "approve":
                line.status = "approved"
            elif action == "reject":
                line.status, line.note = "rejected", note
            else:
                line.status, line.packs, line.qty, line.note = (
                    "proposed",
                    line.proposed_qty // _pack(line),
                    line.proposed_qty,
                    "",
                )
            line.decided_by, line.decided_at, line.version = actor.username, now, line.version + 1
            uow.plans.save(line)
            result.changed.append(tid)
            changes.append((tid, before, {"status": line.status, "qty": line.qty}))
        if not result.changed:
            return result  # nothing committed: the lock's bump rolls back
        uow.plans.flush()
        if net is not None:
            _rescore(uow.plans, record, net)
        for tid, before, after in changes:
            uow.record(
                actor=actor,
                action=LINE_EVENTS[action],
                object_type="plan_line",
                object_id=tid,
                dataset_id=record.dataset_id,
                summary=f"{record.name!r}: {action} {tid}" + (f" ({note})" if note else ""),
                before=before,
                after=after,
            )
        uow.commit()
    return result


def firm_line(
    *,
    engine: Engine,
    actor: Actor,
    scenario_id: int,
    transfer_id: str,
    qty: int,
    note: str = "",
    version: int | None = None,
    network: Network | None = None,
) -> LineResult:
    """Set a line's quantity by hand: the line becomes firm and every re-plan keeps it.

    Refused, with the rule, when the plan with the new quantity would break a
    rule of a feasible plan (whole packs, minimum move, on hand, capacities, budget).
    """
    actor.require("edit_line")
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    check_line_action(record.status, "firm")
    if isinstance(qty, bool) or not isinstance(qty, (int, np.integer)) or qty <= 0:
        raise WorkflowError(
            f"{transfer_id}: quantity must be a whole number > 0 (reject the line to move nothing), got {qty!r}"
        )
    net = _network(engine, record, network)
    with UnitOfWork(engine) as uow:
        if not uow.plans.lock(scenario_id, LINE_ACTIONS["firm"][0]):
            raise _refused(engine, scenario_id, "edit lines")
        line = uow.plans.line(scenario_id, transfer_id)
        why = f"{transfer_id}: not a line of this plan" if line is None else _line_refusal(line, "firm", version)
        if why is None and line.status == "rejected":
            why = f"{transfer_id}: is rejected; reset it first to edit it"
        if why:
            return LineResult(skipped=[why])
        pack = _pack(line)
        if qty % pack:
            raise WorkflowError(f"{transfer_id}: {qty} is not a whole number of packs of {pack}")
        before = {"status": line.status, "qty": line.qty}
        line.qty, line.packs, line.status, line.note = int(qty), int(qty) // pack, "firm", note.strip()
        line.decided_by, line.decided_at, line.version, line.edited_by = (
            actor.username,
            audit.now(),
            line.version + 1,
            actor.username,
        )
        uow.plans.save(line)
        uow.plans.flush()
        broken = _rescore(uow.plans, record, net)
        # a firm line above the policy waits for another approver
        _reassess(uow.plans, record, current_policy(engine=engine))
        mine = [b for b in broken if b.touches(line.sku_id, line.from_site_id, line.to_site_id)]
        if mine:
            raise WorkflowError(
                f"{transfer_id}: {qty} units would break the plan's rules: " + "; ".join(map(str, mine))
            )
        uow.record(
            actor=actor,
            action="line_edited",
            object_type="plan_line",
            object_id=transfer_id,
            dataset_id=record.dataset_id,
            summary=f"{record.name!r}: {transfer_id} set to {qty} units (firm)"
            + (f" ({note.strip()})" if note.strip() else ""),
            before=before,
            after={"status": "firm", "qty": int(qty)},
        )
        uow.commit()
    return LineResult(changed=[transfer_id])


def _rescore(plans: PlanRepository, record: ScenarioPublic, net: Network) -> list[Violation]:
    """Re-score the plan from its current lines (after a rejection, reset or edit); returns broken rules."""
    rows = plans.lines(record.id)
    frame = pd.DataFrame([r.model_dump() for r in rows], columns=list(PlanLine.model_fields))
    plan, broken = score_lines(net, record, frame)
    figures = plan.table.set_index("transfer_id")
    unit_cost = plan.problem.positions.drop_duplicates("sku_id").set_index("sku_id")["unit_cost"]
    for r in rows:
        if r.status != "rejected" and r.transfer_id in figures.index:
            f = figures.loc[r.transfer_id]
            r.line_cost, r.truck_share = float(f["line_cost"]), float(f["truck_share"])
            r.shortage_avoided, r.excess_avoided = float(f["shortage_avoided"]), float(f["excess_avoided"])
            r.value = float(r.qty * unit_cost.get(r.sku_id, 0.0))
            r.reason = str(f["reason"])
            plans.save(r)
    old = json.loads(record.summary or "{}")
    solved = old.get("solved") or {k: old.get(k) for k in ("network_cost_after", "lower_bound", "gap", "solver_status")}
    extra = {
        "edited": True,
        "solved": solved,
        "result": old.get("result", []),
    }  # the lines as solved stay for reproduction
    plans.update(record.id, summary=_plan_summary(plan, extra))
    return broken


# ----------------------------------------------------------------------------- lifecycle


def _reassess(plans: PlanRepository, record: ScenarioPublic, policy: Policy) -> list[PlanLine]:
    """Every line's ``needs_approval`` under the policy in force, from its current quantity and cost."""
    rows = plans.lines(record.id)
    if not rows:
        return rows
    frame = pd.DataFrame(
        [
            {
                "from_site_id": r.from_site_id,
                "to_site_id": r.to_site_id,
                "category": r.category,
                "value": r.value,
                "cost": r.line_cost + r.truck_share,
            }
            for r in rows
        ]
    )
    assessed = policy.assess(frame)
    for r, needs, rule in zip(rows, assessed["needs_approval"], assessed["approval_rule"]):
        if r.released_at is None:
            r.needs_approval, r.approval_rule = bool(needs), rule
            plans.save(r)
    return rows


def _approve_by_policy(plans: PlanRepository, actor: Actor, record: ScenarioPublic, policy: Policy) -> int:
    """Re-assess every line under the policy in force; approve the proposed ones under its thresholds."""
    rows = _reassess(plans, record, policy)
    now, n = audit.now(), 0
    for r in rows:
        if r.status == "proposed" and not r.needs_approval and r.released_at is None:
            r.status, r.decided_by, r.decided_at, r.version = (
                "approved",
                f"policy v{policy.version}",
                now,
                r.version + 1,
            )
            n += 1
        plans.save(r)
    return n


def open_decisions(frame: pd.DataFrame) -> pd.DataFrame:
    """Lines that still need a decision before the plan can be approved."""
    if frame.empty:
        return frame
    return frame[(frame["status"] == "proposed") | ((frame["status"] == "firm") & frame["needs_approval"])]


def transition(*, engine: Engine, actor: Actor, scenario_id: int, event: str, note: str = "") -> ScenarioPublic:
    """Move a plan through its lifecycle (see :mod:`rebal_core.governance.policy`); illegal moves are refused with what to do."""
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    target = next_state(record.status, event)
    actor.require(TRANSITIONS[event][2])
    if event == "submit" and record.solved_at is None:
        raise IllegalTransition(f"{record.name!r} has no plan yet; solve it before submitting it")
    policy = current_policy(engine=engine)
    if event == "approve":
        if policy.four_eyes and record.author == actor.username:
            raise IllegalTransition(
                f"{record.name!r} is your plan: it needs an approver other than its author (four eyes)"
            )
        waiting = open_decisions(lines(engine=engine, scenario_id=scenario_id))
        if len(waiting):
            raise IllegalTransition(
                f"cannot approve {record.name!r}: {len(waiting)} line(s) still need a decision ({', '.join(waiting['transfer_id'].head(5))}{'...' if len(waiting) > 5 else ''})"
            )
    with UnitOfWork(engine) as uow:
        # checked again inside the statement on approval: no decision may have been undone meanwhile
        if not uow.plans.move(scenario_id, record.status, target, no_open_lines=event == "approve"):
            raise _refused(engine, scenario_id, event.replace("_", " ") + " it")
        detail = ""
        if event == "submit":
            n = _approve_by_policy(uow.plans, actor, record, policy)
            uow.plans.set_policy_version(scenario_id, policy.version)
            detail = f"; {n} line(s) under policy v{policy.version} approved automatically"
        if event == "release":
            _refuse_double_moves(uow.plans, record)  # inside the release's transaction: two releases cannot both pass
            n = uow.plans.stamp_release(scenario_id, actor.username)
            detail = f"; {n} transfer order(s) released"
        uow.record(
            actor=actor,
            action=f"plan_{event}",
            object_type="scenario",
            object_id=scenario_id,
            dataset_id=record.dataset_id,
            summary=f"{record.name!r}: {record.status.replace('_', ' ')} -> {target.replace('_', ' ')}{detail}"
            + (f" ({note.strip()})" if note.strip() else ""),
            before={"status": record.status},
            after={"status": target},
        )
        uow.commit()
    return get_scenario(engine=engine, scenario_id=scenario_id)


@dataclass
class ReleasePreview:
    """What a release would hand over: shown for confirmation before it cannot be undone."""

    lines: int
    units: int
    value: float
    cost: float


def release_preview(*, engine: Engine, scenario_id: int) -> ReleasePreview:
    with UnitOfWork(engine) as uow:
        rows = uow.plans.releasable(scenario_id)
    return ReleasePreview(
        len(rows),
        sum(r.qty for r in rows),
        float(sum(r.value for r in rows)),
        float(sum(r.line_cost + r.truck_share for r in rows)),
    )


def _refuse_double_moves(plans: PlanRepository, record: ScenarioPublic) -> None:
    """Execution is idempotent across plans: a line that would move a sku again on a lane (or its
    reverse) where another plan's released transfer is still in transit is refused with what to do.

    Runs in the release's own transaction after its first write, with the dataset's row locked
    (PostgreSQL; SQLite serialises writers anyway), so two releases cannot both pass the check.
    """
    plans.lock_dataset(record.dataset_id)
    going = [(r.sku_id, r.from_site_id, r.to_site_id, r.transfer_id) for r in plans.releasable(record.id)]
    moving = plans.moving_elsewhere(record.dataset_id, record.id)
    if not going or not moving:
        return
    busy = {}
    for sku, a, b, name in moving:
        busy.setdefault((sku, a, b), name)
        busy.setdefault((sku, b, a), name)
    clash = [(tid, sku, a, b, busy[(sku, a, b)]) for sku, a, b, tid in going if (sku, a, b) in busy]
    if clash:
        shown = "; ".join(f"{tid} ({sku} {a} -> {b}, in transit from {name!r})" for tid, sku, a, b, name in clash[:3])
        raise WorkflowError(
            f"cannot release {record.name!r}: {len(clash)} line(s) would move a sku again on a lane where a released plan's transfer is still in transit: "
            f"{shown}{'...' if len(clash) > 3 else ''}. Re-solve this plan (it then counts what is in transit) or mark the other plan received first."
        )


def release_approved(*, engine: Engine, actor: Actor, scenario_id: int) -> int:
    """Release the approved lines of a plan still in review (the rest wait for their approver)."""
    actor.require("release")
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    with UnitOfWork(engine) as uow:
        if not uow.plans.lock(scenario_id, ("in_review",)):
            raise IllegalTransition(
                f"approved lines are released early only from a plan in review; {record.name!r} is {STATE_WORDS[record.status]}"
            )
        _refuse_double_moves(uow.plans, record)
        n = uow.plans.stamp_release(scenario_id, actor.username)
        if n:
            uow.record(
                actor=actor,
                action="lines_released",
                object_type="scenario",
                object_id=scenario_id,
                dataset_id=record.dataset_id,
                summary=f"{record.name!r}: released {n} approved line(s) while the rest is in review",
                after={"released": n},
            )
            uow.commit()  # nothing released: nothing kept (the lock's bump rolls back)
    return n


# ----------------------------------------------------------------------------- transfer orders


ORDER_COLUMNS = [
    "transfer_id", "line_id", "scenario", "sku_id", "sku_name", "from_site_id", "from_site", "to_site_id", "to_site", "qty", "packs",
    "ship_by", "arrive_by", "lane_id", "lead_time_days", "lane_trucks", "line_cost", "truck_share", "cost", "reason",
    "approval_status", "approver", "decided_at", "released_at", "released_by",
]  # fmt: skip


def transfer_orders(*, engine: Engine, scenario_id: int) -> pd.DataFrame:
    """The released lines of a plan as transfer orders for the ERP/WMS (same ids and rows on every export).

    ``transfer_id`` is the line's id qualified by the plan (``TR-...-P12``): the same sku
    and lane released again by a later plan (after the first was received) is another
    order, never the same id with another quantity; ``line_id`` is the plan line's id.

    Dates: a line must arrive before its receiver runs out, and within the
    horizon: ``arrive_by = as_of + clip(floor(days until stockout), L, H)`` with
    ``L = ceil(lead time)``; ``ship_by = arrive_by - L`` (never before the
    planning date). Receivers with no stockout in sight get ``H``.
    """
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    dataset = store.get_dataset(engine=engine, dataset_id=record.dataset_id)
    frame = lines(engine=engine, scenario_id=scenario_id)
    frame = frame[frame["released"]] if len(frame) else frame
    if frame.empty:
        return pd.DataFrame(columns=ORDER_COLUMNS)
    horizon = parameters(record).horizon_days
    lead = np.ceil(frame["lead_time_days"].to_numpy(float)).astype(int)
    days = np.floor(frame["days_until_stockout"].astype(float).fillna(horizon).to_numpy()).astype(int)
    arrive = np.maximum(np.minimum(days, horizon), lead)
    as_of = pd.Timestamp(dataset.as_of)
    trucks = getattr(summary(record), "trucks", {})
    out = frame.assign(
        line_id=frame["transfer_id"],
        transfer_id=frame["transfer_id"] + f"-P{scenario_id}",
        scenario=record.name,
        arrive_by=(as_of + pd.to_timedelta(arrive, unit="D")).date,
        ship_by=(as_of + pd.to_timedelta(arrive - lead, unit="D")).date,
        lane_trucks=frame["lane_id"].map(trucks).fillna(0).astype(int),
        # who let each line go: an approver, or the policy (a firm line within it was set by a planner, not approved)
        approval_status=np.select(
            [frame["decided_by"].fillna("").str.startswith("policy"), frame["status"] == "firm"],
            [frame["status"] + " (under policy thresholds)", "firm (within policy thresholds)"],
            frame["status"],
        ),
        approver=np.where(
            frame["status"] == "firm", "policy v" + str(record.policy_version or ""), frame["decided_by"].fillna("")
        ),
    )
    return (
        out[ORDER_COLUMNS].sort_values(["ship_by", "from_site_id", "transfer_id"], kind="stable").reset_index(drop=True)
    )


def export_orders(*, engine: Engine, actor: Actor, scenario_id: int, file_format: str = "csv") -> pd.DataFrame:
    """Release an approved plan (once) and return its transfer orders; later exports return the same orders.

    Refused for plans with nothing released (drafts and plans in review without
    released lines): approve first.
    """
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    if record.status == "approved":
        record = transition(engine=engine, actor=actor, scenario_id=scenario_id, event="release")
    else:
        actor.require("release")
    orders = transfer_orders(engine=engine, scenario_id=scenario_id)
    if orders.empty and record.status in ("draft", "in_review"):
        raise IllegalTransition(
            f"{record.name!r} is {STATE_WORDS[record.status]} and has no released lines; approve it before exporting transfer orders"
        )
    with UnitOfWork(engine) as uow:
        uow.record(
            actor=actor,
            action="orders_exported",
            object_type="scenario",
            object_id=scenario_id,
            dataset_id=record.dataset_id,
            summary=f"{record.name!r}: exported {len(orders)} transfer order(s) as {file_format}",
            after={"orders": len(orders), "units": int(orders["qty"].sum()) if len(orders) else 0},
        )
        uow.commit()
    return orders


# ----------------------------------------------------------------------------- autopilot and reproduction


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


def delete_dataset(*, engine: Engine, actor: Actor, dataset_id: int) -> None:
    """Delete a dataset with its scenarios (admin); refused while its released transfers are in transit."""
    actor.require("delete_data")
    dataset = store.get_dataset(engine=engine, dataset_id=dataset_id)
    if dataset is None:
        raise WorkflowError(f"no dataset with id {dataset_id}")
    moving = [
        s.name
        for s in list_scenarios(engine=engine, dataset_id=dataset_id)
        if s.status != "received"
        and lines(engine=engine, scenario_id=s.id).get("released", pd.Series(dtype=bool)).any()
    ]
    if moving:
        raise IllegalTransition(
            f"{dataset.name!r} has released transfers in transit ({', '.join(moving)}); confirm their receipt before deleting it"
        )
    event = AuditEvent(
        at=audit.now(),
        username=actor.username,
        role=actor.role,
        action="data_deleted",
        object_type="dataset",
        object_id=str(dataset_id),
        dataset_id=dataset_id,
        summary=f"deleted dataset {dataset.name!r} and its scenarios",
        before=json.dumps({"name": dataset.name, "as_of": str(dataset.as_of), "positions": dataset.positions}),
    )
    store.delete_dataset(engine=engine, dataset_id=dataset_id, audit_event=event)


def override_signals(*, engine: Engine, actor: Actor, dataset_id: int, reason: str) -> None:
    """Let planning go ahead on a dataset despite its critical signal findings (admin, reason required, audited)."""
    actor.require("override")
    reason = reason.strip()
    if not reason:
        raise WorkflowError("an override needs a reason (it is kept in the audit log)")
    dataset = store.get_dataset(engine=engine, dataset_id=dataset_id)
    if dataset is None:
        raise WorkflowError(f"no dataset with id {dataset_id}")
    critical = blocking(datasets.dataset_signals(dataset))
    if critical.empty:
        raise WorkflowError(f"{dataset.name!r} has no critical signal findings; nothing to override")
    override = {"by": actor.username, "at": str(audit.now()), "reason": reason}
    with UnitOfWork(engine) as uow:
        uow.corrections.override_signals(dataset_id, json.dumps(override))
        uow.record(
            actor=actor,
            action="signals_overridden",
            object_type="dataset",
            object_id=dataset_id,
            dataset_id=dataset_id,
            summary=f"planning allowed on {dataset.name!r} despite {len(critical)} critical signal finding(s): {reason}",
            before={"critical": critical["message"].tolist()},
            after=override,
        )
        uow.commit()


def count_discrepancies(
    *, engine: Engine, dataset_id: int, network: Network | None = None, tolerance: Tolerance | None = None
) -> pd.DataFrame:
    """The dataset's cycle counts classified against its system record (:mod:`rebal_core.signals.accuracy`),
    with open transfers (released, not received) as timing evidence."""
    counts = store.read_table(engine=engine, dataset_id=dataset_id, table="counts")
    if counts.empty:
        return pd.DataFrame()
    dataset = store.get_dataset(engine=engine, dataset_id=dataset_id)
    net = network if network is not None else datasets.load_network(engine=engine, dataset_id=dataset_id)
    tol = tolerance or Tolerance()
    since = (counts["date"].min() - pd.Timedelta(days=tol.sync_days)).date()
    demand = store.read_demand_since(engine=engine, dataset_id=dataset_id, since=since)
    moving = released_in_transit(engine=engine, dataset_id=dataset.id)
    return classify_counts(
        counts, net.inventory, net.skus, inbound=net.inbound, demand=demand, open_transfers=moving, tolerance=tol
    )


# ----------------------------------------------------------------------------- stock adjustments from cycle counts


def adjustments(*, engine: Engine, dataset_id: int) -> pd.DataFrame:
    with UnitOfWork(engine) as uow:
        rows = [r.model_dump() for r in uow.corrections.adjustments(dataset_id)]
    return pd.DataFrame(rows, columns=list(StockAdjustment.model_fields))


def propose_adjustments(*, engine: Engine, actor: Actor, dataset_id: int, network: Network | None = None) -> int:
    """Propose booking the count where the count is the truth; those under the policy's value threshold are approved by it.

    Positions that already have a proposal or a decision keep it (nothing is proposed twice).
    """
    actor.require("save_scenario")
    found = count_discrepancies(engine=engine, dataset_id=dataset_id, network=network)
    if found.empty:
        return 0
    found = found[found["adjustment"] != 0]
    policy = current_policy(engine=engine)
    limit = policy.default.line_value
    existing = adjustments(engine=engine, dataset_id=dataset_id)
    taken = set(zip(existing["site_id"], existing["sku_id"]))
    now, n = audit.now(), 0
    with UnitOfWork(engine) as uow:
        for r in found.itertuples():
            if (r.site_id, r.sku_id) in taken:
                continue
            small = limit is not None and abs(r.adjustment_value) <= limit
            uow.corrections.add(StockAdjustment(
                dataset_id=dataset_id, site_id=r.site_id, sku_id=r.sku_id, count_date=r.date.date(), system_qty=int(r.system_qty), counted_qty=int(r.counted_qty),
                adjustment=int(r.adjustment), value=float(r.adjustment_value), discrepancy_class=r.discrepancy_class, evidence=r.evidence,
                status="approved" if small else "proposed", decided_by=f"policy v{policy.version}" if small else None, decided_at=now if small else None,
            ))  # fmt: skip
            n += 1
        if n:
            uow.record(
                actor=actor,
                action="adjustments_proposed",
                object_type="dataset",
                object_id=dataset_id,
                dataset_id=dataset_id,
                summary=f"proposed {n} stock adjustment(s) from cycle counts (those under {money_whole(limit)} approved by policy v{policy.version})"
                if limit is not None
                else f"proposed {n} stock adjustment(s) from cycle counts",
                after={"proposed": n},
            )
        uow.commit()
    return n


def decide_adjustments(
    *, engine: Engine, actor: Actor, dataset_id: int, positions: Iterable[tuple[str, str]], action: str, note: str = ""
) -> LineResult:
    """Approve or reject (with a reason) proposed adjustments; approved ones change the on-hand every plan starts from."""
    actor.require("decide_line")
    if action not in ("approve", "reject"):
        raise WorkflowError(f"unknown adjustment action {action!r}; expected approve or reject")
    if action == "reject" and not note.strip():
        raise WorkflowError("a rejection needs a reason (it is kept in the audit log)")
    result = LineResult()
    with UnitOfWork(engine) as uow:
        for site, sku in positions:
            row = uow.corrections.adjustment(dataset_id, site, sku)
            if row is None or row.status != "proposed":
                result.skipped.append(
                    f"{site}/{sku}: " + ("no such adjustment" if row is None else f"already {row.status}")
                )
                continue
            status = "approved" if action == "approve" else "rejected"
            if not uow.corrections.decide(row, status, actor.username, note.strip()):
                result.skipped.append(f"{site}/{sku}: changed meanwhile; reload")
                continue
            result.changed.append(f"{site}/{sku}")
            uow.record(
                actor=actor,
                action=f"adjustment_{action}d" if action == "approve" else "adjustment_rejected",
                object_type="stock_adjustment",
                object_id=f"{site}/{sku}",
                dataset_id=dataset_id,
                summary=f"{action} stock adjustment {row.adjustment:+d} at {site}/{sku} ({row.discrepancy_class})"
                + (f": {note.strip()}" if note.strip() else ""),
                before={"status": "proposed", "on_hand": row.system_qty},
                after={
                    "status": "approved" if action == "approve" else "rejected",
                    "on_hand": row.counted_qty if action == "approve" else row.system_qty,
                },
            )
        uow.commit()
    return result


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
