"""The expected objective on a generated bundle read from disk: planning spread, horizons, never
worse than the rule of thumb, fill-rate targets, nothing pays (moved from the unit tests: they
read files)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rebal_core import services
from rebal_core.decisions.planning import build_problem, evaluate, in_scope, position_cost, violations
from rebal_core.decisions.scenario import Scenario, ScenarioInvalid
from rebal_core.decisions.solvers.greedy import _position_cost_fn, greedy
from rebal_core.decisions.solvers.optimizer import plan
from rebal_core.signals.bundle import load_bundle


@pytest.fixture(scope="module")
def small_net(small_bundle):
    return services.network_from_bundle(load_bundle(small_bundle))


def test_planning_sigma_is_never_below_sd_sqrt_h(small_net):
    from rebal_core.decisions.positions import build_positions

    pos = build_positions(small_net, Scenario())
    assert (pos["sigma"] >= pos["std_daily"] * np.sqrt(pos["horizon"]) - 1e-9).all()
    assert (pos["sigma"] > pos["std_daily"] * np.sqrt(pos["horizon"]) + 1e-6).any()  # the history shows persistence


def test_horizon_stops_at_replenishment(small_net):
    from rebal_core.decisions.positions import build_positions

    skus = small_net.skus.assign(replenishment_days=np.where(np.arange(len(small_net.skus)) % 2 == 0, 7.0, np.nan))
    net = dataclasses.replace(small_net, skus=skus)
    pos = build_positions(net, Scenario()).set_index("sku_id")
    quick = skus.loc[skus["replenishment_days"] == 7.0, "sku_id"]
    assert (pos.loc[pos.index.isin(quick), "horizon"] == 7).all()
    assert (pos.loc[~pos.index.isin(quick), "horizon"] == 28).all()
    assert (build_positions(net, Scenario(objective="target"))["horizon"] == 28).all()  # the target reading keeps H


SCENARIOS = {
    "default": ({}, {}),
    "minimum move 10": ({"min_move_units": 10}, {}),
    "budget": ({"budget": 2_000.0}, {}),
    "uncoupled": ({}, {"cost_per_truck": 0.0, "max_units": np.nan, "receive_capacity_units": np.nan}),
}


@pytest.mark.parametrize("case", list(SCENARIOS))
@pytest.mark.parametrize("limit", [0.01, 1.0])
def test_never_worse_than_the_rule_of_thumb(small_net, case, limit):
    params, changes = SCENARIOS[case]
    lanes, sites = small_net.lanes.copy(), small_net.sites.copy()
    for col, value in changes.items():
        (lanes if col in lanes else sites)[col] = value
    problem = build_problem(dataclasses.replace(small_net, lanes=lanes, sites=sites), Scenario(**params))
    rule = evaluate(problem, greedy(problem)).network_cost_after
    result = plan(problem, time_limit=limit)
    assert result.score.network_cost_after <= rule + 1e-6
    assert violations(problem, result.table[["sku_id", "from_site_id", "to_site_id", "qty"]]) == []


def test_greedy_scalar_cost_is_the_judges(small_net):
    problem = build_problem(small_net, Scenario())
    f = _position_cost_fn(problem.positions)
    rows = np.arange(0, len(problem.positions), 7)
    P = problem.positions["position"].to_numpy(float)[rows] + 3.0
    assert [f(int(r), float(x)) for r, x in zip(rows, P)] == pytest.approx(
        position_cost(problem.positions, P, rows).tolist(), rel=1e-9, abs=1e-9
    )


def test_fill_rate_target(small_net):
    free = plan(build_problem(small_net, Scenario()), time_limit=2)
    scope = in_scope(free.problem.positions, free.problem.scenario)
    assert scope.all()
    reached = free.summary().fill_rate_after
    below = round(reached - 0.002, 3)
    # a target the free plan already meets: the same least-cost plan
    easy = plan(build_problem(small_net, Scenario(target_fill_rate=max(0.5, below - 0.05))), time_limit=4)
    assert easy.stats["fill_rate_met"] and easy.score.network_cost_after == pytest.approx(
        free.score.network_cost_after, rel=1e-3
    )
    # a target above it: reached at a higher cost, or the closest plan flagged
    harder = plan(
        build_problem(small_net, Scenario(target_fill_rate=min(0.999, round(reached + 0.003, 3)))), time_limit=6
    )
    s = harder.summary()
    if s.fill_rate_target_met:
        assert s.fill_rate_after >= s.fill_rate_target - 1e-9
        assert s.network_cost_after >= free.score.network_cost_after - 1e-6
        assert harder.lower_bound <= s.network_cost_after + 1e-6
    else:
        assert harder.solver_status == "TARGET_NOT_REACHED" and s.fill_rate_after >= reached - 1e-9
    impossible = plan(build_problem(small_net, Scenario(target_fill_rate=0.999)), time_limit=4)
    assert impossible.solver_status == "TARGET_NOT_REACHED" and not impossible.summary().fill_rate_target_met
    assert (
        impossible.summary().fill_rate_after >= reached - 1e-6
    )  # the closest plan is at least as good as the free one
    with pytest.raises(ScenarioInvalid, match="target_fill_rate"):
        Scenario(objective="target", target_fill_rate=0.9)


def test_nothing_pays_is_an_answer(small_net):
    dear = small_net.lanes.assign(cost_per_unit=small_net.lanes["cost_per_unit"] * 0 + 500.0)
    result = plan(build_problem(dataclasses.replace(small_net, lanes=dear), Scenario()), time_limit=1)
    s = result.summary()
    assert s.lines == 0 and s.network_cost_after == pytest.approx(s.network_cost_before)
    assert s.nothing_pays.startswith("No transfer pays today")
