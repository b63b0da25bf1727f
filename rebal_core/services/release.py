"""Execution: what a release hands over, releasing approved lines, transfer orders and their export.

Part of the plan workflow (:mod:`rebal_core.services.workflow` names them all): each use case
checks the role, runs in one unit of work and writes its audit event there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from rebal_core import store
from rebal_core.errors import REFUSALS, Conflict, PlanningBlocked, WorkflowError  # noqa: F401 (re-exported: callers name them here)
from rebal_core.governance.identity import Actor
from rebal_core.governance.policy import (
    STATE_WORDS,
    IllegalTransition,
)
from rebal_core.progress import Progress, quiet  # noqa: F401
from rebal_core.services.approvals import _refuse_double_moves, transition
from rebal_core.services.scenarios import get_scenario, lines, parameters, summary
from rebal_core.store.unit_of_work import UnitOfWork


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
