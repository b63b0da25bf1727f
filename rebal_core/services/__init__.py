"""Services: the use cases, named by the planner's verbs. ``datasets`` (import, load, signals,
first start); the plan workflow: ``policy``, ``scenarios``, ``approvals``, ``release``,
``corrections``, ``monitoring`` (``workflow`` names them all); ``lab`` (plan while
tuning), ``batch`` (the command line's plan run), ``accounts``, ``audit_trail`` (reading
the trail), and ``explore`` (the read-only functions and value types pages show and build
requests from).

Pages and the command line call ``services`` and ``views`` only. Services may import
every layer below (signals, decisions, execution, governance, store).

The package's names resolve on first use (PEP 562): ``services.import_bundle`` (from
``datasets``), ``services.Scenario`` (from ``explore``), ``services.workflow`` (the
module). The command line starts without loading the engine for ``--help``, and a page
pays only for what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = (
    "accounts", "approvals", "audit_trail", "batch", "briefing", "corrections", "datasets", "explore", "jobs", "lab",
    "monitoring", "policy", "presolve", "release", "scenarios", "workflow",
)  # fmt: skip
_STORE = ("adjustment_stamp", "database_url", "find_dataset", "get_dataset", "list_datasets", "make_engine")
_SCENARIO = (
    "LAB_SECONDS",
    "REPEATED_SOLVE_SECONDS",
    "SAVED_PLAN_SECONDS",
    "SOLVE_SECONDS",
    "Scenario",
    "ScenarioInvalid",
)


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"rebal_core.services.{name}")
    if name in _SCENARIO:  # light: the command line's defaults
        return getattr(importlib.import_module("rebal_core.decisions.scenario"), name)
    if name in _STORE:
        return getattr(importlib.import_module("rebal_core.store"), name)
    explore = importlib.import_module("rebal_core.services.explore")
    if name in explore.__all__:
        return getattr(explore, name)
    datasets = importlib.import_module("rebal_core.services.datasets")
    if not name.startswith("_") and hasattr(datasets, name):
        return getattr(datasets, name)
    raise AttributeError(f"module 'rebal_core.services' has no attribute {name!r}")
