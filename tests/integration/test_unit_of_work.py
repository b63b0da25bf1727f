"""The unit of work keeps a change and its audit event together, or neither (issue 13)."""

from __future__ import annotations

import pytest

from rebal_core.governance.identity import Actor
from rebal_core.services import workflow
from rebal_core.store import audit
from rebal_core.store.unit_of_work import UnitOfWork

ADMIN = Actor("admin", "admin")


def test_nothing_is_kept_unless_the_use_case_commits(engine):
    workflow.ensure_governance(engine=engine)
    events = len(audit.log(engine=engine))
    with pytest.raises(RuntimeError), UnitOfWork(engine) as uow:
        uow.policies.add(version=2, created_by="admin", note="half done", thresholds="{}")
        uow.record(actor=ADMIN, action="policy_changed", summary="v2")
        raise RuntimeError("crash after writing, before commit")
    with UnitOfWork(engine) as uow:  # forgetting to commit keeps nothing either
        uow.policies.add(version=2, created_by="admin", note="not committed", thresholds="{}")
        uow.record(actor=ADMIN, action="policy_changed", summary="v2")
    assert workflow.current_policy(engine=engine).version == 1
    assert len(audit.log(engine=engine)) == events


def test_a_change_and_its_audit_event_commit_together(engine):
    workflow.ensure_governance(engine=engine)
    before = len(audit.log(engine=engine, actions=["policy_changed"]))
    with UnitOfWork(engine) as uow:
        uow.policies.add(version=2, created_by="admin", note="kept", thresholds="{}")
        uow.record(actor=ADMIN, action="policy_changed", object_type="policy", object_id=2, summary="v2")
        uow.commit()
    assert [p.version for p in workflow.policy_history(engine=engine)] == [2, 1]
    assert len(audit.log(engine=engine, actions=["policy_changed"])) == before + 1
