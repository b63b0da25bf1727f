"""Solved plans in the store (issue 24): the reproducible plans the lab, the home page and the
pre-solved grid made, by key. A plan is written once; a second writer of the same key (another
replica that solved it at the same time) finds it there and keeps the first."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from rebal_core.store.tables import SolvedPlan


def get(*, engine: Engine, key: str) -> SolvedPlan | None:
    with Session(engine) as session:
        return session.exec(select(SolvedPlan).where(SolvedPlan.key == key)).first()


def keys(*, engine: Engine, family: str) -> set[str]:
    """The keys solved in ``family`` (what a grid job still has to solve)."""
    with Session(engine) as session:
        return set(session.exec(select(SolvedPlan.key).where(SolvedPlan.family == family)).all())


def settings_in(*, engine: Engine, family: str) -> list[tuple[str, dict]]:
    """(key, settings) of every plan solved in ``family``: the candidates for a nearest answer."""
    with Session(engine) as session:
        rows = session.exec(select(SolvedPlan.key, SolvedPlan.scenario).where(SolvedPlan.family == family)).all()
    return [(key, json.loads(scenario)) for key, scenario in rows]


def put(*, engine: Engine, record: SolvedPlan) -> bool:
    """Store ``record``; False when its key was already there (the first stays)."""
    record.created_at = record.created_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        with Session(engine) as session:
            session.add(record)
            session.commit()
        return True
    except IntegrityError:
        return False
