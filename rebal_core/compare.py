"""Comparing saved plans (A / B / delta) and the service-level trade-off sweep. Pure: data in, tables out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from rebal_core.optimizer import plan_network
from rebal_core.planning import LINE_KEYS, Commitments
from rebal_core.positions import Network
from rebal_core.scenario import Scenario

Progress = Callable[[float, str], None]

# (label, summary key, kind): kind says how to read a difference ("cost": lower is better)
KPI_ROWS: list[tuple[str, str, str]] = [
    ("Network cost after", "network_cost_after", "cost"),
    ("Net benefit", "net_benefit", "gain"),
    ("Transfer cost", "transfer_cost", "cost"),
    ("Truck cost", "truck_cost", "cost"),
    ("Shortage cost after", "shortage_cost_after", "cost"),
    ("Excess cost after", "excess_cost_after", "cost"),
    ("Expected fill rate after", "fill_rate_after", "rate"),
    ("Shortage value after", "kpis_after.shortage_value", "cost"),
    ("Excess value after", "kpis_after.excess_value", "cost"),
    ("Transfer lines", "lines", "count"),
    ("Units moved", "units_moved", "count"),
    ("Trucks", "kpis_after.trucks", "count"),
    ("Proven gap", "gap", "rate"),
]


def _get(summary: dict, key: str) -> float:
    value = summary
    for part in key.split("."):
        value = value.get(part, np.nan) if isinstance(value, dict) else np.nan
    return float(value) if value is not None else np.nan


def kpi_table(summaries: dict[str, dict], base: str) -> pd.DataFrame:
    """One row per KPI: each plan's value and, for every other plan, its difference from ``base``."""
    if base not in summaries:
        raise ValueError(f"base {base!r} is not one of the plans compared ({', '.join(summaries)})")
    rows = []
    for label, key, kind in KPI_ROWS:
        row: dict = {"KPI": label, "kind": kind}
        ref = _get(summaries[base], key)
        for name, s in summaries.items():
            row[name] = _get(s, key)
        for name, s in summaries.items():
            if name != base:
                row[f"{name} - {base}"] = _get(s, key) - ref
        rows.append(row)
    return pd.DataFrame(rows)


def units_by_region(plans: dict[str, pd.DataFrame], sites: pd.DataFrame) -> pd.DataFrame:
    """Units moved into each region (receiver's region) per plan: scenario, region, units."""
    region = sites.astype({"site_id": str}).set_index("site_id")["region"]
    parts = []
    for name, lines in plans.items():
        if len(lines):
            per = lines.assign(region=lines["to_site_id"].map(region).fillna("?")).groupby("region", as_index=False)["qty"].sum()
            parts.append(per.rename(columns={"qty": "units"}).assign(scenario=name))
    return pd.concat(parts, ignore_index=True)[["scenario", "region", "units"]] if parts else pd.DataFrame(columns=["scenario", "region", "units"])


def differing_lines(plans: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Lines whose quantity differs between the plans (0 where a plan has no such line), with one column per plan."""
    keyed = []
    for name, lines in plans.items():
        cols = ["transfer_id", *LINE_KEYS, "sku_name", "from_site", "to_site"]
        part = lines[[c for c in cols if c in lines] + ["qty"]].rename(columns={"qty": name})
        keyed.append(part.set_index(["transfer_id", *LINE_KEYS]))
    if not keyed:
        return pd.DataFrame()
    names = list(plans)
    labels = pd.concat([k.drop(columns=names, errors="ignore") for k in keyed]).groupby(level=[0, 1, 2, 3]).first()
    wide = pd.concat([k[[n]] for k, n in zip(keyed, names)], axis=1).fillna(0).astype(int)
    differs = wide.nunique(axis=1) > 1
    out = labels.join(wide, how="right")[differs].reset_index()
    out["spread"] = wide[differs].max(axis=1).to_numpy() - wide[differs].min(axis=1).to_numpy()
    return out.sort_values(["spread", "transfer_id"], ascending=[False, True]).reset_index(drop=True)


def pareto(frame: pd.DataFrame, cost: str = "transfer_cost", benefit: str = "fill_rate_after") -> np.ndarray:
    """Points not dominated (another point costs no more and serves at least as well, one strictly)."""
    c = frame[cost].to_numpy(float)
    b = frame[benefit].to_numpy(float)
    out = np.ones(len(frame), dtype=bool)
    for i in range(len(frame)):
        dominated = (c <= c[i]) & (b >= b[i]) & ((c < c[i]) | (b > b[i]))
        out[i] = not dominated.any()
    return out


def tradeoff(
    net: Network,
    scenario: Scenario,
    service_levels: Sequence[float],
    *,
    commitments: Commitments | None = None,
    time_limit: float = 2.0,
    progress: Progress = lambda f, m: None,
    cancel: threading.Event | None = None,
) -> pd.DataFrame:
    """Solve ``scenario`` at each service level; what the plan costs and the expected fill rate it reaches.

    The network cost is not comparable across service levels by itself (targets,
    hence shortage costs, move with the level); transfer cost against the
    resulting expected fill rate is, and its Pareto front is what planners read.
    """
    levels = sorted({round(float(x), 6) for x in service_levels})
    rows = []
    for i, level in enumerate(levels):
        progress(i / len(levels), f"service level {level:.1%} ({i + 1} of {len(levels)})")
        sc = Scenario.from_mapping({**scenario.as_dict(), "service_level": level})
        p = plan_network(net, sc, commitments=commitments, time_limit=time_limit, cancel=cancel)
        s = p.summary()
        rows.append({
            "service_level": level,
            "fill_rate_before": s["fill_rate_before"],
            "fill_rate_after": s["fill_rate_after"],
            "transfer_cost": s["transfer_cost"],
            "network_cost_after": s["network_cost_after"],
            "shortage_value_after": s["kpis_after"]["shortage_value"],
            "lines": s["lines"],
            "units_moved": s["units_moved"],
            "gap": s["gap"],
        })
    progress(1.0, "done")
    out = pd.DataFrame(rows)
    if len(out):
        out["pareto"] = pareto(out)
    return out
