"""Reading the audit trail (who did what, when, with before and after). Writing it happens
inside each use case's own transaction (see :mod:`rebal_core.store.audit`)."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from sqlalchemy import Engine

from rebal_core.store import audit


def events(
    *,
    engine: Engine,
    username: str | None = None,
    actions: list[str] | None = None,
    days: int | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Events, newest first, by user, actions, the last ``days`` days (None: all time), a text in the
    summary, at most ``limit`` of them."""
    since = None if days is None else audit.now() - dt.timedelta(days=days)
    return audit.log(
        engine=engine, username=username, actions=actions or None, since=since, text=text or None, limit=limit
    )


def users(*, engine: Engine) -> list[str]:
    """Everyone who appears in the trail."""
    return audit.users(engine=engine)


def actions(*, engine: Engine) -> list[str]:
    """Every kind of event in the trail."""
    return audit.actions(engine=engine)


def detail(stored: str | None) -> dict | list | None:
    """An event's before or after as data; None when nothing was recorded (stored as JSON null)."""
    if not stored:
        return None
    value = json.loads(stored)
    if value is None or isinstance(value, (dict, list)):
        return value
    return {"value": value}  # a bare number or text: shown as an object, which the JSON viewer needs
