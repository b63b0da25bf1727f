"""Transfer plans: the planning problem, the score and feasibility, per ``rebalancing-model.md``.

This module is the judge. Whatever method produced a plan (optimizer, greedy
baseline, a planner's edits, a PLAN.csv read back), :func:`evaluate` scores it
by the spec and :func:`violations` lists every rule it breaks, so the app, the
CSV and the command line agree.

The candidate transfer arcs built here are *safely pruned*: an arc is left out
only when some optimal plan provably does not use it, so optimizers can work
on the candidates alone and still prove optimality. For sku ``s`` with unit
shortage penalty ``p`` and unit excess penalty ``h`` (the same at every site),
a line ``i -> j`` changes cost by at most ``-(g_i + g_j - c_ij) q`` where
``g_i = h`` if the donor starts above its excess level (else 0) and
``g_j = p`` if the receiver starts below target (else 0): a donor never
receives (rule 4) so its position only falls, a receiver's only rises. Removing
a whole line keeps a plan feasible (fewer trucks, less volume, same rules), so
lines with ``c_ij >= g_i + g_j`` are never needed. In particular donors must
start above target and receivers below their excess level.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property

import numpy as np
import pandas as pd

from rebal_core.decisions.positions import (
    Network,
    build_positions,
    is_expected,
    kpis,
    marginal_cost,
    position_costs,
    project,
    with_position,
)
from rebal_core.decisions.scenario import Scenario
from rebal_core.format import money_whole

LINE_KEYS = ["sku_id", "from_site_id", "to_site_id"]
VOLUME_TOLERANCE = 1e-9  # relative slack when counting trucks, so 1800.0000001 is one truck of 1800


def trucks_for(volume, capacity):
    """Rule 5: the least trucks that carry ``volume`` at ``capacity`` each, ``ceil(volume / capacity)``
    with a relative slack of VOLUME_TOLERANCE for floating-point sums. Numbers or arrays; 0 for no volume.
    The one definition: the judge, the greedy rule, the optimizer and its repair all count with it."""
    volume, capacity = np.asarray(volume, dtype=float), np.asarray(capacity, dtype=float)
    trucks = np.ceil(volume / np.where(capacity > 0, capacity, 1.0) * (1 - VOLUME_TOLERANCE))
    return np.where(volume > 0, trucks, 0.0)


# ----------------------------------------------------------------------------- the problem


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


# ----------------------------------------------------------------------------- lines and score


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


def transfer_id(sku_id: str, from_site_id: str, to_site_id: str) -> str:
    """Stable id of a line: the same sku and lane always give the same id (one line per triple, rule 2)."""
    digest = hashlib.sha1(f"{sku_id}\x1f{from_site_id}\x1f{to_site_id}".encode()).hexdigest()
    return f"TR-{digest[:10].upper()}"


def money_exact(amount: float) -> float:
    """An amount as the plan reports it: rounded to 1e-6 of the currency."""
    return round(float(amount), 6)


def over_budget(transfer_cost: float, budget: float | None) -> bool:
    """Rule 7 on the reported numbers, with no tolerance: a plan at 5000.003 breaks a 5000 budget."""
    return budget is not None and money_exact(transfer_cost) > float(budget)


@dataclass
class Score:
    """A plan scored by the spec: lines with their lane data, trucks, KPIs before and after."""

    lines: pd.DataFrame
    trucks: dict[str, int]
    before: dict[str, float]
    after: dict[str, float]
    positions_after: pd.DataFrame
    transfer_cost: float
    truck_cost: float

    @property
    def network_cost_before(self) -> float:
        return self.before["network_cost"]

    @property
    def network_cost_after(self) -> float:
        return self.after["network_cost"]


def _with_lanes(problem: PlanningProblem, lines: pd.DataFrame) -> pd.DataFrame:
    lanes = problem.lanes[
        [
            "from_site_id",
            "to_site_id",
            "lane_id",
            "lead_time_days",
            "cost_per_unit",
            "cost_per_truck",
            "truck_capacity",
            "max_units",
            "allowed",
            "from_idx",
            "to_idx",
        ]
    ]
    out = lines.astype({"sku_id": str, "from_site_id": str, "to_site_id": str}).merge(
        lanes, on=["from_site_id", "to_site_id"], how="left"
    )
    skus = problem.positions.drop_duplicates("sku_id").set_index("sku_id")
    out["unit_volume"] = out["sku_id"].map(skus["unit_volume"]).fillna(1.0).to_numpy(float)
    out["unit_cost"] = out["sku_id"].map(skus["unit_cost"]).to_numpy(float)
    out["pack_size"] = out["sku_id"].map(skus["pack_size"]).fillna(1).to_numpy(float)
    out["category"] = out["sku_id"].map(skus["category"])
    out["line_cost"] = out["qty"] * out["cost_per_unit"] + problem.scenario.cost_per_move
    return out


def trucks_per_lane(lines: pd.DataFrame) -> pd.DataFrame:
    """Least trucks that carry each lane's volume (rule 5), for lanes with a truck capacity."""
    with_cap = lines[lines["truck_capacity"].notna() & (lines["truck_capacity"] > 0)]
    vol = (with_cap["qty"] * with_cap["unit_volume"]).groupby(with_cap["lane_id"]).sum()
    cap = with_cap.groupby("lane_id")["truck_capacity"].first()
    cost = with_cap.groupby("lane_id")["cost_per_truck"].first()
    trucks = trucks_for(vol, cap).astype(int)
    return pd.DataFrame({"volume": vol, "truck_capacity": cap, "trucks": trucks, "cost_per_truck": cost}).reset_index()


