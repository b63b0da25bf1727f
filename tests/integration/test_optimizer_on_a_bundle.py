"""The optimizer on a generated bundle read from disk: each rule binding in turn against the exact MIP,
the command line's PLAN.csv and SUMMARY.json, plans around decisions (moved from the unit tests:
they read files)."""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pandas as pd
import pytest

from rebal_core import services
from rebal_core.cli import main as cli
from rebal_core.decisions.planning import build_problem, evaluate, plan_lines, transfer_id, violations
from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import Scenario
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
