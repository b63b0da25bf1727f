"""KPI recompute after a filter change on the sample (target <= 0.5 s).

What the Network page redoes when a filter changes: filter the cached
positions, compute network KPIs and the per-site summary for the map.
Baseline in the same run: recomputing every position from scratch
(positions + projection), which a page without caching would do.

    .venv/bin/python bench/bench_kpis.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rebal_core import services, store
from rebal_core.decisions.positions import build_positions, filter_positions, kpis, project, site_summary
from rebal_core.decisions.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int = 20) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = store.make_engine(f"sqlite:///{tmp}/kpi.db")
        sample = ROOT / "data" / "sample"
        if not (sample / "sites.csv").exists():
            services.ensure_sample(engine=engine)
        else:
            services.import_bundle(engine=engine, source=sample, name="sample")
        dataset = store.list_datasets(engine=engine)[0]
        net = services.load_network(engine=engine, dataset_id=dataset.id)
        pos = project(build_positions(net, Scenario()), net.inbound, net.as_of)
        regions = sorted(pos["region"].unique())
        categories = sorted(pos["category"].unique())
        filters = (
            [dict(regions=[r]) for r in regions]
            + [dict(categories=[c]) for c in categories[:3]]
            + [dict(regions=regions[:2], kinds=["store"])]
        )
        i = iter(range(10**9))

        def filter_change():
            f = filters[next(i) % len(filters)]
            shown = filter_positions(pos, **f)
            kpis(shown)
            site_summary(shown, net.sites)

        def from_scratch():
            project(build_positions(net, Scenario()), net.inbound, net.as_of)

        fast, slow = timed(filter_change), timed(from_scratch, repeat=5)
    print(f"\n== KPI recompute on the sample ({len(pos):,} positions), median")
    print(f"  baseline: positions + projection from scratch : {slow * 1000:7.1f} ms")
    print(
        f"  filter change (filter + KPIs + site summary)  : {fast * 1000:7.1f} ms   target <= 500 ms: {'OK' if fast <= 0.5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