def evaluate(problem: PlanningProblem, lines: pd.DataFrame) -> Score:
    """Score ``lines`` (sku_id, from_site_id, to_site_id, qty) exactly as the spec defines.

    Positions a line touches that the network does not list hold zero stock and
    have no demand; they are added so the score stays honest.
    """
    lines = _with_lanes(problem, lines.reset_index(drop=True))
    pos = problem.positions
    keyed = pd.MultiIndex.from_frame(pos[["site_id", "sku_id"]])
    delta = (
        pd.concat(
            [
                pd.DataFrame(
                    {"site_id": lines["from_site_id"], "sku_id": lines["sku_id"], "d": -lines["qty"].astype(float)}
                ),
                pd.DataFrame(
                    {"site_id": lines["to_site_id"], "sku_id": lines["sku_id"], "d": lines["qty"].astype(float)}
                ),
            ]
        )
        .groupby(["site_id", "sku_id"], as_index=False)["d"]
        .sum()
    )
    missing = delta[keyed.get_indexer(pd.MultiIndex.from_frame(delta[["site_id", "sku_id"]])) < 0]
    if len(missing):
        pos = pd.concat([pos, _empty_positions(problem, missing[["site_id", "sku_id"]])], ignore_index=True)
        keyed = pd.MultiIndex.from_frame(pos[["site_id", "sku_id"]])
    rows = keyed.get_indexer(pd.MultiIndex.from_frame(delta[["site_id", "sku_id"]]))
    P = pos["position"].to_numpy(float).copy()
    np.add.at(P, rows, delta["d"].to_numpy(float))
    after_pos = with_position(pos, P)

    trucks = trucks_per_lane(lines)
    truck_cost = float((trucks["trucks"] * trucks["cost_per_truck"]).sum())
    # Rounded to the micro-unit (the flows' cost resolution, SCALE_CAP): float summation noise
    # must not decide rule 7, and the budget is checked on exactly the number reported.
    transfer_cost = money_exact(float(lines["line_cost"].sum()) + truck_cost)
    before = kpis(pos)
    after = kpis(after_pos)
    for k, n in ((before, 0.0), (after, transfer_cost)):
        k["transfer_cost"] = n
        k["network_cost"] = k["shortage_cost"] + k["excess_cost"] + n
    after.update(
        lines=len(lines),
        units_moved=int(lines["qty"].sum()),
        trucks=int(trucks["trucks"].sum()),
        lanes_used=int(lines["lane_id"].nunique()),
        net_benefit=before["network_cost"] - after["network_cost"],
    )
    before.update(lines=0, units_moved=0, trucks=0, lanes_used=0, net_benefit=0.0)
    return Score(
        lines=lines,
        trucks={str(k): int(v) for k, v in zip(trucks["lane_id"], trucks["trucks"]) if v > 0},
        before=before,
        after=after,
        positions_after=after_pos,
        transfer_cost=transfer_cost,
        truck_cost=truck_cost,
    )


def _empty_positions(problem: PlanningProblem, pairs: pd.DataFrame) -> pd.DataFrame:
    """Zero-stock, zero-demand positions for pairs the network does not list."""
    skus = problem.positions.drop_duplicates("sku_id").set_index("sku_id")
    sites = problem.sites.set_index("site_id")
    sku_cols = ["sku_name", "category", "unit_cost", "unit_price", "unit_volume", "pack_size", "criticality", "p", "h"]
    out = pairs.reset_index(drop=True).copy()
    for col in sku_cols:
        out[col] = out["sku_id"].map(skus[col]).to_numpy() if col in skus else np.nan
    out["site_name"] = out["site_id"].map(sites["name"])
    out["region"] = out["site_id"].map(sites["region"])
    out["kind"] = out["site_id"].map(sites["kind"])
    zero = [
        "on_hand",
        "in_transit",
        "inbound",
        "mean_daily",
        "std_daily",
        "mu",
        "sigma",
        "safety_stock",
        "target",
        "excess_level",
        "position",
        "cover_mean",
        "cover_sigma",
    ]
    for col in zero:
        out[col] = 0.0
    out["horizon"] = float(problem.scenario.horizon_days)
    out["expected_cost"] = problem.scenario.objective == "expected"
    return out


