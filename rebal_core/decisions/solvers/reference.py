"""A straightforward monolithic MIP of the spec, built variable by variable (pywraplp + SCIP).

No pruning, no decomposition: every (sku, allowed lane) whose donor holds
shippable stock is an integer variable. It exists as an independent check of
:mod:`rebal_core.decisions.solvers.optimizer` (tests compare the two on small instances with each
rule binding in turn) and as the baseline in ``bench/bench_plan.py``. Too slow
for the app by design.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
from ortools.linear_solver import pywraplp

from rebal_core.decisions.planning import PlanningProblem
from rebal_core.decisions.scenario import SOLVE_SECONDS


def solve_reference(
    problem: PlanningProblem, time_limit: float = SOLVE_SECONDS, build_limit: float | None = None
) -> dict:
    """Solve the whole spec as one MIP. Returns lines, objective, bound, status and timings.

    ``build_limit`` stops building after that many seconds (status ``BUILD_LIMIT``).
    """
    t0 = time.perf_counter()
    sc = problem.scenario
    pos = problem.positions
    lanes = problem.lanes
    solver = pywraplp.Solver.CreateSolver("SCIP")
    inf = solver.infinity()
    sku_ok = (
        np.ones(len(pos), dtype=bool) if not sc.categories else pos["category"].isin(list(sc.categories)).to_numpy()
    )
    rows_by = {(s, k): r for r, (s, k) in enumerate(zip(pos["site_id"], pos["sku_id"]))}
    by_site: dict[str, list[int]] = {}
    for r, s in enumerate(pos["site_id"]):
        by_site.setdefault(s, []).append(r)
    x, arcs = {}, []
    out_of: dict[int, list] = {}
    into: dict[int, list] = {}
    lane_vars: dict[int, list] = {}
    y_vars = []
    for li, lane in enumerate(lanes.itertuples(index=False)):
        if not lane.allowed:
            continue
        for r in by_site.get(lane.from_site_id, []):
            if not sku_ok[r] or problem.ship_packs[r] <= 0:
                continue
            if (
                sc.max_unit_cost_ratio is not None
                and lane.cost_per_unit > sc.max_unit_cost_ratio * pos["unit_cost"].iat[r]
            ):
                continue
            d = rows_by.get((lane.to_site_id, pos["sku_id"].iat[r]))
            if d is None:
                continue
            pack = int(pos["pack_size"].iat[r])
            v = solver.IntVar(0, int(problem.ship_packs[r]), f"x{len(arcs)}")
            x[len(arcs)] = v
            arcs.append((r, d, li, pack))
            out_of.setdefault(r, []).append((v, pack))
            into.setdefault(d, []).append((v, pack))
            lane_vars.setdefault(li, []).append((v, pack, float(pos["unit_volume"].iat[r])))
            min_packs = max(1, math.ceil(sc.min_move_units / pack - 1e-9))
            if sc.cost_per_move > 0 or min_packs > 1:
                y = solver.BoolVar(f"y{len(arcs)}")
                solver.Add(v <= int(problem.ship_packs[r]) * y)
                solver.Add(v >= min_packs * y)
                y_vars.append(y)
            if build_limit is not None and time.perf_counter() - t0 > build_limit:
                return {
                    "status": "BUILD_LIMIT",
                    "build_seconds": time.perf_counter() - t0,
                    "variables": solver.NumVariables(),
                }
    objective = solver.Objective()
    transfer = []
    for a, (_r, _d, li, pack) in enumerate(arcs):
        c = pack * float(lanes["cost_per_unit"].iat[li])
        objective.SetCoefficient(x[a], c)
        transfer.append((x[a], c))
    for y in y_vars:
        objective.SetCoefficient(y, sc.cost_per_move)
    touched = set(out_of) | set(into)
    constant = 0.0
    for r in range(len(pos)):
        P0, T, X = float(pos["position"].iat[r]), float(pos["target"].iat[r]), float(pos["excess_level"].iat[r])
        p, h = float(pos["p"].iat[r]), float(pos["h"].iat[r])
        if r not in touched:
            constant += p * max(0.0, T - P0) + h * max(0.0, P0 - X)
            continue
        net = solver.Sum([pk * v for v, pk in into.get(r, [])]) - solver.Sum([pk * v for v, pk in out_of.get(r, [])])
        u, w = solver.NumVar(0, inf, f"u{r}"), solver.NumVar(0, inf, f"v{r}")
        solver.Add(u >= T - P0 - net)
        solver.Add(w >= P0 + net - X)
        objective.SetCoefficient(u, p)
        objective.SetCoefficient(w, h)
        if r in out_of:
            solver.Add(solver.Sum([v for v, _ in out_of[r]]) <= int(problem.ship_packs[r]))
        if r in out_of and r in into:
            s = solver.BoolVar(f"s{r}")
            big_out = sum(v.ub() for v, _ in out_of[r])
            big_in = sum(v.ub() for v, _ in into[r])
            solver.Add(solver.Sum([v for v, _ in out_of[r]]) <= big_out * s)
            solver.Add(solver.Sum([v for v, _ in into[r]]) <= big_in * (1 - s))
    truck_terms = []
    for li, items in lane_vars.items():
        cap, cost, max_units = (
            lanes["truck_capacity"].iat[li],
            float(lanes["cost_per_truck"].iat[li]),
            lanes["max_units"].iat[li],
        )
        load = solver.Sum([v * pk * vol for v, pk, vol in items])
        if pd.notna(cap) and cap > 0 and cost > 0:
            t = solver.IntVar(0, inf, f"t{li}")
            solver.Add(cap * t >= load)
            objective.SetCoefficient(t, cost)
            truck_terms.append((t, cost))
        if pd.notna(max_units):
            solver.Add(solver.Sum([v * pk for v, pk, _ in items]) <= float(max_units))
    recv_cap = problem.sites.set_index("site_id")["receive_capacity_units"]
    by_to: dict[str, list] = {}
    for a, (_r, d, _li, pack) in enumerate(arcs):
        by_to.setdefault(pos["site_id"].iat[d], []).append(pack * x[a])
    for site, terms in by_to.items():
        if pd.notna(recv_cap.get(site)):
            solver.Add(solver.Sum(terms) <= float(recv_cap[site]))
    if sc.budget is not None:
        solver.Add(
            solver.Sum(
                [c * v for v, c in transfer] + [c * t for t, c in truck_terms] + [sc.cost_per_move * y for y in y_vars]
            )
            <= float(sc.budget)
        )
    objective.SetMinimization()
    build_seconds = time.perf_counter() - t0
    solver.SetTimeLimit(int(time_limit * 1000))
    solver.SetSolverSpecificParametersAsString("limits/gap = 1e-9\nlimits/absgap = 1e-6\n")
    t1 = time.perf_counter()
    status = solver.Solve()
    solve_seconds = time.perf_counter() - t1
    names = {
        pywraplp.Solver.OPTIMAL: "OPTIMAL",
        pywraplp.Solver.FEASIBLE: "FEASIBLE",
        pywraplp.Solver.NOT_SOLVED: "NOT_SOLVED",
    }
    result = {
        "status": names.get(status, str(status)),
        "build_seconds": build_seconds,
        "solve_seconds": solve_seconds,
        "variables": solver.NumVariables(),
    }
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return result
    lines = [
        (pos["sku_id"].iat[r], pos["site_id"].iat[r], pos["site_id"].iat[d], int(round(x[a].solution_value())) * pack)
        for a, (r, d, li, pack) in enumerate(arcs)
        if round(x[a].solution_value()) > 0
    ]
    result.update(
        lines=pd.DataFrame(lines, columns=["sku_id", "from_site_id", "to_site_id", "qty"]),
        objective=constant + objective.Value(),
        bound=constant + objective.BestBound(),
    )
    return result
