"""SQLModel tables of the store: one row per dataset, then the bundle's tables keyed by dataset.

Natural keys are primary keys (dataset, site, sku ...), which gives every
lookup the page makes (one site, one sku) an index for free. Identifiers stay
strings, as the data contract requires.
"""

from __future__ import annotations

import datetime as dt

from pydantic import NaiveDatetime
from sqlalchemy import UniqueConstraint
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
    signals: str = "[]"  # JSON list of signal-quality findings (signals.check_signals) at import
    signal_override: str = ""  # JSON {by, at, reason} when an admin let planning go ahead despite critical findings


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
    replenishment_days: float | None = None  # days until a supplier order can arrive; None = not within the horizon


class InventoryRecord(SQLModel, table=True):
    __tablename__ = "inventory"
    __table_args__ = {"sqlite_with_rowid": False}  # one b-tree, not two: faster bulk imports
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    site_id: str = Field(primary_key=True)
    sku_id: str = Field(primary_key=True)
    on_hand: int
    in_transit: int = 0
    replenishment_days: float | None = None  # this position's own value; None = the sku's


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
    # Measured error of H-day demand totals (root mean square over rolling origins,
    # shrunk toward the series' group; see forecast.horizon_errors), per H in SPREAD_HORIZONS.
    err_7: float | None = None
    err_14: float | None = None
    err_28: float | None = None
    err_56: float | None = None
    err_91: float | None = None
    origins: int = 0


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


# ----------------------------------------------------------------------------- governance: users, policy, scenarios, audit


class UserBase(SQLModel):
    username: str = Field(index=True, unique=True, max_length=120)
    display_name: str = ""
    role: str = "viewer"  # identity.ROLES
    email: str | None = Field(default=None, index=True)  # matches OIDC sign-ins
    active: bool = True