RULES = {
    "lane": "1: a line travels on an existing lane",
    "lane_allowed": "1: the lane is allowed (lead time, region scope)",
    "cost_ratio": "1: the lane's cost per unit within the cost-ratio threshold",
    "category": "scope: the sku is in the scenario's categories",
    "one_line": "one line per sku and lane",
    "quantity": "2: a positive whole number of packs, at least the minimum move",
    "ship_limit": "3: a donor ships at most on hand less its reserve",
    "one_direction": "4: a position ships or receives, not both",
    "lane_max_units": "6: a lane carries at most its max_units",
    "receive_capacity": "6: a site receives at most its receive capacity",
    "budget": "7: the transfer cost within the budget",
}


@dataclass(frozen=True)
class Violation:
    """One broken rule of a feasible plan (spec rules 1-7): which rule (a key of RULES), where, in words."""

    rule: str
    message: str
    sku_id: str | None = None
    site_id: str | None = None
    lane: str | None = None  # "FROM>TO"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}; expected one of {', '.join(RULES)}")

    def __str__(self) -> str:
        return self.message

    def touches(self, sku_id: str, from_site_id: str, to_site_id: str) -> bool:
        """Whether a line of ``sku_id`` on ``from_site_id>to_site_id`` has a part in it: its sku, one of
        its sites, its lane, or the plan-wide budget (a quantity edit is refused only for its own)."""
        return (
            self.rule == "budget"
            or self.sku_id == sku_id
            or self.site_id in (from_site_id, to_site_id)
            or self.lane == f"{from_site_id}>{to_site_id}"
        )


def violations(problem: PlanningProblem, lines: pd.DataFrame) -> list[Violation]:
    """Every rule of a feasible plan (spec rules 1-7) that ``lines`` breaks (at most 20 lines per rule)."""
    sc = problem.scenario
    out: list[Violation] = []
    if lines.empty:
        return out
    ln = _with_lanes(problem, lines.reset_index(drop=True))
    pos = problem.positions.set_index(["site_id", "sku_id"])

    def each(mask: pd.Series | np.ndarray, rule: str, what: str) -> None:
        for r in ln[np.asarray(mask)].head(20).itertuples(index=False):
            lane = f"{r.from_site_id}>{r.to_site_id}"
            out.append(Violation(rule, f"{r.sku_id} {lane}: {what}", sku_id=r.sku_id, lane=lane))

    each(ln["allowed"].isna(), "lane", "no such lane")
    each(ln["allowed"].eq(False), "lane_allowed", "lane not allowed in this scenario (lead time or region scope)")
    if sc.max_unit_cost_ratio is not None:
        each(
            ln["cost_per_unit"] > sc.max_unit_cost_ratio * ln["unit_cost"],
            "cost_ratio",
            "lane costs more per unit than the cost-ratio threshold",
        )
    if sc.categories:
        each(~ln["category"].isin(list(sc.categories)), "category", "sku outside the scenario's categories")
    each(ln.duplicated(LINE_KEYS, keep=False), "one_line", "more than one line for this sku and lane")
    each(ln["qty"] <= 0, "quantity", "quantity must be positive")
    each(ln["qty"] % ln["pack_size"] != 0, "quantity", "quantity is not a whole number of packs")
    each(ln["qty"] < sc.min_move_units, "quantity", f"quantity below the minimum move of {sc.min_move_units}")

    shipped = ln.groupby(["from_site_id", "sku_id"])["qty"].sum()
    limit = pd.Series(shippable_units(pos, sc), index=pos.index).reindex(shipped.index).fillna(0).to_numpy(float)
    keeps = "donor reserve and its own expected demand" if sc.objective == "expected" else "donor reserve"
    for (site, sku), q, lim in zip(shipped.index, shipped.to_numpy(float), limit):
        if q > lim + 1e-9:
            message = f"{site} ships {q:g} of {sku} but may ship at most {lim:g} (on hand less {keeps})"
            out.append(Violation("ship_limit", message, sku_id=sku, site_id=site))
    received = set(zip(ln["to_site_id"], ln["sku_id"]))
    for site, sku in shipped.index:
        if (site, sku) in received:
            out.append(Violation("one_direction", f"{site} both ships and receives {sku}", sku_id=sku, site_id=site))
    per_lane = ln.groupby("lane_id").agg(qty=("qty", "sum"), max_units=("max_units", "first"))
    for lane_id, row in per_lane[per_lane["max_units"].notna() & (per_lane["qty"] > per_lane["max_units"])].iterrows():
        message = f"lane {lane_id} carries {row['qty']:g} units, above its max_units {row['max_units']:g}"
        out.append(Violation("lane_max_units", message, lane=str(lane_id)))
    rc = problem.sites.set_index("site_id")["receive_capacity_units"]
    got = ln.groupby("to_site_id")["qty"].sum()
    cap = rc.reindex(got.index)
    for site in got.index[cap.notna() & (got > cap)]:
        message = f"{site} receives {got[site]:g} units, above its receive capacity {cap[site]:g}"
        out.append(Violation("receive_capacity", message, site_id=site))
    if sc.budget is not None:
        score = evaluate(problem, lines)
        if over_budget(score.transfer_cost, sc.budget):
            message = f"transfer cost {score.transfer_cost:,.2f} exceeds the budget {sc.budget:,.2f}"
            out.append(Violation("budget", message))
    return out


