"""The transfer optimizer: least network cost per ``rebalancing-model.md``, with a proven bound.

Method (measured in ``bench/bench_plan.py``)
--------------------------------------------
The spec's problem is a mixed-integer program. Its size is set by the
candidate arcs (sku x donor x receiver on an allowed lane, safely pruned in
:mod:`rebal_core.planning`); its difficulty by a few coupling rules. The
solve has three stages, each cheap where the problem allows:

1. **Relaxation, one min-cost flow over every sku at once.** Within a sku the
   cost of a position, ``f(P) = p (T - P)+ + h (P - X)+``, is convex, so with
   integer packs it is a chain of arcs to a sink whose unit costs rise (at most
   five per position). Donor and receiver roles get separate nodes (rule 4
   relaxed); trucks are priced per unit of volume (``cost_per_truck /
   truck_capacity``, a valid underestimate of ``ceil``), the cost per move is
   spread over the arc's upper bound (``y >= x / ub``), and the cross-sku
   capacities (lane max units, receive capacity, budget) are dualised with
   Lagrangian prices, updated by subgradient steps while the flow breaks them.
   Every flow value, less its price terms, is a **proven lower bound**
   (``L(lambda) <= OPT`` for every ``lambda >= 0``). Building it is numpy only
   and the whole network is one ``SimpleMinCostFlow`` solve.
2. **A feasible plan from the flow.** Positions that both ship and receive
   keep their larger role and their sku is re-solved without the other; lines
   below the minimum move are raised or dropped, whichever costs less; lines
   not worth their cost per move are dropped; capacities and the budget are
   met by trimming the lines of least benefit per unit. Without coupling rules
   this plan is optimal (the bound proves it); with them it is a warm start.
3. **A MIP on the coupled core** (OR-Tools model builder, HiGHS), built from
   sparse arrays in one call: packs, line indicators for the cost per move and
   minimum move, trucks per lane, role indicators for rule 4, capacities and
   the budget, all exactly as the spec states. When the candidate set is small
   enough it is the whole problem, and its bound is the global bound (small
   instances are solved to optimality). Otherwise it is restricted to the
   arcs that matter (those the flow used, plus the cheapest few alternatives
   per receiver) and polishes the plan within the time limit; the bound then
   stays the Lagrangian one.

Why not one MIP for everything: the monolithic model of a 200-site network has
millions of integer variables; its LP alone takes longer than the whole flow
pipeline, and building it variable by variable in Python takes minutes
(``bench/bench_plan.py`` measures it beside this method).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp
from ortools.graph.python import min_cost_flow
from ortools.linear_solver.python import model_builder_helper as mbh

from rebal_core.planning import Arcs, Plan, PlanningProblem, evaluate, explain, lines_from_arcs

Progress = Callable[[float, str], None]
FULL_MIP_ARCS = 40_000  # up to this many candidate arcs the MIP is the whole problem
MIP_ARCS_PER_RECEIVER = 4  # cheapest alternatives kept per receiver in a restricted MIP
LAGRANGE_ROUNDS = 8
SCIP_PARAMETERS = "limits/gap = 1e-9\nlimits/absgap = 1e-6\ndisplay/verblevel = 0"


def _quiet(fraction: float, message: str) -> None:  # noqa: ARG001
    return None


class Cancelled(Exception):
    """The caller asked to stop (the best plan found so far is still returned)."""


@dataclass
class Solution:
    packs: np.ndarray
    lower_bound: float
    status: str
    stats: dict


# ----------------------------------------------------------------------------- helpers


def position_cost(problem: PlanningProblem, rows: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``f(P) = p (T - P)+ + h (P - X)+`` at the given position rows."""
    pos = problem.positions
    T = pos["target"].to_numpy(float)[rows]
    X = pos["excess_level"].to_numpy(float)[rows]
    return pos["p"].to_numpy(float)[rows] * np.maximum(0.0, T - P) + pos["h"].to_numpy(float)[rows] * np.maximum(0.0, P - X)


