"""The optimizer's per-sku flows on a local Ray with 2 workers against in-process (issue 15).

Same problem, same round counts (the search completes its rounds; the clock never cuts it), so
both runs make the same plan: the bench checks it. Prints wall times, the flows' share, the
driver <-> shard overhead per round, and the capacity model's inputs (seconds per sku per flow
call, calls per plan, bytes per round) with its projection for larger networks and more workers.

    PYTHONPATH=. .venv/bin/python bench/bench_ray.py [large|medium|sample] [--skus-per-shard N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = {"large": ROOT / "data/bench/large", "medium": ROOT / "data/bench/medium", "sample": ROOT / "data/sample"}


class Timed:
    """A sku solver that records how long each call takes (around the real one)."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, problem, cost, deadline=None):
        t = time.perf_counter()
        out = self.inner(problem, cost, deadline=deadline)
        self.calls.append(time.perf_counter() - t)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("network", nargs="?", default="large", choices=list(BUNDLES))
    ap.add_argument("--skus-per-shard", type=int, default=None)
    opts = ap.parse_args()
    import ray

    from bench._measure import network
    from rebal_core.decisions.planning import build_problem
    from rebal_core.decisions.scenario import Scenario
    from rebal_core.decisions.solvers.method import plan
    from rebal_core.decisions.solvers.shards import SKUS_PER_SHARD, InProcess, RayShards, bucket_arcs

    net = network(str(BUNDLES[opts.network]), "as is")
    problem = build_problem(net, Scenario())
    n_skus = int(problem.positions["sku_code"].max()) + 1
    per_shard = opts.skus_per_shard or min(SKUS_PER_SHARD, max(1, n_skus // 4))  # >= 4 buckets for 2 workers
    buckets = bucket_arcs(problem, per_shard)
    arcs = len(problem.arcs)
    print(
        f"{opts.network}: {len(net.sites)} sites x {n_skus:,} skus, {len(problem.positions):,} positions, "
        f"{arcs:,} candidate arcs; {len(buckets)} buckets of {per_shard:,} skus"
    )
    rounds = dict(time_limit=0.001, reproducible=True)

    here = Timed(InProcess(per_shard))
    t = time.perf_counter()
    a = plan(problem, skus=here, **rounds)
    wall_here = time.perf_counter() - t
    flows_here = sum(here.calls)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t = time.perf_counter()
    shards = RayShards(problem, "local", skus_per_shard=per_shard)
    start = time.perf_counter() - t
    there = Timed(shards)
    t = time.perf_counter()
    b = plan(problem, skus=there, **rounds)
    wall_ray = time.perf_counter() - t
    flows_ray = sum(there.calls)
    overhead = [d - w for d, w in shards.rounds[1:]]  # the first call also waits for the actors to start
    sent, received = shards.sent_bytes, shards.received_bytes
    shards.close()
    ray.shutdown()

    same = np.array_equal(
        a.table[["sku_id", "from_site_id", "to_site_id", "qty"]].to_numpy(),
        b.table[["sku_id", "from_site_id", "to_site_id", "qty"]].to_numpy(),
    ) and abs(a.lower_bound - b.lower_bound) <= 1e-9 * max(1.0, abs(a.lower_bound))
    calls = len(here.calls)
    per_sku = flows_here / calls / n_skus
    print(f"in process : plan {wall_here:6.1f} s, of it per-sku flows {flows_here:6.1f} s in {calls} calls")
    print(
        f"Ray, 2 workers: plan {wall_ray:6.1f} s, of it per-sku flows {flows_ray:6.1f} s (actors start {start:.1f} s);"
        f" speed-up on the flows {flows_here / flows_ray:.2f}x, on the plan {wall_here / wall_ray:.2f}x"
    )
    if overhead:
        print(
            f"driver <-> shard overhead per round: median {np.median(overhead) * 1000:.0f} ms"
            f" (max {max(overhead) * 1000:.0f} ms) over {len(overhead)} rounds;"
            f" data out per call {min(sent) / 1e3:,.1f} kB (prices only) to {max(sent) / 1e3:,.1f} kB (a re-flow's"
            f" changed capacities); arc costs would be {arcs * 8 / 1e6:.1f} MB;"
            f" back per call {min(received) / 1e3:,.1f} to {max(received) / 1e3:,.1f} kB (the arcs the plans use and the"
            f" buckets' resource use; dense plans would be {arcs * 8 / 1e6:.1f} MB)"
        )
    print(f"same plan and bound: {same}; network cost {a.score.network_cost_after:,.0f}, gap {a.gap:.2%}")
    serial = wall_here - flows_here
    print(
        f"capacity model inputs: {per_sku * 1e3:.3f} ms per sku per flow call ({arcs / n_skus:.0f} arcs per sku),"
        f" {calls} calls per plan, the rest on the driver {serial:.1f} s"
    )
    for workers in (2,):
        predicted = serial + calls * (per_sku * n_skus / workers + float(np.median(overhead) if overhead else 0.0))
        print(f"model for this network on {workers} workers: {predicted:.1f} s (measured {wall_ray:.1f} s)")


if __name__ == "__main__":
    main()
