"""The plans repository: saved scenarios and their lines, by intent (cosmicpython's Repository).

Every query the plan workflow needs, named for what it answers; the SQL stays here, so a
different database touches ``store/`` alone. Methods work inside the caller's unit of
work (:class:`rebal_core.store.unit_of_work.UnitOfWork`) and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from sqlalchemy import and_, exists, or_, update
from sqlmodel import Session, col, delete, select

from rebal_core.store.audit import now
from rebal_core.store.tables import Dataset, PlanLine, SavedScenario


def _releasable():
    """Lines that may go out: approved, or firm within the policy. A firm line above it waits for its approver."""
    return or_(PlanLine.status == "approved", and_(PlanLine.status == "firm", ~col(PlanLine.needs_approval)))


class PlanRepository:
    def __init__(self, session: Session):
        self.session = session

    # --- saved scenarios
    def get(self, scenario_id: int) -> SavedScenario | None:
        return self.session.get(SavedScenario, scenario_id)

    def list(self, dataset_id: int | None = None) -> list[SavedScenario]:
        """Most recently changed first."""
        query = select(SavedScenario).order_by(SavedScenario.updated_at.desc(), SavedScenario.id.desc())
        if dataset_id is not None:
            query = query.where(SavedScenario.dataset_id == dataset_id)
        return list(self.session.exec(query).all())

    def find(self, name: str, dataset_id: int | None = None) -> SavedScenario | None:
        """The scenario of that name (on that dataset, else the most recently changed one)."""
        query = (
            select(SavedScenario)
            .where(SavedScenario.name == name.strip())
            .order_by(SavedScenario.updated_at.desc(), SavedScenario.id.desc())
        )
        if dataset_id is not None:
            query = query.where(SavedScenario.dataset_id == dataset_id)
        return self.session.exec(query).first()

    def name_taken(self, dataset_id: int, name: str, but: int | None = None) -> bool:
        query = select(SavedScenario.id).where(SavedScenario.dataset_id == dataset_id, SavedScenario.name == name)
        return any(i != but for i in self.session.exec(query).all())

    def add(self, record: SavedScenario) -> SavedScenario:
        self.session.add(record)
        self.session.flush()
        return record

    def delete(self, record: SavedScenario) -> None:
        """The scenario and every line of its plan."""
        self.session.exec(delete(PlanLine).where(PlanLine.scenario_id == record.id))
        self.session.delete(record)

    def lock(self, scenario_id: int, states: Iterable[str], revision: int | None = None) -> bool:
        """Take the plan's lock: bump its revision if it is in one of ``states`` (and at ``revision``).
        False when someone changed it meanwhile (the caller refuses, nothing was changed)."""
        cond = [SavedScenario.id == scenario_id, col(SavedScenario.status).in_(list(states))]
        if revision is not None:
            cond.append(SavedScenario.revision == revision)
        result = self.session.execute(
            update(SavedScenario).where(*cond).values(revision=SavedScenario.revision + 1, updated_at=now())
        )
        return result.rowcount == 1

    # --- plan lines
    def lines(self, scenario_id: int) -> list[PlanLine]:
        """Every line of the plan, rejected ones included, by transfer id."""
        return list(
            self.session.exec(
                select(PlanLine).where(PlanLine.scenario_id == scenario_id).order_by(PlanLine.transfer_id)
            ).all()
        )

    def released_ids(self, scenario_id: int) -> list[str]:
        """Transfer ids of the plan's lines that have been released (on their way or received)."""
        return list(
            self.session.exec(
                select(PlanLine.transfer_id).where(
                    PlanLine.scenario_id == scenario_id, col(PlanLine.released_at).is_not(None)
                )
            ).all()
        )

    def released_in_transit(self, dataset_id: int, exclude_scenario: int | None = None) -> pd.DataFrame:
        """Lines released by plans on ``dataset_id`` and not yet received (sku, from, to, qty)."""
        rows = self.session.exec(
            select(PlanLine.sku_id, PlanLine.from_site_id, PlanLine.to_site_id, PlanLine.qty)
            .join(SavedScenario, SavedScenario.id == PlanLine.scenario_id)
            .where(
                SavedScenario.dataset_id == dataset_id,
                SavedScenario.id != (exclude_scenario or -1),
                SavedScenario.status != "received",
                col(PlanLine.released_at).is_not(None),
            )
            .order_by(PlanLine.scenario_id, PlanLine.transfer_id)
        ).all()
        return pd.DataFrame([tuple(r) for r in rows], columns=["sku_id", "from_site_id", "to_site_id", "qty"])

    def save(self, row: PlanLine | SavedScenario) -> None:
        self.session.add(row)

    # --- lifecycle and release
    def move(self, scenario_id: int, from_status: str, to_status: str, no_open_lines: bool = False) -> bool:
        """Move the plan from ``from_status`` to ``to_status`` (its lock taken); with ``no_open_lines``
        only while no line waits for a decision, checked inside the statement (a decision undone
        meanwhile cannot slip through). False when the plan changed meanwhile."""
        cond = [SavedScenario.id == scenario_id, SavedScenario.status == from_status]
        if no_open_lines:
            cond.append(
                ~exists().where(
                    and_(
                        PlanLine.scenario_id == scenario_id,
                        or_(PlanLine.status == "proposed", and_(PlanLine.status == "firm", PlanLine.needs_approval)),
                    )
                )
            )
        done = self.session.execute(
            update(SavedScenario)
            .where(*cond)
            .values(status=to_status, revision=SavedScenario.revision + 1, updated_at=now())
        )
        return done.rowcount == 1

    def set_policy_version(self, scenario_id: int, version: int) -> None:
        self.session.execute(
            update(SavedScenario).where(SavedScenario.id == scenario_id).values(policy_version=version)
        )

    def releasable(self, scenario_id: int) -> list[PlanLine]:
        """Lines that would go out on release: approved or firm within the policy, not released yet."""
        return list(
            self.session.exec(
                select(PlanLine).where(
                    PlanLine.scenario_id == scenario_id, _releasable(), col(PlanLine.released_at).is_(None)
                )
            ).all()
        )

    def stamp_release(self, scenario_id: int, username: str) -> int:
        """Mark the releasable lines released now, by ``username``; how many."""
        done = self.session.execute(
            update(PlanLine)
            .where(PlanLine.scenario_id == scenario_id, _releasable(), col(PlanLine.released_at).is_(None))
            .values(released_at=now(), released_by=username, version=PlanLine.version + 1)
        )
        return done.rowcount

    def lock_dataset(self, dataset_id: int) -> None:
        """Row-lock the dataset until commit (PostgreSQL; SQLite serialises writers anyway)."""
        self.session.exec(select(Dataset.id).where(Dataset.id == dataset_id).with_for_update()).first()

    def moving_elsewhere(self, dataset_id: int, exclude_scenario: int) -> list[tuple[str, str, str, str]]:
        """(sku, from, to, plan name) of lines other plans on the dataset released and are not received."""
        return [
            tuple(r)
            for r in self.session.exec(
                select(PlanLine.sku_id, PlanLine.from_site_id, PlanLine.to_site_id, SavedScenario.name)
                .join(SavedScenario, SavedScenario.id == PlanLine.scenario_id)
                .where(
                    SavedScenario.dataset_id == dataset_id,
                    SavedScenario.id != exclude_scenario,
                    SavedScenario.status != "received",
                    col(PlanLine.released_at).is_not(None),
                )
            ).all()
        ]

    def update(self, scenario_id: int, **values) -> None:
        """Set columns of a saved scenario (the caller holds its lock)."""
        self.session.execute(update(SavedScenario).where(SavedScenario.id == scenario_id).values(**values))

    def replace_lines(self, scenario_id: int, keep: set[str], new: list[PlanLine]) -> None:
        """The plan's lines become ``new`` plus the ones whose transfer ids are in ``keep``."""
        self.session.exec(
            delete(PlanLine).where(PlanLine.scenario_id == scenario_id, col(PlanLine.transfer_id).not_in(keep))
        )
        self.session.flush()
        self.session.add_all(new)

    def line(self, scenario_id: int, transfer_id: str) -> PlanLine | None:
        return self.session.get(PlanLine, (scenario_id, transfer_id))

    def lines_by_id(self, scenario_id: int, transfer_ids: list[str]) -> dict[str, PlanLine]:
        rows = self.session.exec(
            select(PlanLine).where(PlanLine.scenario_id == scenario_id, col(PlanLine.transfer_id).in_(transfer_ids))
        ).all()
        return {r.transfer_id: r for r in rows}

    def flush(self) -> None:
        """Send pending changes (so queries in the same transaction see them)."""
        self.session.flush()
