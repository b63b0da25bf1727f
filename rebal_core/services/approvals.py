"""Deciding a plan: approve, reject or reset lines, set a quantity by hand (firm), move the plan through its lifecycle.

Part of the plan workflow (:mod:`rebal_core.services.workflow` names them all): each use case
checks the role, runs in one unit of work and writes its audit event there."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from rebal_core.decisions.planning import (
    Violation,
)
from rebal_core.decisions.positions import Network
from rebal_core.errors import REFUSALS, Conflict, PlanningBlocked, WorkflowError  # noqa: F401 (re-exported: callers name them here)
from rebal_core.governance.identity import Actor
from rebal_core.governance.policy import (
    LINE_ACTIONS,
    TRANSITIONS,
    IllegalTransition,
    Policy,
    check_line_action,
    next_state,
)
from rebal_core.progress import Progress, quiet  # noqa: F401
from rebal_core.services.policy import current_policy
from rebal_core.services.scenarios import _network, _pack, _plan_summary, _refused, get_scenario, lines, score_lines
from rebal_core.store import audit
from rebal_core.store.plans import PlanRepository
from rebal_core.store.tables import (
    PlanLine,
    ScenarioPublic,
)
from rebal_core.store.unit_of_work import UnitOfWork

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


def line_permissions(status: str, action: str) -> tuple[str, ...]:
    """The permissions, any one of which lets someone ``action`` lines of a plan in ``status``: approving,
    and rejecting in review, is an approver's decision; rejecting a draft's line is the planner's
    exclusion; undoing a decision is either's."""
    if action == "approve" or (action == "reject" and status == "in_review"):
        return ("decide_line",)
    if action == "reject":
        return ("exclude_line",)
    return ("edit_line", "decide_line")


def may_decide(actor: Actor, status: str, action: str) -> bool:
    """Whether ``actor`` may ``action`` lines of a plan in ``status`` (the Plans page's buttons ask this)."""
    return any(actor.can(p) for p in line_permissions(status, action))


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
    if not may_decide(actor, record.status, action):
        actor.require(line_permissions(record.status, action)[0])
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
