"""Arc costs the bound may use (trucks at the full-truck rate) and as plans pay them (slope
scaling), and the cross-sku capacities as a sparse usage matrix.

Part of the optimizer (:mod:`rebal_core.decisions.solvers.optimizer` explains the method)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rebal_core.decisions.planning import (
    Arcs,
    PlanningProblem,
    trucks_for,
)
from rebal_core.errors import CommitmentsInvalid  # noqa: F401 (re-exported: callers name them here)
from rebal_core.progress import Progress, quiet  # noqa: F401


def bound_costs(problem: PlanningProblem, arcs: Arcs) -> np.ndarray:
    """Per-pack arc costs that underestimate the true cost (valid for a lower bound): trucks at the full-truck rate."""
    rate = problem.lanes["truck_rate"].to_numpy(float)[arcs.lane]
    return truck_free_costs(problem, arcs) + arcs.pack * rate * arcs.volume


@dataclass
class Resources:
    """The cross-sku capacities as a sparse usage matrix: units of each resource per pack on each arc."""

    usage: sp.csr_matrix  # resources x arcs
    capacity: np.ndarray
    names: list[str]


def resources(problem: PlanningProblem, arcs: Arcs, receive: bool = True) -> Resources:
    """Lane max units, receive capacities (unless ``receive`` is False) and the budget."""
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
    capped = np.flatnonzero(np.isfinite(rc) & receive)
    if len(capped):
        site_ids, inv = np.unique(site_of[capped], return_inverse=True)
        rows.append(n + inv), cols.append(capped), vals.append(arcs.pack[capped].astype(float))
        caps.append(problem.receive_capacity[site_ids])
        names += [f"receive {x}" for x in sites["site_id"].to_numpy()[site_ids]]
        n += len(site_ids)
    if problem.scenario.budget is not None:
        rows.append(np.full(len(arcs), n)), cols.append(np.arange(len(arcs)))
        vals.append(bound_costs(problem, arcs))
        caps.append(np.array([float(problem.scenario.budget)]))
        names.append("budget")
        n += 1
    if n == 0:
        return Resources(sp.csr_matrix((0, len(arcs))), np.zeros(0), [])
    usage = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, len(arcs)))
    return Resources(usage, np.concatenate(caps), names)


def truck_free_costs(problem: PlanningProblem, arcs: Arcs) -> np.ndarray:
    """Per-pack arc costs without any truck cost (units and the amortized cost per move)."""
    return arcs.pack * arcs.cost_per_unit + problem.scenario.cost_per_move / np.maximum(arcs.ub, 1)


def lane_truck_rates(problem: PlanningProblem, packs: np.ndarray) -> np.ndarray:
    """Dynamic slope scaling: each lane's truck cost per unit of volume as the plan actually pays it.

    Used lanes get ``cost_per_truck x trucks / volume``; unused lanes keep the
    full-truck rate ``cost_per_truck / truck_capacity``. Re-solving with these
    slopes (Kim and Pardalos, 1999) moves volume onto trucks that are running anyway.
    (Pricing paid trucks at zero, "filling" them, was tried and made plans worse.)
    """
    arcs, lanes = problem.arcs, problem.lanes
    rate = lanes["truck_rate"].to_numpy(float).copy()
    cap = lanes["truck_capacity"].to_numpy(float)
    volume = np.bincount(arcs.lane, weights=packs * arcs.pack * arcs.volume, minlength=len(lanes))
    used = (volume > 0) & (rate > 0)
    trucks = trucks_for(volume[used], cap[used])
    rate[used] = lanes["cost_per_truck"].to_numpy(float)[used] * trucks / volume[used]
    return rate


def truck_slopes(problem: PlanningProblem, packs: np.ndarray) -> np.ndarray:
    """Per-pack arc costs of :func:`lane_truck_rates` (the trucks ``packs`` pays)."""
    return _slopes(problem.arcs, lane_truck_rates(problem, packs))


def _slopes(arcs: Arcs, rate: np.ndarray) -> np.ndarray:
    return arcs.pack * arcs.volume * rate[arcs.lane]


class CostTerms:
    """The parts of a problem's per-pack arc costs that prices are added to, computed once per
    problem (on the driver, and once on each Ray shard from its copy of the problem)."""

    def __init__(self, problem: PlanningProblem) -> None:
        self.problem = problem
        self.base = bound_costs(problem, problem.arcs)
        self.plain = truck_free_costs(problem, problem.arcs)
        self._resources: dict[bool, Resources] = {}

    def resources(self, receive: bool) -> Resources:
        if receive not in self._resources:
            self._resources[receive] = resources(self.problem, self.problem.arcs, receive=receive)
        return self._resources[receive]


@dataclass
class ArcPrices:
    """Per-pack arc costs as the search prices them, in a form small enough to send each round:
    which base cost (``"bound"``: trucks at the full-truck rate; ``"plain"``: none), the prices
    ``lam`` of the cross-sku resources (with or without receive capacities) and, for slope
    scaling, each lane's truck rate per unit of volume. A few kilobytes where the arc costs are
    megabytes (200 x 20,000: 1.8 M arcs); :meth:`costs` gives the same numbers bit for bit
    wherever it runs."""

    base: str
    receive: bool
    lam: np.ndarray
    truck_rate: np.ndarray | None = None
    terms: CostTerms | None = None  # the driver's (not sent: a shard uses its own)

    def costs(self, terms: CostTerms | None = None) -> np.ndarray:
        terms = terms or self.terms
        cost = terms.base if self.base == "bound" else terms.plain
        cost = cost + (terms.resources(self.receive).usage.T @ self.lam if len(self.lam) else 0.0)
        if self.truck_rate is not None:
            cost = cost + _slopes(terms.problem.arcs, self.truck_rate)
        return cost

    def with_trucks(self, rate: np.ndarray) -> ArcPrices:
        return ArcPrices("plain", self.receive, self.lam, rate, self.terms)

    def to_send(self) -> ArcPrices:
        return ArcPrices(self.base, self.receive, self.lam, self.truck_rate, None)
