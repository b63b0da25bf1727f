"""Random tiny networks: the optimizer against the exact monolithic MIP, every rule in play at once."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest

from rebal_core.decisions.planning import build_problem, evaluate, lines_from_arcs, plan_lines, violations
from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.solvers.optimizer import optimize, plan
from rebal_core.decisions.solvers.reference import solve_reference

# 24 in every run (about 20 s); RANDOM_NETWORKS=150 checked 150 before this was committed.
RANDOM_NETWORKS = int(os.environ.get("RANDOM_NETWORKS", "24"))


def random_network(seed: int) -> tuple[Network, Scenario]:
    rng = np.random.default_rng(seed)
    n_sites, n_skus = int(rng.integers(3, 6)), int(rng.integers(2, 6))
    sites = pd.DataFrame(
        {
            "site_id": [f"S{i}" for i in range(n_sites)],
            "name": [f"Site {i}" for i in range(n_sites)],
            "kind": "store",
            "region": rng.choice(["North", "South"], n_sites),
            "lat": rng.uniform(30, 45, n_sites),
            "lon": rng.uniform(-110, -75, n_sites),
            "receive_capacity_units": np.where(rng.random(n_sites) < 0.4, rng.integers(5, 60, n_sites), np.nan),
        }
    )
    skus = pd.DataFrame(
        {
            "sku_id": [f"K{k}" for k in range(n_skus)],
            "name": [f"Item {k}" for k in range(n_skus)],
            "category": rng.choice(["A", "B"], n_skus),
            "unit_cost": rng.uniform(2, 80, n_skus).round(2),
            "unit_price": np.where(rng.random(n_skus) < 0.7, 0, np.nan),
            "unit_volume": rng.uniform(0.2, 5, n_skus).round(2),
            "pack_size": rng.choice([1, 1, 2, 5], n_skus),
            "criticality": rng.choice([0.5, 1.0, 2.0], n_skus),
        }
    )
    skus["unit_price"] = np.where(
        skus["unit_price"].notna(), (skus["unit_cost"] * rng.uniform(0.8, 2.2, n_skus)).round(2), np.nan
    )
    pairs = [(s, k) for s in range(n_sites) for k in range(n_skus) if rng.random() < 0.8]
    inventory = pd.DataFrame(
        {
            "site_id": [f"S{s}" for s, _ in pairs],
            "sku_id": [f"K{k}" for _, k in pairs],
            "on_hand": rng.integers(0, 120, len(pairs)),
            "in_transit": rng.integers(0, 10, len(pairs)),
        }
    )
    forecast = pd.DataFrame(
        {
            "site_id": inventory["site_id"],
            "sku_id": inventory["sku_id"],
            "mean_daily": np.where(rng.random(len(pairs)) < 0.15, 0.0, rng.gamma(1.5, 1.2, len(pairs))).round(3),
            "std_daily": rng.uniform(0, 2, len(pairs)).round(3),
        }
    )
    inbound = pd.DataFrame(
        {
            "site_id": pd.Series([], dtype=str),
            "sku_id": pd.Series([], dtype=str),
            "qty": pd.Series([], dtype=int),
            "eta": pd.Series([], dtype="datetime64[ns]"),
        }
    )
    lanes = [(a, b) for a in range(n_sites) for b in range(n_sites) if a != b and rng.random() < 0.7]
    truck = rng.random(len(lanes)) < 0.4
    lanes = pd.DataFrame(
        {
            "from_site_id": [f"S{a}" for a, _ in lanes],
            "to_site_id": [f"S{b}" for _, b in lanes],
            "lead_time_days": rng.uniform(0.5, 6, len(lanes)).round(1),
            "cost_per_unit": rng.uniform(0, 3, len(lanes)).round(2),
            "cost_per_truck": np.where(truck, rng.uniform(20, 200, len(lanes)).round(0), 0.0),
            "truck_capacity": np.where(truck, rng.uniform(20, 150, len(lanes)).round(0), np.nan),
            "max_units": np.where(rng.random(len(lanes)) < 0.3, rng.integers(5, 50, len(lanes)), np.nan),
        }
    )
    net = Network(sites, skus, inventory, forecast, inbound, lanes, dt.date(2026, 1, 1))
    params: dict = {
        "service_level": float(rng.choice([0.8, 0.95, 0.99])),
        "horizon_days": int(rng.choice([14, 28])),
        "excess_cover_days": float(rng.choice([28, 45, 90])),
    }
    if rng.random() < 0.5:
        params["min_move_units"] = int(rng.integers(2, 12))
    if rng.random() < 0.5:
        params["cost_per_move"] = round(float(rng.uniform(0, 30)), 1)
    if rng.random() < 0.3:
        params["budget"] = round(float(rng.uniform(50, 400)))
    if rng.random() < 0.3:
        params["max_lead_time_days"] = 4.0
    if rng.random() < 0.3:
        params["donor_reserve"] = float(rng.choice([0.0, 0.5]))
    params["excess_cover_days"] = max(params["excess_cover_days"], params["horizon_days"])
    return net, Scenario(**{"objective": "target", **params})


@pytest.mark.parametrize("seed", range(RANDOM_NETWORKS))
def test_random_network_is_solved_exactly(seed, monkeypatch):
    net, scenario = random_network(seed)
    problem = build_problem(net, scenario)
    result = plan(problem, time_limit=30)
    exact = solve_reference(problem, time_limit=30)
    assert exact["status"] == "OPTIMAL"
    best = evaluate(problem, exact["lines"]).network_cost_after
    assert violations(problem, plan_lines(result.table)) == []
    assert violations(problem, exact["lines"]) == [], "the reference itself must be feasible"
    assert result.score.network_cost_after == pytest.approx(best, rel=1e-6, abs=1e-6)
    # The search alone (what large networks get) is feasible and its bound is valid.
    alone = optimize(problem, time_limit=30, use_mip=False)
    assert violations(problem, lines_from_arcs(problem, alone.packs)) == []
    assert alone.lower_bound <= best + 1e-6
    # Networks over GATED_MAX_ARCS price receive capacities in every round (more rounds, all per
    # sku): the plan still keeps every capacity and the bound is still a bound.
    from rebal_core.decisions.solvers import search

    monkeypatch.setattr(search, "GATED_MAX_ARCS", 0)
    priced = optimize(problem, time_limit=0.001, reproducible=True, use_mip=False)
    assert violations(problem, lines_from_arcs(problem, priced.packs)) == []
    assert priced.lower_bound <= best + 1e-6
    assert priced.stats.get("lagrange_rounds", 0) <= search.PRICED_ROUNDS