def _segments(problem: PlanningProblem, rows: np.ndarray, base: np.ndarray, pack: np.ndarray, cap: np.ndarray):
    """Convex cost of ``P = base + pack * phi`` for integer ``phi`` in ``[0, cap]`` as rising-cost segments.

    Between the knots where ``P`` crosses ``T`` or ``X`` the cost is linear; the
    one step that straddles a knot gets its own segment, so each step's cost is
    exact. Returns (row index into ``rows``, width, cost per step).
    """
    pos = problem.positions
    T = pos["target"].to_numpy(float)[rows]
    X = pos["excess_level"].to_numpy(float)[rows]
    kT, kX = (T - base) / pack, (X - base) / pack
    knots = np.stack([np.zeros_like(kT), np.floor(kT), np.ceil(kT), np.floor(kX), np.ceil(kX), cap.astype(float)], axis=1)
    knots = np.sort(np.clip(knots, 0, cap[:, None]), axis=1)
    P = base[:, None] + pack[:, None] * knots
    p = pos["p"].to_numpy(float)[rows][:, None]
    h = pos["h"].to_numpy(float)[rows][:, None]
    f = p * np.maximum(0.0, T[:, None] - P) + h * np.maximum(0.0, P - X[:, None])
    width = np.diff(knots, axis=1)
    cost = np.diff(f, axis=1)
    which, k = np.nonzero(width > 0)
    return which, width[which, k].astype(np.int64), cost[which, k] / width[which, k]


def _sku_of(problem: PlanningProblem, arcs: Arcs) -> np.ndarray:
    return problem.positions["sku_code"].to_numpy()[arcs.src]


# ----------------------------------------------------------------------------- stage 1: flow


@dataclass
class FlowResult:
    packs: np.ndarray
    value: float  # flow objective in currency, with the donor offsets (a bound when costs are valid)
    status: str


def solve_flow(problem: PlanningProblem, arcs: Arcs, arc_cost_per_pack: np.ndarray, keep: np.ndarray | None = None) -> FlowResult:
    """Min-cost flow over ``arcs[keep]`` with the given per-pack arc costs (all skus in one solve).

    ``value`` = flow cost + ``sum_d f(P0_d - pack U_d) - f(P0_d)`` + cost before,
    i.e. the network cost of the relaxed problem (rule 4 and cross-sku rules
    relaxed; costs as given) — exact to within the integer rounding slack,
    which is subtracted so the value stays a bound.
    """
    n_all = len(arcs)
    idx = np.arange(n_all) if keep is None else np.flatnonzero(keep)
    packs = np.zeros(n_all, dtype=np.int64)
    if len(idx) == 0:
        return FlowResult(packs, problem.cost_before, "OPTIMAL")
    src, dst, pk, ub = arcs.src[idx], arcs.dst[idx], arcs.pack[idx], arcs.ub[idx]
    pos = problem.positions
    P0 = pos["position"].to_numpy(float)

    donors, d_of = np.unique(src, return_inverse=True)
    receivers, r_of = np.unique(dst, return_inverse=True)
    d_pack = pos["pack_size"].to_numpy(np.int64)[donors]
    r_pack = pos["pack_size"].to_numpy(np.int64)[receivers]
    supply = np.minimum(problem.donor_packs[donors], np.bincount(d_of, weights=ub, minlength=len(donors)).astype(np.int64))
    r_cap = np.minimum(problem.receive_packs[receivers], np.bincount(r_of, weights=ub, minlength=len(receivers))).astype(np.int64)
    nD, nR = len(donors), len(receivers)
    sink = nD + nR

    d_base = P0[donors] - d_pack * supply
    dw, dwidth, dcost = _segments(problem, donors, d_base, d_pack, supply)
    rw, rwidth, rcost = _segments(problem, receivers, P0[receivers], r_pack, r_cap)

    tails = np.concatenate([d_of, dw, nD + rw])
    heads = np.concatenate([nD + r_of, np.full(len(dw) + len(rw), sink)])
    caps = np.concatenate([ub, dwidth, rwidth]).astype(np.int64)
    cost = np.concatenate([arc_cost_per_pack[idx], dcost, rcost])
    n_nodes = sink + 1
    total_supply = int(supply.sum())
    scale = 1e15 / (max(1.0, float(np.abs(cost).max())) * (n_nodes + 1))
    scale = min(scale, 1e6)
    for _ in range(6):
        flow = min_cost_flow.SimpleMinCostFlow()
        flow.add_arcs_with_capacity_and_unit_cost(tails.astype(np.int32), heads.astype(np.int32), caps, np.round(cost * scale).astype(np.int64))
        flow.set_nodes_supplies(np.arange(n_nodes, dtype=np.int32), np.concatenate([supply, np.zeros(nR, dtype=np.int64), [-total_supply]]).astype(np.int64))
        status = flow.solve()
        if status != flow.BAD_COST_RANGE:
            break
        scale /= 100.0
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    f = flow.flows(np.arange(len(idx), dtype=np.int32))
    packs[idx] = f
    offsets = position_cost(problem, donors, d_base) - position_cost(problem, donors, P0[donors])
    # Every unit of supply crosses at most two arcs, each rounded by at most 0.5 / scale.
    slack = total_supply / scale
    value = flow.optimal_cost() / scale + float(offsets.sum()) + problem.cost_before - slack
    return FlowResult(packs, value, "OPTIMAL")