# ----------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """A scored, explained plan with how it was found."""

    problem: PlanningProblem
    score: Score
    table: pd.DataFrame
    method: str
    solver_status: str
    lower_bound: float
    build_seconds: float
    solve_seconds: float
    stats: dict = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """``(network_cost_after - lower_bound) / network_cost_after`` (0 when both are 0)."""
        after = self.score.network_cost_after
        if not np.isfinite(self.lower_bound):
            return float("nan")
        return max(0.0, (after - self.lower_bound) / after) if after > 0 else 0.0

    def summary(self) -> PlanSummary:
        """What the plan does, in the spec's terms (SUMMARY.json is its ``as_dict``)."""
        b, a = self.score.before, self.score.after
        return PlanSummary(
            scenario=self.problem.scenario.as_dict(),
            method=self.method,
            network_cost_before=b["network_cost"],
            network_cost_after=a["network_cost"],
            net_benefit=a["net_benefit"],
            transfer_cost=a["transfer_cost"],
            truck_cost=self.score.truck_cost,
            shortage_cost_before=b["shortage_cost"],
            shortage_cost_after=a["shortage_cost"],
            excess_cost_before=b["excess_cost"],
            excess_cost_after=a["excess_cost"],
            fill_rate_before=b["fill_rate"],
            fill_rate_after=a["fill_rate"],
            lines=a["lines"],
            units_moved=a["units_moved"],
            trucks=self.score.trucks,
            lanes_used=a["lanes_used"],
            objective=self.problem.scenario.objective,
            expected_lost_units_before=b["expected_lost_units"],
            expected_lost_units_after=a["expected_lost_units"],
            expected_lost_value_before=b["expected_lost_value"],
            expected_lost_value_after=a["expected_lost_value"],
            nothing_pays=nothing_pays_message(self.problem) if a["lines"] == 0 else None,
            solver_status=self.solver_status,
            lower_bound=self.lower_bound,
            gap=self.gap,
            build_seconds=self.build_seconds,
            solve_seconds=self.solve_seconds,
            fill_rate_target=self.stats.get("fill_rate_target"),
            fill_rate_target_met=self.stats.get("fill_rate_met"),
            kept_greedy_plan=bool(self.stats.get("kept_greedy", False)),
            kpis_before=b,
            kpis_after=a,
        )


@dataclass(frozen=True)
class PlanSummary:
    """What a plan does, in the spec's terms: network cost before and after (transfer + shortage +
    excess), fill rate, lines, units, trucks, the solver's status and proven bound. Checks itself
    (a plan's cost is never below its bound, counts are never negative). Stored as JSON with the
    saved plan (``as_dict`` / ``from_dict``); a re-scored plan also keeps what was solved."""

    scenario: dict
    method: str
    network_cost_before: float
    network_cost_after: float
    net_benefit: float
    transfer_cost: float
    truck_cost: float
    shortage_cost_before: float
    shortage_cost_after: float
    excess_cost_before: float
    excess_cost_after: float
    fill_rate_before: float
    fill_rate_after: float
    lines: int
    units_moved: int
    trucks: dict
    lanes_used: int
    objective: str
    expected_lost_units_before: float
    expected_lost_units_after: float
    expected_lost_value_before: float
    expected_lost_value_after: float
    nothing_pays: str | None
    solver_status: str
    lower_bound: float
    gap: float
    build_seconds: float
    solve_seconds: float
    fill_rate_target: float | None
    fill_rate_target_met: bool | None
    kept_greedy_plan: bool
    kpis_before: dict
    kpis_after: dict
    # a saved plan re-scored after decisions: what the solver made of it, and its lines as solved
    edited: bool = False
    solved: dict | None = None
    result: list = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = [f"{name} is negative" for name in ("lines", "units_moved", "lanes_used") if getattr(self, name) < 0]
        if self.lower_bound == self.lower_bound and self.lower_bound > self.network_cost_after + 1e-6 * max(
            1.0, abs(self.network_cost_after)
        ):
            problems.append(f"lower bound {self.lower_bound:,.2f} above the plan's cost {self.network_cost_after:,.2f}")
        if problems:
            raise ValueError("inconsistent plan summary: " + "; ".join(problems))

    def cost(self) -> float:
        """The plan's network cost (transfer + shortage + excess after it)."""
        return self.network_cost_after

    def is_feasible(self) -> bool:
        """Whether the plan keeps every rule (plans the optimizer or greedy rule make always do; an
        edited plan's broken rules are refused before it is stored)."""
        return self.solver_status != "INFEASIBLE"

    def describe(self) -> str:
        """One line for people: lines, units, cost before -> after, status and gap."""
        bound = f"gap {self.gap:.4%}" if self.gap == self.gap else "no bound (greedy rule)"
        return (
            f"{self.lines} lines, {self.units_moved:,} units; network cost {self.network_cost_before:,.2f} -> "
            f"{self.network_cost_after:,.2f} (transfer {self.transfer_cost:,.2f}); {self.solver_status}, {bound}, "
            f"solved in {self.solve_seconds:.1f}s"
        )

    def as_dict(self) -> dict:
        out = asdict(self)
        if not self.edited:
            for key in ("edited", "solved", "result"):
                out.pop(key)
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> PlanSummary:
        """A stored summary (fields added later default; fields no longer known are ignored)."""
        known = {f.name for f in fields(cls)}
        if "trucks_by_lane" in raw and "trucks" not in raw:  # the name a saved plan keeps them under
            raw = {**raw, "trucks": raw["trucks_by_lane"]}
        defaults = {"truck_cost": 0.0, "trucks": {}, "lanes_used": 0, "objective": "target", "nothing_pays": None,
                    "fill_rate_target": None, "fill_rate_target_met": None, "kept_greedy_plan": False,
                    "build_seconds": 0.0, "kpis_before": {}, "kpis_after": {}, "method": "optimize", "scenario": {}}  # fmt: skip
        for key in ("expected_lost_units_before", "expected_lost_units_after", "expected_lost_value_before", "expected_lost_value_after"):  # fmt: skip
            defaults[key] = float("nan")
        values = {**defaults, **{k: v for k, v in raw.items() if k in known}}
        for key in ("lower_bound", "gap"):  # NaN is stored as null (JSON has no NaN)
            if values.get(key) is None:
                values[key] = float("nan")
        return cls(**values)


