"""Jobs in the store: created (or joined by key), their progress and result written by the worker."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from sqlmodel import Session, select

from rebal_core.store.tables import Job

ACTIVE = ("queued", "running")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def create_or_join(
    *,
    engine: Engine,
    kind: str,
    key: str,
    dataset_id: int | None,
    params: str,
    created_by: str,
    stale_after: float = float("inf"),
) -> tuple[Job, bool]:
    """The queued or running job with ``key``, else a new one; True when it is new (start a worker).

    A job that has not written for ``stale_after`` seconds lost its worker: it is marked failed, not joined."""
    with Session(engine) as session:
        found = _active(session, key)
        now = _now()
        if found is not None and (now - found.updated_at).total_seconds() <= stale_after:
            return found, False
        if found is not None:
            found.status, found.message = "failed", "lost: its worker stopped reporting"
            session.add(found)
        job = Job(
            kind=kind,
            key=key,
            dataset_id=dataset_id,
            params=params,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        session.add(job)
        session.commit()
        session.refresh(job)
        return job, True


def _active(session: Session, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.key == key, Job.status.in_(ACTIVE)).order_by(Job.id.desc())).first()


def active_by_key(*, engine: Engine, key: str) -> Job | None:
    with Session(engine) as session:
        return _active(session, key)


def get(*, engine: Engine, job_id: int) -> Job | None:
    with Session(engine) as session:
        return session.get(Job, job_id)


def latest(*, engine: Engine, kind: str, dataset_id: int) -> Job | None:
    with Session(engine) as session:
        return session.exec(
            select(Job).where(Job.kind == kind, Job.dataset_id == dataset_id).order_by(Job.id.desc())
        ).first()


def update(*, engine: Engine, job_id: int, **values) -> Job:
    """Set fields of a job (the heartbeat ``updated_at`` moves with every write)."""
    with Session(engine) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"no job with id {job_id}")
        for name, value in values.items():
            setattr(job, name, value)
        job.updated_at = _now()
        session.add(job)
        session.commit()
        session.refresh(job)
        return job
