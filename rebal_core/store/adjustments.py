"""Stock adjustments from cycle counts, and a dataset's planning override: the corrections repository."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, select

from rebal_core.store.audit import now
from rebal_core.store.tables import Dataset, StockAdjustment


class CorrectionRepository:
    def __init__(self, session: Session):
        self.session = session

    def adjustments(self, dataset_id: int) -> list[StockAdjustment]:
        return list(
            self.session.exec(
                select(StockAdjustment)
                .where(StockAdjustment.dataset_id == dataset_id)
                .order_by(StockAdjustment.site_id, StockAdjustment.sku_id)
            ).all()
        )

    def adjustment(self, dataset_id: int, site_id: str, sku_id: str) -> StockAdjustment | None:
        return self.session.get(StockAdjustment, (dataset_id, site_id, sku_id))

    def add(self, row: StockAdjustment) -> None:
        self.session.add(row)

    def decide(self, row: StockAdjustment, status: str, username: str, note: str) -> bool:
        """Approve or reject a proposed adjustment at the version read; False when it changed meanwhile."""
        done = self.session.execute(
            update(StockAdjustment)
            .where(
                StockAdjustment.dataset_id == row.dataset_id,
                StockAdjustment.site_id == row.site_id,
                StockAdjustment.sku_id == row.sku_id,
                StockAdjustment.version == row.version,
                StockAdjustment.status == "proposed",
            )
            .values(status=status, decided_by=username, decided_at=now(), note=note, version=row.version + 1)
        )
        return done.rowcount == 1

    def override_signals(self, dataset_id: int, override: str) -> None:
        """Let planning go ahead on the dataset despite its critical findings (``override``: JSON, who, when, why)."""
        self.session.execute(update(Dataset).where(Dataset.id == dataset_id).values(signal_override=override))
