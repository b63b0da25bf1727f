"""The approval-policy repository: versions are appended, never changed (old decisions stay explained)."""

from __future__ import annotations

from sqlmodel import Session, select

from rebal_core.store.audit import now
from rebal_core.store.tables import PolicyVersion


class PolicyRepository:
    def __init__(self, session: Session):
        self.session = session

    def latest(self) -> PolicyVersion | None:
        return self.session.exec(select(PolicyVersion).order_by(PolicyVersion.version.desc())).first()

    def history(self) -> list[PolicyVersion]:
        """Every version, newest first."""
        return list(self.session.exec(select(PolicyVersion).order_by(PolicyVersion.version.desc())).all())

    def add(self, *, version: int, created_by: str, note: str, thresholds: str) -> PolicyVersion:
        """Append a version (a version number taken meanwhile fails on commit: IntegrityError)."""
        row = PolicyVersion(version=version, created_at=now(), created_by=created_by, note=note, thresholds=thresholds)
        self.session.add(row)
        return row
