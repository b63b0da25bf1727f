"""The relaxation and the search: the Lagrangian bound over the cross-sku capacities (prices
started at the binding resources' break-even gains), plans from every few solves, truck slope scaling.

Part of the optimizer (:mod:`rebal_core.decisions.solvers.optimizer` explains the method)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from rebal_core.decisions.planning import (
    PlanningProblem,
    plan_cost,
    position_cost,
)
from rebal_core.decisions.solvers.costs import ArcPrices, CostTerms, Resources, lane_truck_rates
from rebal_core.decisions.solvers.flow import OutOfTime, flow_batch, solve_skus
from rebal_core.decisions.solvers.repair import reflow, repair
from rebal_core.decisions.solvers.shards import InProcess, SkuSolver
from rebal_core.errors import CommitmentsInvalid  # noqa: F401 (re-exported: callers name them here)
from rebal_core.progress import Progress, quiet  # noqa: F401

LAGRANGE_ROUNDS = 3


PRICE_START_SCALE = 0.5  # of the break-even prices: the first bound rose at 0.5 on every network tried (sample +0.4-1.2 %, 50 x 5,000 +22-30 %, stress +17-22 %), 1.0 lowered the sample's


BINDING_SHARE = 0.9  # a resource the greedy rule fills to this share of its capacity is taken as binding


TRUCK_ROUNDS = 3


REFLOW_ROUNDS = 3


GATED_OVER_PER_SKU = (
    2.0  # the gated flow took 1.0-1.6x the per-sku relaxation (sample, 50 x 5,000), 2.8x on stress.coupled_network
)


GATED_MAX_ARCS = 500_000
"""Above this many candidate arcs receive capacities are priced, never gated: the gated flow is one
flow over every arc that neither splits across workers nor stops at a deadline (200 x 20,000:
1.8 M arcs, 11.8 M flow arcs, 50 s a call, six calls, 85 % of the plan's time), while priced
receipts keep every round per sku, on shards when there are some. A rule on size, not on time,
so the plan is the same on any machine and on Ray (50 x 5,000: 75,000 arcs, gated as before)."""


PRICED_ROUNDS = 8
"""Lagrangian rounds on networks over GATED_MAX_ARCS: priced receipts need more rounds than gated
ones to settle, and each is cheap and splits across workers. 200 x 20,000 (in process): 3 rounds
28.80 M in 135 s (bound 22.5 M); 8 rounds 27.83 M in 176 s (bound 26.1 M); 12 rounds 27.85 M in
204 s (bound 26.6 M). Eight plan better than the gated search's 28.10 M in 378-436 s (bound 26.4 M)."""


def packs_on_arcs(problem: PlanningProblem, lines: pd.DataFrame) -> np.ndarray:
    """Transfer lines as packs per candidate arc (lines on no arc are left out)."""
    arcs, pos = problem.arcs, problem.positions
    packs = np.zeros(len(arcs), dtype=np.int64)
    if lines is None or not len(lines):
        return packs
    row = pd.Series(
        np.arange(len(pos)), index=pd.MultiIndex.from_arrays([pos["site_id"].to_numpy(), pos["sku_id"].to_numpy()])
    )
    src = row.reindex(
        pd.MultiIndex.from_arrays([lines["from_site_id"].astype(str), lines["sku_id"].astype(str)])
    ).to_numpy()
    dst = row.reindex(
        pd.MultiIndex.from_arrays([lines["to_site_id"].astype(str), lines["sku_id"].astype(str)])
    ).to_numpy()
    width = len(pos)
    key = pd.Series(np.arange(len(arcs)), index=arcs.src.astype(np.int64) * width + arcs.dst)
    ok = ~(np.isnan(src) | np.isnan(dst))
    arc = key.reindex(src[ok].astype(np.int64) * width + dst[ok].astype(np.int64)).to_numpy()
    found = ~np.isnan(arc)
    arc = arc[found].astype(np.int64)
    np.add.at(packs, arc, (lines["qty"].to_numpy()[ok][found] // arcs.pack[arc]).astype(np.int64))
    return packs


def initial_prices(
    problem: PlanningProblem,
    res: Resources,
    costs: np.ndarray,
    binding: np.ndarray | None = None,
    scale: float = PRICE_START_SCALE,
) -> np.ndarray:
    """Starting prices for the Lagrangian: per binding resource, the gain per unit of use at which
    the candidate arcs' demand on it meets its capacity (a knapsack's break-even ratio).

    Each arc's gain is its average per pack over its whole range (both positions' cost
    change for ``ub`` packs, less ``costs``): the first pack's gain overstates the later
    ones (sample, expected objective: the bound fell 12 % with it). Sorted by gain per unit
    of the resource used, the price is the ratio of the arc where the cumulative use
    (``ub`` packs each) passes the capacity; 0 where everything fits and where ``binding``
    is False. Receipts count each receiving position once (its best arc). Any prices >= 0
    give a valid bound; these only start it nearer the answer. Arcs compete for the same
    stock, so the demand is overstated, hence ``scale``.
    """
    if not len(res.capacity):
        return np.zeros(0)
    arcs, pos = problem.arcs, problem.columns
    P = np.asarray(pos["position"], dtype=float)
    units = (arcs.ub * arcs.pack).astype(float)
    gain = (position_cost(pos, P[arcs.src], arcs.src) - position_cost(pos, P[arcs.src] - units, arcs.src)
            + position_cost(pos, P[arcs.dst], arcs.dst) - position_cost(pos, P[arcs.dst] + units, arcs.dst)) / np.maximum(arcs.ub, 1) - costs  # fmt: skip
    usage = res.usage.tocsr()
    lam = np.zeros(len(res.capacity))
    for r, name in enumerate(res.names):
        if binding is not None and not binding[r]:
            continue
        a = usage.indices[usage.indptr[r] : usage.indptr[r + 1]]
        use = usage.data[usage.indptr[r] : usage.indptr[r + 1]]
        ok = (gain[a] > 0) & (use > 0)
        a, use = a[ok], use[ok]
        ratio, weight = gain[a] / use, use * arcs.ub[a]
        if name.startswith("receive "):
            order = np.lexsort((-ratio, arcs.dst[a]))
            first = order[np.r_[True, np.diff(arcs.dst[a][order]) != 0]] if len(order) else order
            ratio, weight = ratio[first], weight[first]
        order = np.argsort(-ratio, kind="stable")
        k = int(np.searchsorted(np.cumsum(weight[order]), res.capacity[r]))
        lam[r] = scale * ratio[order][k] if k < len(order) else 0.0
    return lam


def unit_view(problem: PlanningProblem) -> PlanningProblem:
    """The problem with packs relaxed to single units (for capacity-exact flows; round down after)."""
    arcs = problem.arcs
    pack = problem.positions["pack_size"].to_numpy(np.int64)
    units = replace(arcs, pack=np.ones_like(arcs.pack), ub=arcs.ub * arcs.pack, min_packs=np.ones_like(arcs.min_packs))
    positions = problem.positions.assign(pack_size=1)
    receive = np.where(np.isfinite(problem.receive_packs), problem.receive_packs * pack, np.inf)
    return replace(
        problem,
        arcs=units,
        positions=positions,
        donor_packs=problem.donor_packs * pack,
        receive_packs=receive,
        ship_packs=problem.ship_packs * pack,
    )


def gated_plan(
    problem: PlanningProblem,
    roles_from: np.ndarray,
    cost_per_pack: np.ndarray,
    lower: np.ndarray | None = None,
    deadline: float | None = None,
) -> np.ndarray:
    """A plan whose receipts respect every receive capacity exactly: one flow in units through site gates.

    Rule 4 is kept by fixing roles from ``roles_from`` (who shipped only ships,
    who received only receives); units are rounded down to whole packs.
    """
    arcs = problem.arcs
    n = len(problem.positions)
    shipped = np.bincount(arcs.src, weights=roles_from, minlength=n) > 0
    received = np.bincount(arcs.dst, weights=roles_from, minlength=n) > 0
    keep = np.flatnonzero(~received[arcs.src] & ~shipped[arcs.dst])
    view = unit_view(problem)
    forced = None if lower is None else (lower * arcs.pack)[keep]
    units, _, _ = flow_batch(
        view,
        keep,
        np.zeros(len(keep), dtype=np.int64),
        cost_per_pack / arcs.pack,
        gates=problem.receive_capacity,
        lower=forced,
        deadline=deadline,
    )
    packs = np.zeros(len(arcs), dtype=np.int64)
    packs[keep] = units // arcs.pack[keep]
    return packs


@dataclass
class Search:
    packs: np.ndarray
    cost: float
    bound: float
    price: ArcPrices  # the resources' prices of the best bound (arc costs: ``price.costs()``)
    rounds: int
    cut_short: bool = False  # the deadline stopped a step the rounds would have run (the plan depends on timing)


@dataclass
class Relaxed:
    packs: np.ndarray  # the relaxation's plan in packs (for the subgradient and as a primal seed)
    bound: float  # cost before + the relaxation's optimum (a lower bound for the priced costs)
    usage: np.ndarray | None = None  # the plan's use of the priced resources, summed where it was solved


def relax(
    problem: PlanningProblem,
    cost_per_pack: np.ndarray | ArcPrices,
    gated: bool,
    deadline: float | None = None,
    skus: SkuSolver = solve_skus,
) -> Relaxed:
    """The relaxation used for bounds: per-sku branch and bound (rule 4 exact; ``skus`` runs it, here or
    on shards), or with receive capacities one flow in units through site gates (capacities exact;
    rule 4 and packs relaxed)."""
    if not gated:
        solved = skus(problem, cost_per_pack, deadline=deadline)
        return Relaxed(solved.packs, solved.bound, solved.usage)
    arcs = problem.arcs
    every = np.arange(len(arcs))
    if isinstance(cost_per_pack, ArcPrices):
        cost_per_pack = cost_per_pack.costs()
    units, value, slack = flow_batch(
        unit_view(problem),
        every,
        np.zeros(len(arcs), dtype=np.int64),
        cost_per_pack / arcs.pack,
        gates=problem.receive_capacity,
        deadline=deadline,
    )
    return Relaxed(units / arcs.pack, problem.cost_before + float(value.sum() - slack.sum()))


def search(
    problem: PlanningProblem,
    deadline: float,
    progress: Progress,
    check_cancel: Callable[[], None],
    repair_seconds: float = 0.0,
    rule: pd.DataFrame | None = None,
    skus: SkuSolver | None = None,
) -> Search:
    """Stages 1 and 2: a Lagrangian bound with a plan from every few solves, then truck slope scaling.

    Receive capacities are exact in the gated relaxation; lane max units and
    the budget are dualised: ``L(lambda) = min_x [cost(x) + lambda (use(x) -
    cap)]`` is a lower bound for every ``lambda >= 0``. Prices move by Polyak
    steps ``theta (UB - L) / |g|^2`` toward the best plan's cost ``UB``,
    ``theta`` halving when the bound stalls.

    The time limit is kept: the gated flow is one call that cannot be stopped,
    so with receive capacities the per-sku relaxation runs first (it stops
    between flows), and the gated one only when GATED_OVER_PER_SKU times that
    fits within three quarters of the limit; otherwise, and always on
    networks of more than GATED_MAX_ARCS arcs, receive capacities are
    dualised too. Every later step starts only when it is likely to finish
    (its last duration, with 20 % to spare), and a step overtaken by the
    deadline ends with :class:`OutOfTime`: the best plan and bound so far stand.
    """
    arcs = problem.arcs
    skus = skus or InProcess()  # the per-sku work: in this process, or on Ray shards (shards.py)
    terms = CostTerms(problem)  # arc costs are sent as prices (ArcPrices): the shards add them up
    base = terms.base
    started = time.perf_counter()
    budget_end = started + 0.5 * (deadline - started)  # leave time for the repair and the plan after the bound
    # The first relaxation may take longer: without it the search has neither a plan of its own nor
    # a bound, and a repair that would not finish is skipped anyway (``consider``).
    first_end = started + 0.75 * (deadline - started)
    everything = terms.resources(receive=True)
    best = Search(
        np.zeros(len(arcs), dtype=np.int64),
        problem.cost_before,
        0.0,
        ArcPrices("plain", True, np.zeros(len(everything.capacity)), terms=terms),
        0,
    )  # costs are >= 0: 0 bounds any plan

    repair_took = 0.0  # the longest repair so far

    def consider(packs: np.ndarray) -> np.ndarray:
        """Repair, score, keep if best; returns the repaired plan (the next step starts from it).

        Skipped (OutOfTime) when a repair is not likely to finish: before the first, by the caller's
        estimate ``repair_seconds`` (a share of the greedy rule's time: both walk lines of the
        same size); after it, by the longest one so far with 20 % to spare (repairs take 0.2-0.4x
        the greedy rule on 50 x 5,000, up to 0.7x with a budget; a fixed share either skipped
        a repair that would have fitted, discarding a finished relaxation, or overran)."""
        nonlocal repair_took
        if time.perf_counter() + (1.2 * repair_took if repair_took else repair_seconds) > deadline:
            best.cut_short = True
            raise OutOfTime
        t_repair = time.perf_counter()
        plan = repair(problem, packs, everything)
        repair_took = max(repair_took, time.perf_counter() - t_repair)
        cost = plan_cost(problem, plan)  # the judge's number from the positions the plan touches
        if cost < best.cost:
            best.packs, best.cost = plan, cost
        return plan

    gated = bool(np.isfinite(problem.receive_capacity).any()) and len(arcs) <= GATED_MAX_ARCS
    step = 0.0
    first = None
    # Prices start at the break-even gains of the resources the greedy rule's plan (``rule``)
    # fills, not at 0: at 0 the relaxation ignores every capacity and, where they bind, its
    # bound and its plan are poor (stress 50 x 5,000 at 5 s: gap 32 % -> 9 %).
    binding = None
    rule_packs = packs_on_arcs(problem, rule) if rule is not None else None
    if rule_packs is not None and len(everything.capacity):
        binding = everything.usage @ rule_packs >= BINDING_SHARE * everything.capacity
    sku_of_arc = problem.columns["sku_code"][arcs.src]

    def plan_of(relaxed: Relaxed, end: float) -> np.ndarray:
        """The relaxation's plan in whole packs. When ``end`` (its deadline) stopped it part-way,
        the skus it did not reach have no lines: the greedy rule's lines stand in for theirs, so
        the plan covers every sku (50 x 5,000 stopped at 2 s: 17.8 M, against 30.3 M for the
        relaxation's lines alone and 19.5 M for the rule's; a sku the relaxation reached and left
        without lines takes the rule's too, which the repair then judges)."""
        packs = np.floor(relaxed.packs + 1e-9).astype(np.int64)
        if rule_packs is None or time.perf_counter() <= end:
            return packs
        reached = np.zeros(int(sku_of_arc.max()) + 1 if len(arcs) else 0, dtype=bool)
        reached[sku_of_arc[packs > 0]] = True
        return np.where(reached[sku_of_arc], packs, rule_packs)

    lam_first = (
        initial_prices(problem, everything, base, binding)
        if binding is not None
        else np.zeros(len(everything.capacity))
    )
    if gated:
        try:
            t_step = time.perf_counter()
            first = relax(
                problem, ArcPrices("bound", True, lam_first, terms=terms), False, deadline=first_end, skus=skus
            )
            step = time.perf_counter() - t_step
            best.bound = max(
                best.bound, first.bound - float(lam_first @ everything.capacity)
            )  # receive capacities priced: still a relaxation
            consider(plan_of(first, first_end))
        except OutOfTime:
            best.cut_short = True
            return best
        # The gated flow's bound is much stronger where receive capacities bind (50 x 5,000:
        # 13.5 M against 6.7 M), so it may use up to three quarters of the limit.
        gated = time.perf_counter() + GATED_OVER_PER_SKU * step <= started + 0.75 * (deadline - started)
    res = terms.resources(receive=not gated)
    if gated:
        keep = np.array([not n.startswith("receive ") for n in everything.names], dtype=bool)
        lam = lam_first[keep]  # the same resources but receipts, in the same order
    else:
        lam = lam_first

    def resolve(current: np.ndarray, prices: ArcPrices) -> np.ndarray:
        """Re-solve with the truck slopes ``current`` pays; capacity-exact when gated."""
        priced = prices.with_trucks(lane_truck_rates(problem, current))
        if gated:
            return consider(gated_plan(problem, current, priced.costs(), deadline=deadline))
        return consider(skus(problem, priced, deadline=deadline).packs)

    theta, stall = 0.2, 0
    rounds = (PRICED_ROUNDS if len(arcs) > GATED_MAX_ARCS else LAGRANGE_ROUNDS) if len(res.capacity) else 1
    try:
        for k in range(rounds):
            if k > 0 and time.perf_counter() + 1.2 * step > budget_end:
                best.cut_short = True
                break
            prices = ArcPrices("bound", not gated, lam.copy(), terms=terms)
            if k == 0 and first is not None and not gated:
                relaxed = first  # the same relaxation at zero prices, already solved and considered
            else:
                t_step = time.perf_counter()
                relaxed = relax(problem, prices, gated, deadline=first_end if k == 0 else budget_end, skus=skus)
                step = max(step, time.perf_counter() - t_step)  # what one more solve is likely to take
            value = relaxed.bound - float(lam @ res.capacity)
            if value > best.bound + 1e-9:
                best.bound, best.price, stall = value, prices.with_trucks(None), 0
            else:
                stall += 1
                if stall >= 2:
                    theta, stall = theta / 2, 0
                    if theta < 0.02:
                        break  # the bound has stopped moving
            best.rounds = k + 1
            used = relaxed.usage if relaxed.usage is not None and not gated else res.usage @ relaxed.packs
            g = (used - res.capacity) if len(lam) else np.zeros(0)
            if (k % 2 == 0 or (g <= 1e-9).all()) and relaxed is not first:
                consider(plan_of(relaxed, first_end if k == 0 else budget_end))
            progress(
                0.05 + 0.35 * (k + 1) / rounds, f"bound {best.bound:,.0f}, best plan {best.cost:,.0f} (round {k + 1})"
            )
            check_cancel()
            # Rounds end on their own (stalled bound, round cap) so a plan does not depend on
            # the machine's speed; the time limit only cuts in when it must.
            if not len(lam) or (best.cost - best.bound) <= 1e-9 * abs(best.cost):
                break
            g = np.where((lam > 0) | (g > 0), g, 0.0)
            norm = float(g @ g)
            if norm == 0:
                break
            lam = np.maximum(0.0, lam + theta * max(best.cost - value, 0.0) / norm * g)
        # Re-flow: arcs into full resources keep at most what they carry now, the rest
        # of the network re-plans around them (stock freed by trimming finds another
        # receiver); repeated, as each pass may fill other resources. Cheap, so first.
        current = best.packs
        for _ in range(REFLOW_ROUNDS if len(everything.capacity) else 0):
            if time.perf_counter() + 1.2 * step > deadline:
                best.cut_short = True
                break
            before = best.cost
            current = consider(
                reflow(
                    problem,
                    current,
                    best.price.with_trucks(lane_truck_rates(problem, current)),
                    deadline=deadline,
                    skus=skus,
                    res=everything,
                )
            )
            if best.cost >= before:
                break  # a pass that finds nothing better ends the stage (counted work, no clock)
        # Trucks (and, when gated, rule 4 and packs): slope scaling iterates from its own
        # last plan (not the best), a fixed number of times, so the search is reproducible.
        current = best.packs  # after re-flow
        if gated or (problem.lanes["truck_rate"].to_numpy(float)[arcs.lane] > 0).any():
            for k in range(TRUCK_ROUNDS):
                if time.perf_counter() + 1.2 * step > deadline:
                    best.cut_short = True
                    break  # another solve would not finish in time
                before = best.cost
                current = resolve(current, best.price)
                progress(0.4 + 0.1 * (k + 1) / TRUCK_ROUNDS, f"truck slopes: best plan {best.cost:,.0f}")
                check_cancel()
                if best.cost >= before:
                    break  # a round that finds nothing better ends the stage (counted work, no clock)
    except OutOfTime:
        best.cut_short = True  # the best plan and bound so far stand
    if time.perf_counter() > deadline:
        best.cut_short = True  # a flow batch may have stopped its branch and bound at the deadline
    return best
