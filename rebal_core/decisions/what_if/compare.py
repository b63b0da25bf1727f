"""Comparing saved plans (A / B / delta) and the service-level trade-off sweep. Pure: data in, tables out."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pandas as pd

from rebal_core.decisions.planning import LINE_KEYS, Commitments, PlanSummary
from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import REPEATED_SOLVE_SECONDS, Scenario
from rebal_core.decisions.solvers.optimizer import plan_network
from rebal_core.progress import Progress, quiet

# (label, summary key, kind): kind says how to read a difference ("cost": lower is better)
KPI_ROWS: list[tuple[str, str, str]] = [
    ("Network cost after", "network_cost_after", "cost"),
    ("Net benefit", "net_benefit", "gain"),
    ("Transfer cost", "transfer_cost", "cost"),
    ("Truck cost", "truck_cost", "cost"),
    ("Shortage cost after", "shortage_cost_after", "cost"),
    ("Excess cost after", "excess_cost_after", "cost"),
    ("Expected fill rate after", "fill_rate_after", "rate"),
    ("Expected lost sales after (units)", "kpis_after.expected_lost_units", "count"),
    ("Expected lost margin after", "kpis_after.expected_lost_value", "cost"),
    ("Shortage value after", "kpis_after.shortage_value", "cost"),
    ("Excess value after", "kpis_after.excess_value", "cost"),
    ("Transfer lines", "lines", "count"),
    ("Units moved", "units_moved", "count"),
    ("Trucks", "kpis_after.trucks", "count"),
    ("Proven gap", "gap", "rate"),
]


def _get(summary: PlanSummary, key: str) -> float:
    """A KPI of a plan: a summary field, or ``kpis_after.<name>`` from its KPI set."""
    head, _, rest = key.partition(".")
    value = getattr(summary, head, np.nan)
    if rest:
        value = value.get(rest, np.nan) if isinstance(value, dict) else np.nan
    return float(value) if value is not None else np.nan


def kpi_table(summaries: dict[str, PlanSummary], base: str) -> pd.DataFrame:
    """One row per KPI: each plan's value and, for every other plan, its difference from ``base``.

    Which columns are differences is said, not guessed from their names (a scenario may be
    called "98% - no budget"): ``table.attrs["delta_columns"]``."""
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
    out = pd.DataFrame(rows)
    out.attrs["delta_columns"] = [f"{name} - {base}" for name in summaries if name != base]
    return out


def units_by_region(plans: dict[str, pd.DataFrame], sites: pd.DataFrame) -> pd.DataFrame:
    """Units moved into each region (receiver's region) per plan: scenario, region, units."""
    region = sites.astype({"site_id": str}).set_index("site_id")["region"]
    parts = []
    for name, lines in plans.items():
        if len(lines):
            per = (
                lines.assign(region=lines["to_site_id"].map(region).fillna("?"))
                .groupby("region", as_index=False)["qty"]
                .sum()
            )
            parts.append(per.rename(columns={"qty": "units"}).assign(scenario=name))
    return (
        pd.concat(parts, ignore_index=True)[["scenario", "region", "units"]]
        if parts
        else pd.DataFrame(columns=["scenario", "region", "units"])
    )


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


SWEEPS = {"target_fill_rate": "fill-rate target", "service_level": "service level"}


def tradeoff(
    net: Network,
    scenario: Scenario,
    values: Sequence[float],
    *,
    over: str = "target_fill_rate",
    commitments: Commitments | None = None,
    time_limit: float = REPEATED_SOLVE_SECONDS,
    progress: Progress = quiet,
    cancel: threading.Event | None = None,
) -> pd.DataFrame:
    """Solve ``scenario`` at each value of ``over`` (a fill-rate target, or the service level);
    what the plan costs and the expected fill rate it reaches.

    The network cost is not comparable across service levels by itself (targets,
    hence shortage costs, move with the level); transfer cost against the
    resulting expected fill rate is, and its Pareto front is what planners read.
    A fill-rate target needs the expected objective; the scenario's is used as given otherwise.
    """
    if over not in SWEEPS:
        raise ValueError(f"cannot sweep over {over!r}; expected one of {', '.join(SWEEPS)}")
    points = sorted({round(float(x), 6) for x in values})
    rows = []
    for i, value in enumerate(points):
        progress(i / len(points), f"{SWEEPS[over]} {value:.1%} ({i + 1} of {len(points)})")
        changed = {over: value, **({"objective": "expected"} if over == "target_fill_rate" else {})}
        sc = Scenario.from_mapping({**scenario.as_dict(), **changed})
        p = plan_network(net, sc, commitments=commitments, time_limit=time_limit, cancel=cancel)
        s = p.summary()
        rows.append({
            "setting": f"{SWEEPS[over]} {value:.1%}",
            over: value,
            "service_level": sc.service_level,
            "fill_rate_before": s.fill_rate_before,
            "fill_rate_after": s.fill_rate_after,
            "target_met": s.fill_rate_target_met if over == "target_fill_rate" else None,
            "transfer_cost": s.transfer_cost,
            "network_cost_after": s.network_cost_after,
            "shortage_value_after": s.kpis_after["shortage_value"],
            "lines": s.lines,
            "units_moved": s.units_moved,
            "gap": s.gap,
        })  # fmt: skip
    progress(1.0, "done")
    out = pd.DataFrame(rows)
    if len(out):
        out["pareto"] = pareto(out)
    return out


def tradeoff_notes(sweep: pd.DataFrame) -> list[str]:
    """Why a sweep's fill rate falls where its setting rises, in words (the page shows these)."""
    notes = []
    if "service_level" in sweep and "target_fill_rate" not in sweep and len(sweep) > 1:
        s = sweep.sort_values("service_level")
        fell = s["fill_rate_after"].diff() < -1e-4
        if fell.any():
            at = s["service_level"][fell].iloc[0]
            notes.append(
                f"The expected fill rate falls as the service level rises (first at {at:.1%}): a higher service level raises the safety stock "
                "every donor must keep (donor reserve), so fewer units may move. To buy fill rate, sweep over a fill-rate target instead."
            )
    if "target_met" in sweep and (sweep["target_met"] == False).any():  # noqa: E712 - None means not applicable
        first = sweep.loc[sweep["target_met"] == False, "target_fill_rate"].min()  # noqa: E712
        notes.append(
            f"Fill-rate targets from {first:.1%} cannot be reached by transfers: those points show the plan that comes closest."
        )
    return notes
