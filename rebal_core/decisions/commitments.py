"""Decisions a re-plan respects: kept (approved, firm, released) and forbidden lines, moves
in transit, and the problem around them.

Part of :mod:`rebal_core.decisions.planning` (which names them all)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from rebal_core.decisions.explain import _as_lines, empty_lines
from rebal_core.decisions.positions import (
    Network,
)
from rebal_core.decisions.problem import LINE_KEYS, PlanningProblem, build_problem
from rebal_core.decisions.scenario import Scenario


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
