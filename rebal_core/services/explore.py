"""What the pages show about a network, read-only: positions and their KPIs, hotspots and
projections, forecast calibration, cycle-count accuracy, scenario comparisons, backtests,
plan outcomes and the value types a page builds requests from.

These are the pure layers' own functions and types, gathered here so that pages and the
command line depend on ``services`` (and ``views``) alone; the rules stay where they are
defined (one definition each), nothing is copied.
"""

from __future__ import annotations

from rebal_core.decisions.planning import LINE_KEYS, Commitments
from rebal_core.decisions.positions import (
    WORST_BY,
    Network,
    build_positions,
    filter_positions,
    kpis,
    project,
    projection_series,
    site_summary,
    summarize,
    worst_positions,
)
from rebal_core.decisions.scenario import (
    LAB_SECONDS,
    REPEATED_SOLVE_SECONDS,
    SAVED_PLAN_SECONDS,
    SOLVE_SECONDS,
    Scenario,
)
from rebal_core.decisions.what_if.backtest import Replay, backtest, totals
from rebal_core.decisions.what_if.compare import (
    SWEEPS,
    differing_lines,
    kpi_table,
    tradeoff,
    tradeoff_notes,
    units_by_region,
)
from rebal_core.decisions.what_if.uncertainty import bands, plan_positions, simulate
from rebal_core.errors import (
    REFUSALS,
    AccountError,
    AccountLocked,
    BundleInvalid,
    ConfigurationError,
    DatasetExists,
    PlanningBlocked,
    ScenarioInvalid,
)
from rebal_core.execution.files import to_csv_bytes, to_xlsx_bytes
from rebal_core.execution.outcomes import snapshot_trend
from rebal_core.governance.identity import ROLES, Actor
from rebal_core.governance.policy import PLAN_STATES, Policy, Thresholds
from rebal_core.signals.accuracy import record_accuracy
from rebal_core.signals.forecast import calibration_sentence, calibration_table
from rebal_core.store.tables import DatasetPublic

__all__ = [
    "LINE_KEYS", "Commitments", "WORST_BY", "Network", "build_positions", "filter_positions", "kpis", "project",
    "projection_series", "site_summary", "summarize", "worst_positions", "LAB_SECONDS", "REPEATED_SOLVE_SECONDS",
    "SAVED_PLAN_SECONDS", "SOLVE_SECONDS", "Scenario", "Replay", "backtest", "totals", "SWEEPS", "differing_lines",
    "kpi_table", "tradeoff", "tradeoff_notes", "units_by_region", "bands", "plan_positions", "simulate", "REFUSALS",
    "AccountError", "AccountLocked", "BundleInvalid", "ConfigurationError", "DatasetExists", "PlanningBlocked",
    "ScenarioInvalid", "to_csv_bytes", "to_xlsx_bytes", "snapshot_trend", "ROLES", "Actor", "PLAN_STATES", "Policy",
    "Thresholds", "record_accuracy", "calibration_sentence", "calibration_table", "DatasetPublic",
]  # fmt: skip