PLAN_COLUMNS = [
    "transfer_id", "sku_id", "sku_name", "category", "from_site_id", "from_site", "to_site_id", "to_site",
    "qty", "packs", "lead_time_days", "cost_per_unit", "line_cost", "truck_share", "shortage_avoided",
    "excess_avoided", "days_until_stockout", "reason",
]  # fmt: skip


_money = money_whole


def _expected_reason(
    to_name: str,
    from_name: str,
    qty: float,
    horizon: float,
    lost_before: float,
    lost_after: float,
    shortage_avoided: float,
    excess_avoided: float,
    donor_more: float,
    cost: float,
) -> str:
    """One line's reason under the expected objective, in a planner's words."""
    if lost_before >= 0.5:
        need = f"{to_name} expected to lose {lost_before:,.0f} sales in the next {horizon:,.0f} days; {qty:,.0f} units from {from_name} cut that to {lost_after:,.0f}"
    else:
        need = f"{to_name} has room for {qty:,.0f} units from {from_name}"
    worth = []
    if shortage_avoided > 0.5:
        worth.append(f"{_money(shortage_avoided)} of lost margin")
    if excess_avoided > 0.5:
        worth.append(f"{_money(excess_avoided)} of excess at {from_name}")
    text = f"{need}, worth {' and '.join(worth) or 'little'}, for {_money(cost)} of transfer"
    if donor_more >= 0.5:
        text += f" ({from_name} then expects {donor_more:,.1f} more lost sales)"
    return text


def _reason(
    to_name: str,
    from_name: str,
    short: float,
    days: float,
    over_x: float,
    over_t: float,
    shortage_avoided: float,
    excess_avoided: float,
    donor_shortage: float,
    cost: float,
) -> str:
    """One line's reason in a planner's words (see :func:`explain`)."""
    if short > 0:
        when = "" if days != days else (f", stockout in about {int(days)} days" if days > 0 else ", out of stock now")
        need = f"{to_name} short {short:,.0f} units{when}"
    else:
        need = f"{to_name} has room below its excess level"
    have = (
        f"{from_name} {over_x:,.0f} above its excess level"
        if over_x > 0
        else f"{from_name} {over_t:,.0f} above its target"
    )
    gains = []
    if shortage_avoided > 0.5:
        gains.append(f"{_money(shortage_avoided)} of shortage")
    if excess_avoided > 0.5:
        gains.append(f"{_money(excess_avoided)} of excess")
    benefit = f"avoids {' and '.join(gains) or 'little cost'} for {_money(cost)} of transfer"
    if donor_shortage > 0.5:
        benefit += f" (leaves {from_name} {_money(donor_shortage)} of shortage)"
    return f"{need}; {have}; {benefit}"