def bound_costs(problem: PlanningProblem, arcs: Arcs) -> np.ndarray:
    """Per-pack arc costs that underestimate the true cost (valid for a lower bound)."""
    lanes = problem.lanes
    rate = lanes["truck_rate"].to_numpy(float)[arcs.lane]
    per_unit = arcs.cost_per_unit + rate * arcs.volume
    return arcs.pack * per_unit + problem.scenario.cost_per_move / np.maximum(arcs.ub, 1)


@dataclass
class Resources:
    """The cross-sku capacities as a sparse usage matrix: units of each resource per pack on each arc."""

    usage: sp.csr_matrix  # resources x arcs
    capacity: np.ndarray
    names: list[str]


def resources(problem: PlanningProblem, arcs: Arcs) -> Resources:
    lanes, sites = problem.lanes, problem.sites
    rows, cols, vals, caps, names = [], [], [], [], []
    n = 0
    max_units = lanes["max_units"].to_numpy(float)[arcs.lane]
    capped = np.flatnonzero(np.isfinite(max_units))
    if len(capped):
        lane_ids, inv = np.unique(arcs.lane[capped], return_inverse=True)
        rows.append(n + inv), cols.append(capped), vals.append(arcs.pack[capped].astype(float))
        caps.append(lanes["max_units"].to_numpy(float)[lane_ids])
        names += [f"lane {x}" for x in lanes["lane_id"].to_numpy()[lane_ids]]
        n += len(lane_ids)
    site_of = problem.positions["site_idx"].to_numpy()[arcs.dst]
    rc = problem.receive_capacity[site_of]
    capped = np.flatnonzero(np.isfinite(rc))
    if len(capped):
        site_ids, inv = np.unique(site_of[capped], return_inverse=True)
        rows.append(n + inv), cols.append(capped), vals.append(arcs.pack[capped].astype(float))
        caps.append(problem.receive_capacity[site_ids])
        names += [f"receive {x}" for x in sites["site_id"].to_numpy()[site_ids]]
        n += len(site_ids)
    if problem.scenario.budget is not None:
        lanes_rate = lanes["truck_rate"].to_numpy(float)[arcs.lane]
        rows.append(np.full(len(arcs), n)), cols.append(np.arange(len(arcs)))
        vals.append(arcs.pack * (arcs.cost_per_unit + lanes_rate * arcs.volume) + problem.scenario.cost_per_move / np.maximum(arcs.ub, 1))
        caps.append(np.array([float(problem.scenario.budget)]))
        names.append("budget")
        n += 1
    if n == 0:
        return Resources(sp.csr_matrix((0, len(arcs))), np.zeros(0), [])
    usage = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, len(arcs)))
    return Resources(usage, np.concatenate(caps), names)


def lagrangian_bound(problem: PlanningProblem, progress: Progress, deadline: float) -> tuple[FlowResult, float, np.ndarray]:
    """Stage 1: the flow relaxation with Lagrangian prices on the cross-sku capacities.

    Returns the last flow, the best bound, and the prices per pack on each arc
    (useful to steer the primal plan away from full resources).
    """
    arcs = problem.arcs
    base = bound_costs(problem, arcs)
    res = resources(problem, arcs)
    lam = np.zeros(len(res.capacity))
    best = -np.inf
    price = np.zeros(len(arcs))
    result = None
    # Start the step from the scale of a typical arc cost, so the first round matters.
    step0 = float(np.median(base / arcs.pack)) if len(arcs) else 0.0
    for k in range(LAGRANGE_ROUNDS if len(res.capacity) else 1):
        price = res.usage.T @ lam if len(lam) else np.zeros(len(arcs))
        result = solve_flow(problem, arcs, base + price)
        bound = result.value - float(lam @ res.capacity)  # L(lambda) = min_x cost(x) + lambda (use(x) - cap)
        best = max(best, bound)
        used = res.usage @ result.packs if len(lam) else np.zeros(0)
        over = used - res.capacity
        progress(0.05 + 0.25 * (k + 1) / LAGRANGE_ROUNDS, f"lower bound {best:,.0f} (round {k + 1})")
        if not len(lam) or (over <= 1e-9).all() or time.perf_counter() > deadline:
            break
        # Polyak-like step relative to capacity: prices rise where the flow overuses.
        lam = np.maximum(0.0, lam + step0 * (2.0 ** -k) * over / np.maximum(res.capacity, 1.0) * 4)
    return result, best, price


# ----------------------------------------------------------------------------- stage 2: a feasible plan


