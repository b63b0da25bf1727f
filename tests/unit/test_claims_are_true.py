"""Every claim the optimizer makes is true (issue 11): on random networks with trucks of awkward
pack volumes (not dividing the capacity), minimum moves and budgets, the claimed lower bound is
never above the exact optimum of the spec (the reference MIP), ``OPTIMAL`` only when equal, and
the plan keeps every rule on the numbers it reports (the budget to the cent, no tolerance)."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest

from rebal_core.optimizer import plan
from rebal_core.planning import build_problem, evaluate, plan_lines, violations
from rebal_core.positions import Network
from rebal_core.reference import solve_reference
from rebal_core.scenario import Scenario

# 16 in every run; CLAIM_NETWORKS=300 was run before committing (see the README, issue 11).
CLAIM_NETWORKS = int(os.environ.get("CLAIM_NETWORKS", "16"))
CLAIM_SEED0 = int(os.environ.get("CLAIM_SEED0", "0"))


def trucked_network(seed: int) -> tuple[Network, Scenario]:
    """6-10 sites, 3-6 skus, most lanes trucked, pack volumes that never divide the truck capacity."""
    rng = np.random.default_rng(10_000 + seed)
    n_sites, n_skus = int(rng.integers(6, 11)), int(rng.integers(3, 7))
    sites = pd.DataFrame({
        "site_id": [f"S{i}" for i in range(n_sites)], "name": [f"Site {i}" for i in range(n_sites)], "kind": "store",
        "region": "All", "lat": rng.uniform(30, 45, n_sites), "lon": rng.uniform(-110, -75, n_sites),
        "receive_capacity_units": np.where(rng.random(n_sites) < 0.2, rng.integers(20, 150, n_sites), np.nan),
    })  # fmt: skip
    skus = pd.DataFrame({
        "sku_id": [f"K{k}" for k in range(n_skus)], "name": [f"Item {k}" for k in range(n_skus)], "category": "A",
        "unit_cost": rng.uniform(5, 120, n_skus).round(2), "unit_price": np.nan,
        "unit_volume": rng.choice([0.3, 0.7, 1.3, 2.9, 0.45], n_skus), "pack_size": rng.choice([1, 1, 3, 7], n_skus),
        "criticality": 1.0,
    })  # fmt: skip
    pairs = [(s, k) for s in range(n_sites) for k in range(n_skus)]
    mean = rng.gamma(1.5, 1.5, len(pairs)).round(3)
    # about half the sites sit long, half run short: transfers matter
    long = rng.random(n_sites) < 0.5
    on_hand = np.array([rng.integers(60, 300) if long[s] else rng.integers(0, 20) for s, _ in pairs])
    inventory = pd.DataFrame({"site_id": [f"S{s}" for s, _ in pairs], "sku_id": [f"K{k}" for _, k in pairs], "on_hand": on_hand, "in_transit": 0})
    forecast = inventory[["site_id", "sku_id"]].assign(mean_daily=mean, std_daily=rng.uniform(0.2, 2, len(pairs)).round(3))
    inbound = pd.DataFrame({"site_id": pd.Series([], dtype=str), "sku_id": pd.Series([], dtype=str), "qty": pd.Series([], dtype=int), "eta": pd.Series([], dtype="datetime64[ns]")})
    lanes = [(a, b) for a in range(n_sites) for b in range(n_sites) if a != b and rng.random() < 0.5]
    truck = rng.random(len(lanes)) < 0.8
    lanes = pd.DataFrame({
        "from_site_id": [f"S{a}" for a, _ in lanes], "to_site_id": [f"S{b}" for _, b in lanes],
        "lead_time_days": rng.uniform(0.5, 5, len(lanes)).round(1), "cost_per_unit": rng.uniform(0, 1.5, len(lanes)).round(2),
        "cost_per_truck": np.where(truck, rng.uniform(30, 400, len(lanes)).round(0), 0.0),
        "truck_capacity": np.where(truck, rng.choice([20.0, 37.0, 50.0, 140.0], len(lanes)), np.nan),
        "max_units": np.where(rng.random(len(lanes)) < 0.2, rng.integers(20, 200, len(lanes)), np.nan),
    })  # fmt: skip
    net = Network(sites, skus, inventory, forecast, inbound, lanes, dt.date(2026, 1, 1))
    params: dict = {"objective": "target", "service_level": 0.95, "horizon_days": 28, "excess_cover_days": 45.0}
    if rng.random() < 0.6:
        params["min_move_units"] = int(rng.integers(2, 15))
    if rng.random() < 0.4:
        params["cost_per_move"] = round(float(rng.uniform(0, 25)), 1)
    if rng.random() < 0.6:
        params["budget"] = round(float(rng.uniform(100, 3000)), 2)
    return net, Scenario(**params)


@pytest.mark.parametrize("seed", range(CLAIM_SEED0, CLAIM_SEED0 + CLAIM_NETWORKS))
def test_claimed_bound_and_status_are_true(seed):
    net, scenario = trucked_network(seed)
    problem = build_problem(net, scenario)
    result = plan(problem, time_limit=2.0)
    exact = solve_reference(problem, time_limit=120)
    assert exact["status"] == "OPTIMAL", "the reference must prove its optimum for the check to mean anything"
    assert violations(problem, exact["lines"]) == []
    optimum = evaluate(problem, exact["lines"]).network_cost_after
    got = result.score.network_cost_after
    tol = 1e-6 * max(1.0, abs(optimum))
    assert result.lower_bound <= optimum + tol, f"claimed bound {result.lower_bound:,.4f} above the exact optimum {optimum:,.4f}"
    assert got >= optimum - tol, "no plan beats the exact optimum"
    if result.solver_status == "OPTIMAL":
        assert got <= optimum + tol, f"OPTIMAL at {got:,.4f} while {optimum:,.4f} exists"
    assert violations(problem, plan_lines(result.table)) == []
    if scenario.budget is not None:
        assert result.score.transfer_cost <= scenario.budget, "the budget holds on the reported transfer cost, to the cent"


@pytest.mark.parametrize("seed", [0, 3, 5, 9])
def test_a_budget_that_binds_by_a_hair_holds_on_the_reported_cost(seed):
    """The free plan's transfer cost less 0.4 thousandths: inside SCIP's feasibility tolerance
    (1e-6 relative), so only a check on the reported number keeps rule 7."""
    from dataclasses import replace

    net, scenario = trucked_network(seed)
    free = plan(build_problem(net, replace(scenario, budget=None)), time_limit=2.0)
    assert free.score.transfer_cost > 1
    tight = replace(scenario, budget=round(free.score.transfer_cost - 0.0004, 6))
    problem = build_problem(net, tight)
    result = plan(problem, time_limit=2.0)
    assert result.score.transfer_cost <= tight.budget
    assert violations(problem, plan_lines(result.table)) == []
    exact = solve_reference(problem, time_limit=120)
    assert exact["status"] == "OPTIMAL"
    assert result.lower_bound <= evaluate(problem, exact["lines"]).network_cost_after + 1e-6


def test_rule_7_has_no_tolerance():
    from rebal_core.planning import money_exact, over_budget

    assert over_budget(5000.003, 5000.0) and not over_budget(5000.0, 5000.0) and not over_budget(0.1 + 0.2 + 100.0, 100.3)
    assert not over_budget(1e9, None) and money_exact(100.30000000000001) == 100.3
