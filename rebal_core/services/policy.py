"""The approval policy: versions appended (never changed), the first start's v1.

Part of the plan workflow (:mod:`rebal_core.services.workflow` names them all): each use case
checks the role, runs in one unit of work and writes its audit event there."""

from __future__ import annotations

import json

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from rebal_core.errors import REFUSALS, Conflict, PlanningBlocked, WorkflowError  # noqa: F401 (re-exported: callers name them here)
from rebal_core.governance.identity import Actor
from rebal_core.governance.policy import (
    Policy,
)
from rebal_core.progress import Progress, quiet  # noqa: F401
from rebal_core.services import accounts, datasets
from rebal_core.store.tables import (
    PolicyVersion,
)
from rebal_core.store.unit_of_work import UnitOfWork

SYSTEM_FIRST_START = datasets.FIRST_START


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
