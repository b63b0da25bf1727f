"""The optimizer's per-sku work in buckets of skus: in this process, or on Ray shard actors (issue 15).

The per-sku branch and bound (:func:`rebal_core.decisions.solvers.flow.solve_skus`) is separable:
without the cross-sku capacities (priced by the Lagrangian, on the driver) every sku's plan depends
only on its own arcs. The skus are cut into buckets of ``skus_per_shard`` (contiguous sku codes) and
each bucket is solved on its own; the buckets' plans and bounds add up. The bucketing is the same
in both executors, so a plan made on Ray is identical to the one made here with the same round
counts (a min-cost flow over several buckets at once could break ties differently).

Ray is optional (``requirements-ray.txt``) and imported only when a cluster is asked for:
``REBAL_RAY_ADDRESS`` (an address, or ``local`` for a Ray started on this machine) or the
command line's ``--ray``. OR-Tools objects do not pickle, so a shard receives the problem's arrays
once (through Ray's object store) and rebuilds its flows on each call; a round sends each shard the
round's prices (:class:`rebal_core.decisions.solvers.costs.ArcPrices`: the resources' prices and the
lanes' truck rates, kilobytes) and the arcs' capacities when they changed, and gets back, per bucket,
the arcs its plan uses with their packs (kilobytes: a plan uses few of the arcs), its value and bound,
and its use of each priced resource (lane caps, receive capacities, budget), which the driver adds up
for the subgradient. The shard works out its arcs' costs from its own copy of the problem, bit for bit
the driver's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from rebal_core.cluster import connect, ray_address  # noqa: F401 (ray_address: callers name it here)
from rebal_core.decisions.planning import PlanningProblem
from rebal_core.decisions.solvers.costs import ArcPrices, CostTerms
from rebal_core.decisions.solvers.flow import SkuSolve, solve_skus

SKUS_PER_SHARD = 5_000  # a bucket: enough skus that a call's work dwarfs Ray's 1-2 ms per task

SkuSolver = Callable[..., SkuSolve]  # (problem, cost_per_pack or ArcPrices, deadline=None) -> SkuSolve


def bucket_arcs(problem: PlanningProblem, skus_per_shard: int = SKUS_PER_SHARD) -> list[np.ndarray]:
    """The candidate arcs of each bucket of skus (contiguous sku codes, in arc order); empty buckets left out."""
    sku = problem.positions["sku_code"].to_numpy()[problem.arcs.src]
    bucket = sku // max(1, int(skus_per_shard))
    order = np.argsort(bucket, kind="stable")
    cuts = np.flatnonzero(np.diff(bucket[order])) + 1
    return [part for part in np.split(order, cuts) if len(part)]


def solve_bucket(
    problem: PlanningProblem,
    cost_per_pack: np.ndarray,
    idx: np.ndarray,
    deadline: float | None,
    usage: sp.csc_matrix | None = None,
) -> tuple:
    """One bucket's skus (arcs ``idx``) solved on their own; what a shard sends back, the same here
    and on Ray: the arcs it uses (positions in ``idx``, int32) and their packs, value, bound, nodes,
    unresolved skus, the plan's use of each priced resource (``usage``: the resources' columns of
    these arcs; None when not asked) and seconds. A plan uses a few arcs of many: sent as the used
    ones (200 x 20,000: kilobytes where the dense plan was 14.5 MB)."""
    t = time.perf_counter()
    keep = np.zeros(len(problem.arcs), dtype=bool)
    keep[idx] = True
    r = solve_skus(problem, cost_per_pack, keep=keep, deadline=deadline)
    packs = r.packs[idx]
    used = np.flatnonzero(packs).astype(np.int32)
    summed = None if usage is None else usage @ packs
    return used, _packed(packs[used]), r.value, r.bound, r.nodes, r.unresolved, summed, time.perf_counter() - t


def combine(problem: PlanningProblem, parts: list[tuple[np.ndarray, tuple]]) -> SkuSolve:
    """The buckets' solutions (``solve_bucket``'s) as one: plans side by side, values, bounds and
    resource use added in bucket order (each value and bound counts from ``cost_before``)."""
    packs = np.zeros(len(problem.arcs), dtype=np.int64)
    value = bound = problem.cost_before
    nodes = unresolved = 0
    usage = None
    for idx, (used, amounts, v, b, n, u, summed, _) in parts:
        packs[idx[used]] = amounts
        value += v - problem.cost_before
        bound += b - problem.cost_before
        nodes += n
        unresolved += u
        if summed is not None:
            usage = summed.copy() if usage is None else usage + summed
    return SkuSolve(packs, value, bound, nodes, unresolved, usage)


class _BucketUsage:
    """Per bucket, the priced resources' columns of its arcs (built once per kind of prices): a
    bucket's plan sums its own use of lane caps, receive capacities and the budget."""

    def __init__(self, buckets: list[np.ndarray]) -> None:
        self.buckets = buckets
        self._columns: dict[bool, list[sp.csc_matrix]] = {}

    def of(self, terms: CostTerms, receive: bool) -> list[sp.csc_matrix]:
        if receive not in self._columns:
            usage = terms.resources(receive).usage.tocsc()
            self._columns[receive] = [usage[:, idx] for idx in self.buckets]
        return self._columns[receive]


