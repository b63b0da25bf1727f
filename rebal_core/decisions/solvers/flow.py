"""Per-sku min-cost flows: the convex position costs as segments, flows batched by the hundred
(SimpleMinCostFlow on arrays), and the batched branch and bound that makes rule 4 exact.

Part of the optimizer (:mod:`rebal_core.decisions.solvers.optimizer` explains the method)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ortools.graph.python import min_cost_flow

from rebal_core.decisions.planning import (
    Arcs,
    PlanningProblem,
    position_cost,
)
from rebal_core.decisions.positions import is_expected, marginal_cost
from rebal_core.errors import CommitmentsInvalid  # noqa: F401 (re-exported: callers name them here)
from rebal_core.progress import Progress, quiet  # noqa: F401

FLOW_CHUNK_ARCS = 500


SCALE_CAP = 1e6  # costs are scaled to integers by at most this (1e-6 currency resolution)


class OutOfTime(Exception):
    """A step found the deadline passed before its next flow: the caller keeps what it has.

    From :func:`flow_batch`'s chunks it carries what was solved: ``partial = (flows, value,
    slack, done)`` with ``done`` marking the copies whose flows finished.
    """

    def __init__(self, partial: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None):
        super().__init__("out of time")
        self.partial = partial


def _check_time(deadline: float | None) -> None:
    if deadline is not None and time.perf_counter() > deadline:
        raise OutOfTime


KNOT_Z = np.r_[-3.0, -2.5, -2.0, np.arange(-1.5, 1.51, 0.25), 2.0, 2.5, 3.0]
"""Where the expected cost is linearised, in standard deviations around ``mu`` and around ``m C``:
the slope of ``p ELS + h EEX`` is ``-p (1 - Phi) + h Phi_C``, so knots are densest where the slope
turns (every 0.25 sigma within 1.5 sigma, every 0.5 sigma beyond). About 1 % of the sample's gap is
the linearisation (13 knots: 2.5 %, 49: 0.3 % at twice the flow size)."""


EXACT_STEPS = 24  # positions that can move at most this many steps are linearised at every step (exact)


def cost_knots(pos, rows: np.ndarray) -> np.ndarray:
    """Positions (in units) where a position's cost is linearised: rows x knots, NaN where unused.

    Target objective: the kinks T and X. Expected: demand quantiles around ``mu`` and
    ``m C`` (and one unit either side of them, where sigma = 0 makes them kinks)."""
    if not is_expected(pos):
        return np.stack([np.asarray(pos["target"], float)[rows], np.asarray(pos["excess_level"], float)[rows]], axis=1)
    z = KNOT_Z
    parts = []
    for mean, sigma in (("mu", "sigma"), ("cover_mean", "cover_sigma")):
        m = np.asarray(pos[mean], float)[rows][:, None]
        s = np.asarray(pos[sigma], float)[rows][:, None]
        parts.append(np.where(s > 0, m + s * z, np.nan))
        parts.append(np.where(s > 0, np.nan, m + np.array([-1.0, 0.0, 1.0])))
    return np.concatenate(parts, axis=1)


def _segments(problem: PlanningProblem, rows: np.ndarray, base: np.ndarray, pack: np.ndarray, cap: np.ndarray):
    """Convex cost of ``P = base + pack * phi`` for integer ``phi`` in ``[0, cap]`` as rising-cost segments.

    Knots (:func:`cost_knots`) are rounded to whole steps both ways. Target objective:
    the cost is linear between knots, so each step's cost is exact. Expected: between
    knots the chord lies above the convex cost by at most ``L (f'(b) - f'(a)) / 4`` on
    a segment of length ``L`` from ``a`` to ``b``; that largest error per row is returned,
    so a flow's value less these errors is a lower bound (the chord less its error lies
    under the cost everywhere). Returns (row index into ``rows``, width, cost per step, error per row).
    """
    pos = problem.columns
    k = (cost_knots(pos, rows) - base[:, None]) / pack[:, None]
    k = np.where(np.isfinite(k), k, 0.0)
    if is_expected(pos):
        # Smooth cost: one whole step per knot is enough (the chord error covers the rest).
        knots = np.concatenate([np.zeros((len(rows), 1)), np.round(k), cap.astype(float)[:, None]], axis=1)
    else:
        # Kinks at T and X: both neighbouring steps, so every step's cost is exact.
        knots = np.concatenate([np.zeros((len(rows), 1)), np.floor(k), np.ceil(k), cap.astype(float)[:, None]], axis=1)
    if is_expected(pos):
        # Short ranges get a knot at every step (exact: only whole steps are feasible), as many
        # knots as the quantiles would use anyway.
        short = cap <= EXACT_STEPS
        if short.any():
            steps = np.minimum(np.arange(knots.shape[1], dtype=float)[None, :], cap.astype(float)[:, None])
            knots = np.where(short[:, None], steps, knots)
    knots = np.sort(np.clip(knots, 0, cap[:, None]), axis=1)
    # Evaluate the cost only at distinct knots (clipping stacks many on 0 and cap): one vector
    # of (row, knot) pairs, so the normal functions run on what the segments need.
    first = np.ones((len(rows), 1), dtype=bool)
    distinct = np.concatenate([first, knots[:, 1:] > knots[:, :-1]], axis=1)
    r, j = np.nonzero(distinct)
    at = knots[r, j]
    P = base[r] + pack[r] * at
    f = position_cost(pos, P, rows[r])
    nxt = np.r_[r[1:] == r[:-1], False]  # a segment runs from each distinct knot to the row's next one
    a = np.flatnonzero(nxt)
    b = a + 1
    which = r[a]
    width = (at[b] - at[a]).astype(np.int64)
    cost = (f[b] - f[a]) / width
    error = np.zeros(len(rows))
    if is_expected(pos) and len(a):
        # The chord lies under the two end tangents' corner: with end slopes s_a <= s_b and chord
        # slope c over length L the gap is at most (c - s_a)(s_b - c) L / (s_b - s_a), never more
        # than L (s_b - s_a) / 4 and far less where the cost is nearly straight (the tails).
        slope = marginal_cost(pos, P, rows[r])
        length = pack[which] * width
        s_a, s_b = slope[a], slope[b]
        with np.errstate(divide="ignore", invalid="ignore"):
            chord = np.clip(cost / pack[which], s_a, s_b)
            seg_err = np.where(
                (s_b > s_a) & (width > 1), (chord - s_a) * (s_b - chord) * length / (s_b - s_a), 0.0
            )  # one step: exact
        np.maximum.at(error, which, seg_err)
    return which, width, cost, error


def _sku_of(problem: PlanningProblem, arcs: Arcs) -> np.ndarray:
    return problem.positions["sku_code"].to_numpy()[arcs.src]


def flow_scale(problem: PlanningProblem, tolerance: float) -> float:
    """Integer cost scale: rounding may cost at most ``tolerance`` of the network cost in the bound.

    Every unit of supply crosses at most two arcs, each rounded by at most
    ``0.5 / scale``; coarser scales solve faster (fewer cost-scaling phases).
    """
    units = float((problem.donor_packs * problem.positions["pack_size"].to_numpy(np.int64)).sum())
    return float(np.clip(2.0 * units / (tolerance * max(problem.cost_before, 1.0)), 10.0, SCALE_CAP))


def flow_batch(
    problem: PlanningProblem,
    arc_idx: np.ndarray,
    copy: np.ndarray,
    cost_per_pack: np.ndarray,
    gates: np.ndarray | None = None,
    scale: float | None = None,
    lower: np.ndarray | None = None,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One min-cost flow over many independent sub-networks ("copies") at once.

    Entry ``e`` puts candidate arc ``arc_idx[e]`` into copy ``copy[e]``; a copy
    is one sku with some roles forbidden (branch and bound) and gets its own
    donor and receiver nodes. Returns packs per entry, each copy's cost change
    against doing nothing (``sum flow x cost`` plus the donors' offsets
    ``f(P0 - pack U) - f(P0)``), and each copy's rounding slack: costs are
    scaled to integers, so a copy's true optimum is at least value - slack.

    ``gates`` (capacity per site, inf = none) routes everything a site's
    receivers take through one node per site with that capacity: the receive
    capacity, exact, as long as each sku has one copy and flows are in units.
    ``lower`` (packs per entry) forces at least that much onto an arc: it
    leaves its donor and arrives at its receiver before the flow is solved.
    ``deadline`` (perf_counter time): :class:`OutOfTime` before any flow that would start after it.
    """
    arcs = problem.arcs
    n_copies = int(copy.max()) + 1 if len(copy) else 0
    if len(arc_idx) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(n_copies), np.zeros(n_copies)
    if scale is None:
        scale = flow_scale(problem, 1e-5 if gates is not None else 1e-7)
    if gates is None and len(arc_idx) > 2 * FLOW_CHUNK_ARCS:
        # Copies are independent: many small flows solve much faster than one big one
        # (cost scaling is superlinear), e.g. 1.0 s instead of 2.7-4.5 s on 50 x 5,000.
        order = np.argsort(copy, kind="stable")
        grouped = copy[order]
        starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])  # where each copy begins
        wanted = np.arange(FLOW_CHUNK_ARCS, len(order), FLOW_CHUNK_ARCS)
        cuts = np.unique(np.r_[starts[np.minimum(np.searchsorted(starts, wanted), len(starts) - 1)], len(order)])
        cuts = cuts[cuts > 0]
        if len(cuts) > 1:
            flows = np.zeros(len(arc_idx), dtype=np.int64)
            value, slack = np.zeros(n_copies), np.zeros(n_copies)
            start = 0
            for end in cuts:
                if end > start:
                    part = order[start:end]
                    try:
                        f, v, s = flow_batch(
                            problem,
                            arc_idx[part],
                            copy[part],
                            cost_per_pack,
                            scale=scale,
                            lower=None if lower is None else lower[part],
                            deadline=deadline,
                        )
                    except OutOfTime:
                        done = np.zeros(n_copies, dtype=bool)
                        done[copy[order[:start]]] = True
                        raise OutOfTime((flows, value, slack, done)) from None
                    flows[part] = f
                    value[: len(v)] += v
                    slack[: len(s)] += s
                start = end
            return flows, value, slack
    _check_time(deadline)
    src, dst, ub = arcs.src[arc_idx], arcs.dst[arc_idx], arcs.ub[arc_idx]
    pos = problem.columns
    P0 = np.asarray(pos["position"], dtype=float)
    pack_of = np.asarray(pos["pack_size"], dtype=np.int64)
    width = np.int64(len(P0))  # rows (pos is a mapping of columns)
    d_keys, d_of = np.unique(copy.astype(np.int64) * width + src, return_inverse=True)
    r_keys, r_of = np.unique(copy.astype(np.int64) * width + dst, return_inverse=True)
    donors, d_copy = d_keys % width, d_keys // width
    receivers, r_copy = r_keys % width, r_keys // width
    supply = np.minimum(problem.donor_packs[donors], np.bincount(d_of, weights=ub, minlength=len(donors))).astype(
        np.int64
    )
    r_cap = np.minimum(
        problem.receive_packs[receivers], np.bincount(r_of, weights=ub, minlength=len(receivers))
    ).astype(np.int64)
    forced = np.zeros(len(arc_idx), dtype=np.int64) if lower is None else np.minimum(lower, ub).astype(np.int64)
    d_forced = np.bincount(d_of, weights=forced, minlength=len(donors)).astype(np.int64)
    r_forced = np.bincount(r_of, weights=forced, minlength=len(receivers)).astype(np.int64)
    supply = np.maximum(supply, d_forced)
    r_cap = np.maximum(r_cap, r_forced)
    nD, nR = len(donors), len(receivers)
    sink = nD + nR
    d_base = P0[donors] - pack_of[donors] * supply
    dw, dwidth, dcost, derr = _segments(problem, donors, d_base, pack_of[donors], supply)
    rw, rwidth, rcost, rerr = _segments(problem, receivers, P0[receivers], pack_of[receivers], r_cap)

    tails = np.concatenate([d_of, dw, nD + rw])
    heads = np.concatenate([nD + r_of, np.full(len(dw) + len(rw), sink)])
    caps = np.concatenate([ub - forced, dwidth, rwidth]).astype(np.int64)
    cost = np.concatenate([cost_per_pack[arc_idx], dcost, rcost])
    owner = np.concatenate([copy, d_copy[dw], r_copy[rw]])
    n_nodes = sink + 1
    if gates is not None:
        site = pos["site_idx"][receivers[rw]]
        gated = np.isfinite(gates[site])
        gate_sites, gate_of = np.unique(site[gated], return_inverse=True)
        heads[len(d_of) + len(dw) :][gated] = n_nodes + gate_of
        tails = np.concatenate([tails, n_nodes + np.arange(len(gate_sites))])
        heads = np.concatenate([heads, np.full(len(gate_sites), sink)])
        caps = np.concatenate([caps, np.floor(gates[gate_sites]).astype(np.int64)])
        cost = np.concatenate([cost, np.zeros(len(gate_sites))])
        owner = np.concatenate([owner, np.zeros(len(gate_sites), dtype=owner.dtype)])
        n_nodes += len(gate_sites)
    scale = min(scale, 1e15 / (max(1.0, float(np.abs(cost).max())) * (n_nodes + 1)))
    supplies = np.zeros(n_nodes, dtype=np.int64)
    supplies[:nD] = supply - d_forced
    supplies[nD:sink] = r_forced
    supplies[sink] = -int(supply.sum())
    for _ in range(6):
        flow = min_cost_flow.SimpleMinCostFlow()
        flow.add_arcs_with_capacity_and_unit_cost(
            tails.astype(np.int32), heads.astype(np.int32), caps, np.round(cost * scale).astype(np.int64)
        )
        flow.set_nodes_supplies(np.arange(n_nodes, dtype=np.int32), supplies)
        status = flow.solve()
        if status != flow.BAD_COST_RANGE:
            break
        scale /= 100.0
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    f = flow.flows(np.arange(len(tails), dtype=np.int32)).astype(float)
    offsets = position_cost(pos, d_base, donors) - position_cost(pos, P0[donors], donors)
    value = np.bincount(owner, weights=f * cost, minlength=n_copies) + np.bincount(
        d_copy, weights=offsets, minlength=n_copies
    )
    value += np.bincount(copy, weights=forced * cost_per_pack[arc_idx], minlength=n_copies)
    # Each unit of supply crosses at most two arcs; any flow's rounded cost is within 0.5/scale per arc.
    # Plus the linearisation's largest error per position (expected objective, see _segments).
    slack = 2.0 * np.bincount(d_copy, weights=supply, minlength=n_copies) / scale
    slack += np.bincount(d_copy, weights=derr, minlength=n_copies) + np.bincount(
        r_copy, weights=rerr, minlength=n_copies
    )
    return f[: len(arc_idx)].astype(np.int64) + forced, value, slack


