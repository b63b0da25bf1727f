"""Issue 14: the lab's plans are reproducible under any load, and its map is light enough to redraw."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from rebal_core.decisions.planning import build_problem
from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.solvers.greedy import greedy
from rebal_core.decisions.solvers.method import optimize, plan
from rebal_core.decisions.solvers.stress import coupled_network
from rebal_core.signals.geo import outline_paths, outline_paths_near
from rebal_core.views.figures import network_map, outline_box, tip_shift, tooltip_html, view_for


def _problem():
    return build_problem(coupled_network(12, 160, seed=5), Scenario(objective="target"))


def test_a_search_that_completes_its_rounds_ignores_the_clock():
    """A time limit far too short (a busy machine) gives the plan of an unhurried search: the rounds finish."""
    problem = _problem()
    rule = greedy(problem)
    unhurried = optimize(problem, time_limit=120, use_mip=False, rule=rule)
    assert not unhurried.stats["search_cut_short"]
    hurried = optimize(problem, time_limit=0.001, rule=rule)
    assert hurried.stats["search_cut_short"] and hurried.status == "TIME_LIMIT"  # the old way: the clock decides
    reproducible = optimize(problem, time_limit=0.001, reproducible=True, rule=rule)
    assert not reproducible.stats["search_cut_short"]
    assert np.array_equal(reproducible.packs, unhurried.packs)
    assert reproducible.lower_bound == unhurried.lower_bound
    assert reproducible.status != "TIME_LIMIT"  # nothing was cut: the status says so


def test_the_plan_keeps_the_greedy_rules_plan_for_the_side_by_side():
    problem = _problem()
    result = plan(problem, time_limit=0.001, reproducible=True)
    rule = result.rule_summary()
    alone = plan(problem, method="greedy").summary()
    assert rule.network_cost_after == alone.network_cost_after and rule.lines == alone.lines
    assert rule.method == "greedy" and result.summary().network_cost_after <= rule.network_cost_after + 1e-6


def test_outlines_near_the_sites_are_cut_to_their_box_and_thinned():
    box = (-130.0, 20.0, -60.0, 55.0)
    near = outline_paths_near("us", box, 0.1)
    full = sum(len(p) for p in outline_paths("us"))
    assert 0 < sum(len(p) for p in near) < full / 2
    for path in near:
        inner = path[1:-1]  # the ends may be the first point outside, so the border reaches the edge
        assert all(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in inner)
    world = outline_paths_near("world", box, 0.1)
    assert all(any(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in p) for p in world)


def _sites(lons, lats) -> pd.DataFrame:
    n = len(lons)
    return pd.DataFrame(
        {
            "site_id": [f"S{i}" for i in range(n)],
            "name": [f"<b>Site {i}</b>" for i in range(n)],
            "kind": "store",
            "region": "R",
            "lat": lats,
            "lon": lons,
            "stock_value": 1000.0,
            "shortage_value": 10.0,
            "excess_value": 0.0,
            "value_at_risk": 10.0,
            "fill_rate": 0.9,
            "days_of_cover": 30.0,
            "status": "short",
            "at_risk": 1,
            "in_excess": 0,
            "positions": 3,
        }
    )


def test_a_map_of_the_us_is_small_and_fits_every_site():
    sites = _sites([-122.7, -71.1, -95.4, -80.2], [47.6, 42.4, 29.8, 25.8])
    deck = network_map(sites)
    spec = deck.to_json()
    assert len(spec) < 150_000  # was 1.6 MB: the whole world's borders, indented
    assert json.loads(spec)["layers"][-1]["id"] == "sites"
    view = view_for(sites)
    px_per_degree = 512 * 2**view.zoom / 360  # deck.gl: a 512-pixel world at zoom 0
    assert (sites["lon"].max() - sites["lon"].min()) * px_per_degree <= 900
    assert outline_box(sites)[0] <= -122.7 and outline_box(sites)[2] >= -71.1


def test_tooltips_of_eastern_sites_open_to_the_left():
    sites = _sites([-122.7, -96.0, -71.1], [47.6, 38.0, 42.4])
    shifts = tip_shift(sites["lon"], sites)
    assert shifts[0] == "none" and shifts[1] == "none" and shifts[2].startswith("translateX(calc(-100%")
    assert "{tip_shift}" in tooltip_html("<b>{label}</b>")
    spec = json.loads(network_map(sites).to_json())
    assert "&lt;b&gt;Site 0&lt;/b&gt;" in json.dumps(spec)  # names stay escaped


def test_maps_are_serialised_compactly():
    """pydeck indents its JSON (four times the bytes, Python's slow encoder); our maps do not."""
    spec = network_map(_sites([-122.7, -71.1], [47.6, 42.4])).to_json()
    assert "\n" not in spec and '": ' not in spec


def _burn(stop) -> None:  # a CPU-bound process: another session solving on the same machine
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x += i * i


def _lines(result) -> list:
    return sorted(map(tuple, result.table[["sku_id", "from_site_id", "to_site_id", "qty"]].astype(str).to_numpy()))


def test_a_reproducible_plan_is_the_same_beside_cpu_burning_processes():
    """Issue 24: counted work, not the clock, defines the plan. Solved idle, then with three processes
    burning both cores, the same settings give the same lines, cost and bound; a small network (whose
    MIP runs to a node limit) and one whose search has receive capacities and trucks."""
    import multiprocessing as mp

    from rebal_core.decisions.solvers.stress import tiny_trucked_network

    tiny_net, tiny_scenario = tiny_trucked_network(3)
    cases = [build_problem(tiny_net, tiny_scenario), _problem()]
    idle = [plan(p, reproducible=True) for p in cases]
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    burners = [ctx.Process(target=_burn, args=(stop,), daemon=True) for _ in range(3)]
    for b in burners:
        b.start()
    try:
        loaded = [plan(p, reproducible=True) for p in cases]
    finally:
        stop.set()
        for b in burners:
            b.join(10)
    for a, b in zip(idle, loaded, strict=True):
        assert _lines(a) == _lines(b) and len(_lines(a)) > 0
        assert a.score.network_cost_after == b.score.network_cost_after
        assert a.lower_bound == b.lower_bound
        assert not a.stats.get("search_cut_short") and a.stats.get("mip_status") != "CLOCK"
    assert "mip_status" in idle[0].stats  # the small network went through the MIP (node limit), not only the search


def test_the_greedy_rules_walk_stops_at_its_deadline_with_a_feasible_plan(monkeypatch):
    """Issue 24: a time-limited plan's greedy rule stops at its share of the limit, keeping the lines of
    the largest shortages (walked first); every rule of a feasible plan still holds."""
    import time as clock

    from rebal_core.decisions.planning import violations
    from rebal_core.decisions.solvers import greedy as rule_module

    problem = build_problem(coupled_network(20, 400, seed=2), Scenario(objective="target", budget=5_000.0))
    whole = greedy(problem)
    monkeypatch.setattr(rule_module, "GREEDY_CHECK_EVERY", 1)
    cut = greedy(problem, deadline=clock.perf_counter() - 1)  # past already: only the first pair is walked
    assert len(whole) > 0 and len(cut) < len(whole)
    key = ["sku_id", "from_site_id", "to_site_id"]
    assert set(map(tuple, cut[key].to_numpy())) <= set(map(tuple, whole[key].to_numpy()))
    assert violations(problem, cut) == [] and violations(problem, whole) == []


def test_a_limit_the_greedy_rule_uses_up_answers_with_its_plan_flagged(monkeypatch):
    from rebal_core.decisions.solvers import method

    def no_search(*_args, **_kwargs):
        raise AssertionError("no search starts when the limit is used up")

    monkeypatch.setattr(method, "optimize", no_search)
    result = plan(_problem(), time_limit=1e-6)
    assert result.solver_status == "TIME_LIMIT" and result.stats["kept_greedy"]
    assert result.summary().lines == len(result.table) and result.rule_summary() is not None


def test_a_fill_rate_bisection_shares_one_budget_and_flags_a_cut(monkeypatch):
    """Each step starts only when the longest so far still fits: with a limit shorter than one step,
    the first (unpriced) plan is the answer, flagged, and no second step starts."""
    problem = build_problem(coupled_network(12, 160, seed=5), Scenario(target_fill_rate=0.999))
    result = plan(problem, time_limit=0.01)
    assert result.stats["fill_rate_solves"] == 1 and result.stats["fill_rate_cut_short"]
    assert result.solver_status == "TIME_LIMIT"
    unhurried = plan(problem, time_limit=0.01, reproducible=True)
    assert unhurried.stats["fill_rate_solves"] > 1 and not unhurried.stats["fill_rate_cut_short"]


def test_an_unreachable_fill_rate_target_is_known_after_two_solves():
    """The highest price first: when it leaves the target out of reach, no lower price reaches it."""
    problem = build_problem(coupled_network(12, 160, seed=5), Scenario(target_fill_rate=0.999))
    result = plan(problem, reproducible=True)
    assert not result.stats["fill_rate_met"] and result.stats["fill_rate_solves"] == 2
    assert result.solver_status == "TARGET_NOT_REACHED"
