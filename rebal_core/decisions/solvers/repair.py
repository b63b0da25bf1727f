"""From a relaxed flow to a plan that keeps every rule: minimum moves, whole trucks that pay,
capacities, the budget (exactly, rule 7), and re-flow around full resources.

Part of the optimizer (:mod:`rebal_core.decisions.solvers.optimizer` explains the method)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from rebal_core.decisions.planning import (
    Arcs,
    PlanningProblem,
    evaluate,
    lines_from_arcs,
    over_budget,
    position_cost,
    transfer_cost,
    trucks_for,
)
from rebal_core.decisions.solvers.costs import ArcPrices, Resources, resources
from rebal_core.decisions.solvers.flow import SkuSolve, solve_skus
from rebal_core.errors import CommitmentsInvalid  # noqa: F401 (re-exported: callers name them here)
from rebal_core.progress import Progress, quiet  # noqa: F401


class _Ledger:
    """Running positions while a plan is repaired line by line."""

    def __init__(self, problem: PlanningProblem, arcs: Arcs, packs: np.ndarray):
        self.problem, self.arcs = problem, arcs
        pos = problem.positions
        self.P = pos["position"].to_numpy(float).copy()
        used = np.flatnonzero(packs)  # a plan uses few of a national network's arcs (1.8 M)
        units = packs[used] * arcs.pack[used]
        np.subtract.at(self.P, arcs.src[used], units)
        np.add.at(self.P, arcs.dst[used], units)
        # f(P) in hot loops reads the columns as arrays: every column the scenario's objective reads
        # (a subset once left out the expected objective's, so repairs judged lines by the target one)
        self.columns = problem.columns

    def _gain(self, a: np.ndarray, q_units: np.ndarray, ps: np.ndarray, pd_: np.ndarray) -> np.ndarray:
        """Cost saved by moving ``q_units`` on arcs ``a`` from donor position ``ps`` and receiver position ``pd_``."""
        s, d = self.arcs.src[a], self.arcs.dst[a]
        if np.ndim(a) == 0:
            rows, P = np.array([s, s, d, d]), np.array([ps, ps - q_units, pd_, pd_ + q_units], dtype=float)
        else:
            rows, P = np.concatenate([s, s, d, d]), np.concatenate([ps, ps - q_units, pd_, pd_ + q_units])
        # One cost call for the four sides: the truck trim and the budget cut call this for a
        # lane's few lines thousands of times, where per-call overhead is the cost (4x less).
        f = position_cost(self.columns, P, rows).reshape(4, -1)
        gain = (f[0] - f[1]) + (f[2] - f[3]) - q_units * self.arcs.cost_per_unit[a]
        return gain[0] if np.ndim(a) == 0 else gain

    def benefit(self, a, q_units):
        """Cost saved by adding a line of ``q_units`` on arc(s) ``a`` to the plan as it stands (before trucks)."""
        return self._gain(a, q_units, self.P[self.arcs.src[a]], self.P[self.arcs.dst[a]])

    def kept(self, a, q_units):
        """Cost saved by lines of ``q_units`` on arcs ``a`` that are in the plan, against dropping them."""
        return self._gain(a, q_units, self.P[self.arcs.src[a]] + q_units, self.P[self.arcs.dst[a]] - q_units)

    def cut_loss(self, a: np.ndarray, packs: np.ndarray, k: np.ndarray, per_move: float) -> float:
        """Cost saved that is lost by taking ``k`` of their ``packs`` off plan lines on arcs ``a`` (each
        judged with the others in place; no two may share a position); a line cut to nothing also
        saves its cost per move. Added up line by line, in order."""
        q = packs * self.arcs.pack[a]
        ps, pd_ = self.P[self.arcs.src[a]] + q, self.P[self.arcs.dst[a]] - q  # the lines taken out
        before = self._gain(a, q, ps, pd_)
        after = np.where(packs > k, self._gain(a, (packs - k) * self.arcs.pack[a], ps, pd_), 0.0)
        return float(np.cumsum(before - after - np.where(k == packs, per_move, 0.0))[-1])

    def move(self, a, q_units) -> None:
        """Apply lines (one arc or many; arcs that share a position add up)."""
        if np.ndim(a) == 0:  # one line: plain indexing is ~10x faster than ufunc.at
            self.P[self.arcs.src[a]] -= q_units
            self.P[self.arcs.dst[a]] += q_units
            return
        np.subtract.at(self.P, self.arcs.src[a], q_units)
        np.add.at(self.P, self.arcs.dst[a], q_units)


def _first_of_each(keys: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each key, in order."""
    mask = np.zeros(len(keys), dtype=bool)
    mask[np.unique(keys, return_index=True)[1]] = True
    return mask