class _Ledger:
    """Running positions and capacity use while a plan is repaired line by line."""

    def __init__(self, problem: PlanningProblem, arcs: Arcs, packs: np.ndarray):
        self.problem, self.arcs = problem, arcs
        pos = problem.positions
        self.P = pos["position"].to_numpy(float).copy()
        units = packs * arcs.pack
        np.subtract.at(self.P, arcs.src, units)
        np.add.at(self.P, arcs.dst, units)
        self.T = pos["target"].to_numpy(float)
        self.X = pos["excess_level"].to_numpy(float)
        self.p = pos["p"].to_numpy(float)
        self.h = pos["h"].to_numpy(float)

    def f(self, row: int, P: float) -> float:
        return self.p[row] * max(0.0, self.T[row] - P) + self.h[row] * max(0.0, P - self.X[row])

    def benefit(self, a: int, q_units: float) -> float:
        """Cost saved by ``q_units`` on arc ``a`` given everything else (before trucks)."""
        s, d = self.arcs.src[a], self.arcs.dst[a]
        Ps, Pd = self.P[s], self.P[d]
        return (self.f(s, Ps + q_units) - self.f(s, Ps)) + (self.f(d, Pd - q_units) - self.f(d, Pd)) - q_units * self.arcs.cost_per_unit[a]

    def move(self, a: int, q_units: float) -> None:
        self.P[self.arcs.src[a]] -= q_units
        self.P[self.arcs.dst[a]] += q_units


def fix_roles(problem: PlanningProblem, packs: np.ndarray, costs: np.ndarray, keep: np.ndarray, rounds: int = 6) -> np.ndarray:
    """Rule 4: a position that ships and receives keeps its larger role; its sku is re-solved."""
    arcs = problem.arcs
    n = len(problem.positions)
    sku = _sku_of(problem, arcs)
    for _ in range(rounds):
        out = np.bincount(arcs.src, weights=packs * arcs.pack, minlength=n)
        inn = np.bincount(arcs.dst, weights=packs * arcs.pack, minlength=n)
        both = np.flatnonzero((out > 0) & (inn > 0))
        if not len(both):
            break
        ship = out[both] >= inn[both]
        keep &= ~np.isin(arcs.dst, both[ship]) & ~np.isin(arcs.src, both[~ship])
        affected = np.isin(sku, np.unique(problem.positions["sku_code"].to_numpy()[both]))
        sub = solve_flow(problem, arcs, costs, keep & affected)
        packs = np.where(affected, sub.packs, packs)
    packs[~keep] = 0
    return packs


def repair(problem: PlanningProblem, packs: np.ndarray) -> np.ndarray:
    """Stage 2: make the flow plan meet rules 2, 3, 5, 6, 7 exactly (rule 4 is fixed first)."""
    arcs, sc = problem.arcs, problem.scenario
    packs = packs.copy()
    led = _Ledger(problem, arcs, packs)
    # Rule 2: lines below the minimum move are raised or dropped, whichever costs less.
    short = np.flatnonzero((packs > 0) & (packs < arcs.min_packs))
    shipped = np.bincount(arcs.src, weights=packs, minlength=len(problem.positions))
    for a in short:
        q = packs[a] * arcs.pack[a]
        led.move(a, -q)
        raise_to = arcs.min_packs[a] * arcs.pack[a]
        room = problem.ship_packs[arcs.src[a]] - (shipped[arcs.src[a]] - packs[a])
        if room >= arcs.min_packs[a] and led.benefit(a, raise_to) - sc.cost_per_move > 0:
            led.move(a, raise_to)
            shipped[arcs.src[a]] += arcs.min_packs[a] - packs[a]
            packs[a] = arcs.min_packs[a]
        else:
            shipped[arcs.src[a]] -= packs[a]
            packs[a] = 0
    # Lines that do not earn their cost per move (and truck share, priced per unit of volume).
    rate = problem.lanes["truck_rate"].to_numpy(float)[arcs.lane]
    for a in np.flatnonzero(packs > 0):
        q = packs[a] * arcs.pack[a]
        led.move(a, -q)
        if led.benefit(a, q) - sc.cost_per_move - rate[a] * arcs.volume[a] * q <= 0:
            packs[a] = 0
        else:
            led.move(a, q)
    # Rules 5-6 (lane max units, receive capacity) and 7 (budget): trim the least benefit per unit first.
    res = resources(problem, arcs)
    for r in range(len(res.capacity)):
        if res.names[r] == "budget":
            continue
        row = res.usage.getrow(r)
        cols = row.indices
        used = float(row.data @ packs[cols])
        if used <= res.capacity[r] + 1e-9:
            continue
        order = sorted((a for a in cols if packs[a] > 0), key=lambda a: _unit_benefit(led, arcs, a, packs[a]))
        for a in order:
            if used <= res.capacity[r] + 1e-9:
                break
            excess_packs = int(np.ceil((used - res.capacity[r]) / arcs.pack[a] - 1e-9))
            new = packs[a] - excess_packs
            if new < arcs.min_packs[a]:
                new = 0
            led.move(a, -(packs[a] - new) * arcs.pack[a])
            used -= (packs[a] - new) * arcs.pack[a]
            packs[a] = new
    if sc.budget is not None:
        packs = _meet_budget(problem, led, packs)
    return packs