def _larger_side(problem, arc_idx, copy, flows, cost_per_pack, conflict_keys, shipped_units, received_units, n_copies):
    """Each copy's flow with rule 4 forced (a position keeps its larger side) and that plan's value."""
    arcs = problem.arcs
    width = np.int64(len(problem.positions))
    out_key = copy.astype(np.int64) * width + arcs.src[arc_idx]
    in_key = copy.astype(np.int64) * width + arcs.dst[arc_idx]
    if not len(conflict_keys):
        return np.full(n_copies, np.inf), flows
    ships = shipped_units.reindex(conflict_keys).to_numpy() >= received_units.reindex(conflict_keys).to_numpy()
    repaired = np.where(np.isin(in_key, conflict_keys[ships]) | np.isin(out_key, conflict_keys[~ships]), 0, flows)
    units = repaired * arcs.pack[arc_idx]
    keys, inv = np.unique(np.r_[out_key, in_key], return_inverse=True)
    change = np.bincount(inv, weights=np.r_[-units, units])
    rows, owner = keys % width, keys // width
    P0 = problem.positions["position"].to_numpy(float)[rows]
    delta = position_cost(problem.positions, P0 + change, rows) - position_cost(problem.positions, P0, rows)
    value = np.bincount(copy, weights=repaired * cost_per_pack[arc_idx], minlength=n_copies) + np.bincount(
        owner, weights=delta, minlength=n_copies
    )
    return value, repaired