def repair(problem: PlanningProblem, packs: np.ndarray, res: Resources | None = None) -> np.ndarray:
    """Stage 2: make the flow plan meet rules 2, 3, 5, 6, 7 exactly (rule 4 is fixed first).

    ``res``: the problem's :func:`resources` when the caller holds them (the search repairs
    many plans of one problem; building them sorts every arc)."""
    arcs, sc = problem.arcs, problem.scenario
    packs = packs.copy()
    # Rule 4: a position that ships and receives keeps its larger side.
    n = len(problem.positions)
    units = packs * arcs.pack
    out = np.bincount(arcs.src, weights=units, minlength=n)
    inn = np.bincount(arcs.dst, weights=units, minlength=n)
    both = (out > 0) & (inn > 0)
    if both.any():
        packs[both[arcs.src] & (out[arcs.src] < inn[arcs.src])] = 0
        packs[both[arcs.dst] & (inn[arcs.dst] <= out[arcs.dst])] = 0
    led = _Ledger(problem, arcs, packs)
    # Rule 2: lines below the minimum move are raised or dropped, whichever costs less. Decided
    # in waves of lines that share no donor and no receiver, so each wave is one vectorised step
    # and every decision still sees the positions the earlier waves left (the per-line loop this
    # replaced took 0.75 s for 30 k short lines on the 50 x 5,000 stress network).
    short = np.flatnonzero((packs > 0) & (packs < arcs.min_packs))
    shipped = np.bincount(arcs.src, weights=packs, minlength=len(problem.positions))
    while len(short):
        wave = short[_first_of_each(arcs.src[short]) & _first_of_each(arcs.dst[short])]
        q = (packs[wave] * arcs.pack[wave]).astype(float)
        led.move(wave, -q)
        raise_to = (arcs.min_packs[wave] * arcs.pack[wave]).astype(float)
        room = problem.ship_packs[arcs.src[wave]] - (shipped[arcs.src[wave]] - packs[wave])
        up = (room >= arcs.min_packs[wave]) & (led.benefit(wave, raise_to) - sc.cost_per_move > 0)
        led.move(wave[up], raise_to[up])
        np.add.at(shipped, arcs.src[wave], np.where(up, arcs.min_packs[wave] - packs[wave], -packs[wave]))
        packs[wave] = np.where(up, arcs.min_packs[wave], 0)
        short = short[~np.isin(short, wave)]
    # Lines that do not earn their cost per move (and truck share at the full-truck rate):
    # dropped worst first, at most one per position per pass so each drop is judged
    # with the others in place.
    rate = problem.lanes["truck_rate"].to_numpy(float)[arcs.lane]
    for _ in range(8):
        live = np.flatnonzero((packs > 0) & ((sc.cost_per_move > 0) | (rate > 0)))
        q = (packs[live] * arcs.pack[live]).astype(float)
        net = led.kept(live, q) - sc.cost_per_move - rate[live] * arcs.volume[live] * q
        bad = live[net <= 0][np.argsort(net[net <= 0])]
        if not len(bad):
            break
        first = np.unique(arcs.src[bad], return_index=True)[1]
        bad = bad[np.sort(first)]
        bad = bad[np.unique(arcs.dst[bad], return_index=True)[1]]
        led.move(bad, -(packs[bad] * arcs.pack[bad]).astype(float))  # no two share a position
        packs[bad] = 0
    # Rules 5-6 (lane max units, receive capacity), then trucks that do not pay, then 7 (budget).
    _trim_capacities(problem, led, packs, res if res is not None else resources(problem, arcs))
    _trim_trucks(problem, led, packs)
    if sc.budget is not None:
        packs = _meet_budget(problem, led, packs)
    return packs


