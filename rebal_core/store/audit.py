"""The audit log: who did what, when, to which object, with before and after.

Rows are only ever inserted (the store's triggers refuse UPDATE and DELETE).
Each use case records its event in the same transaction as its change, so the
log never claims what did not happen and never misses what did.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session, select

from rebal_core.governance.identity import Actor
from rebal_core.store.tables import AuditEvent

AUDIT_COLUMNS = [
    "id",
    "at",
    "username",
    "role",
    "action",
    "object_type",
    "object_id",
    "dataset_id",
    "summary",
    "before",
    "after",
]


def now() -> dt.datetime:
    """UTC, naive, to the second (what the store keeps)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _json(value) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    summary: str,
    object_type: str = "",
    object_id: str | int = "",
    dataset_id: int | None = None,
    before=None,
    after=None,
) -> None:
    """Add one event to ``session`` (committed with the change it describes)."""
    session.add(
        AuditEvent(
            at=now(),
            username=actor.username,
            role=actor.role,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            dataset_id=dataset_id,
            summary=summary,
            before=_json(before),
            after=_json(after),
        )
    )


def log(
    *,
    engine: Engine,
    username: str | None = None,
    actions: list[str] | None = None,
    object_id: str | None = None,
    dataset_id: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Events, newest first, filtered by any of the arguments (``text`` searches the summary)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if username:
        query = query.where(AuditEvent.username == username)
    if actions:
        query = query.where(AuditEvent.action.in_(actions))
    if object_id:
        query = query.where(AuditEvent.object_id == str(object_id))
    if dataset_id is not None:
        query = query.where(AuditEvent.dataset_id == dataset_id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at <= until)
    if text:
        query = query.where(AuditEvent.summary.ilike(f"%{text}%"))
    if limit:
        query = query.limit(limit)
    with Session(engine) as session:
        rows = [r.model_dump() for r in session.exec(query).all()]
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS)


def actions(*, engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(set(session.exec(select(AuditEvent.action).distinct()).all()))


def users(*, engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(set(session.exec(select(AuditEvent.username).distinct()).all()))
