"""SQLModel tables of the store: one row per dataset, then the bundle's tables keyed by dataset.

Natural keys are primary keys (dataset, site, sku ...), which gives every
lookup the page makes (one site, one sku) an index for free. Identifiers stay
strings, as the data contract requires.
"""

from __future__ import annotations

import datetime as dt

from pydantic import NaiveDatetime
from sqlmodel import Field, SQLModel


class DatasetBase(SQLModel):
    name: str = Field(index=True, unique=True, max_length=120)
    source: str = ""
    as_of: dt.date
    imported_at: NaiveDatetime  # UTC
    sites: int = 0
    skus: int = 0
    positions: int = 0
    demand_rows: int = 0
    forecast_method: str = ""
    forecast_accuracy: str = "{}"  # JSON: backtest figures, see forecast.Accuracy
    warnings: str = "[]"  # JSON list of findings
    rate_card: str = "{}"  # JSON, used for derived lanes


class Dataset(DatasetBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


class DatasetPublic(DatasetBase):
    id: int


class Site(SQLModel, table=True):
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    site_id: str = Field(primary_key=True)
    name: str
    kind: str
    region: str
    lat: float
    lon: float
    receive_capacity_units: float | None = None


class Sku(SQLModel, table=True):
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    sku_id: str = Field(primary_key=True)
    name: str
    category: str
    unit_cost: float
    unit_price: float | None = None
    unit_volume: float = 1.0
    pack_size: int = 1
    criticality: float = 1.0
    shelf_life_days: float | None = None


class InventoryRecord(SQLModel, table=True):
    __tablename__ = "inventory"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree, not two: faster bulk imports
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    site_id: str = Field(primary_key=True)
    sku_id: str = Field(primary_key=True)
    on_hand: int
    in_transit: int = 0


class DemandRecord(SQLModel, table=True):
    __tablename__ = "demand"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree, not two: faster bulk imports
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    site_id: str = Field(primary_key=True)
    sku_id: str = Field(primary_key=True)
    date: dt.date = Field(primary_key=True)
    qty: float


class ForecastRecord(SQLModel, table=True):
    """Daily demand mean and standard deviation per position, from forecast.csv or computed at import."""

    __tablename__ = "forecast"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree, not two: faster bulk imports
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    site_id: str = Field(primary_key=True)
    sku_id: str = Field(primary_key=True)
    mean_daily: float
    std_daily: float
    method: str = ""
    pattern: str = ""


class InboundOrder(SQLModel, table=True):
    __tablename__ = "inbound"
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    line: int = Field(primary_key=True)
    site_id: str = Field(index=False)
    sku_id: str
    qty: int
    eta: dt.date


class Lane(SQLModel, table=True):
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    from_site_id: str = Field(primary_key=True)
    to_site_id: str = Field(primary_key=True)
    lead_time_days: float
    cost_per_unit: float
    cost_per_truck: float = 0.0
    truck_capacity: float | None = None
    max_units: float | None = None
    derived: bool = False


class CycleCount(SQLModel, table=True):
    __tablename__ = "counts"
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    line: int = Field(primary_key=True)
    date: dt.date
    site_id: str
    sku_id: str
    counted_qty: int


BUNDLE_TABLES: dict[str, type[SQLModel]] = {
    "sites": Site,
    "skus": Sku,
    "inventory": InventoryRecord,
    "demand": DemandRecord,
    "forecast": ForecastRecord,
    "inbound": InboundOrder,
    "lanes": Lane,
    "counts": CycleCount,
}