class InProcess:
    """Every bucket in this process, one after the other (the default)."""

    def __init__(self, skus_per_shard: int = SKUS_PER_SHARD) -> None:
        self.skus_per_shard = skus_per_shard
        self._buckets: tuple[np.ndarray, list[np.ndarray], _BucketUsage] | None = None

    def __call__(
        self, problem: PlanningProblem, cost_per_pack: np.ndarray | ArcPrices, deadline: float | None = None
    ) -> SkuSolve:
        buckets, usage = self._buckets_of(problem)
        columns = None
        if isinstance(cost_per_pack, ArcPrices):
            columns = usage.of(cost_per_pack.terms, cost_per_pack.receive)
            cost_per_pack = cost_per_pack.costs()
        return combine(
            problem,
            [
                (idx, solve_bucket(problem, cost_per_pack, idx, deadline, None if columns is None else columns[i]))
                for i, idx in enumerate(buckets)
            ],
        )

    def _buckets_of(self, problem: PlanningProblem) -> tuple[list[np.ndarray], _BucketUsage]:
        # Views of one problem (other capacities) share their arcs' endpoints; the array itself is
        # kept (not its id, which a later problem's array could reuse).
        if self._buckets is None or self._buckets[0] is not problem.arcs.src:
            buckets = bucket_arcs(problem, self.skus_per_shard)
            self._buckets = (problem.arcs.src, buckets, _BucketUsage(buckets))
        return self._buckets[1], self._buckets[2]


class _Shard:
    """Buckets of skus on one Ray worker: holds the problem, solves each bucket under the costs it is sent."""

    def __init__(self, problem: PlanningProblem, buckets: list[np.ndarray], crash_once: str | None = None) -> None:
        self.problem, self.buckets = problem, buckets
        self.terms: CostTerms | None = None  # built on the first round sent as prices
        self.idx = np.concatenate(buckets)
        self.usage = _BucketUsage(buckets)
        self.crash_once = crash_once  # failure drills: a file path; the first call that finds it absent dies

    def pid(self) -> int:
        return os.getpid()

    def solve(
        self,
        cost: np.ndarray | ArcPrices,
        ub: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
        seconds_left: float | None,
    ) -> list[tuple]:
        """Per bucket, :func:`solve_bucket`'s answer (the arcs used, their packs, value, bound, resource
        use, seconds). ``cost``: the
        round's prices (the arc costs are worked out here, from this worker's copy of the problem)
        or this worker's arcs' costs; ``ub``: which of its arcs' capacities differ from the problem's
        and their new ones (:func:`_capacity_changes`: a re-flow caps the arcs into full resources)."""
        if self.crash_once and not os.path.exists(self.crash_once):
            open(self.crash_once, "w").close()  # noqa: SIM115 - the marker: the retried call lives
            os._exit(1)  # a worker lost mid-round
        problem = self.problem
        n = len(problem.arcs)
        if ub is not None:
            full = problem.arcs.ub.copy()
            bits, nonzero, caps = ub
            changed = self.idx[np.unpackbits(bits, count=len(self.idx)).astype(bool)]
            full[changed] = 0
            full[changed[nonzero]] = caps
            problem = replace(problem, arcs=replace(problem.arcs, ub=full))
        columns = None
        if isinstance(cost, ArcPrices):
            self.terms = self.terms or CostTerms(self.problem)
            costs = cost.costs(self.terms)
            columns = self.usage.of(self.terms, cost.receive)
        else:
            costs = np.zeros(n)
            costs[self.idx] = cost
        deadline = None if seconds_left is None else time.perf_counter() + seconds_left  # this machine's clock
        return [
            solve_bucket(problem, costs, idx, deadline, None if columns is None else columns[i])
            for i, idx in enumerate(self.buckets)
        ]


