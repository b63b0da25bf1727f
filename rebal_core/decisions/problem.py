"""The planning problem: positions, allowed lanes, candidate arcs with safe bounds (pruning that
never removes an optimal plan), and the one truck count (rule 5).

Part of :mod:`rebal_core.decisions.planning` (which names them all)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rebal_core.decisions.positions import (
    Network,
    build_positions,
    marginal_cost,
    position_costs,
)
from rebal_core.decisions.scenario import Scenario

if TYPE_CHECKING:  # an annotation only: commitments build on the problem
    from rebal_core.decisions.commitments import Commitments

LINE_KEYS = ["sku_id", "from_site_id", "to_site_id"]


VOLUME_TOLERANCE = 1e-9  # relative slack when counting trucks, so 1800.0000001 is one truck of 1800


def trucks_for(volume, capacity):
    """Rule 5: the least trucks that carry ``volume`` at ``capacity`` each, ``ceil(volume / capacity)``
    with a relative slack of VOLUME_TOLERANCE for floating-point sums. Numbers or arrays; 0 for no volume.
    The one definition: the judge, the greedy rule, the optimizer and its repair all count with it."""
    if isinstance(volume, float | int) and isinstance(capacity, float | int):
        # One lane at a time (the greedy rule and the repair's truck trim: 80,000 calls on 50 x 5,000,
        # 7 us each through numpy): the same doubles, the same ceil.
        if not volume > 0:
            return 0.0
        trucks = volume / (capacity if capacity > 0 else 1.0) * (1 - VOLUME_TOLERANCE)
        return float(math.ceil(trucks)) if math.isfinite(trucks) else trucks
    volume, capacity = np.asarray(volume, dtype=float), np.asarray(capacity, dtype=float)
    trucks = np.ceil(volume / np.where(capacity > 0, capacity, 1.0) * (1 - VOLUME_TOLERANCE))
    return np.where(volume > 0, trucks, 0.0)


@dataclass(frozen=True)
class Arcs:
    """Candidate transfer arcs (one per sku, donor position, receiver position), as parallel arrays.

    ``src``/``dst`` index rows of :attr:`PlanningProblem.positions`, ``lane``
    rows of :attr:`PlanningProblem.lanes`. Quantities are in packs:
    ``ub`` is a safe upper bound, ``min_packs`` the least non-zero quantity
    (whole packs reaching ``min_move_units``).
    """

    src: np.ndarray
    dst: np.ndarray
    lane: np.ndarray
    pack: np.ndarray
    cost_per_unit: np.ndarray
    volume: np.ndarray
    ub: np.ndarray
    min_packs: np.ndarray

    def __len__(self) -> int:
        return len(self.src)

    def take(self, keep: np.ndarray) -> Arcs:
        return Arcs(**{k: getattr(self, k)[keep] for k in self.__dataclass_fields__})


@dataclass
class PlanningProblem:
    """Everything an optimizer needs for one network and scenario.

    ``positions`` is :func:`rebal_core.positions.build_positions` (with the
    projection) on a RangeIndex; ``ship_packs`` is the most packs each position
    may ship (rule 3); ``lanes`` every lane with ``allowed`` per rules 1 and
    scope, ``truck_rate`` = cost_per_truck / truck_capacity per volume unit.
    """

    scenario: Scenario
    positions: pd.DataFrame
    sites: pd.DataFrame
    lanes: pd.DataFrame
    ship_packs: np.ndarray
    donor_packs: np.ndarray
    receive_packs: np.ndarray
    arcs: Arcs
    cost_before: float
    as_of: object = None
    inbound: pd.DataFrame | None = None  # for the days-until-stockout of lines' receivers
    commitments: Commitments | None = None  # decisions the plan is made around (arcs already restricted)
    network: Network | None = None  # what it was built from (to re-price it, see :func:`repriced`)

    @cached_property
    def columns(self) -> dict[str, np.ndarray]:
        """The positions' columns as numpy arrays: hot loops read these (a DataFrame column
        lookup costs microseconds, 50 k of them per solve on a large network)."""
        return {c: self.positions[c].to_numpy() for c in self.positions.columns}

    @property
    def receive_capacity(self) -> np.ndarray:
        """Receive capacity (units) per site index; inf when unlimited."""
        return self.sites["receive_capacity_units"].fillna(np.inf).to_numpy(float)


def position_cost(pos, P: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """A position's cost ``f(P)`` (shortage + excess cost under the scenario's objective) for the given rows.

    ``pos`` is the positions table or a mapping of its columns as arrays (hot loops);
    ``rows`` must broadcast with ``P``. See :func:`rebal_core.positions.position_costs`.
    """
    shortage, excess = position_costs(pos, P, rows)
    return shortage + excess


def shippable_units(pos: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Rule 3: most units each position may ship, ``on_hand - donor_reserve SS`` (at least 0); with the
    expected objective a donor also keeps its own expected demand ``mu`` over its horizon."""
    keep = scenario.donor_reserve * pos["safety_stock"].to_numpy(float)
    if scenario.objective == "expected":
        keep = np.maximum(keep, pos["mu"].to_numpy(float))
    return np.maximum(0.0, pos["on_hand"].to_numpy(float) - keep)