def explain(problem: PlanningProblem, score: Score) -> pd.DataFrame:
    """The plan table: one row per line with its id, cost, benefit and a reason in a planner's words.

    A receiver's shortage cost avoided and a donor's excess cost avoided are
    shared among that position's lines in proportion to quantity; a lane's
    truck cost among its lines in proportion to volume.
    """
    ln = score.lines.copy()
    if ln.empty:
        return pd.DataFrame(columns=PLAN_COLUMNS)
    before = problem.positions.set_index(["site_id", "sku_id"])
    after = score.positions_after.set_index(["site_id", "sku_id"])
    to_key = pd.MultiIndex.from_frame(ln[["to_site_id", "sku_id"]])
    from_key = pd.MultiIndex.from_frame(ln[["from_site_id", "sku_id"]])
    to_b, to_a = before.reindex(to_key), after.reindex(to_key)
    if "days_until_stockout" not in to_b and problem.inbound is not None:
        receivers = before.loc[before.index.intersection(to_key.unique())].reset_index()
        days = project(receivers, problem.inbound, problem.as_of).set_index(["site_id", "sku_id"])[
            "days_until_stockout"
        ]
        to_b = to_b.assign(days_until_stockout=days.reindex(to_key).to_numpy())
    fr_b, fr_a = before.reindex(from_key), after.reindex(from_key)
    in_total = ln.groupby(["to_site_id", "sku_id"])["qty"].transform("sum").to_numpy(float)
    out_total = ln.groupby(["from_site_id", "sku_id"])["qty"].transform("sum").to_numpy(float)
    qty = ln["qty"].to_numpy(float)
    shortage_avoided = (to_b["shortage_cost"].fillna(0).to_numpy() - to_a["shortage_cost"].to_numpy()) * qty / in_total
    excess_avoided = (fr_b["excess_cost"].fillna(0).to_numpy() - fr_a["excess_cost"].to_numpy()) * qty / out_total
    donor_shortage = (fr_a["shortage_cost"].to_numpy() - fr_b["shortage_cost"].to_numpy()) * qty / out_total
    vol = qty * ln["unit_volume"].to_numpy(float)
    lane_vol = pd.Series(vol).groupby(ln["lane_id"].to_numpy()).transform("sum").to_numpy(float)
    trucks = ln["lane_id"].map(score.trucks).fillna(0).to_numpy(float)
    truck_share = np.where(
        lane_vol > 0,
        trucks * ln["cost_per_truck"].fillna(0).to_numpy(float) * vol / np.where(lane_vol > 0, lane_vol, 1),
        0.0,
    )

    sites = problem.sites.set_index("site_id")["name"]
    to_names = ln["to_site_id"].map(sites).fillna(ln["to_site_id"]).tolist()
    from_names = ln["from_site_id"].map(sites).fillna(ln["from_site_id"]).tolist()
    short = to_b["shortage_units"].fillna(0.0).to_numpy(float).tolist()
    days = (
        (to_b["days_until_stockout"] if "days_until_stockout" in to_b else pd.Series(np.nan, index=to_b.index))
        .to_numpy(float)
        .tolist()
    )
    over_x = (fr_b["position"] - fr_b["excess_level"]).to_numpy(float).tolist()
    over_t = (fr_b["position"] - fr_b["target"]).to_numpy(float).tolist()
    cost = (ln["line_cost"].to_numpy(float) + truck_share).tolist()
    if is_expected(problem.positions):
        lost_b = to_b["expected_short"].fillna(0.0).to_numpy(float)
        lost_a = to_a["expected_short"].to_numpy(float)
        donor_more = (
            (fr_a["expected_short"].to_numpy(float) - fr_b["expected_short"].fillna(0.0).to_numpy(float))
            * qty
            / out_total
        )
        horizon = to_b["horizon"].fillna(problem.scenario.horizon_days).to_numpy(float)
        reasons = [
            _expected_reason(*row)
            for row in zip(
                to_names,
                from_names,
                qty.tolist(),
                horizon.tolist(),
                lost_b.tolist(),
                lost_a.tolist(),
                shortage_avoided.tolist(),
                excess_avoided.tolist(),
                donor_more.tolist(),
                cost,
            )
        ]
    else:
        reasons = [
            _reason(*row)
            for row in zip(
                to_names,
                from_names,
                short,
                days,
                over_x,
                over_t,
                shortage_avoided.tolist(),
                excess_avoided.tolist(),
                donor_shortage.tolist(),
                cost,
            )
        ]

    skus = problem.positions.drop_duplicates("sku_id").set_index("sku_id")["sku_name"]
    table = pd.DataFrame(
        {
            "transfer_id": [transfer_id(*t) for t in ln[LINE_KEYS].itertuples(index=False)],
            "sku_id": ln["sku_id"],
            "sku_name": ln["sku_id"].map(skus),
            "category": ln["category"],
            "from_site_id": ln["from_site_id"],
            "from_site": ln["from_site_id"].map(sites),
            "to_site_id": ln["to_site_id"],
            "to_site": ln["to_site_id"].map(sites),
            "qty": ln["qty"].astype(np.int64),
            "packs": (ln["qty"] / ln["pack_size"]).astype(np.int64),
            "lead_time_days": ln["lead_time_days"],
            "cost_per_unit": ln["cost_per_unit"],
            "line_cost": ln["line_cost"].round(4),
            "truck_share": truck_share.round(2),
            "shortage_avoided": shortage_avoided.round(2),
            "excess_avoided": excess_avoided.round(2),
            "days_until_stockout": days,
            "reason": reasons,
        }
    )
    return table.sort_values(["shortage_avoided", "transfer_id"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def best_candidate(problem: PlanningProblem) -> dict | None:
    """When no transfer pays: the candidate line that comes closest, with what it would cost and save.

    Each candidate arc is tried alone at its least quantity (the minimum move) and at its
    largest; its cost includes the cost per move and the trucks it alone would need. None when
    there is no candidate at all (no donor and receiver of a sku on an allowed lane could gain).
    """
    arcs = problem.arcs
    if len(arcs) == 0:
        return None
    pos = problem.positions
    P0 = pos["position"].to_numpy(float)
    lanes = problem.lanes
    best: dict | None = None
    for packs in (arcs.min_packs, arcs.ub):
        q = (packs * arcs.pack).astype(float)
        saved = (position_cost(pos, P0[arcs.src], arcs.src) - position_cost(pos, P0[arcs.src] - q, arcs.src)) + (
            position_cost(pos, P0[arcs.dst], arcs.dst) - position_cost(pos, P0[arcs.dst] + q, arcs.dst)
        )
        cap = lanes["truck_capacity"].to_numpy(float)[arcs.lane]
        trucks = np.where(
            np.isfinite(cap) & (cap > 0),
            trucks_for(q * arcs.volume, cap),
            0,
        )
        cost = (
            q * arcs.cost_per_unit
            + problem.scenario.cost_per_move
            + trucks * lanes["cost_per_truck"].to_numpy(float)[arcs.lane]
        )
        k = int(np.argmax(saved - cost))
        if best is None or saved[k] - cost[k] > best["net"]:
            best = {
                "sku_id": str(pos["sku_id"].iat[arcs.src[k]]),
                "from_site_id": str(pos["site_id"].iat[arcs.src[k]]),
                "to_site_id": str(pos["site_id"].iat[arcs.dst[k]]),
                "qty": int(q[k]),
                "saves": float(saved[k]),
                "costs": float(cost[k]),
                "net": float(saved[k] - cost[k]),
            }
    names = problem.sites.set_index("site_id")["name"]
    best["message"] = (
        f"No transfer pays today. The closest: {best['qty']:,} of {best['sku_id']} from {names.get(best['from_site_id'], best['from_site_id'])} "
        f"to {names.get(best['to_site_id'], best['to_site_id'])} would save {_money(best['saves'])} for {_money(best['costs'])} of transfer."
    )
    return best


def nothing_pays_message(problem: PlanningProblem) -> str:
    """Why a plan is empty, in words (see :func:`best_candidate`)."""
    best = best_candidate(problem)
    if best is None:
        return "No transfer pays today: no sku has a site that could give and another that would gain more than the cheapest lane costs."
    return best["message"]


def plan_lines(table: pd.DataFrame) -> pd.DataFrame:
    """The (sku, from, to, qty) core of a plan table or PLAN.csv."""
    return table[LINE_KEYS + ["qty"]].astype({"sku_id": str, "from_site_id": str, "to_site_id": str, "qty": np.int64})


# ----------------------------------------------------------------------------- decisions a plan must respect


def empty_lines() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sku_id": pd.Series(dtype=str),
            "from_site_id": pd.Series(dtype=str),
            "to_site_id": pd.Series(dtype=str),
            "qty": pd.Series(dtype=np.int64),
        }
    )