def _unit_benefit(led: _Ledger, arcs: Arcs, a: int, packs: int) -> float:
    q = packs * arcs.pack[a]
    led.move(a, -q)
    b = led.benefit(a, q) / q
    led.move(a, q)
    return b


def _meet_budget(problem: PlanningProblem, led: _Ledger, packs: np.ndarray) -> np.ndarray:
    """Drop the lines with least benefit per currency until the plan's transfer cost fits the budget."""
    budget = float(problem.scenario.budget)
    while True:
        score = evaluate(problem, lines_from_arcs(problem, packs))
        if score.transfer_cost <= budget + 1e-9:
            return packs
        used = np.flatnonzero(packs > 0)
        arcs = problem.arcs
        ratio = []
        for a in used:
            q = packs[a] * arcs.pack[a]
            led.move(a, -q)
            ratio.append(led.benefit(a, q) / (q * arcs.cost_per_unit[a] + problem.scenario.cost_per_move + 1e-9))
            led.move(a, q)
        order = used[np.argsort(ratio)]
        # Drop enough of the worst lines to cover the overrun, then re-score (trucks may drop too).
        over = score.transfer_cost - budget
        line_cost = packs[order] * arcs.pack[order] * arcs.cost_per_unit[order] + problem.scenario.cost_per_move
        cut = int(np.searchsorted(np.cumsum(line_cost), over) + 1)
        for a in order[:cut]:
            led.move(a, -packs[a] * arcs.pack[a])
            packs[a] = 0


