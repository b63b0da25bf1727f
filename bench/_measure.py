"""Run one measured step in a fresh process and print JSON (seconds, peak RSS)."""

from __future__ import annotations

import json
import resource
import sys
import time


def network(bundle: str, variant: str):
    """The bundle as a planning network, cached as a pickle beside the bench data (forecasting is not what we time)."""
    import dataclasses
    import pickle
    from pathlib import Path

    import numpy as np

    from rebal_core import services
    from rebal_core.signals.bundle import load_bundle

    cache_dir = Path(__file__).resolve().parents[1] / "data" / "bench" / "cache"  # git-ignored
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir / f"{Path(bundle).resolve().name}.network.pkl"
    net = None
    if cache.exists() and cache.stat().st_mtime > (Path(bundle) / "sites.csv").stat().st_mtime:
        try:
            net = pickle.loads(cache.read_bytes())
        except (ImportError, AttributeError, pickle.UnpicklingError, EOFError):
            net = None  # written by an engine whose modules have moved since: prepare again
    if net is None:
        net = services.network_from_bundle(load_bundle(bundle))
        cache.write_bytes(pickle.dumps(net))
    if variant == "uncoupled":
        # No trucks, lane caps or receive capacities: the problem separates per sku.
        lanes = net.lanes.assign(cost_per_truck=0.0, max_units=np.nan)
        sites = net.sites.assign(receive_capacity_units=np.nan)
        net = dataclasses.replace(net, lanes=lanes, sites=sites)
    return net


def plan_step(bundle: str, variant: str, scenario_json: str, method: str, time_limit: str, repeats: str = "1") -> dict:
    import json
    import statistics

    from rebal_core.decisions.planning import build_problem, evaluate
    from rebal_core.decisions.scenario import Scenario

    net = network(bundle, variant)
    scenario = Scenario.from_mapping(json.loads(scenario_json))
    builds, solves, explained, result = [], [], [], {}
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        problem = build_problem(net, scenario)
        t1 = time.perf_counter()
        if method == "monolithic":
            from rebal_core.decisions.solvers.reference import solve_reference

            ref = solve_reference(problem, time_limit=float(time_limit), build_limit=float(time_limit))
            builds.append(t1 - t0 + ref["build_seconds"])
            solves.append(ref.get("solve_seconds", 0.0))
            explained.append(0.0)
            cost = evaluate(problem, ref["lines"]).network_cost_after if "lines" in ref else float("nan")
            bound = ref.get("bound", float("nan"))
            result = {
                "status": ref["status"],
                "network_cost": cost,
                "gap": (cost - bound) / cost if cost == cost else float("nan"),
                "variables": ref.get("variables"),
            }
        else:
            from rebal_core.decisions.solvers.optimizer import plan

            p = plan(problem, method=method, time_limit=float(time_limit))
            builds.append(t1 - t0)
            solves.append(p.solve_seconds)
            explained.append(time.perf_counter() - t1 - p.solve_seconds)  # scoring and reasons
            result = {
                "status": p.solver_status,
                "network_cost": p.score.network_cost_after,
                "gap": p.gap,
                "lines": int(p.score.after["lines"]),
                "arcs": len(problem.arcs),
                "cost_before": p.score.network_cost_before,
            }
    return {
        "build_s": round(statistics.median(builds), 3),
        "solve_s": round(statistics.median(solves), 3),
        "explain_s": round(statistics.median(explained), 3),
        "total_s": round(statistics.median(b + s + e for b, s, e in zip(builds, solves, explained)), 3),
        **result,
    }


def slider_step(bundle: str) -> dict:
    """Time slider moves on the Scenario lab page against a store holding ``bundle``."""
    import os
    import statistics
    import tempfile
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from rebal_core import services, store

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/slider.db"
        services.import_bundle(engine=store.make_engine(url), source=bundle, name="bench")
        os.environ["REBAL_DATABASE_URL"] = url
        t0 = time.perf_counter()
        at = AppTest.from_file(str(root / "pages" / "4_Scenario_lab.py"), default_timeout=300).run()
        first = time.perf_counter() - t0
        runs = []
        for value in (0.97, 0.96, 0.98, 0.955, 0.975):
            t0 = time.perf_counter()
            at.slider(key="lab-sl").set_value(value).run()
            runs.append(time.perf_counter() - t0)
            assert not at.exception, at.exception
    return {"first_s": round(first, 2), "median_s": round(statistics.median(runs), 2), "runs": len(runs)}


def main() -> None:
    step, *args = sys.argv[1:]
    started = time.perf_counter()
    if step == "import":
        from rebal_core import services, store

        source, url = args
        engine = store.make_engine(url)
        result = services.import_bundle(engine=engine, source=source, name="bench", replace=True)
        extra = {"positions": result.dataset.positions, "demand_rows": result.dataset.demand_rows}
    elif step == "naive-read":
        # Baseline: what a loader without validation or storage costs (pandas defaults, all tables).
        from pathlib import Path

        import pandas as pd

        frames = {p.name: pd.read_csv(p) for p in Path(args[0]).glob("*.csv*")}
        extra = {"rows": sum(len(f) for f in frames.values())}
    elif step == "arrow-read":
        # Baseline for bundles too large for pandas: Arrow's multithreaded CSV parser, all tables, no checks.
        from pathlib import Path

        import pyarrow.csv as pacsv

        tables = {p.name: pacsv.read_csv(p) for p in Path(args[0]).glob("*.csv*")}
        extra = {"rows": sum(t.num_rows for t in tables.values())}
    elif step == "validate":
        from rebal_core.signals.bundle import load_bundle

        b = load_bundle(args[0])
        extra = {"rows": len(b.inventory) + len(b.demand)}
    elif step == "plan":
        extra = plan_step(*args)
    elif step == "slider":
        extra = slider_step(*args)
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step": step, "seconds": round(seconds, 2), "peak_mb": round(peak_mb), **extra}))


if __name__ == "__main__":
    main()
