"""The method: greedy first (never worse than the rule of thumb), the search, the MIP where it
fits, the scored and explained plan; fill-rate targets by a price; plans around commitments.

Part of the optimizer (:mod:`rebal_core.decisions.solvers.optimizer` explains the method)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from rebal_core.decisions.explain import empty_lines
from rebal_core.decisions.planning import (
    Commitments,
    Plan,
    PlanningProblem,
    Score,
    apply_moves,
    around,
    build_problem,
    evaluate,
    explain,
    in_scope,
    lines_from_arcs,
    over_budget,
    plan_lines,
    problem_with_moves,
    repriced,
    violations,
)
from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import SOLVE_SECONDS, Scenario
from rebal_core.decisions.solvers.greedy import greedy
from rebal_core.decisions.solvers.mip import solve_mip
from rebal_core.decisions.solvers.repair import _Ledger, _meet_budget
from rebal_core.decisions.solvers.search import search
from rebal_core.decisions.solvers.shards import RayShards, SkuSolver
from rebal_core.errors import CommitmentsInvalid  # noqa: F401 (re-exported: callers name them here)
from rebal_core.progress import Progress, quiet  # noqa: F401

FULL_MIP_ARCS = 3_000  # up to this many candidate arcs the whole problem also goes to the MIP (exact)


BOUND_MIP_ARCS = 20_000  # up to this many, the MIP runs for its bound when at least BOUND_MIP_SECONDS remain


BOUND_MIP_SECONDS = 10.0


REPRODUCIBLE_MIP_NODES = 2_000
"""A reproducible plan's MIP (small networks only) stops after this many branch-and-bound nodes: counted
work, so its plan is the same on any machine; REPRODUCIBLE_MIP_SECONDS only guards against a runaway."""


REPRODUCIBLE_MIP_SECONDS = 60.0


class Cancelled(Exception):
    """The caller asked to stop (the best plan found so far is still returned)."""


@dataclass
class Solution:
    packs: np.ndarray
    lower_bound: float
    status: str
    stats: dict
    score: Score | None = None  # of ``packs``, when the search already computed it


def optimize(
    problem: PlanningProblem,
    *,
    time_limit: float = SOLVE_SECONDS,
    progress: Progress = quiet,
    cancel: threading.Event | None = None,
    use_mip: bool = True,
    repair_seconds: float = 0.0,
    rule: pd.DataFrame | None = None,
    reproducible: bool = False,
    skus: SkuSolver | None = None,
) -> Solution:
    """Least-network-cost plan with a proven lower bound (see the module doc for the method).

    ``reproducible``: the plan is defined by counted work, never by the clock: the search
    completes its fixed rounds (only ``cancel`` stops it), and the MIP runs on small networks only,
    to a node limit, its plan kept only when that limit (not the clock) ended it. The same
    settings then give the same plan on any machine under any load; ``time_limit`` is ignored.
    Otherwise ``time_limit`` cuts whatever step it reaches (the plan may depend on the load).
    ``skus``: who runs the per-sku flows (:mod:`rebal_core.decisions.solvers.shards`; default here).
    """
    started = time.perf_counter()
    deadline = started + (REPRODUCIBLE_MIP_SECONDS if reproducible else time_limit)
    search_deadline = float("inf") if reproducible else deadline
    arcs = problem.arcs
    stats: dict = {"arcs": len(arcs)}
    if len(arcs) == 0:
        return Solution(np.zeros(0, dtype=np.int64), problem.cost_before, "OPTIMAL", stats)

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled

    progress(0.02, f"relaxation over {len(arcs):,} candidate arcs")
    found = search(problem, search_deadline, progress, check_cancel, repair_seconds, rule, skus=skus)
    packs, best, bound = found.packs, found.cost, found.bound
    score = None  # the search compares plans by plan_cost; the kept plan is scored once, in plan()
    stats["search_seconds"] = time.perf_counter() - started
    stats["lagrange_rounds"] = found.rounds
    stats["search_cut_short"] = found.cut_short
    status = "FEASIBLE"
    check_cancel()

    def gap(value: float) -> float:
        return (value - bound) / value if value > 0 else 0.0

    if reproducible:  # by size only: whether a step runs must not turn on how long the search took
        run_mip = use_mip and len(arcs) <= FULL_MIP_ARCS
    else:
        run_mip = (
            use_mip
            and time.perf_counter() < deadline - 0.05
            and (
                len(arcs) <= FULL_MIP_ARCS
                or (len(arcs) <= BOUND_MIP_ARCS and deadline - time.perf_counter() >= BOUND_MIP_SECONDS)
            )
        )
    if gap(best) <= 1e-9:
        status = "OPTIMAL"
    elif run_mip:
        # Small networks: the whole spec as a MIP proves optimality. Mid-size ones, when
        # the limit leaves time: SCIP rarely improves the plan, but its bound (cuts on the
        # trucks) is stronger than the relaxation's: the sample's gap 3.1 % -> 2.2 % in 50 s.
        stats["mip_arcs"] = len(arcs)
        progress(0.5, f"MIP over {len(arcs):,} arcs (whole problem)")
        t0 = time.perf_counter()
        mip_limit = deadline - time.perf_counter()
        mip = solve_mip(problem, packs, mip_limit, cancel, node_limit=REPRODUCIBLE_MIP_NODES if reproducible else None)
        stats["mip_seconds"] = time.perf_counter() - t0
        if mip is not None and reproducible and stats["mip_seconds"] >= 0.95 * mip_limit:
            stats["mip_status"] = "CLOCK"  # the guard, not the node limit, ended it: its plan is not reproducible
            mip = None
        if mip is not None:
            stats["mip_status"] = mip.status
            mip_packs = mip.packs
            mip_score = evaluate(problem, lines_from_arcs(problem, mip_packs))
            if over_budget(mip_score.transfer_cost, problem.scenario.budget):
                # SCIP keeps rows to its feasibility tolerance (1e-6 relative): a plan at
                # 5000.003 against a 5000 budget is refused here, not reported as optimal.
                mip_packs = _meet_budget(problem, _Ledger(problem, arcs, mip_packs), mip_packs.copy())
                mip_score = evaluate(problem, lines_from_arcs(problem, mip_packs))
            value = mip_score.network_cost_after
            if value < best - 1e-9:
                packs, best, score = mip_packs, value, mip_score
            bound = max(bound, mip.bound - 1e-6)  # SCIP's absolute gap tolerance
        check_cancel()
    if status != "OPTIMAL":
        if not reproducible:  # the limit cut a step short, or ran out
            out_of_time = found.cut_short or time.perf_counter() >= deadline - 0.05
        else:  # the rounds ran to their end; the MIP, when it ran, stopped at its node limit
            out_of_time = stats.get("mip_status") == "CLOCK"
        status = "OPTIMAL" if gap(best) <= 1e-6 else ("TIME_LIMIT" if out_of_time else "FEASIBLE")
    stats["solve_seconds"] = time.perf_counter() - started
    progress(1.0, "done")
    return Solution(packs, min(bound, best), status, stats, score)


def plan(
    problem: PlanningProblem,
    *,
    method: str = "optimize",
    time_limit: float = SOLVE_SECONDS,
    progress: Progress = quiet,
    cancel: threading.Event | None = None,
    build_seconds: float = 0.0,
    reproducible: bool = False,
    skus: SkuSolver | None = None,
    ray_address: str | None = None,
    rule: pd.DataFrame | None = None,
    explained: bool = True,
) -> Plan:
    """Solve with ``method`` ("optimize" or "greedy") and return the scored, explained plan.

    The optimizer is never worse than the greedy rule: the rule's plan is made first
    (its time counts against the limit) and kept when the search does not beat it.
    With ``target_fill_rate`` the plan is the least-cost one that reaches it (see
    :func:`plan_for_fill_rate`). ``reproducible``: see :func:`optimize` (counted work, no clock).
    ``ray_address`` (an address or ``"local"``): the per-sku flows run on Ray shard actors, one per
    bucket of skus; the plan is the one this process would make with the same round counts.
    ``rule``: the greedy rule's lines on this problem when the caller already made them (shown first).
    ``explained=False``: no reasons (``table`` empty; the lines are ``score.lines``), for plans only compared.
    """
    if method not in ("optimize", "greedy"):
        raise ValueError(f"unknown method {method!r}; expected 'optimize' or 'greedy'")
    # Without ``reproducible`` the limit is the caller's wait: the greedy rule, the search and the
    # final scoring and reasons all fit in it (the greedy rule's walk stops at a share of it).
    if method == "optimize" and problem.scenario.target_fill_rate is not None:
        return plan_for_fill_rate(
            problem,
            time_limit=time_limit,
            progress=progress,
            cancel=cancel,
            build_seconds=build_seconds,
            reproducible=reproducible,
        )
    t0 = time.perf_counter()
    deadline = None if reproducible or method == "greedy" else t0 + time_limit
    if rule is None:
        rule = greedy(problem, deadline=None if deadline is None else t0 + GREEDY_SHARE * time_limit)
    rule_seconds = time.perf_counter() - t0
    if method == "greedy":
        score = evaluate(problem, rule)
        return _scored_plan(
            problem, score, method, "HEURISTIC", float("nan"), build_seconds, time.perf_counter() - t0, {}, explained
        )
    t_score = time.perf_counter()
    rule_score = evaluate(problem, rule)
    # What scoring and explaining the kept plan will take (explain is about 3x a score), held back
    # from the search so the answer is ready at the limit.
    reserve = SCORING_RESERVE * (time.perf_counter() - t_score)
    left = float("inf") if deadline is None else deadline - time.perf_counter() - reserve
    if left < MIN_SEARCH_SECONDS:  # the rule's walk and its scoring took the limit: its plan is the answer
        stats = {"greedy_network_cost": rule_score.network_cost_after, "kept_greedy": True, "arcs": len(problem.arcs)}
        result = _scored_plan(
            problem,
            rule_score,
            method,
            "TIME_LIMIT",
            float("nan"),
            build_seconds,
            time.perf_counter() - t0,
            stats,
            explained,
        )
        result.rule_score = rule_score
        return result
    shards = RayShards(problem, ray_address) if ray_address and skus is None else None
    try:
        sol = optimize(
            problem,
            time_limit=left,
            progress=progress,
            cancel=cancel,
            repair_seconds=(0.75 if problem.scenario.budget is not None else 0.3) * rule_seconds,
            rule=rule,
            reproducible=reproducible,
            skus=skus or shards,
        )
    finally:
        if shards is not None:
            shards.close()
    score = sol.score if sol.score is not None else evaluate(problem, lines_from_arcs(problem, sol.packs))
    stats = dict(sol.stats)
    stats["greedy_network_cost"] = rule_score.network_cost_after
    if rule_score.network_cost_after < score.network_cost_after - 1e-9:
        score = rule_score  # the search did not beat the rule of thumb within its limit: keep the rule's plan
        stats["kept_greedy"] = True
    status = sol.status
    if status == "OPTIMAL" and score.network_cost_after - sol.lower_bound > 1e-6 * max(
        1.0, abs(score.network_cost_after)
    ):
        status = "FEASIBLE"
    result = _scored_plan(
        problem, score, method, status, sol.lower_bound, build_seconds, time.perf_counter() - t0, stats, explained
    )
    result.rule_score = rule_score  # the lab shows it beside the plan without solving the rule again
    return result


def _scored_plan(
    problem: PlanningProblem,
    score: Score,
    method: str,
    status: str,
    bound: float,
    build_seconds: float,
    solve_seconds: float,
    stats: dict,
    explained: bool = True,
) -> Plan:
    return Plan(
        problem=problem,
        score=score,
        table=explain(problem, score) if explained else empty_lines(),
        method=method,
        solver_status=status,
        lower_bound=min(bound, score.network_cost_after) if np.isfinite(bound) else bound,
        build_seconds=build_seconds,
        solve_seconds=solve_seconds,
        stats=stats,
    )


GREEDY_SHARE = 0.5  # of a time-limited plan's limit, at most, for the greedy rule's walk
SCORING_RESERVE = 5.0  # x one score of the greedy rule's plan: held back for scoring and explaining the answer
MIN_SEARCH_SECONDS = 0.05  # less than this left after the greedy rule: no search starts


FILL_RATE_SOLVES = 7  # bisection steps on the fill-rate price (each gets an equal share of the time limit)


def plan_for_fill_rate(
    problem: PlanningProblem,
    *,
    time_limit: float,
    progress: Progress = quiet,
    cancel: threading.Event | None = None,
    build_seconds: float = 0.0,
    reproducible: bool = False,
) -> Plan:
    """The least expected-cost plan whose expected fill rate over the positions in scope reaches
    ``target_fill_rate``; when none does, the plan that comes closest (``stats["fill_rate_met"]`` False).

    One Lagrangian price ``lambda`` on the fill-rate row ``sum ELS <= (1 - target) sum mu``: each
    position in scope is planned with ``p + lambda`` (lost sales cost more) and scored with ``p``.
    ``lambda`` is found by bisection. Bound: for every ``lambda >= 0`` the priced problem's bound
    less ``lambda (1 - target) sum mu`` bounds the constrained problem (weak duality).
    ``reproducible``: every bisection step runs and completes its rounds (counted work, no clock).
    """
    sc = problem.scenario
    target = float(sc.target_fill_rate)
    scope = in_scope(problem.positions, sc)
    mu_total = float(problem.positions["mu"].to_numpy(float)[scope].sum())
    allowance = (1.0 - target) * mu_total
    started = time.perf_counter()
    deadline = started + time_limit
    free = replace(sc, target_fill_rate=None)
    base = replace(problem, scenario=free)
    share = time_limit / FILL_RATE_SOLVES
    took = {"step": 0.0, "scoring": 0.0}  # the longest step so far; one scoring and explaining of a plan

    def scope_fill(score: Score) -> float:
        after = score.positions_after.iloc[: len(scope)]
        lost = float(after["expected_short"].to_numpy(float)[scope].sum())
        return 1.0 - lost / mu_total if mu_total > 0 else 1.0

    def solve(lam: float) -> tuple[Plan, float]:
        t_step = time.perf_counter()
        priced = base if lam == 0 else repriced(base, lam * scope)
        left = deadline - time.perf_counter() - took["scoring"]
        inner = plan(
            priced, time_limit=max(0.05, min(share, left)), cancel=cancel, reproducible=reproducible, explained=False
        )
        t_score = time.perf_counter()
        score = evaluate(base, plan_lines(inner.score.lines))
        took["scoring"] = max(took["scoring"], 4.0 * (time.perf_counter() - t_score))  # explain is ~3 scores
        bound = inner.lower_bound - lam * allowance if np.isfinite(inner.lower_bound) else -np.inf
        stepped = _scored_plan(base, score, "optimize", inner.solver_status, bound, 0.0, 0.0, inner.stats, False)
        took["step"] = max(took["step"], time.perf_counter() - t_step)
        return stepped, scope_fill(score)

    tried: list[tuple[float, Plan, float]] = []
    first, fill = solve(0.0)
    tried.append((0.0, first, fill))
    cut_short = False  # one budget for every step: the clock, not the steps, ended the bisection
    if fill < target:
        # The highest price first: when even it leaves the target out of reach, no price reaches it
        # (two solves, where growing the price step by step took seven). Then the largest shortage
        # penalty, and bisection: halving below it, geometric above it.
        floor = float(np.nanmax(problem.positions["p"].to_numpy(float)[scope])) if scope.any() else 1.0
        lo, hi = 0.0, floor * 4 ** (FILL_RATE_SOLVES - 2)
        lam = hi
        for k in range(1, FILL_RATE_SOLVES):
            if cancel is not None and cancel.is_set():
                break
            if not reproducible and time.perf_counter() + took["step"] + took["scoring"] > deadline:
                cut_short = True  # another step would not end in time: the closest plan so far is the answer
                break
            p_k, fill = solve(lam)
            tried.append((lam, p_k, fill))
            progress(
                k / FILL_RATE_SOLVES, f"fill-rate price {lam:,.2f}: expected fill rate {fill:.2%} (target {target:.2%})"
            )
            if k == 1 and fill < target:
                break  # out of transfers' reach: the closest plan tried is the answer
            if fill >= target:
                hi = lam
            else:
                lo = lam
            lam = floor if k == 1 else ((lo + hi) / 2 if lo == 0 else float(np.sqrt(lo * hi)))
    reaching = [(lam, p_k, f) for lam, p_k, f in tried if f >= target - 1e-12]
    if reaching:
        _, best, fill = min(reaching, key=lambda t: t[1].score.network_cost_after)
    else:
        _, best, fill = max(tried, key=lambda t: (t[2], -t[1].score.network_cost_after))
    # Weak duality bounds the constrained problem; when the target is out of reach there is no
    # feasible plan to bound (the dual grows without limit), so none is claimed.
    finite = [t[1].lower_bound for t in tried if np.isfinite(t[1].lower_bound)]
    bound = max(finite) if reaching and finite else float("nan")
    stats = {
        **best.stats,
        "fill_rate_target": target,
        "fill_rate_in_scope": fill,
        "fill_rate_met": bool(reaching),
        "fill_rate_solves": len(tried),
        "fill_rate_cut_short": cut_short,
    }
    if cut_short:
        status = "TIME_LIMIT"
    else:
        status = best.solver_status if reaching else "TARGET_NOT_REACHED"
    result = _scored_plan(
        problem, best.score, "optimize", status, bound, build_seconds, time.perf_counter() - started, stats
    )
    if reaching and status == "OPTIMAL" and result.gap > 1e-6:
        result.solver_status = "FEASIBLE"
    return result


def plan_network(
    net: Network,
    scenario: Scenario,
    *,
    commitments: Commitments | None = None,
    method: str = "optimize",
    time_limit: float = SOLVE_SECONDS,
    progress: Progress = quiet,
    cancel: threading.Event | None = None,
    ray_address: str | None = None,
) -> Plan:
    """Plan ``net`` under ``scenario`` around decisions already taken (approval workflow).

    In-transit moves change the starting network (:func:`apply_moves`). Fixed
    lines are applied too, using up their lanes' and receivers' capacity and
    their share of the budget; the rest is optimized on what remains, without
    the arcs the decisions rule out (:func:`rebal_core.planning.banned`), and
    the plan is fixed lines + new lines, scored on the starting network.

    Bound: with ``N`` the new lines and ``F`` the fixed ones, the true cost is
    ``cost_residual(N) + line_cost(F) + sum_l c_l [ceil(V_Fl + V_Nl) - ceil(V_Nl)]``
    and ``ceil(a + b) >= ceil(a) + ceil(b) - 1``, so
    ``bound = bound_residual + line_cost(F) + sum_{l: V_Fl > 0} c_l (ceil(V_Fl) - 1)``
    is a lower bound over plans that keep the decisions.
    """
    c = commitments or Commitments()
    t0 = time.perf_counter()
    if c.fixed.empty:
        problem = around(problem_with_moves(net, scenario, c.in_transit), c)  # forbidden lines too
        built = time.perf_counter() - t0
        return plan(
            problem,
            method=method,
            time_limit=max(0.05, time_limit - built),  # the build counts against the limit too
            progress=progress,
            cancel=cancel,
            build_seconds=built,
            ray_address=ray_address,
        )
    base_net = apply_moves(net, c.in_transit)
    base = build_problem(base_net, scenario)
    broken = violations(base, c.fixed)
    if broken:
        raise CommitmentsInvalid(broken)
    fixed_score = evaluate(base, c.fixed)
    if scenario.budget is not None:
        scenario_left = replace(scenario, budget=max(0.0, scenario.budget - fixed_score.transfer_cost))
    else:
        scenario_left = scenario
    residual = around(build_problem(apply_moves(base_net, c.fixed, consume_capacity=True), scenario_left), c)
    inner = plan(
        residual,
        method=method,
        time_limit=max(0.05, time_limit - (time.perf_counter() - t0)),  # building both problems counts too
        progress=progress,
        cancel=cancel,
        ray_address=ray_address,
    )
    lines = pd.concat([c.fixed, plan_lines(inner.table)], ignore_index=True)
    score = evaluate(base, lines)
    fixed_lanes = fixed_score.lines.drop_duplicates("lane_id").set_index("lane_id")["cost_per_truck"]
    slack = sum(float(fixed_lanes.get(lane, 0.0)) for lane in fixed_score.trucks)  # one truck per lane may be shared
    bound = inner.lower_bound + fixed_score.transfer_cost - slack
    return Plan(
        problem=base,
        score=score,
        table=explain(base, score),
        method=method,
        solver_status=inner.solver_status,
        lower_bound=min(bound, score.network_cost_after) if np.isfinite(bound) else bound,
        build_seconds=time.perf_counter() - t0 - inner.solve_seconds,
        solve_seconds=inner.solve_seconds,
        stats={
            **inner.stats,
            "fixed_lines": len(c.fixed),
            "forbidden_lines": len(c.forbidden),
            "in_transit_lines": len(c.in_transit),
        },
    )