def _level_where_slope(
    pos: pd.DataFrame, rows: np.ndarray, slope: np.ndarray, lo: np.ndarray, hi: np.ndarray, upper: bool
) -> np.ndarray:
    """For each row, the least P in ``[lo, hi]`` where the cost's slope reaches ``slope`` (``hi`` if never).

    The slope is non-decreasing in P (convex cost), so bisection brackets it; ``upper``
    returns the bracket's upper end (the safe side for a receiver's bound), else its lower.
    """
    lo, hi = lo.astype(float).copy(), hi.astype(float).copy()
    never = marginal_cost(pos, hi, rows) < slope
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        up = marginal_cost(pos, mid, rows) >= slope
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    return np.where(never, hi, hi if upper else lo)


def allowed_lanes(net: Network, scenario: Scenario, sites: pd.DataFrame) -> pd.DataFrame:
    """Lanes with site indices, truck rate, and ``allowed`` by lead time and region scope (rule 1).

    A lane slower than ``min(max_lead_time_days, horizon_days)`` is never used;
    both ends must lie in the scenario's regions. The cost-ratio rule depends
    on the sku and is applied per arc.
    """
    lanes = net.lanes.copy()
    for col in ("from_site_id", "to_site_id"):
        lanes[col] = lanes[col].astype(str)
    index = pd.Index(sites["site_id"])
    lanes["from_idx"] = index.get_indexer(lanes["from_site_id"])
    lanes["to_idx"] = index.get_indexer(lanes["to_site_id"])
    lanes = lanes[(lanes["from_idx"] >= 0) & (lanes["to_idx"] >= 0)].reset_index(drop=True)
    for col, default in (("cost_per_truck", 0.0), ("truck_capacity", np.nan), ("max_units", np.nan)):
        if col not in lanes:
            lanes[col] = default
    lanes["cost_per_truck"] = lanes["cost_per_truck"].fillna(0.0)
    max_lead = float(scenario.horizon_days)
    if scenario.max_lead_time_days is not None:
        max_lead = min(max_lead, float(scenario.max_lead_time_days))
    allowed = lanes["lead_time_days"].to_numpy(float) <= max_lead
    if scenario.regions:
        region = sites["region"].to_numpy()
        site_in_scope = np.isin(region, list(scenario.regions))
        allowed &= site_in_scope[lanes["from_idx"]] & site_in_scope[lanes["to_idx"]]
    cap = lanes["truck_capacity"].to_numpy(float)
    has_trucks = np.isfinite(cap) & (cap > 0)
    lanes["truck_rate"] = np.where(
        has_trucks, lanes["cost_per_truck"].to_numpy(float) / np.where(has_trucks, cap, 1.0), 0.0
    )
    lanes["allowed"] = allowed
    lanes["lane_id"] = lanes["from_site_id"] + ">" + lanes["to_site_id"]
    return lanes