def _trim_capacities(problem: PlanningProblem, led: _Ledger, packs: np.ndarray, res: Resources) -> None:
    """Rules 5-6: each lane max units and receive capacity over its limit gives up packs, the lines
    that earn least per unit first (in place). The budget is met last (:func:`_meet_budget`)."""
    arcs = problem.arcs
    usage = res.usage.tocsr()
    for r in range(len(res.capacity)):
        if res.names[r] == "budget":
            continue
        span = slice(usage.indptr[r], usage.indptr[r + 1])  # the row's arcs (getrow copied: 50 us a row)
        cols = usage.indices[span]
        used = float(usage.data[span] @ packs[cols])
        if used <= res.capacity[r] + 1e-9:
            continue
        live = cols[packs[cols] > 0]
        q = (packs[live] * arcs.pack[live]).astype(float)
        order = live[np.argsort(led.kept(live, q) / q, kind="stable")]
        # Lines are cut in that order while the resource is over: whole ones while the excess
        # left is larger than they are, then the last in part (or whole, below its minimum move).
        # Units are whole, so the running sums are exact; at once, not line by line (a relaxed
        # plan far over its capacities cut 200,000 lines one call each on 200 x 20,000).
        size = (packs[order] * arcs.pack[order]).astype(float)
        left = used - np.concatenate([[0.0], np.cumsum(size)])  # the usage before each line is cut
        under = left <= res.capacity[r] + 1e-9
        n_cut = int(np.argmax(under)) if under.any() else len(order)
        whole = order[: max(n_cut - 1, 0)]
        led.move(whole, -(packs[whole] * arcs.pack[whole]).astype(float))
        packs[whole] = 0
        if n_cut:
            a = order[n_cut - 1]
            excess_packs = int(np.ceil((left[n_cut - 1] - res.capacity[r]) / arcs.pack[a] - 1e-9))
            new = packs[a] - excess_packs
            if new < arcs.min_packs[a]:
                new = 0
            led.move(a, -(packs[a] - new) * arcs.pack[a])
            packs[a] = new


