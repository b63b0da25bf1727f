"""The unit of work (cosmicpython's ``unit_of_work.py``): one transaction per use case.

``with UnitOfWork(engine) as uow:`` opens a session and exposes the repositories
(``uow.plans``, ``uow.policies``, ``uow.corrections``, ``uow.users``) and the audit trail (``uow.record(...)``); nothing is kept unless the use
case calls ``uow.commit()``, and the audit event is written in the same transaction as the
change it describes: a structure, not a habit. A use case that raises leaves the store as
it was.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from rebal_core.governance.identity import Actor
from rebal_core.store import audit
from rebal_core.store.adjustments import CorrectionRepository
from rebal_core.store.plans import PlanRepository
from rebal_core.store.policies import PolicyRepository
from rebal_core.store.users import UserRepository


class UnitOfWork:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.committed = False

    def __enter__(self) -> UnitOfWork:
        self.session = Session(self.engine)
        self.plans = PlanRepository(self.session)
        self.policies = PolicyRepository(self.session)
        self.corrections = CorrectionRepository(self.session)
        self.users = UserRepository(self.session)
        self.committed = False
        return self

    def __exit__(self, *exc: Any) -> None:
        # close() rolls back whatever was not committed; rows read stay readable (a rollback()
        # would expire them, and reads hand them out after the unit of work ends)
        self.session.close()

    def record(self, *, actor: Actor, action: str, summary: str, **what: Any) -> None:
        """The audit event of this use case (object_type, object_id, dataset_id, before, after)."""
        audit.record(self.session, actor=actor, action=action, summary=summary, **what)

    def commit(self) -> None:
        self.session.commit()
        self.committed = True

    def refresh(self, row: Any) -> Any:
        self.session.refresh(row)
        return row
