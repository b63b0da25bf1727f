"""The optimizer against an exact monolithic solve, each rule binding in turn; scores by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading

import numpy as np
import pandas as pd
import pytest

from rebal_core import services
from rebal_core.cli import main as cli
from rebal_core.decisions.planning import build_problem, evaluate, plan_lines, transfer_id, violations
from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import Scenario, ScenarioInvalid
from rebal_core.decisions.solvers.greedy import greedy
from rebal_core.decisions.solvers.optimizer import Cancelled, optimize, plan
from rebal_core.decisions.solvers.reference import solve_reference
from rebal_core.signals.bundle import load_bundle


@pytest.fixture(scope="module")
def small_net(small_bundle) -> Network:
    return services.network_from_bundle(load_bundle(small_bundle))


def _tight(net: Network, **changes) -> Network:
    """The network with lanes or sites changed so one rule binds."""
    lanes, sites = net.lanes.copy(), net.sites.copy()
    for col, value in changes.items():
        target = lanes if col in lanes else sites
        target[col] = value
    return dataclasses.replace(net, lanes=lanes, sites=sites)


CASES = {
    "defaults": ({}, {}),
    "min move and cost per move": (dict(min_move_units=12, cost_per_move=25.0), {}),
    "budget": (dict(budget=400.0), {}),
    "lead time and cost ratio": (dict(max_lead_time_days=2.0, max_unit_cost_ratio=0.04), {}),
    "donor reserve 0, excess cover = horizon": (dict(donor_reserve=0.0, excess_cover_days=28), {}),
    "scope": (dict(categories=("Electrical", "Plumbing", "Power Tools"), regions=("Northeast", "South")), {}),
    "lane max units": ({}, dict(max_units=15.0)),
    "receive capacity": ({}, dict(receive_capacity_units=40.0)),
    "expensive trucks": ({}, dict(cost_per_truck=250.0, truck_capacity=150.0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_optimal_against_exact_monolithic_solve(small_net, case):
    params, changes = CASES[case]
    net = _tight(small_net, **changes)
    problem = build_problem(net, Scenario(**{"objective": "target", **params}))
    result = plan(problem, time_limit=30)
    exact = solve_reference(problem, time_limit=30)
    assert exact["status"] == "OPTIMAL"
    best = evaluate(problem, exact["lines"]).network_cost_after
    assert violations(problem, plan_lines(result.table)) == []
    assert result.score.network_cost_after == pytest.approx(best, rel=1e-6)
    assert result.gap <= 1e-6 and result.solver_status == "OPTIMAL"
    assert result.lower_bound <= best + 1e-6
    if (params or changes) and "donor reserve" not in case:  # that case loosens rather than binds
        # The rule really binds: the unconstrained optimum breaks it, or costs more under it.
        free = plan_lines(plan(build_problem(small_net, Scenario()), time_limit=30).table)
        assert violations(problem, free) != [] or evaluate(problem, free).network_cost_after > best + 1e-6, (
            f"{case} does not bind"
        )


@pytest.mark.parametrize("case", list(CASES))
def test_search_alone_is_feasible_with_a_valid_bound(small_net, case):
    """Without the exact MIP (what large networks get): a feasible plan and a true lower bound."""
    params, changes = CASES[case]
    problem = build_problem(_tight(small_net, **changes), Scenario(**{"objective": "target", **params}))
    solution = optimize(problem, time_limit=30, use_mip=False)
    lines = plan_lines_of(problem, solution.packs)
    exact = solve_reference(problem, time_limit=30)
    best = evaluate(problem, exact["lines"]).network_cost_after
    assert violations(problem, lines) == []
    assert solution.lower_bound <= best + 1e-6
    assert evaluate(problem, lines).network_cost_after >= best - 1e-6


def test_branch_and_bound_is_exact_without_coupling(small_net):
    """No trucks, caps or minimum move: the per-sku flows with rule 4 by branch and bound are optimal."""
    net = _tight(small_net, cost_per_truck=0.0, max_units=np.nan, receive_capacity_units=np.nan)
    for scenario in (
        Scenario(objective="target"),
        Scenario(excess_cover_days=28, donor_reserve=0.0, objective="target"),
        Scenario(service_level=0.99, max_lead_time_days=3.0, objective="target"),
    ):
        problem = build_problem(net, scenario)
        solution = optimize(problem, time_limit=30, use_mip=False)
        exact = evaluate(problem, solve_reference(problem, time_limit=30)["lines"]).network_cost_after
        assert solution.status == "OPTIMAL"
        assert evaluate(problem, plan_lines_of(problem, solution.packs)).network_cost_after == pytest.approx(
            exact, rel=1e-6
        )


def test_forced_quantities_are_kept(small_net):
    """Lower bounds on arcs (lines a planner has fixed) survive the flow, in packs and in units."""
    from rebal_core.decisions.solvers.optimizer import bound_costs, gated_plan, solve_skus

    problem = build_problem(small_net, Scenario())
    free = solve_skus(problem, bound_costs(problem, problem.arcs)).packs
    unused = np.flatnonzero(free == 0)[:3]
    lower = np.zeros(len(problem.arcs), dtype=np.int64)
    lower[unused] = 1
    forced = solve_skus(problem, bound_costs(problem, problem.arcs), lower=lower).packs
    assert (forced[unused] >= 1).all()
    gated = gated_plan(problem, forced, bound_costs(problem, problem.arcs), lower)
    assert (gated[unused] >= 1).all()


def plan_lines_of(problem, packs):
    from rebal_core.decisions.planning import lines_from_arcs

    return lines_from_arcs(problem, packs)


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


def test_greedy_is_feasible_and_never_better(small_net):
    problem = build_problem(small_net, Scenario(min_move_units=6, cost_per_move=5.0))
    lines = greedy(problem)
    assert len(lines) > 0
    assert violations(problem, lines) == []
    assert plan(problem).score.network_cost_after < evaluate(problem, lines).network_cost_after


def test_cancel_stops_the_solve(small_net):
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        plan(build_problem(small_net, Scenario()), cancel=stop)


def test_violations_name_each_broken_rule(small_net):
    problem = build_problem(small_net, Scenario(min_move_units=5))
    pos = problem.positions
    donor = pos.sort_values("on_hand").iloc[-1]
    lane = problem.lanes[problem.lanes["from_site_id"] == donor["site_id"]].iloc[0]
    bad = pd.DataFrame(
        [
            (donor["sku_id"], donor["site_id"], lane["to_site_id"], int(donor["on_hand"]) + 1000),
            (donor["sku_id"], donor["site_id"], lane["to_site_id"], 1),
            (donor["sku_id"], "NOPE", lane["to_site_id"], 1),
        ],
        columns=["sku_id", "from_site_id", "to_site_id", "qty"],
    )
    found = violations(problem, bad)
    text = "\n".join(map(str, found))
    assert {v.rule for v in found} >= {"lane", "one_line", "quantity", "ship_limit"}
    assert "no such lane" in text
    assert "more than one line" in text
    assert "below the minimum move of 5" in text
    assert "may ship at most" in text


def test_bad_scenarios_are_refused_with_clear_messages():
    with pytest.raises(ScenarioInvalid, match="excess_cover_days: must be >= horizon_days"):
        Scenario(excess_cover_days=10)
    with pytest.raises(ScenarioInvalid, match="service_level: expected 0.5 to 0.9999"):
        Scenario(service_level=1.0)


@pytest.mark.parametrize("objective", ["expected", "target"])
def test_plan_cli_summary_agrees_with_plan_csv(small_bundle, small_net, tmp_path, capsys, objective):
    toml = tmp_path / "s.toml"
    toml.write_text(f'service_level = 0.97\nmin_move_units = 4\ncost_per_move = 7.5\nobjective = "{objective}"\n')
    out, summary = tmp_path / "PLAN.csv", tmp_path / "SUMMARY.json"
    assert (
        cli(
            [
                "plan",
                str(small_bundle),
                "--scenario",
                str(toml),
                "--out",
                str(out),
                "--summary",
                str(summary),
                "--quiet",
            ]
        )
        == 0
    )
    table = pd.read_csv(out, dtype={"sku_id": str, "from_site_id": str, "to_site_id": str}, encoding="utf-8-sig")
    s = json.loads(summary.read_text())
    for key in (
        "network_cost_before",
        "network_cost_after",
        "transfer_cost",
        "shortage_cost_before",
        "shortage_cost_after",
        "excess_cost_before",
        "excess_cost_after",
        "fill_rate_before",
        "fill_rate_after",
        "lines",
        "units_moved",
        "trucks",
        "solver_status",
        "lower_bound",
        "gap",
        "solve_seconds",
    ):
        assert key in s, key
    # Recompute every figure from PLAN.csv and the bundle alone.
    problem = build_problem(small_net, Scenario.from_toml(toml))
    score = evaluate(problem, plan_lines(table))
    assert violations(problem, plan_lines(table)) == []
    assert s["network_cost_after"] == pytest.approx(score.network_cost_after, rel=1e-9)
    assert s["transfer_cost"] == pytest.approx(score.transfer_cost, rel=1e-9)
    assert s["network_cost_after"] == pytest.approx(
        s["transfer_cost"] + s["shortage_cost_after"] + s["excess_cost_after"], rel=1e-9
    )
    assert s["fill_rate_after"] == pytest.approx(score.after["fill_rate"], rel=1e-9)
    assert s["lines"] == len(table) and s["units_moved"] == table["qty"].sum()
    assert s["objective"] == objective
    assert s["expected_lost_value_after"] == pytest.approx(score.after["expected_lost_value"], rel=1e-9)
    assert s["trucks"] == score.trucks
    assert s["gap"] == pytest.approx((s["network_cost_after"] - s["lower_bound"]) / s["network_cost_after"], abs=1e-12)
    assert np.allclose(table["line_cost"], table["qty"] * table["cost_per_unit"] + 7.5)
    assert table["reason"].str.len().min() > 20
    assert list(table["transfer_id"]) == [
        transfer_id(*t) for t in table[["sku_id", "from_site_id", "to_site_id"]].itertuples(index=False)
    ]
    # Same bundle, scenario and plan: same ids.
    again = tmp_path / "AGAIN.csv"
    assert cli(["plan", str(small_bundle), "--scenario", str(toml), "--out", str(again), "--quiet"]) == 0
    assert pd.read_csv(again, encoding="utf-8-sig")["transfer_id"].tolist() == table["transfer_id"].tolist()


def test_plan_cli_refuses_bad_scenario(small_bundle, tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text("service_level = 1.0\nexcess_cover_days = 7\n")
    assert cli(["plan", str(small_bundle), "--scenario", str(toml), "--out", str(tmp_path / "p.csv")]) == 2
    text = capsys.readouterr().out
    assert "service_level: expected 0.5 to 0.9999" in text
    assert "excess_cover_days: must be >= horizon_days (28), got 7" in text
    assert not (tmp_path / "p.csv").exists()


# ----------------------------------------------------------------------------- plans around decisions


def test_plan_around_decisions(small_net):
    from rebal_core.decisions.planning import LINE_KEYS, Commitments
    from rebal_core.decisions.solvers.optimizer import CommitmentsInvalid, plan_network

    free = plan_network(small_net, Scenario(objective="target"), time_limit=10)
    lines = plan_lines(free.table)
    assert free.solver_status == "OPTIMAL"

    # keeping every line of an optimal plan gives the same plan and a valid bound
    same = plan_network(small_net, Scenario(objective="target"), commitments=Commitments(fixed=lines), time_limit=10)
    assert same.score.network_cost_after == pytest.approx(free.score.network_cost_after)
    assert same.lower_bound <= same.score.network_cost_after + 1e-6

    # fixed lines kept at their (edited) quantity, forbidden ones out, rule 4 around the fixed ones
    fixed = lines.iloc[[0]].assign(qty=lines["qty"].iloc[0])
    forbidden = lines.iloc[1:4]
    around = plan_network(
        small_net,
        Scenario(objective="target"),
        commitments=Commitments(fixed=fixed, forbidden=forbidden),
        time_limit=10,
    )
    got = plan_lines(around.table)
    merged = got.merge(fixed, on=LINE_KEYS, suffixes=("", "_fixed"))
    assert len(merged) == 1 and (merged["qty"] == merged["qty_fixed"]).all()
    assert got.merge(forbidden[LINE_KEYS], on=LINE_KEYS).empty
    assert violations(around.problem, got) == []
    assert around.score.network_cost_after >= free.score.network_cost_after - 1e-6  # fewer options never help
    assert around.lower_bound <= around.score.network_cost_after + 1e-6

    # the greedy rule honours the same decisions
    rule = plan_network(
        small_net, Scenario(objective="target"), commitments=Commitments(forbidden=lines), method="greedy"
    )
    assert plan_lines(rule.table).merge(lines[LINE_KEYS], on=LINE_KEYS).empty

    # moves under way: the receivers' positions rise, the same and reverse moves are not proposed
    moving = plan_network(
        small_net, Scenario(objective="target"), commitments=Commitments(in_transit=lines.iloc[:5]), time_limit=10
    )
    again = plan_lines(moving.table)
    reverse = lines.iloc[:5].rename(columns={"from_site_id": "to_site_id", "to_site_id": "from_site_id"})
    assert (
        again.merge(lines.iloc[:5][LINE_KEYS], on=LINE_KEYS).empty
        and again.merge(reverse[LINE_KEYS], on=LINE_KEYS).empty
    )
    assert moving.score.network_cost_before < free.score.network_cost_before

    # fixed lines that break a rule are refused, with the rule
    with pytest.raises(CommitmentsInvalid, match="may ship at most"):
        plan_network(
            small_net,
            Scenario(objective="target"),
            commitments=Commitments(fixed=fixed.assign(qty=fixed["qty"] * 10_000)),
        )