def _as_lines(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or frame.empty:
        return empty_lines()
    out = frame[LINE_KEYS + ["qty"]].astype({"sku_id": str, "from_site_id": str, "to_site_id": str})
    return out.astype({"qty": np.int64}).reset_index(drop=True)


@dataclass(frozen=True)
class Commitments:
    """Decisions a new plan must respect (approval workflow).

    ``fixed`` lines (approved, firm or released in this plan) are kept at their
    quantity; ``forbidden`` lines (rejected) are never proposed; ``in_transit``
    lines were released by other plans on the same snapshot: they are moving
    now, so their donors have that much less on hand, their receivers that much
    more in transit, and neither the same move nor its reverse is proposed again
    (no double shipping, no ping-pong).
    """

    fixed: pd.DataFrame = field(default_factory=empty_lines)
    forbidden: pd.DataFrame = field(default_factory=empty_lines)
    in_transit: pd.DataFrame = field(default_factory=empty_lines)

    def __post_init__(self) -> None:
        for name in ("fixed", "forbidden", "in_transit"):
            object.__setattr__(self, name, _as_lines(getattr(self, name)))

    @property
    def empty(self) -> bool:
        return self.fixed.empty and self.forbidden.empty and self.in_transit.empty

    def as_dict(self) -> dict:
        """JSON-ready, so a stored plan records exactly what it was solved around."""
        return {k: getattr(self, k).to_dict(orient="records") for k in ("fixed", "forbidden", "in_transit")}

    @classmethod
    def from_dict(cls, raw: dict) -> Commitments:
        return cls(
            **{
                k: pd.DataFrame(raw.get(k) or [], columns=LINE_KEYS + ["qty"])
                for k in ("fixed", "forbidden", "in_transit")
            }
        )


def add_to_inventory(
    inventory: pd.DataFrame, on_hand: pd.Series | None = None, in_transit: pd.Series | None = None
) -> pd.DataFrame:
    """``inventory`` with quantities (Series on site_id, sku_id) added to on hand (never below 0) and in transit;
    positions it lacks are added."""
    keys = ["site_id", "sku_id"]
    inv = inventory.astype({"site_id": str, "sku_id": str}).set_index(keys)
    empty = pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=keys))
    on_hand = empty if on_hand is None else on_hand
    in_transit = empty if in_transit is None else in_transit
    inv = inv.reindex(inv.index.union(on_hand.index).union(in_transit.index))
    inv["on_hand"] = (inv["on_hand"].fillna(0) + on_hand.reindex(inv.index).fillna(0)).clip(lower=0).astype(np.int64)
    inv["in_transit"] = (inv["in_transit"].fillna(0) + in_transit.reindex(inv.index).fillna(0)).astype(np.int64)
    return inv.reset_index()