def reflow(problem: PlanningProblem, packs: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Re-solve the flow with arcs into saturated capacities capped at their current packs, then repair."""
    arcs = problem.arcs
    res = resources(problem, arcs)
    used = res.usage @ packs
    full = (used >= res.capacity - 1e-9) & (np.array(res.names) != "budget")
    touches = np.asarray((res.usage[np.flatnonzero(full)] != 0).sum(axis=0)).ravel() > 0
    capped = replace(arcs, ub=np.where(touches, packs, arcs.ub))
    view = replace(problem, arcs=capped)
    flow = solve_flow(view, capped, costs)
    again = fix_roles(view, flow.packs, costs, np.ones(len(arcs), dtype=bool))
    return repair(view, again)


# ----------------------------------------------------------------------------- stage 3: MIP


@dataclass
class MipResult:
    packs: np.ndarray
    objective: float  # network cost of the MIP's plan
    bound: float  # network cost bound of the (possibly restricted) MIP
    status: str


def solve_mip(
    problem: PlanningProblem,
    keep: np.ndarray,
    hint: np.ndarray | None,
    time_limit: float,
    cancel: threading.Event | None = None,
    solver: str = "scip",
) -> MipResult | None:
    """The spec's MIP over the arcs in ``keep``, built from sparse arrays in one call."""
    arcs = problem.arcs.take(keep)
    sc = problem.scenario
    pos = problem.positions
    A = len(arcs)
    if A == 0:
        return None
    lanes = problem.lanes
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    n_rows = 0

    def add(r, c, v, lower, upper):
        nonlocal n_rows
        rows.append(np.asarray(r) + n_rows), cols.append(np.asarray(c)), vals.append(np.asarray(v, float))
        lower, upper = np.atleast_1d(np.asarray(lower, float)), np.atleast_1d(np.asarray(upper, float))
        lo.append(lower), hi.append(upper)
        n_rows += len(lower)

    # Variables: x (packs) | y (line on) | u, v per touched position | s (role) | t (trucks)
    var_lb, var_ub, obj, integral = [], [], [], []
    x0 = 0
    var_lb.append(np.zeros(A)), var_ub.append(arcs.ub.astype(float)), obj.append(arcs.pack * arcs.cost_per_unit), integral.append(np.ones(A, bool))
    n_vars = A
    need_y = sc.cost_per_move > 0 or (arcs.min_packs > 1).any()
    if need_y:
        y0 = n_vars
        var_lb.append(np.zeros(A)), var_ub.append(np.ones(A)), obj.append(np.full(A, sc.cost_per_move)), integral.append(np.ones(A, bool))
        n_vars += A
        ar = np.arange(A)
        add(np.r_[ar, ar], np.r_[x0 + ar, y0 + ar], np.r_[np.ones(A), -arcs.ub], np.full(A, -np.inf), np.zeros(A))
        add(np.r_[ar, ar], np.r_[x0 + ar, y0 + ar], np.r_[np.ones(A), -arcs.min_packs], np.zeros(A), np.full(A, np.inf))
    touched, t_src = np.unique(np.r_[arcs.src, arcs.dst], return_inverse=True)
    q_src, q_dst = t_src[:A], t_src[A:]
    Q = len(touched)
    u0 = n_vars
    n_vars += 2 * Q
    var_lb.append(np.zeros(2 * Q)), var_ub.append(np.full(2 * Q, np.inf))
    obj.append(np.r_[pos["p"].to_numpy(float)[touched], pos["h"].to_numpy(float)[touched]]), integral.append(np.zeros(2 * Q, bool))
    P0 = pos["position"].to_numpy(float)[touched]
    T = pos["target"].to_numpy(float)[touched]
    X = pos["excess_level"].to_numpy(float)[touched]
    ar = np.arange(A)
    pk = arcs.pack.astype(float)
    # u_q + pack*(in - out) >= T - P0 ;  v_q - pack*(in - out) >= P0 - X
    add(np.r_[np.arange(Q), q_dst, q_src], np.r_[u0 + np.arange(Q), ar, ar], np.r_[np.ones(Q), pk, -pk], T - P0, np.full(Q, np.inf))
    add(np.r_[np.arange(Q), q_dst, q_src], np.r_[u0 + Q + np.arange(Q), ar, ar], np.r_[np.ones(Q), -pk, pk], P0 - X, np.full(Q, np.inf))
    # Rule 3: packs shipped per donor.
    donors, d_of = np.unique(q_src, return_inverse=True)
    add(d_of, ar, np.ones(A), np.full(len(donors), -np.inf), problem.ship_packs[touched[donors]].astype(float))
    # Rule 4: role indicator where a position has both in- and out-arcs.
    both = np.intersect1d(np.unique(q_src), np.unique(q_dst))
    if len(both):
        s0 = n_vars
        n_vars += len(both)
        var_lb.append(np.zeros(len(both))), var_ub.append(np.ones(len(both))), obj.append(np.zeros(len(both))), integral.append(np.ones(len(both), bool))
        b_of = {q: k for k, q in enumerate(both)}
        out_sel = np.flatnonzero(np.isin(q_src, both))
        in_sel = np.flatnonzero(np.isin(q_dst, both))
        bo = np.array([b_of[q] for q in q_src[out_sel]], dtype=np.int64)
        bi = np.array([b_of[q] for q in q_dst[in_sel]], dtype=np.int64)
        out_ub = np.bincount(bo, weights=arcs.ub[out_sel], minlength=len(both))
        in_ub = np.bincount(bi, weights=arcs.ub[in_sel], minlength=len(both))
        nb = np.arange(len(both))
        add(np.r_[bo, nb], np.r_[out_sel, s0 + nb], np.r_[np.ones(len(out_sel)), -out_ub], np.full(len(both), -np.inf), np.zeros(len(both)))
        add(np.r_[bi, nb], np.r_[in_sel, s0 + nb], np.r_[np.ones(len(in_sel)), in_ub], np.full(len(both), -np.inf), in_ub)
    # Rule 5: trucks on lanes with a truck cost.
    rate = lanes["truck_rate"].to_numpy(float)[arcs.lane]
    trucked = np.flatnonzero(rate > 0)
    truck_lanes = np.zeros(0, dtype=np.int64)
    if len(trucked):
        truck_lanes, l_of = np.unique(arcs.lane[trucked], return_inverse=True)
        cap = lanes["truck_capacity"].to_numpy(float)[truck_lanes]
        load = arcs.volume[trucked] * pk[trucked]
        t_ub = np.ceil(np.bincount(l_of, weights=load * arcs.ub[trucked], minlength=len(truck_lanes)) / cap)
        t0 = n_vars
        n_vars += len(truck_lanes)
        var_lb.append(np.zeros(len(truck_lanes))), var_ub.append(t_ub), obj.append(lanes["cost_per_truck"].to_numpy(float)[truck_lanes]), integral.append(np.ones(len(truck_lanes), bool))
        nl = np.arange(len(truck_lanes))
        add(np.r_[nl, l_of], np.r_[t0 + nl, trucked], np.r_[cap, -load], np.zeros(len(truck_lanes)), np.full(len(truck_lanes), np.inf))
        # Disaggregated form (fixed-charge network design): an arc carries at most
        # min(ub, one truckload) packs per truck. Implied for integers, but it lifts
        # the LP bound from "trucks = volume / capacity" to "a used lane needs a truck".
        per_truck = np.minimum(arcs.ub[trucked], np.floor(cap[l_of] / load)).clip(min=1)
        nt = np.arange(len(trucked))
        add(np.r_[nt, nt], np.r_[trucked, t0 + l_of], np.r_[np.ones(len(trucked)), -per_truck], np.full(len(trucked), -np.inf), np.zeros(len(trucked)))
    # Rules 5-6: lane max units and receive capacity.
    res = resources(problem, arcs)
    cap_rows = [k for k, name in enumerate(res.names) if name != "budget"]
    if cap_rows:
        sub = res.usage[cap_rows].tocoo()
        add(sub.row, sub.col, sub.data, np.full(len(cap_rows), -np.inf), res.capacity[cap_rows])
    # Rule 7: budget, with the exact transfer cost.
    if sc.budget is not None:
        c_idx = [ar]
        c_val = [pk * arcs.cost_per_unit]
        if need_y:
            c_idx.append(y0 + ar), c_val.append(np.full(A, sc.cost_per_move))
        if len(truck_lanes):
            c_idx.append(t0 + np.arange(len(truck_lanes))), c_val.append(lanes["cost_per_truck"].to_numpy(float)[truck_lanes])
        idx = np.concatenate(c_idx)
        add(np.zeros(len(idx), dtype=np.int64), idx, np.concatenate(c_val), [-np.inf], [float(sc.budget)])

    matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, n_vars))
    model = mbh.ModelBuilderHelper()
    model.fill_model_from_sparse_data(np.concatenate(var_lb), np.concatenate(var_ub), np.concatenate(obj), np.concatenate(lo), np.concatenate(hi), matrix)
    for j in np.flatnonzero(np.concatenate(integral)):
        model.set_var_integrality(int(j), True)
    if hint is not None and solver == "scip":  # HiGHS 1.12 through OR-Tools 9.15 crashes on hints
        # A complete hint (SCIP ignores partial ones): packs, then what they imply.
        hx = hint[keep].astype(float)
        full = np.zeros(n_vars)
        full[:A] = hx
        if need_y:
            full[y0 : y0 + A] = hx > 0
        delta = np.bincount(q_dst, weights=hx * pk, minlength=Q) - np.bincount(q_src, weights=hx * pk, minlength=Q)
        full[u0 : u0 + Q] = np.maximum(0.0, T - P0 - delta)
        full[u0 + Q : u0 + 2 * Q] = np.maximum(0.0, P0 + delta - X)
        if len(both):
            full[s0 : s0 + len(both)] = np.bincount(bo, weights=hx[out_sel], minlength=len(both)) > 0
        if len(truck_lanes):
            full[t0 : t0 + len(truck_lanes)] = np.ceil(np.bincount(l_of, weights=load * hx[trucked], minlength=len(truck_lanes)) / cap * (1 - 1e-9))
        for j, value in enumerate(full.tolist()):
            model.add_hint(j, value)
    constant = problem.cost_before - float(position_cost(problem, touched, P0).sum())
    engine = mbh.ModelSolverHelper(solver)
    engine.set_time_limit_in_seconds(max(0.1, time_limit))
    if solver == "scip":
        engine.set_solver_specific_parameters(SCIP_PARAMETERS)
    watcher = None
    if cancel is not None:
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.1):
                if cancel.is_set():
                    engine.interrupt_solve()
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        engine.solve(model)
    finally:
        if watcher is not None:
            done.set()
    if not engine.has_solution():
        return None
    values = engine.variable_values()
    packs = np.zeros(len(problem.arcs), dtype=np.int64)
    packs[np.flatnonzero(keep)] = np.round(values[:A]).astype(np.int64)
    return MipResult(packs, constant + engine.objective_value(), constant + engine.best_objective_bound(), str(engine.status()).split(".")[-1])