def in_scope(pos: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Positions whose sku and site take part in transfers (the scenario's categories and regions)."""
    mask = np.ones(len(pos), dtype=bool)
    if scenario.categories:
        mask &= pos["category"].isin(list(scenario.categories)).to_numpy()
    if scenario.regions:
        mask &= pos["region"].isin(list(scenario.regions)).to_numpy()
    return mask


def lane_lookup(lanes: pd.DataFrame, n_sites: int) -> np.ndarray:
    """Site x site matrix of allowed lane rows (-1: no allowed lane)."""
    lane_of = np.full((n_sites, n_sites), -1, dtype=np.int64)
    ok = lanes["allowed"].to_numpy()
    lane_of[lanes["from_idx"].to_numpy()[ok], lanes["to_idx"].to_numpy()[ok]] = np.flatnonzero(ok)
    return lane_of


def same_sku_pairs(d_rows: np.ndarray, r_rows: np.ndarray, sku: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (donor row, receiver row) pair of the same sku, as a vectorized join (no pandas merge)."""
    r_rows = r_rows[np.argsort(sku[r_rows], kind="stable")]
    n_sku = int(sku.max()) + 1 if len(sku) else 0
    r_count = np.bincount(sku[r_rows], minlength=n_sku)
    r_start = np.r_[0, np.cumsum(r_count)[:-1]]
    per_donor = r_count[sku[d_rows]]
    src = np.repeat(d_rows, per_donor)
    block_start = np.repeat(np.cumsum(per_donor) - per_donor, per_donor)
    offset = np.arange(len(src)) - block_start
    dst = r_rows[np.repeat(r_start[sku[d_rows]], per_donor) + offset]
    return src, dst


PAIR_BLOCK = 2_000_000  # donor x receiver pairs formed at once (memory)


def _pairs_in_blocks(d_rows, r_rows, sku, d_slope, r_slope, cheapest) -> tuple[np.ndarray, np.ndarray]:
    """Same-sku (donor, receiver) pairs whose slopes differ by more than the cheapest lane, a block of skus at a time."""
    if not len(d_rows) or not len(r_rows):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_sku = int(sku.max()) + 1
    per_sku = np.bincount(sku[d_rows], minlength=n_sku) * np.bincount(sku[r_rows], minlength=n_sku)
    block = np.cumsum(per_sku) // PAIR_BLOCK
    d_block, r_block = block[sku[d_rows]], block[sku[r_rows]]
    src_parts, dst_parts = [], []
    for b in np.unique(d_block):
        src, dst = same_sku_pairs(d_rows[d_block == b], r_rows[r_block == b], sku)
        ok = d_slope[src] - r_slope[dst] > cheapest
        src_parts.append(src[ok]), dst_parts.append(dst[ok])
    return np.concatenate(src_parts), np.concatenate(dst_parts)


def build_problem(net: Network, scenario: Scenario, positions: pd.DataFrame | None = None) -> PlanningProblem:
    """Positions, lanes and safely pruned candidate arcs for ``scenario`` (see the module doc)."""
    if positions is None:
        positions = build_positions(net, scenario)  # the projection is computed for plan lines only (explain)
    pos = positions.reset_index(drop=True).copy()
    pos["site_id"] = pos["site_id"].astype(str)
    pos["sku_id"] = pos["sku_id"].astype(str)
    sites = net.sites.copy()
    sites["site_id"] = sites["site_id"].astype(str)
    sites = sites.reset_index(drop=True)
    if "receive_capacity_units" not in sites:
        sites["receive_capacity_units"] = np.nan
    lanes = allowed_lanes(net, scenario, sites)

    site_idx = pd.Index(sites["site_id"]).get_indexer(pos["site_id"])
    sku_codes, _ = pd.factorize(pos["sku_id"])
    pack = pos["pack_size"].fillna(1).to_numpy(np.int64)
    P0 = pos["position"].to_numpy(float)
    ship_packs = np.floor(shippable_units(pos, scenario) / pack + 1e-9).astype(np.int64)
    scope = in_scope(pos, scenario)
    lane_of = lane_lookup(lanes, len(sites))
    allowed_cpu = lanes["cost_per_unit"].to_numpy(float)[lanes["allowed"].to_numpy()]
    cheapest = float(allowed_cpu.min()) if len(allowed_cpu) else np.inf

    # Safe pruning (module doc): a line i -> j can only pay when the donor's cost falls
    # faster than the receiver's rises at the start, by more than the lane's cost per unit:
    # c_ij < f_i'(P0_i-) - f_j'(P0_j+). Per sku, donors must beat the receiver slope of the
    # shortest receiver and receivers the donor slope of the longest donor.
    d_slope = marginal_cost(pos, P0, side="left")
    r_slope = marginal_cost(pos, P0, side="right")
    can_ship = scope & (ship_packs > 0)
    n_sku = int(sku_codes.max()) + 1 if len(sku_codes) else 0
    best_donor = np.full(n_sku, -np.inf)
    np.maximum.at(best_donor, sku_codes[can_ship], d_slope[can_ship])
    best_receiver = np.full(n_sku, np.inf)
    np.minimum.at(best_receiver, sku_codes[scope], r_slope[scope])
    donor = can_ship & (d_slope - best_receiver[sku_codes] > cheapest)
    receiver = scope & (best_donor[sku_codes] - r_slope > cheapest)

    # Bounds that some optimal plan respects (same argument, for the last pack of a line): a
    # donor ships no pack once its slope falls to minus the best receiver's gain, a receiver
    # takes none once its slope rises to the best donor's. With a minimum move above one
    # pack a line may rightly overshoot, so then only on-hand limits the donor.
    tight = np.ceil(scenario.min_move_units / pack - 1e-9) <= 1  # every whole pack already meets the minimum
    d_rows = np.flatnonzero(donor)
    floor_level = _level_where_slope(
        pos,
        d_rows,
        best_receiver[sku_codes[d_rows]] + cheapest,
        P0[d_rows] - ship_packs[d_rows] * pack[d_rows],
        P0[d_rows],
        upper=False,
    )
    donor_ub = np.zeros(len(pos), dtype=np.int64)
    donor_ub[d_rows] = np.minimum(
        ship_packs[d_rows], np.ceil((P0[d_rows] - floor_level) / pack[d_rows] - 1e-9).clip(min=0)
    ).astype(np.int64)
    donor_ub = np.where(tight, donor_ub, np.where(donor, ship_packs, 0)).astype(np.int64)
    r_rows = np.flatnonzero(receiver)
    supply = np.bincount(sku_codes[d_rows], weights=(ship_packs * pack)[d_rows], minlength=n_sku)
    top_level = _level_where_slope(
        pos,
        r_rows,
        best_donor[sku_codes[r_rows]] - cheapest,
        P0[r_rows],
        P0[r_rows] + supply[sku_codes[r_rows]],
        upper=True,
    )
    receive_ub = np.full(len(pos), np.inf)
    receive_ub[r_rows] = np.ceil((top_level - P0[r_rows]) / pack[r_rows] - 1e-9).clip(min=0)
    receive_ub = np.where(tight, receive_ub, np.where(receiver, np.inf, 0))
    donor &= donor_ub > 0
    receiver &= receive_ub > 0

    src, dst = _pairs_in_blocks(np.flatnonzero(donor), np.flatnonzero(receiver), sku_codes, d_slope, r_slope, cheapest)
    lane = lane_of[site_idx[src], site_idx[dst]] if len(src) else np.zeros(0, dtype=np.int64)
    keep = lane >= 0
    src, dst, lane = src[keep], dst[keep], lane[keep]
    cpu = lanes["cost_per_unit"].to_numpy(float)[lane]
    unit_cost = pos["unit_cost"].to_numpy(float)
    keep = np.ones(len(src), dtype=bool)
    if scenario.max_unit_cost_ratio is not None:
        keep &= cpu <= scenario.max_unit_cost_ratio * unit_cost[src]
    keep &= cpu < d_slope[src] - r_slope[dst]
    src, dst, lane, cpu = src[keep], dst[keep], lane[keep], cpu[keep]

    arc_pack = pack[src]
    ub = np.minimum(donor_ub[src].astype(float), receive_ub[dst])
    max_units = lanes["max_units"].to_numpy(float)[lane]
    ub = np.minimum(ub, np.where(np.isfinite(max_units), np.floor(max_units / arc_pack + 1e-9), np.inf))
    rc = sites["receive_capacity_units"].fillna(np.inf).to_numpy(float)[site_idx[dst]]
    ub = np.minimum(ub, np.floor(rc / arc_pack + 1e-9))
    min_packs = np.maximum(1, np.ceil(scenario.min_move_units / arc_pack - 1e-9)).astype(np.int64)
    keep = ub >= min_packs
    arcs = Arcs(
        src=src[keep],
        dst=dst[keep],
        lane=lane[keep],
        pack=arc_pack[keep],
        cost_per_unit=cpu[keep],
        volume=pos["unit_volume"].fillna(1.0).to_numpy(float)[src[keep]],
        ub=ub[keep].astype(np.int64),
        min_packs=min_packs[keep],
    )
    pos["site_idx"] = site_idx
    pos["sku_code"] = sku_codes
    return PlanningProblem(
        scenario=scenario,
        positions=pos,
        sites=sites,
        lanes=lanes,
        ship_packs=ship_packs,
        donor_packs=donor_ub,
        receive_packs=receive_ub,
        arcs=arcs,
        cost_before=float(position_cost(pos, P0).sum()),
        as_of=net.as_of,
        inbound=net.inbound,
        network=net,
    )


def lines_from_arcs(problem: PlanningProblem, packs: np.ndarray, arcs: Arcs | None = None) -> pd.DataFrame:
    """Transfer lines (sku_id, from_site_id, to_site_id, qty) of the arcs with packs > 0."""
    arcs = problem.arcs if arcs is None else arcs
    used = np.flatnonzero(packs > 0)
    pos = problem.positions
    return pd.DataFrame(
        {
            "sku_id": pos["sku_id"].to_numpy()[arcs.src[used]],
            "from_site_id": pos["site_id"].to_numpy()[arcs.src[used]],
            "to_site_id": pos["site_id"].to_numpy()[arcs.dst[used]],
            "qty": (packs[used] * arcs.pack[used]).astype(np.int64),
        }
    )