@dataclass
class SkuSolve:
    """Per-sku solutions that obey rule 4, and a proven bound of the relaxed (cross-sku) problem."""

    packs: np.ndarray
    value: float  # network cost of ``packs`` under the given costs (cost before + changes)
    bound: float  # lower bound on the same (rule 4 included)
    nodes: int
    unresolved: int  # skus whose search hit the round limit (their plan is rule-4-repaired)
    usage: np.ndarray | None = None  # of the priced resources, summed bucket by bucket (see shards.py)


def solve_skus(
    problem: PlanningProblem,
    cost_per_pack: np.ndarray,
    keep: np.ndarray | None = None,
    max_rounds: int = 12,
    beam: int = 8,
    lower: np.ndarray | None = None,
    deadline: float | None = None,
) -> SkuSolve:
    """Every sku's best plan under linear arc costs, rule 4 exact, by batched branch and bound.

    The bipartite flow lets a position ship and receive (rule 4 relaxed). Where
    it does, the sku branches on that position: "may not ship" / "may not
    receive". All open branches of all skus go into one :func:`flow_batch`
    per round, so the search costs a handful of flow solves, not one per node.
    A branch whose relaxed value cannot beat its sku's best plan is pruned.
    The bound is, per sku, the least relaxed value among the leaves not
    explored to the end (or the optimum when the search finished).
    Past ``deadline`` the open branches stop where they are (their parents'
    bounds stay valid); :class:`OutOfTime` only when the root flows cannot finish.
    """
    arcs = problem.arcs
    active = np.arange(len(arcs)) if keep is None else np.flatnonzero(keep)
    packs = np.zeros(len(arcs), dtype=np.int64)
    if not len(active):
        return SkuSolve(packs, problem.cost_before, problem.cost_before, 0, 0)
    sku = _sku_of(problem, arcs)[active]
    order = np.argsort(sku, kind="stable")
    active, sku = active[order], sku[order]
    skus, first = np.unique(sku, return_index=True)
    last = np.r_[first[1:], len(sku)]
    span = {int(s): (int(a), int(b)) for s, a, b in zip(skus, first, last)}
    best_value = {int(s): 0.0 for s in skus}  # the empty plan: no change
    if lower is not None:  # with forced quantities the empty plan is not an option
        for s in np.unique(sku[lower[active] > 0]):
            best_value[int(s)] = np.inf
    best_entries: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    leaf_bound = {int(s): np.inf for s in skus}  # branches the beam or the round limit left unexplored
    finished_bound = {int(s): np.inf for s in skus}  # leaves explored to the end
    # A branch: (sku, ships forbidden at rows, receipts forbidden at rows)
    branches: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = [(int(s), (), ()) for s in skus]
    branch_lb: list[float] = [-np.inf] * len(branches)
    nodes = 0
    for round_ in range(max_rounds):
        if not branches:
            break
        if round_ > 0 and deadline is not None and time.perf_counter() > deadline:
            for lb, (s, _, _) in zip(branch_lb, branches):  # unexplored: their parent's relaxed value bounds them
                leaf_bound[s] = min(leaf_bound[s], lb)
            break
        idx_parts, copy_parts = [], []
        for c, (s, no_ship, no_recv) in enumerate(branches):
            a, b = span[s]
            idx = active[a:b]
            if no_ship or no_recv:
                idx = idx[~np.isin(arcs.src[idx], no_ship) & ~np.isin(arcs.dst[idx], no_recv)]
            idx_parts.append(idx)
            copy_parts.append(np.full(len(idx), c))
        arc_idx = np.concatenate(idx_parts)
        copy = np.concatenate(copy_parts)
        undone = np.zeros(len(branches), dtype=bool)
        try:
            flows, value, slack = flow_batch(
                problem,
                arc_idx,
                copy,
                cost_per_pack,
                lower=None if lower is None else lower[arc_idx],
                deadline=deadline,
            )
        except OutOfTime as stop:
            if stop.partial is None:
                raise
            flows, value, slack, done = stop.partial
            undone = ~np.r_[done, np.zeros(len(branches) - len(done), dtype=bool)]
            # Copies the deadline left unsolved keep their parent's bound; at the root the
            # trivial one: a sku's positions cannot cost less than nothing.
            floor = _sku_cost_floor(problem, skus)
            for c in np.flatnonzero(undone):
                s = branches[c][0]
                leaf_bound[s] = min(leaf_bound[s], branch_lb[c] if np.isfinite(branch_lb[c]) else floor[s])
            flows = np.where(undone[copy], 0, flows)
            max_rounds = round_ + 1  # this round is the last
        value = np.r_[value, np.zeros(len(branches) - len(value))]
        slack = np.r_[slack, np.zeros(len(branches) - len(slack))]
        nodes += len(branches)
        units = flows * arcs.pack[arc_idx]
        width = np.int64(len(problem.positions))
        out_key = copy.astype(np.int64) * width + arcs.src[arc_idx]
        in_key = copy.astype(np.int64) * width + arcs.dst[arc_idx]
        used = units > 0
        conflict_keys = np.intersect1d(out_key[used], in_key[used])
        # Per conflict: units shipped and received, to branch on the position with most flow both ways.
        shipped_units = pd.Series(units[used]).groupby(out_key[used]).sum()
        received_units = pd.Series(units[used]).groupby(in_key[used]).sum()
        both_ways = np.minimum(
            shipped_units.reindex(conflict_keys).to_numpy(), received_units.reindex(conflict_keys).to_numpy()
        )
        # The best conflict of each copy (keys sort by copy, then row).
        order = np.lexsort((-both_ways, conflict_keys // width))
        first = order[np.r_[True, np.diff((conflict_keys // width)[order]) != 0]] if len(order) else order
        branch_row = dict(zip((conflict_keys[first] // width).tolist(), (conflict_keys[first] % width).tolist()))
        incumbent, repaired = _larger_side(
            problem, arc_idx, copy, flows, cost_per_pack, conflict_keys, shipped_units, received_units, len(branches)
        )
        children: list[tuple[float, tuple]] = []
        bounds = np.searchsorted(copy, np.arange(len(branches) + 1))  # copy ids are grouped in order
        for c, (s, no_ship, no_recv) in enumerate(branches):
            if undone[c]:
                continue
            lb = value[c] - slack[c]
            row = branch_row.get(c)
            if row is not None and incumbent[c] < best_value[s]:
                # A plan that obeys rule 4 at once (each position keeps its larger side):
                # a good incumbent early prunes most branches.
                best_value[s] = float(incumbent[c])
                sel = slice(bounds[c], bounds[c + 1])
                best_entries[s] = (arc_idx[sel], repaired[sel])
            if lb >= best_value[s] - 1e-9:
                continue  # cannot beat the sku's best plan
            if row is None:
                # A finished leaf: its flow's value is exact for the target objective but a chord
                # (an over-estimate) for the expected one, so its bound is value - slack.
                finished_bound[s] = min(finished_bound[s], lb)
                if value[c] < best_value[s]:
                    best_value[s] = float(value[c])
                    sel = slice(bounds[c], bounds[c + 1])
                    best_entries[s] = (arc_idx[sel], flows[sel])
                continue
            children.append((lb, (s, no_ship + (row,), no_recv)))
            children.append((lb, (s, no_ship, no_recv + (row,))))
        # Beam: per sku, the most promising branches go on; the others leave their bound behind.
        children.sort(key=lambda t: (t[1][0], t[0]))
        branches, branch_lb = [], []
        count: dict[int, int] = {}
        for lb, br in children:
            s = br[0]
            if count.get(s, 0) < beam and round_ < max_rounds - 1:
                count[s] = count.get(s, 0) + 1
                branches.append(br)
                branch_lb.append(lb)
            else:
                leaf_bound[s] = min(leaf_bound[s], lb)
    unresolved = sum(1 for s in skus if np.isfinite(leaf_bound[int(s)]))
    for idx, f in best_entries.values():
        packs[idx] = f
    total = problem.cost_before + sum(best_value.values())
    # The optimum of a sku lies in a pruned branch (>= its bound >= the best value), a finished
    # leaf or an unexplored branch: the least of these bounds it.
    bound = problem.cost_before + sum(min(best_value[int(s)], leaf_bound[int(s)], finished_bound[int(s)]) for s in skus)
    return SkuSolve(packs, total, bound, nodes, unresolved)


def _sku_cost_floor(problem: PlanningProblem, skus: np.ndarray) -> dict[int, float]:
    """Per sku, the least change a plan can make to its positions' cost: all of it gone (costs are >= 0)."""
    pos = problem.columns
    code = pos["sku_code"]
    before = position_cost(pos, np.asarray(pos["position"], dtype=float))
    per_sku = np.bincount(code, weights=before, minlength=int(code.max(initial=0)) + 1)
    return {int(s): -float(per_sku[int(s)]) for s in skus}
