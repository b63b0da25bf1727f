"""The optimizer against an exact monolithic solve, each rule binding in turn; scores by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rebal_core.decisions.planning import build_problem
from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import Scenario, ScenarioInvalid
from rebal_core.decisions.solvers.optimizer import plan


def _two_sites(cost_per_truck: float = 0.0) -> Network:
    """Austin holds 100 units nobody wants; Boston needs 5 a day and has none."""
    sites = pd.DataFrame(
        {
            "site_id": ["A", "B"],
            "name": ["Austin", "Boston"],
            "kind": ["store"] * 2,
            "region": ["South", "Northeast"],
            "lat": [30.3, 42.4],
            "lon": [-97.7, -71.1],
            "receive_capacity_units": [np.nan, np.nan],
        }
    )
    skus = pd.DataFrame(
        {
            "sku_id": ["S"],
            "name": ["Drill"],
            "category": ["Tools"],
            "unit_cost": [10.0],
            "unit_price": [20.0],
            "unit_volume": [1.0],
            "pack_size": [1],
            "criticality": [1.0],
        }
    )
    inventory = pd.DataFrame({"site_id": ["A", "B"], "sku_id": ["S", "S"], "on_hand": [100, 0], "in_transit": [0, 0]})
    forecast = pd.DataFrame(
        {"site_id": ["A", "B"], "sku_id": ["S", "S"], "mean_daily": [0.0, 5.0], "std_daily": [0.0, 0.0]}
    )
    inbound = pd.DataFrame(
        {
            "site_id": pd.Series([], dtype=str),
            "sku_id": pd.Series([], dtype=str),
            "qty": pd.Series([], dtype=int),
            "eta": pd.Series([], dtype="datetime64[ns]"),
        }
    )
    lanes = pd.DataFrame(
        {
            "from_site_id": ["A", "B"],
            "to_site_id": ["B", "A"],
            "lead_time_days": [3.0, 3.0],
            "cost_per_unit": [1.0, 1.0],
            "cost_per_truck": [cost_per_truck] * 2,
            "truck_capacity": [60.0] * 2,
            "max_units": [np.nan] * 2,
        }
    )
    return Network(sites, skus, inventory, forecast, inbound, lanes, dt.date(2026, 1, 1))


def test_hand_computed_plan():
    # Boston: mu = T = 140 (sd 0), p = 20 - 10 = 10; Austin: X = 0, excess 100, h = 0.05 x 10 = 0.5.
    # Before: 10 x 140 + 0.5 x 100 = 1450. Ship all 100: 10 x 40 + 100 x 1 = 500.
    result = plan(build_problem(_two_sites(), Scenario(objective="target")))
    assert result.score.network_cost_before == pytest.approx(1450)
    assert result.score.network_cost_after == pytest.approx(500)
    assert result.table["qty"].tolist() == [100]
    # With sd = 0 the expected objective gives the same numbers, told as lost sales.
    same = plan(build_problem(_two_sites(), Scenario()))
    assert same.score.network_cost_after == pytest.approx(500) and same.table["qty"].tolist() == [100]
    assert same.table["reason"].iat[0] == (
        "Boston expected to lose 140 sales in the next 28 days; 100 units from Austin cut that to 40, "
        "worth $1,000 of lost margin and $50 of excess at Austin, for $100 of transfer"
    )
    assert (
        result.table["reason"].iat[0]
        == "Boston short 140 units, out of stock now; Austin 100 above its excess level; avoids $1,000 of shortage and $50 of excess for $100 of transfer"
    )


def test_expected_cost_plan_computed_by_hand():
    """Boston: daily demand 5 +- 2 over H = 28 days, so D ~ N(140, 2 sqrt(28)); Austin holds 100 it never sells.

    Under the expected objective moving q units costs q (lane) and changes Boston's expected lost
    margin 10 ELS(q) and Austin's expected excess 0.5 (100 - q); the optimum is where the marginal
    lost margin saved, 10 (1 - Phi((q - 140) / sigma)), equals the unit cost 1 - 0.5 = 0.5, i.e.
    q* = 140 + sigma Phi^-1(0.95), capped at the 100 Austin holds: all 100 move.
    Checked against a brute-force search over every q with the spec's formulas.
    """
    from scipy.stats import norm

    net = _two_sites()
    net.forecast.loc[net.forecast["site_id"] == "B", "std_daily"] = 2.0
    sigma = 2.0 * np.sqrt(28)

    def by_hand(q: int) -> float:
        els = sigma * (norm.pdf((q - 140) / sigma) - (q - 140) / sigma * norm.sf((q - 140) / sigma))
        return 10 * els + 0.5 * (100 - q) + (1.0 * q if q else 0.0)

    costs = [by_hand(q) for q in range(101)]
    assert int(np.argmin(costs)) == 100
    result = plan(build_problem(net, Scenario()))
    assert result.table["qty"].tolist() == [100]
    assert result.score.network_cost_before == pytest.approx(costs[0])
    assert result.score.network_cost_after == pytest.approx(costs[100])
    assert result.lower_bound <= result.score.network_cost_after + 1e-9
    # Austin keeps enough only when it has its own demand: with 2/day it must keep mu = 56.
    net.forecast.loc[net.forecast["site_id"] == "A", "mean_daily"] = 2.0
    kept = plan(build_problem(net, Scenario(donor_reserve=0.0)))
    assert kept.table["qty"].sum() <= 100 - 56


def test_els_and_eex_match_numerical_integration():
    from scipy import integrate
    from scipy.stats import norm

    from rebal_core.decisions.positions import expected_excess, expected_shortage

    for mu, sigma, P in ((140.0, 10.6, 100.0), (140.0, 10.6, 160.0), (5.0, 3.0, 0.0), (50.0, 20.0, 51.0)):
        els = integrate.quad(
            lambda d, P=P, mu=mu, sigma=sigma: max(0.0, d - P) * norm.pdf(d, mu, sigma),
            mu - 12 * sigma,
            mu + 12 * sigma,
            points=[P],
            limit=200,
        )[0]
        eex = integrate.quad(
            lambda d, P=P, mu=mu, sigma=sigma: max(0.0, P - d) * norm.pdf(d, mu, sigma),
            mu - 12 * sigma,
            mu + 12 * sigma,
            points=[P],
            limit=200,
        )[0]
        assert expected_shortage(np.array([mu]), np.array([sigma]), np.array([P]))[0] == pytest.approx(
            els, rel=1e-6, abs=1e-9
        )
        assert expected_excess(np.array([mu]), np.array([sigma]), np.array([P]))[0] == pytest.approx(
            eex, rel=1e-6, abs=1e-9
        )


def test_trucks_are_counted_as_ceil_of_volume():
    # Trucks of 60 at 300: 100 units need 2 trucks -> 400 + 100 + 600 = 1100; 60 units: 800 + 20 + 60 + 300 = 1180.
    result = plan(build_problem(_two_sites(cost_per_truck=300.0), Scenario()))
    assert result.score.network_cost_after == pytest.approx(1100)
    assert result.score.trucks == {"A>B": 2}
    assert result.summary().trucks == {"A>B": 2}


def test_bad_scenarios_are_refused_with_clear_messages():
    with pytest.raises(ScenarioInvalid, match="excess_cover_days: must be >= horizon_days"):
        Scenario(excess_cover_days=10)
    with pytest.raises(ScenarioInvalid, match="service_level: expected 0.5 to 0.9999"):
        Scenario(service_level=1.0)


# ----------------------------------------------------------------------------- plans around decisions


def test_prices_give_the_arc_costs_the_search_adds_up_bit_for_bit():
    """ArcPrices (what a round sends to shards) works out the same per-pack costs as the sums the
    search made before: base or truck-free costs, plus the priced resources, plus the truck slopes."""
    import dataclasses

    from rebal_core.decisions.solvers.costs import (
        ArcPrices,
        CostTerms,
        bound_costs,
        lane_truck_rates,
        resources,
        truck_free_costs,
        truck_slopes,
    )

    net = _two_sites(cost_per_truck=300.0)
    net = dataclasses.replace(
        net,
        sites=net.sites.assign(receive_capacity_units=[40.0, 50.0]),
        lanes=net.lanes.assign(max_units=[80.0, 70.0]),
    )
    problem = build_problem(net, Scenario(budget=5000.0))
    arcs = problem.arcs
    assert len(resources(problem, arcs).capacity) == 3  # the lane A>B, receiving at B, the budget
    terms = CostTerms(problem)
    rng = np.random.default_rng(5)
    packs = rng.integers(0, 3, len(arcs))
    for receive in (True, False):
        res = resources(problem, arcs, receive=receive)
        lam = rng.random(len(res.capacity))
        priced = ArcPrices("bound", receive, lam, terms=terms)
        assert np.array_equal(priced.costs(), bound_costs(problem, arcs) + res.usage.T @ lam)
        slopes = priced.with_trucks(lane_truck_rates(problem, packs)).to_send()
        assert slopes.terms is None
        expected = truck_free_costs(problem, arcs) + res.usage.T @ lam + truck_slopes(problem, packs)
        assert np.array_equal(slopes.costs(CostTerms(problem)), expected)


def test_buckets_send_back_the_arcs_they_use_and_their_summed_use_of_each_resource():
    """What a shard returns per bucket (issue 15): the arcs its plan uses (not every arc's packs) and
    its use of lane caps, receive capacities and the budget; added up bucket by bucket they are the
    whole plan and the whole plan's use, whatever the bucketing."""
    from rebal_core.decisions.solvers.costs import ArcPrices, CostTerms
    from rebal_core.decisions.solvers.shards import InProcess, bucket_arcs, solve_bucket
    from rebal_core.decisions.solvers.stress import coupled_network

    problem = build_problem(coupled_network(10, 60, seed=3), Scenario(objective="target", budget=20_000.0))
    terms = CostTerms(problem)
    for receive in (True, False):
        res = terms.resources(receive)
        assert {n.split()[0] for n in res.names} >= {"lane", "budget"} | ({"receive"} if receive else set())
        lam = np.random.default_rng(2).random(len(res.capacity)) * 0.01
        whole = InProcess(10_000)(problem, ArcPrices("bound", receive, lam, terms=terms))
        cut = InProcess(7)(problem, ArcPrices("bound", receive, lam, terms=terms))
        assert len(bucket_arcs(problem, 7)) >= 8
        assert whole.packs.sum() > 0 and np.array_equal(whole.packs, cut.packs)
        assert whole.bound == pytest.approx(cut.bound, rel=1e-12)
        np.testing.assert_allclose(whole.usage, res.usage @ whole.packs, rtol=1e-12)
        np.testing.assert_allclose(cut.usage, res.usage @ cut.packs, rtol=1e-12)
    idx = bucket_arcs(problem, 7)[0]
    used, amounts, *_ = solve_bucket(problem, terms.base, idx, None)
    assert used.dtype == np.int32 and len(used) < len(idx) and (amounts > 0).all()


def test_the_repair_judges_a_line_by_the_score_the_plan_gets():
    """What the repair's ledger says a line saves is what the judge's score says it saves, under either
    objective (its columns once left out the expected objective's: repairs judged lines by the target one)."""
    from rebal_core.decisions.planning import evaluate, lines_from_arcs
    from rebal_core.decisions.solvers.repair import _Ledger
    from rebal_core.decisions.solvers.stress import coupled_network

    for objective in ("expected", "target"):
        problem = build_problem(coupled_network(8, 40, seed=4), Scenario(objective=objective))
        arcs = problem.arcs
        rng = np.random.default_rng(5)
        packs = np.where(rng.random(len(arcs)) < 0.2, rng.integers(1, 6, len(arcs)), 0)
        led = _Ledger(problem, arcs, packs)
        cost = evaluate(problem, lines_from_arcs(problem, packs)).network_cost_after
        for line in rng.choice(np.flatnonzero(packs == 0), 5, replace=False):
            more = packs.copy()
            more[line] = 2
            score = evaluate(problem, lines_from_arcs(problem, more))
            spend = score.transfer_cost - evaluate(problem, lines_from_arcs(problem, packs)).transfer_cost
            saved = cost - (score.network_cost_after - spend)  # the positions' part of the score
            saved -= 2 * arcs.pack[line] * arcs.cost_per_unit[line]
            assert led.benefit(line, 2 * arcs.pack[line]) == pytest.approx(saved, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("objective", ["expected", "target"])
def test_a_plan_in_packs_costs_what_the_judge_scores(objective):
    """The optimizer compares the plans it considers by ``plan_cost`` (the positions a plan touches
    only: issue 15); it is the judge's number, with trucks, a cost per move and positions that both
    ship on one arc and receive on another."""
    from rebal_core.decisions.planning import evaluate, lines_from_arcs, plan_cost, transfer_cost
    from rebal_core.decisions.solvers.stress import coupled_network

    problem = build_problem(coupled_network(8, 40, seed=3), Scenario(objective=objective, cost_per_move=2.5))
    arcs = problem.arcs
    assert (problem.lanes["cost_per_truck"] > 0).any()
    rng = np.random.default_rng(8)
    assert plan_cost(problem, np.zeros(len(arcs), dtype=np.int64)) == pytest.approx(
        evaluate(problem, lines_from_arcs(problem, np.zeros(len(arcs), dtype=np.int64))).network_cost_after, rel=1e-12
    )
    for share in (0.02, 0.3, 1.0):
        packs = np.where(rng.random(len(arcs)) < share, rng.integers(1, 7, len(arcs)), 0)
        score = evaluate(problem, lines_from_arcs(problem, packs))
        assert score.truck_cost > 0
        assert plan_cost(problem, packs) == pytest.approx(score.network_cost_after, rel=1e-12)
        assert transfer_cost(problem, packs) == pytest.approx(score.transfer_cost, rel=1e-12)


def test_capacities_are_trimmed_as_a_line_at_a_time_would():
    """The repair cuts lines over a lane's max units or a site's receive capacity at once (issue 15:
    200,000 calls on a relaxed plan of 200 x 20,000). Oracle: the rule line by line, least benefit
    per unit first, the last line in part unless below its minimum move."""
    from dataclasses import replace

    from rebal_core.decisions.solvers.costs import resources
    from rebal_core.decisions.solvers.repair import _Ledger, _trim_capacities
    from rebal_core.decisions.solvers.stress import coupled_network

    problem = build_problem(coupled_network(16, 80, seed=6), Scenario(min_move_units=24))
    arcs, res = problem.arcs, resources(problem, problem.arcs)
    rng = np.random.default_rng(3)
    packs = np.where(rng.random(len(arcs)) < 0.6, rng.integers(1, arcs.ub + 1), 0)
    ships = rng.random(len(problem.positions)) < 0.5
    packs[~ships[arcs.src] | ships[arcs.dst]] = 0  # rule 4 holds (as after the repair's first step)
    # Capacities a relaxed plan overruns: a third to all of what it uses (a stock network's fit its stock)
    res = replace(res, capacity=np.floor((res.usage @ packs) * rng.uniform(0.3, 1.0, len(res.capacity))))
    expected, led_e = packs.copy(), _Ledger(problem, arcs, packs)
    over = 0
    for r in range(len(res.capacity)):
        if res.names[r] == "budget":
            continue
        row = res.usage.getrow(r)
        used = float(row.data @ expected[row.indices])
        if used <= res.capacity[r] + 1e-9:
            continue
        over += 1
        live = row.indices[expected[row.indices] > 0]
        q = (expected[live] * arcs.pack[live]).astype(float)
        for a in live[np.argsort(led_e.kept(live, q) / q, kind="stable")]:
            if used <= res.capacity[r] + 1e-9:
                break
            new = expected[a] - int(np.ceil((used - res.capacity[r]) / arcs.pack[a] - 1e-9))
            new = new if new >= arcs.min_packs[a] else 0
            led_e.move(a, -(expected[a] - new) * arcs.pack[a])
            used -= (expected[a] - new) * arcs.pack[a]
            expected[a] = new
    got, led = packs.copy(), _Ledger(problem, arcs, packs)
    _trim_capacities(problem, led, got, res)
    assert over >= 5 and (got != packs).sum() > 20
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(led.P, led_e.P)


def test_a_relaxation_stopped_part_way_plans_the_skus_it_did_not_reach_by_the_rule():
    """A time limit that stops the first relaxation part-way leaves the skus it did not reach
    without lines; the greedy rule's lines stand in for theirs (issue 11's 5 s limit on 50 x 5,000:
    the optimizer kept the rule's whole plan, 19.5 M, where the mix makes 16.6 M)."""
    import time

    from rebal_core.decisions.planning import plan_cost
    from rebal_core.decisions.solvers.costs import CostTerms
    from rebal_core.decisions.solvers.greedy import greedy
    from rebal_core.decisions.solvers.repair import repair
    from rebal_core.decisions.solvers.search import packs_on_arcs, search
    from rebal_core.decisions.solvers.shards import InProcess
    from rebal_core.decisions.solvers.stress import coupled_network
    from rebal_core.progress import quiet

    problem = build_problem(coupled_network(12, 120, seed=2), Scenario(min_move_units=4))
    rule = greedy(problem)
    sku = problem.columns["sku_code"][problem.arcs.src]
    reached = sku % 2 == 0  # the half of the skus the stopped relaxation got to
    seen: list[np.ndarray] = []

    def stopped(problem, cost, deadline=None):
        solved = InProcess()(problem, cost)
        solved.packs = np.where(reached, solved.packs, 0)
        seen.append(solved.packs)
        time.sleep(max(0.0, deadline - time.perf_counter()) + 0.01)  # the deadline passes while it runs
        return solved

    found = search(problem, time.perf_counter() + 1.0, quiet, lambda: None, rule=rule, skus=stopped)
    assert len(seen) == 1 and found.cut_short
    rule_packs = packs_on_arcs(problem, rule)
    everything = CostTerms(problem).resources(receive=True)
    alone = plan_cost(problem, repair(problem, seen[0], everything))
    assert (found.packs[~reached] > 0).any() and (rule_packs[~reached] > 0).any()
    assert found.cost < alone and found.cost < plan_cost(problem, repair(problem, rule_packs, everything))


def test_a_truck_trim_judges_the_lines_it_cuts_as_one_at_a_time_would():
    """The repair's truck trim prices the lines it would cut on a lane at once (issue 15: a line at
    a time was half the repairs' time on 200 x 20,000). Oracle: each line taken out, its benefit
    before and after the cut, put back, the losses added in order."""
    from rebal_core.decisions.solvers.repair import _Ledger
    from rebal_core.decisions.solvers.stress import coupled_network

    for objective in ("expected", "target"):
        problem = build_problem(coupled_network(8, 40, seed=4), Scenario(objective=objective, cost_per_move=3.0))
        arcs = problem.arcs
        rng = np.random.default_rng(11)
        packs = np.where(rng.random(len(arcs)) < 0.3, rng.integers(1, 9, len(arcs)), 0)
        led = _Ledger(problem, arcs, packs)
        checked = 0
        for lane in np.unique(arcs.lane[packs > 0]):
            a = np.flatnonzero((arcs.lane == lane) & (packs > 0))
            k = np.minimum(packs[a], rng.integers(1, 4, len(a)))  # some lines cut to nothing, some in part
            lost = 0.0
            for line, cut in zip(a, k):
                q = packs[line] * arcs.pack[line]
                led.move(line, -q)
                before = led.benefit(line, q)
                after = led.benefit(line, (packs[line] - cut) * arcs.pack[line]) if packs[line] > cut else 0.0
                led.move(line, q)
                lost += before - after - (3.0 if cut == packs[line] else 0.0)
            assert led.cut_loss(a, packs[a], k, 3.0) == pytest.approx(lost, rel=1e-12, abs=1e-9)
            checked += (k == packs[a]).any() and (k < packs[a]).any()
        assert checked >= 3