def _trim_trucks(problem: PlanningProblem, led: _Ledger, packs: np.ndarray) -> None:
    """Send one truck fewer on a lane when what its load earns is less than the truck costs.

    The last truck carries ``volume - (trucks - 1) x capacity``; the lines that
    earn least per unit of volume give up packs until that volume is gone. Done
    in place, lane by lane, while it pays.
    """
    arcs, lanes = problem.arcs, problem.lanes
    cost = lanes["cost_per_truck"].to_numpy(float)
    cap = lanes["truck_capacity"].to_numpy(float)
    per_move = problem.scenario.cost_per_move
    used = np.flatnonzero((packs > 0) & (lanes["truck_rate"].to_numpy(float)[arcs.lane] > 0))
    used = used[np.argsort(arcs.lane[used], kind="stable")]  # grouped by lane, in arc order within
    first = np.flatnonzero(np.r_[True, arcs.lane[used][1:] != arcs.lane[used][:-1]]) if len(used) else used
    for start, end in zip(first, np.r_[first[1:], len(used)]):
        lane = arcs.lane[used[start]]
        on_lane = used[start:end]
        while True:
            on_lane = on_lane[packs[on_lane] > 0]
            load = arcs.volume[on_lane] * arcs.pack[on_lane]
            volume = float(load @ packs[on_lane])
            if volume <= 0:
                break
            trucks = int(trucks_for(volume, cap[lane]))
            need = volume - (trucks - 1) * cap[lane]
            q = (packs[on_lane] * arcs.pack[on_lane]).astype(float)
            order = on_lane[np.argsort(led.kept(on_lane, q) / (q * arcs.volume[on_lane]), kind="stable")]
            cut: dict[int, int] = {}
            freed = 0.0
            for a in order:
                if freed >= need - 1e-9:
                    break
                per_pack = arcs.volume[a] * arcs.pack[a]
                k = min(int(packs[a]), int(np.ceil((need - freed) / per_pack - 1e-9)))
                if packs[a] - k < arcs.min_packs[a]:
                    k = int(packs[a])
                freed += k * per_pack
                cut[a] = k
            if freed < need - 1e-9:
                break
            # What the cut lines stop earning, all at once: a lane's lines are distinct skus, so
            # no two share a position and each is judged with the others in place (a line at a
            # time was 10 of the 20 s of repairs on 200 x 20,000).
            a = np.fromiter(cut, dtype=np.int64, count=len(cut))
            k = np.fromiter(cut.values(), dtype=np.int64, count=len(cut))
            lost = led.cut_loss(a, packs[a], k, per_move)
            if lost >= cost[lane]:
                break
            for a, k in cut.items():
                led.move(a, -k * arcs.pack[a])
                packs[a] -= k


def _meet_budget(problem: PlanningProblem, led: _Ledger, packs: np.ndarray) -> np.ndarray:
    """Drop the lines with least benefit per currency until the plan's transfer cost fits the budget."""
    budget = float(problem.scenario.budget)
    while True:
        spend = transfer_cost(problem, packs)  # from the arcs (a whole evaluate a round was 0.15 s on 50 x 5,000)
        if not over_budget(spend, budget):
            spend = evaluate(problem, lines_from_arcs(problem, packs)).transfer_cost  # the reported number decides
            if not over_budget(spend, budget):
                return packs
        used = np.flatnonzero(packs > 0)
        arcs = problem.arcs
        q = (packs[used] * arcs.pack[used]).astype(float)
        # a line's cost with its truck share at the full-truck rate: what dropping it saves, about
        rate = problem.lanes["truck_rate"].to_numpy(float)[arcs.lane[used]]
        cost = q * (arcs.cost_per_unit[used] + rate * arcs.volume[used]) + problem.scenario.cost_per_move
        ratio = led.kept(used, q) / (cost + 1e-9)
        by = np.argsort(ratio, kind="stable")
        order = used[by]
        # Drop enough of the worst lines to cover the overrun, then re-score (trucks may drop too).
        over = spend - budget
        line_cost = cost[by]
        cut = int(np.searchsorted(np.cumsum(line_cost), over) + 1)
        drop = order[:cut]
        led.move(drop, -(packs[drop] * arcs.pack[drop]).astype(float))
        packs[drop] = 0


def reflow(
    problem: PlanningProblem,
    packs: np.ndarray,
    costs: np.ndarray | ArcPrices,
    deadline: float | None = None,
    skus: Callable[..., SkuSolve] = solve_skus,
    res: Resources | None = None,
) -> np.ndarray:
    """Re-solve the flow with arcs into saturated capacities capped at their current packs, then repair
    (``skus`` runs the per-sku flows: here or on shards; ``res`` as in :func:`repair`)."""
    arcs = problem.arcs
    res = res if res is not None else resources(problem, arcs)
    used = res.usage @ packs
    # "Full" with a little slack: trimming leaves a resource a few packs short of its capacity.
    full = (used >= 0.97 * res.capacity) & (np.array(res.names) != "budget")
    touches = np.asarray((res.usage[np.flatnonzero(full)] != 0).sum(axis=0)).ravel() > 0
    capped = replace(arcs, ub=np.where(touches, packs, arcs.ub))
    view = replace(problem, arcs=capped)
    return skus(view, costs, deadline=deadline).packs
