"""Run one measured step in a fresh process and print JSON (seconds, peak RSS)."""

from __future__ import annotations

import json
import resource
import sys
import time


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
    elif step == "validate":
        from rebal_core.bundle import load_bundle

        b = load_bundle(args[0])
        extra = {"rows": len(b.inventory) + len(b.demand)}
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step": step, "seconds": round(seconds, 2), "peak_mb": round(peak_mb), **extra}))


if __name__ == "__main__":
    main()
