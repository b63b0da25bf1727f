"""The spec's whole MIP for small networks (SCIP through OR-Tools' model builder), built from
sparse arrays in one call; its bound proves optimality, its plan is trimmed to the budget.

Part of the optimizer (:mod:`rebal_core.decisions.solvers.optimizer` explains the method)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from ortools.linear_solver.python import model_builder_helper as mbh

from rebal_core.decisions.planning import (
    PlanningProblem,
    position_cost,
    trucks_for,
)
from rebal_core.decisions.positions import is_expected, marginal_cost
from rebal_core.decisions.solvers.costs import resources
from rebal_core.decisions.solvers.flow import cost_knots
from rebal_core.errors import CommitmentsInvalid  # noqa: F401 (re-exported: callers name them here)
from rebal_core.progress import Progress, quiet  # noqa: F401

SCIP_PARAMETERS = "limits/gap = 1e-9\nlimits/absgap = 1e-6\ndisplay/verblevel = 0"


@dataclass
class MipResult:
    packs: np.ndarray
    objective: float  # network cost of the MIP's plan
    bound: float  # network cost bound of the (possibly restricted) MIP
    status: str


def solve_mip(
    problem: PlanningProblem,
    hint: np.ndarray | None,
    time_limit: float,
    cancel: threading.Event | None = None,
    solver: str = "scip",
    node_limit: int | None = None,
) -> MipResult | None:
    """The spec's whole MIP over every candidate arc, built from sparse arrays in one call.

    ``time_limit`` is the wall time from the call: building the model counts against it.
    ``node_limit`` (SCIP): stop after this many branch-and-bound nodes, a limit that does not
    depend on the machine's speed.
    """
    deadline = time.perf_counter() + time_limit
    arcs = problem.arcs
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

    # Variables: x (packs) | y (line on) | u, v (target) or c (expected) per touched position | s (role) | t (trucks)
    var_lb, var_ub, obj, integral = [], [], [], []
    x0 = 0
    (
        var_lb.append(np.zeros(A)),
        var_ub.append(arcs.ub.astype(float)),
        obj.append(arcs.pack * arcs.cost_per_unit),
        integral.append(np.ones(A, bool)),
    )
    n_vars = A
    need_y = sc.cost_per_move > 0 or (arcs.min_packs > 1).any()
    if need_y:
        y0 = n_vars
        (
            var_lb.append(np.zeros(A)),
            var_ub.append(np.ones(A)),
            obj.append(np.full(A, sc.cost_per_move)),
            integral.append(np.ones(A, bool)),
        )
        n_vars += A
        ar = np.arange(A)
        add(np.r_[ar, ar], np.r_[x0 + ar, y0 + ar], np.r_[np.ones(A), -arcs.ub], np.full(A, -np.inf), np.zeros(A))
        add(np.r_[ar, ar], np.r_[x0 + ar, y0 + ar], np.r_[np.ones(A), -arcs.min_packs], np.zeros(A), np.full(A, np.inf))
    touched, t_src = np.unique(np.r_[arcs.src, arcs.dst], return_inverse=True)
    q_src, q_dst = t_src[:A], t_src[A:]
    Q = len(touched)
    P0 = pos["position"].to_numpy(float)[touched]
    ar = np.arange(A)
    pk = arcs.pack.astype(float)
    u0 = n_vars
    expected = is_expected(pos)
    if not expected:
        T = pos["target"].to_numpy(float)[touched]
        X = pos["excess_level"].to_numpy(float)[touched]
        n_vars += 2 * Q
        var_lb.append(np.zeros(2 * Q)), var_ub.append(np.full(2 * Q, np.inf))
        (
            obj.append(np.r_[pos["p"].to_numpy(float)[touched], pos["h"].to_numpy(float)[touched]]),
            integral.append(np.zeros(2 * Q, bool)),
        )
        # u_q + pack*(in - out) >= T - P0 ;  v_q - pack*(in - out) >= P0 - X
        add(
            np.r_[np.arange(Q), q_dst, q_src],
            np.r_[u0 + np.arange(Q), ar, ar],
            np.r_[np.ones(Q), pk, -pk],
            T - P0,
            np.full(Q, np.inf),
        )
        add(
            np.r_[np.arange(Q), q_dst, q_src],
            np.r_[u0 + Q + np.arange(Q), ar, ar],
            np.r_[np.ones(Q), -pk, pk],
            P0 - X,
            np.full(Q, np.inf),
        )
    else:
        # Expected objective: one cost variable c_q per touched position above tangents of its
        # convex cost, c_q >= f(P_k) + f'(P_k) (P - P_k) at the knots and at P0. Tangents lie
        # under f, so the MIP's bound stays a lower bound; its plan is scored exactly after.
        n_vars += Q
        (
            var_lb.append(np.full(Q, -np.inf)),
            var_ub.append(np.full(Q, np.inf)),
            obj.append(np.ones(Q)),
            integral.append(np.zeros(Q, bool)),
        )
        points = np.concatenate([cost_knots(pos, touched), P0[:, None]], axis=1)
        tq, tk = np.nonzero(np.isfinite(points))
        Pk = points[tq, tk]
        fk = position_cost(pos, Pk, touched[tq])
        gk = marginal_cost(pos, Pk, touched[tq])
        # c_q - g pack (in - out) >= f(P_k) + g (P0 - P_k), one row per tangent (row r of tangent tq[r])
        R = len(tq)
        tr = np.arange(R)
        into = {}
        for sel, sign in ((q_dst, 1.0), (q_src, -1.0)):
            order = np.argsort(sel, kind="stable")
            starts = np.searchsorted(sel[order], tq)
            ends = np.searchsorted(sel[order], tq, side="right")
            counts = ends - starts
            rr = np.repeat(tr, counts)
            arc = order[
                np.repeat(starts, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
            ]
            into[sign] = (rr, arc, -sign * gk[rr] * pk[arc])
        add(
            np.r_[tr, into[1.0][0], into[-1.0][0]],
            np.r_[u0 + tq, into[1.0][1], into[-1.0][1]],
            np.r_[np.ones(R), into[1.0][2], into[-1.0][2]],
            fk + gk * (P0[tq] - Pk),
            np.full(R, np.inf),
        )
    # Rule 3: packs shipped per donor.
    donors, d_of = np.unique(q_src, return_inverse=True)
    add(d_of, ar, np.ones(A), np.full(len(donors), -np.inf), problem.ship_packs[touched[donors]].astype(float))
    # Rule 4: role indicator where a position has both in- and out-arcs.
    both = np.intersect1d(np.unique(q_src), np.unique(q_dst))
    if len(both):
        s0 = n_vars
        n_vars += len(both)
        (
            var_lb.append(np.zeros(len(both))),
            var_ub.append(np.ones(len(both))),
            obj.append(np.zeros(len(both))),
            integral.append(np.ones(len(both), bool)),
        )
        b_of = {q: k for k, q in enumerate(both)}
        out_sel = np.flatnonzero(np.isin(q_src, both))
        in_sel = np.flatnonzero(np.isin(q_dst, both))
        bo = np.array([b_of[q] for q in q_src[out_sel]], dtype=np.int64)
        bi = np.array([b_of[q] for q in q_dst[in_sel]], dtype=np.int64)
        out_ub = np.bincount(bo, weights=arcs.ub[out_sel], minlength=len(both))
        in_ub = np.bincount(bi, weights=arcs.ub[in_sel], minlength=len(both))
        nb = np.arange(len(both))
        add(
            np.r_[bo, nb],
            np.r_[out_sel, s0 + nb],
            np.r_[np.ones(len(out_sel)), -out_ub],
            np.full(len(both), -np.inf),
            np.zeros(len(both)),
        )
        add(
            np.r_[bi, nb],
            np.r_[in_sel, s0 + nb],
            np.r_[np.ones(len(in_sel)), in_ub],
            np.full(len(both), -np.inf),
            in_ub,
        )
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
        (
            var_lb.append(np.zeros(len(truck_lanes))),
            var_ub.append(t_ub),
            obj.append(lanes["cost_per_truck"].to_numpy(float)[truck_lanes]),
            integral.append(np.ones(len(truck_lanes), bool)),
        )
        nl = np.arange(len(truck_lanes))
        add(
            np.r_[nl, l_of],
            np.r_[t0 + nl, trucked],
            np.r_[cap, -load],
            np.zeros(len(truck_lanes)),
            np.full(len(truck_lanes), np.inf),
        )
        # Disaggregated form (fixed-charge network design): x_a <= min(ub_a, cap / load_a) t.
        # Valid: t = 0 forces x_a = 0; for t >= 1 either x_a <= ub_a <= ub_a t, or
        # x_a load_a <= (lane volume) <= cap t. Not floor(cap / load_a) t: volume is shared
        # across trucks (rule 5 counts ceil(total volume / capacity)), so 466 packs of 0.3
        # fit 7 trucks of 20 while the floored cut allows 462. It lifts the LP bound from
        # "trucks = volume / capacity" toward "a used lane needs a truck".
        per_truck = np.minimum(arcs.ub[trucked].astype(float), cap[l_of] / load)
        nt = np.arange(len(trucked))
        add(
            np.r_[nt, nt],
            np.r_[trucked, t0 + l_of],
            np.r_[np.ones(len(trucked)), -per_truck],
            np.full(len(trucked), -np.inf),
            np.zeros(len(trucked)),
        )
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
            (
                c_idx.append(t0 + np.arange(len(truck_lanes))),
                c_val.append(lanes["cost_per_truck"].to_numpy(float)[truck_lanes]),
            )
        idx = np.concatenate(c_idx)
        add(np.zeros(len(idx), dtype=np.int64), idx, np.concatenate(c_val), [-np.inf], [float(sc.budget)])

    matrix = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, n_vars))
    model = mbh.ModelBuilderHelper()
    model.fill_model_from_sparse_data(
        np.concatenate(var_lb),
        np.concatenate(var_ub),
        np.concatenate(obj),
        np.concatenate(lo),
        np.concatenate(hi),
        matrix,
    )
    for j in np.flatnonzero(np.concatenate(integral)):
        model.set_var_integrality(int(j), True)
    if hint is not None and solver == "scip":  # HiGHS 1.12 through OR-Tools 9.15 crashes on hints
        # A complete hint (SCIP ignores partial ones): packs, then what they imply.
        hx = hint.astype(float)
        full = np.zeros(n_vars)
        full[:A] = hx
        if need_y:
            full[y0 : y0 + A] = hx > 0
        delta = np.bincount(q_dst, weights=hx * pk, minlength=Q) - np.bincount(q_src, weights=hx * pk, minlength=Q)
        if expected:
            tangent = fk + gk * (P0[tq] + delta[tq] - Pk)
            lifted = np.full(Q, -np.inf)
            np.maximum.at(lifted, tq, tangent)
            full[u0 : u0 + Q] = lifted
        else:
            full[u0 : u0 + Q] = np.maximum(0.0, T - P0 - delta)
            full[u0 + Q : u0 + 2 * Q] = np.maximum(0.0, P0 + delta - X)
        if len(both):
            full[s0 : s0 + len(both)] = np.bincount(bo, weights=hx[out_sel], minlength=len(both)) > 0
        if len(truck_lanes):
            full[t0 : t0 + len(truck_lanes)] = trucks_for(
                np.bincount(l_of, weights=load * hx[trucked], minlength=len(truck_lanes)), cap
            )
        for j, value in enumerate(full.tolist()):
            model.add_hint(j, value)
    constant = problem.cost_before - float(position_cost(problem.positions, P0, touched).sum())
    engine = mbh.ModelSolverHelper(solver)
    left = deadline - time.perf_counter()
    if left < 0.05:
        return None  # the build took the time: no solve
    engine.set_time_limit_in_seconds(left)
    if solver == "scip":
        limit = "" if node_limit is None else f"\nlimits/totalnodes = {int(node_limit)}"
        engine.set_solver_specific_parameters(SCIP_PARAMETERS + limit)
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
    packs = np.round(values[:A]).astype(np.int64)
    return MipResult(
        packs,
        constant + engine.objective_value(),
        constant + engine.best_objective_bound(),
        str(engine.status()).split(".")[-1],
    )