def restricted_arcs(problem: PlanningProblem, used: np.ndarray, per_receiver: int = MIP_ARCS_PER_RECEIVER) -> np.ndarray:
    """Arcs a restricted MIP keeps: every arc used so far, plus the cheapest few per receiver."""
    arcs = problem.arcs
    order = np.lexsort((arcs.cost_per_unit, arcs.dst))
    dst_sorted = arcs.dst[order]
    first = np.r_[0, np.flatnonzero(np.diff(dst_sorted)) + 1]
    rank = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    keep = np.zeros(len(arcs), dtype=bool)
    keep[order[rank < per_receiver]] = True
    return keep | used


# ----------------------------------------------------------------------------- the whole solve


def optimize(
    problem: PlanningProblem,
    *,
    time_limit: float = 60.0,
    progress: Progress = _quiet,
    cancel: threading.Event | None = None,
    use_mip: bool = True,
) -> Solution:
    """Least-network-cost plan with a proven lower bound (see the module doc for the method)."""
    started = time.perf_counter()
    deadline = started + time_limit
    arcs = problem.arcs
    stats: dict = {"arcs": len(arcs)}
    if len(arcs) == 0:
        return Solution(np.zeros(0, dtype=np.int64), problem.cost_before, "OPTIMAL", stats)

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled

    progress(0.02, f"relaxation over {len(arcs):,} candidate arcs")
    flow, bound, price = lagrangian_bound(problem, progress, deadline)
    stats["flow_seconds"] = time.perf_counter() - started
    check_cancel()

    progress(0.35, "making the plan feasible")
    costs = bound_costs(problem, arcs) + price
    keep = np.ones(len(arcs), dtype=bool)
    packs = fix_roles(problem, flow.packs.copy(), costs, keep)
    packs = repair(problem, packs)
    best = evaluate(problem, lines_from_arcs(problem, packs)).network_cost_after
    if len(resources(problem, arcs).capacity) and time.perf_counter() < deadline:
        # Re-flow: arcs into full resources keep at most what they carry now, the
        # rest of the network re-plans around them (stock freed by trimming finds
        # another receiver). Capacities then hold by construction.
        again = reflow(problem, packs, costs)
        value = evaluate(problem, lines_from_arcs(problem, again)).network_cost_after
        if value < best:
            packs, best = again, value
    stats["repair_seconds"] = time.perf_counter() - started - stats["flow_seconds"]
    status = "FEASIBLE"
    check_cancel()

    def gap(value: float) -> float:
        return (value - bound) / value if value > 0 else 0.0

    if gap(best) <= 1e-9:
        status = "OPTIMAL"
    elif use_mip and time.perf_counter() < deadline - 0.05:
        full = len(arcs) <= FULL_MIP_ARCS
        keep = np.ones(len(arcs), dtype=bool) if full else restricted_arcs(problem, (packs > 0) | (flow.packs > 0))
        stats["mip_arcs"] = int(keep.sum())
        progress(0.5, f"MIP over {int(keep.sum()):,} arcs ({'whole problem' if full else 'restricted'})")
        t0 = time.perf_counter()
        mip = solve_mip(problem, keep, packs, deadline - time.perf_counter(), cancel)
        stats["mip_seconds"] = time.perf_counter() - t0
        if mip is not None:
            stats["mip_status"] = mip.status
            value = evaluate(problem, lines_from_arcs(problem, mip.packs)).network_cost_after
            if value < best - 1e-9:
                packs, best = mip.packs, value
            if full:
                bound = max(bound, mip.bound - 1e-6)  # SCIP's absolute gap tolerance
        status = "OPTIMAL" if gap(best) <= 1e-6 else ("TIME_LIMIT" if time.perf_counter() >= deadline - 0.05 else "FEASIBLE")
        check_cancel()
    stats["solve_seconds"] = time.perf_counter() - started
    progress(1.0, "done")
    return Solution(packs, min(bound, best), status, stats)