def apply_moves(net: Network, moves: pd.DataFrame, consume_capacity: bool = False) -> Network:
    """The network once ``moves`` are under way: donors hold less on hand, receivers more in transit.

    With ``consume_capacity`` the moves also use up their lanes' ``max_units``
    and their receivers' receive capacity (moves that belong to the plan being made).
    """
    moves = _as_lines(moves)
    if moves.empty:
        return net
    keys = ["site_id", "sku_id"]
    out_qty = moves.groupby(["from_site_id", "sku_id"])["qty"].sum().rename_axis(keys)
    in_qty = moves.groupby(["to_site_id", "sku_id"])["qty"].sum().rename_axis(keys)
    changed = {"inventory": add_to_inventory(net.inventory, on_hand=-out_qty, in_transit=in_qty)}
    if consume_capacity:
        lanes = net.lanes.astype({"from_site_id": str, "to_site_id": str}).copy()
        used = moves.groupby(["from_site_id", "to_site_id"])["qty"].sum()
        on_lane = pd.MultiIndex.from_frame(lanes[["from_site_id", "to_site_id"]])
        if "max_units" in lanes:
            lanes["max_units"] = (lanes["max_units"] - used.reindex(on_lane).fillna(0).to_numpy()).clip(lower=0)
        sites = net.sites.astype({"site_id": str}).copy()
        if "receive_capacity_units" in sites:
            got = moves.groupby("to_site_id")["qty"].sum()
            sites["receive_capacity_units"] = (
                sites["receive_capacity_units"] - sites["site_id"].map(got).fillna(0)
            ).clip(lower=0)
        changed.update(lanes=lanes, sites=sites)
    return replace(net, **changed)


def banned(problem: PlanningProblem, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Which moves (position rows ``src`` -> ``dst``) the problem's commitments rule out.

    Out: forbidden lines, fixed lines (kept as they are, not topped up), in-transit
    moves and their reverses, and moves that would make a fixed line's donor
    receive or its receiver ship the same sku (rule 4).
    """
    c = problem.commitments
    if c is None or c.empty or len(src) == 0:
        return np.zeros(len(src), dtype=bool)
    pos = problem.positions
    sku = pos["sku_id"].to_numpy()[src]
    src_site, dst_site = pos["site_id"].to_numpy()[src], pos["site_id"].to_numpy()[dst]
    moving = c.in_transit
    out = pd.concat(
        [
            c.forbidden,
            c.fixed,
            moving,
            moving.rename(columns={"from_site_id": "to_site_id", "to_site_id": "from_site_id"}),
        ]
    )
    drop = pd.MultiIndex.from_arrays([sku, src_site, dst_site]).isin(pd.MultiIndex.from_frame(out[LINE_KEYS]))
    drop |= pd.MultiIndex.from_arrays([dst_site, sku]).isin(
        pd.MultiIndex.from_frame(c.fixed[["from_site_id", "sku_id"]])
    )
    drop |= pd.MultiIndex.from_arrays([src_site, sku]).isin(pd.MultiIndex.from_frame(c.fixed[["to_site_id", "sku_id"]]))
    return np.asarray(drop)


def around(problem: PlanningProblem, commitments: Commitments) -> PlanningProblem:
    """``problem`` planned around ``commitments``: the arcs they rule out are gone (see :func:`banned`)."""
    restricted = replace(problem, commitments=commitments)
    return replace(restricted, arcs=problem.arcs.take(~banned(restricted, problem.arcs.src, problem.arcs.dst)))


def repriced(problem: PlanningProblem, extra_shortage_price: np.ndarray) -> PlanningProblem:
    """The same problem with each position's unit shortage penalty ``p`` raised by the given amount
    (arcs re-pruned for the new prices, decisions kept). Used to price a fill-rate target."""
    positions = problem.positions.assign(p=problem.positions["p"].to_numpy(float) + extra_shortage_price)
    rebuilt = build_problem(
        problem.network, problem.scenario, positions=positions.drop(columns=["site_idx", "sku_code"])
    )
    return around(rebuilt, problem.commitments) if problem.commitments is not None else rebuilt


def problem_with_moves(net: Network, scenario: Scenario, in_transit: pd.DataFrame | None = None) -> PlanningProblem:
    """The planning problem once ``in_transit`` moves (released by earlier plans) are under way, around them."""
    moving = Commitments(in_transit=in_transit)
    return around(build_problem(apply_moves(net, moving.in_transit), scenario), moving)