class User(UserBase, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL
    id: int | None = Field(default=None, primary_key=True)
    password_hash: str | None = None  # argon2id; None for OIDC-only accounts
    created_at: NaiveDatetime
    failed_sign_ins: int = 0  # in a row; a correct sign-in or an admin's unlock resets it
    locked_until: NaiveDatetime | None = None  # sign-in refused until then (accounts.LOCK_AFTER)


class UserPublic(UserBase):
    """What pages may show of a user: never the hash."""

    id: int
    created_at: NaiveDatetime
    failed_sign_ins: int = 0
    locked_until: NaiveDatetime | None = None


class PolicyVersion(SQLModel, table=True):
    """One version of the approval thresholds; the highest version is in force. Rows are never changed."""

    __tablename__ = "policy"
    version: int = Field(primary_key=True)
    created_at: NaiveDatetime
    created_by: str
    note: str = ""
    thresholds: str  # JSON, governance.Policy.to_json


class ScenarioBase(SQLModel):
    dataset_id: int = Field(foreign_key="dataset.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=160)
    params: str  # JSON, Scenario.as_dict
    method: str = "optimize"
    time_limit: float  # seconds; decisions.scenario.SAVED_PLAN_SECONDS unless the planner chose
    status: str = "draft"  # governance.PLAN_STATES
    author: str
    created_at: NaiveDatetime
    updated_at: NaiveDatetime
    solved_at: NaiveDatetime | None = None
    solved_by: str | None = None
    solver_version: str = ""
    policy_version: int | None = None
    summary: str = "{}"  # JSON, Plan.summary (KPIs before and after, status, gap)
    commitments: str = "{}"  # JSON, the fixed/forbidden/in-transit lines the plan was solved around
    revision: int = 0  # bumped by every change: a re-solve only writes if nothing changed meanwhile


class SavedScenario(ScenarioBase, table=True):
    __tablename__ = "scenario"
    __table_args__ = (UniqueConstraint("dataset_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)


class ScenarioPublic(ScenarioBase):
    id: int


class PlanLine(SQLModel, table=True):
    """One transfer line of a saved scenario's plan, with its decision."""

    __tablename__ = "plan_line"
    scenario_id: int = Field(foreign_key="scenario.id", primary_key=True, ondelete="CASCADE")
    transfer_id: str = Field(primary_key=True)
    sku_id: str
    sku_name: str = ""
    category: str = ""
    from_site_id: str
    from_site: str = ""
    to_site_id: str
    to_site: str = ""
    qty: int
    proposed_qty: int  # what the optimizer proposed (a firm edit changes qty only)
    packs: int
    lead_time_days: float
    cost_per_unit: float
    line_cost: float
    truck_share: float
    value: float  # qty x unit cost
    shortage_avoided: float = 0.0
    excess_avoided: float = 0.0
    days_until_stockout: float | None = None
    reason: str = ""
    needs_approval: bool = False
    approval_rule: str = ""
    status: str = "proposed"  # governance.LINE_STATUSES
    decided_by: str | None = None
    decided_at: NaiveDatetime | None = None
    edited_by: str | None = None  # who set its quantity by hand (firm): never its approver (four eyes)
    note: str = ""  # rejection reason or edit note
    released_at: NaiveDatetime | None = None
    released_by: str | None = None
    version: int = 0


class AuditEvent(SQLModel, table=True):
    """Append-only (database triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: NaiveDatetime = Field(index=True)  # UTC
    username: str = Field(index=True)
    role: str
    action: str = Field(index=True)
    object_type: str = ""
    object_id: str = ""
    dataset_id: int | None = None
    summary: str = ""
    before: str = "null"  # JSON
    after: str = "null"  # JSON


class StockAdjustment(SQLModel, table=True):
    """A proposed correction of a system record from a cycle count; approved ones feed every plan of the dataset."""

    __tablename__ = "stock_adjustment"
    dataset_id: int = Field(foreign_key="dataset.id", primary_key=True, ondelete="CASCADE")
    site_id: str = Field(primary_key=True)
    sku_id: str = Field(primary_key=True)
    count_date: dt.date
    system_qty: int
    counted_qty: int
    adjustment: int  # counted - system
    value: float  # adjustment x unit cost
    discrepancy_class: str
    evidence: str = ""
    status: str = "proposed"  # proposed / approved / rejected
    decided_by: str | None = None
    decided_at: NaiveDatetime | None = None
    note: str = ""
    version: int = 0


class Job(SQLModel, table=True):
    """A long computation run off the web process (issue 15): its progress and result live here, so a
    page reload, another user or another app replica sees the same job."""

    __tablename__ = "job"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)  # "backtest"
    key: str = Field(index=True)  # what it computes: asking again for the same key joins this job
    dataset_id: int | None = Field(default=None, index=True)
    params: str = "{}"  # JSON
    status: str = "queued"  # queued / running / done / failed / stopped
    progress: float = 0.0
    message: str = ""
    result: str = ""  # JSON
    created_by: str = ""
    created_at: NaiveDatetime  # UTC
    updated_at: NaiveDatetime  # UTC: the worker's heartbeat while it runs
    stop_requested: bool = False


class SolvedPlan(SQLModel, table=True):
    """A reproducible plan of a scenario (issue 24): solved by the lab, the home page or the grid solved
    ahead of a meeting. Its key names everything the plan depends on (dataset version, settings, moves
    under way, engine version), so another replica, a reload and the next meeting reuse it."""

    __tablename__ = "solved_plan"
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(index=True)
    key: str = Field(index=True, unique=True)
    family: str = Field(index=True)  # the key less the settings: the plans a "nearest solved" answer may use
    scenario: str = "{}"  # JSON: the settings, to find the nearest solved one
    summary: str = "{}"  # JSON: PlanSummary.as_dict()
    rule: str = "{}"  # JSON: the greedy rule's PlanSummary on the same problem
    lines: str = ""  # JSON (pandas split): the plan's lines with their reasons
    sites_after: str = ""  # JSON (pandas split): site statuses after the plan (the map)
    solve_seconds: float = 0.0
    created_at: NaiveDatetime  # UTC