def plan(
    problem: PlanningProblem,
    *,
    method: str = "optimize",
    time_limit: float = 60.0,
    progress: Progress = _quiet,
    cancel: threading.Event | None = None,
    build_seconds: float = 0.0,
) -> Plan:
    """Solve with ``method`` ("optimize" or "greedy") and return the scored, explained plan."""
    from rebal_core.greedy import greedy

    t0 = time.perf_counter()
    if method == "optimize":
        sol = optimize(problem, time_limit=time_limit, progress=progress, cancel=cancel)
        lines = lines_from_arcs(problem, sol.packs)
    elif method == "greedy":
        lines = greedy(problem)
        sol = None
    else:
        raise ValueError(f"unknown method {method!r}; expected 'optimize' or 'greedy'")
    solve_seconds = time.perf_counter() - t0
    score = evaluate(problem, lines)
    bound = sol.lower_bound if sol is not None else float("nan")  # the greedy rule proves nothing
    return Plan(
        problem=problem,
        score=score,
        table=explain(problem, score),
        method=method,
        solver_status=sol.status if sol is not None else "HEURISTIC",
        lower_bound=min(bound, score.network_cost_after) if sol is not None else bound,
        build_seconds=build_seconds,
        solve_seconds=solve_seconds,
        stats=sol.stats if sol is not None else {},
    )

