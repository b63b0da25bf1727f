"""Corrections of the data: stock adjustments from cycle counts, planning despite critical findings, deleting a dataset.

Part of the plan workflow (:mod:`rebal_core.services.workflow` names them all): each use case
checks the role, runs in one unit of work and writes its audit event there."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Engine

from rebal_core import store
from rebal_core.decisions.positions import Network
from rebal_core.errors import REFUSALS, Conflict, PlanningBlocked, WorkflowError  # noqa: F401 (re-exported: callers name them here)
from rebal_core.format import money_whole
from rebal_core.governance.identity import Actor
from rebal_core.governance.policy import (
    IllegalTransition,
)
from rebal_core.progress import Progress, quiet  # noqa: F401
from rebal_core.services import datasets
from rebal_core.services.approvals import LineResult
from rebal_core.services.policy import current_policy
from rebal_core.services.scenarios import lines, list_scenarios, released_in_transit
from rebal_core.signals.accuracy import Tolerance, classify_counts
from rebal_core.signals.quality import blocking
from rebal_core.store import audit
from rebal_core.store.tables import (
    AuditEvent,
    StockAdjustment,
)
from rebal_core.store.unit_of_work import UnitOfWork


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