class RayShards:
    """The buckets on Ray actors (one per worker CPU, buckets dealt round-robin); a lost worker is
    restarted and its call retried.

    ``address``: a Ray cluster's address, or ``"local"`` for a Ray started on this machine
    (``num_cpus`` workers). ``rounds`` keeps, per call, the driver's wall time and the busiest
    worker's solve time: their difference is the driver <-> shard overhead.
    """

    def __init__(
        self,
        problem: PlanningProblem,
        address: str = "local",
        skus_per_shard: int = SKUS_PER_SHARD,
        num_cpus: int | None = None,
        crash_once: str | None = None,
    ) -> None:
        ray = connect(address, num_cpus)  # optional: requirements-ray.txt
        self.ray = ray
        self.problem = problem
        buckets = bucket_arcs(problem, skus_per_shard)
        workers = max(1, min(len(buckets), int(ray.cluster_resources().get("CPU", 1))))
        self.dealt = [buckets[i::workers] for i in range(workers)]
        self.arcs = [np.concatenate(b) for b in self.dealt]
        self.shared = ray.put(problem)  # kept: a restarted actor is rebuilt from it
        actor = ray.remote(num_cpus=1, max_restarts=3, max_task_retries=3)(
            _Shard
        )  # a crash that repeats is a bug: give up
        self.actors = [actor.remote(self.shared, b, crash_once) for b in self.dealt]
        self.rounds: list[tuple[float, float]] = []
        self.sent_bytes: list[int] = []  # per call, to all workers: prices (or costs) and changed capacities
        self.received_bytes: list[int] = []  # per call, from all workers: the arcs used, their packs, resource use

    def __call__(
        self, problem: PlanningProblem, cost_per_pack: np.ndarray | ArcPrices, deadline: float | None = None
    ) -> SkuSolve:
        if problem.arcs.src is not self.problem.arcs.src:
            raise ValueError("these shards hold another problem: make RayShards for it")
        changed = None if problem.arcs.ub is self.problem.arcs.ub else problem.arcs.ub != self.problem.arcs.ub
        t = time.perf_counter()
        left = None if deadline is None else max(0.0, deadline - t)
        sent = cost_per_pack.to_send() if isinstance(cost_per_pack, ArcPrices) else None  # prices, not costs
        payloads = [
            (
                sent if sent is not None else cost_per_pack[idx],
                None if changed is None else _capacity_changes(changed, idx, problem.arcs.ub),
            )
            for idx in self.arcs
        ]
        self.sent_bytes.append(sum(_nbytes(cost) + _nbytes(caps) for cost, caps in payloads))
        calls = [a.solve.remote(cost, caps, left) for a, (cost, caps) in zip(self.actors, payloads)]
        results = self.ray.get(calls)
        self.rounds.append((time.perf_counter() - t, max(sum(r[-1] for r in worker) for worker in results)))
        self.received_bytes.append(sum(_nbytes(part) for worker in results for r in worker for part in r[:2] + r[6:7]))
        parts = [(idx, r) for buckets, worker in zip(self.dealt, results) for idx, r in zip(buckets, worker)]
        return combine(problem, parts)

    def pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a, no_restart=True)
        self.actors = []


def _capacity_changes(
    changed: np.ndarray, arcs: np.ndarray, ub: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A worker's changed capacities for the wire: which of its arcs changed (one bit an arc), and
    the changed ones that are not 0 (their places among the changed, their capacities). A re-flow
    caps every arc into a full resource at what the plan puts on it, and the plan uses few arcs, so
    most changed capacities are 0 (200 x 20,000: 7.3 MB as arc/capacity pairs)."""
    mine = changed[arcs]
    new = ub[arcs[mine]]
    nonzero = np.flatnonzero(new).astype(np.int32)
    return np.packbits(mine), nonzero, _packed(new[nonzero])


def _packed(packs: np.ndarray) -> np.ndarray:
    """Pack counts as 4-byte integers for the wire (they fit; 8 bytes if ever they do not)."""
    return packs.astype(np.int32) if not len(packs) or int(packs.max()) < 2**31 else packs


def _nbytes(payload: np.ndarray | ArcPrices | tuple | None) -> int:
    if payload is None:
        return 0
    if isinstance(payload, tuple):
        return sum(part.nbytes for part in payload if part is not None)
    if isinstance(payload, ArcPrices):
        return payload.lam.nbytes + (0 if payload.truck_rate is None else payload.truck_rate.nbytes)
    return payload.nbytes
