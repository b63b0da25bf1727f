"""Scenario parameters (``shared/spec/rebalancing-model.md``) with validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import tomllib

from rebal_core.errors import ScenarioInvalid  # noqa: F401 (re-exported: callers name them here)

# Solver time limits in seconds: one default per use, named once (they were 13 literals).
SOLVE_SECONDS = 60.0  # one plan on request: `python -m rebal_core plan`, optimizer.plan
SAVED_PLAN_SECONDS = 5.0  # a saved scenario's plan (Plans page, save-scenario, autopilot)
REPEATED_SOLVE_SECONDS = 2.0  # each solve of a sweep or of a backtest's planning day
LAB_SECONDS = 1.0  # the longest the Scenario lab and the home page wait for the optimizer before a provisional plan
# (their plans are reproducible, by counted work: services.lab; this is the wait, not the solve's limit)

OBJECTIVES = ("expected", "target")
"""``expected``: expected lost sales and excess (the default); ``target``: shortfall below target and stock above the excess level."""


@dataclass(frozen=True)
class Scenario:
    """A named set of planning rules; defaults are the spec's."""

    name: str = "default"
    service_level: float = 0.95
    horizon_days: int = 28
    excess_cover_days: float = 90.0
    donor_reserve: float = 1.0
    min_move_units: int = 1
    cost_per_move: float = 0.0
    max_lead_time_days: float | None = None
    max_unit_cost_ratio: float | None = None
    budget: float | None = None
    shortage_cost_factor: float = 0.5
    excess_cost_rate: float = 0.05
    categories: tuple[str, ...] = field(default_factory=tuple)
    regions: tuple[str, ...] = field(default_factory=tuple)
    objective: str = "expected"
    target_fill_rate: float | None = None

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ScenarioInvalid(problems)

    def problems(self) -> list[str]:
        p: list[str] = []

        def number(name: str) -> float | None:
            value = getattr(self, name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                p.append(f"{name}: expected a number, got {value!r}")
                return None
            return float(value)

        sl = number("service_level")
        if sl is not None and not 0.5 <= sl <= 0.9999:
            p.append(
                f"service_level: expected 0.5 to 0.9999 (a probability; 1.0 would need infinite safety stock), got {sl}"
            )
        h = number("horizon_days")
        if h is not None and (not 1 <= h <= 365 or h != int(h)):
            p.append(f"horizon_days: expected a whole number of days from 1 to 365, got {self.horizon_days}")
        x = number("excess_cover_days")
        if x is not None and h is not None and x < h:
            p.append(f"excess_cover_days: must be >= horizon_days ({h:g}), got {x:g}")
        dr = number("donor_reserve")
        if dr is not None and not 0 <= dr <= 1:
            p.append(f"donor_reserve: expected a share from 0 to 1, got {dr}")
        mm = number("min_move_units")
        if mm is not None and (mm < 1 or mm != int(mm)):
            p.append(f"min_move_units: expected a whole number >= 1, got {self.min_move_units}")
        for name in ("cost_per_move", "shortage_cost_factor", "excess_cost_rate"):
            v = number(name)
            if v is not None and v < 0:
                p.append(f"{name}: expected a number >= 0, got {v}")
        for name in ("max_lead_time_days", "max_unit_cost_ratio", "budget"):
            v = number(name)
            if v is not None and v < 0:
                p.append(f"{name}: expected a number >= 0 or none, got {v}")
        if self.objective not in OBJECTIVES:
            p.append(f"objective: expected one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        fr = number("target_fill_rate")
        if fr is not None and not 0.5 <= fr <= 0.999:
            p.append(f"target_fill_rate: expected a share from 0.5 to 0.999 or none, got {fr}")
        if fr is not None and self.objective != "expected":
            p.append('target_fill_rate: needs objective = "expected" (the fill rate is an expected one)')
        for name in ("categories", "regions"):
            v = getattr(self, name)
            if not isinstance(v, (tuple, list)) or not all(isinstance(s, str) for s in v):
                p.append(f"{name}: expected a list of names, got {v!r}")
        return p

    @classmethod
    def from_mapping(cls, raw: dict, name: str | None = None) -> Scenario:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ScenarioInvalid(
                [f"unknown parameter(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"]
            )
        values = dict(raw)
        for key in ("categories", "regions"):
            if key in values and isinstance(values[key], list):
                values[key] = tuple(values[key])
        if name is not None and "name" not in values:
            values["name"] = name
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path) -> Scenario:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ScenarioInvalid([f"{path.name}: cannot be read as TOML ({exc})"]) from None
        return cls.from_mapping(raw.get("scenario", raw), name=path.stem)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["categories"], d["regions"] = list(self.categories), list(self.regions)
        return d
