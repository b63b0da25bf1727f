"""Import time and peak memory: the sample (first start, forecast included), a 200 x 20,000 bundle
with 7 days of history, and the same network with a full year of daily history (issue 15).

Each step runs in a fresh process so peak RSS is its own. Baselines in the same run: plain
``pandas.read_csv`` of the same files (no validation, no store; Arrow's parser for the year,
which pandas cannot hold) and validation alone. Targets: sample import and forecast <= 60 s
(issue 2); the 7-day large bundle <= 60 s and <= 6 GB (issue 2); the year <= 120 s (issue 15).

    .venv/bin/python bench/bench_import.py [--skip-large] [--year] [--year-our-forecast]

``--year`` builds ``data/bench/year-forecast`` (3.8 GB of CSV, about a minute, once) and imports
it with its ``forecast.csv``; ``--year-our-forecast`` also imports it without one, so Rebal fits
statsforecast on its 850,000 series (minutes: the fitting is measured, not held to the target).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DATA = ROOT / "data" / "bench"
PY = sys.executable


def measure(*args: str) -> dict:
    out = subprocess.run(
        [PY, str(ROOT / "bench" / "_measure.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure(folder: Path, *synth_args: str) -> Path:
    if not (folder / "sites.csv").exists():
        subprocess.run([PY, "-m", "rebal_core", "synth", *synth_args, str(folder)], cwd=ROOT, check=True)
    return folder


def report(label: str, bundle: Path, target_s: float, target_mb: float | None, baseline: str = "naive-read") -> None:
    size_mb = sum(f.stat().st_size for f in bundle.iterdir()) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        naive = measure(baseline, str(bundle))
        valid = measure("validate", str(bundle))
        full = measure("import", str(bundle), url)
    print(
        f"\n== {label}: {bundle.name} ({size_mb:,.0f} MB of CSV, {full['positions']:,} positions, {full['demand_rows']:,} demand rows)"
    )
    parser = "pandas.read_csv" if baseline == "naive-read" else "pyarrow read_csv"
    print(f"  baseline {parser}, no checks : {naive['seconds']:7.2f} s  peak {naive['peak_mb']:6,} MB")
    print(f"  validate only (load_bundle)         : {valid['seconds']:7.2f} s  peak {valid['peak_mb']:6,} MB")
    ok = full["seconds"] <= target_s and (target_mb is None or full["peak_mb"] <= target_mb)
    print(
        f"  import (validate+forecast+store)    : {full['seconds']:7.2f} s  peak {full['peak_mb']:6,} MB   "
        f"target <= {target_s:.0f} s{f' and <= {target_mb:,.0f} MB' if target_mb else ''}: {'OK' if ok else 'MISSED'}"
    )


def main() -> None:
    sample = ensure(ROOT / "data" / "sample")
    report("sample (first start)", sample, 60, None)
    if "--skip-large" not in sys.argv:
        large = ensure(BENCH_DATA / "large", "--sites", "200", "--skus", "20000", "--days", "7", "--seed", "1")
        report("large", large, 60, 6144)
    if "--year" in sys.argv or "--year-our-forecast" in sys.argv:
        os.environ["REBAL_MAX_ROWS"] = str(10**9)  # 111 M demand rows, past the default limit
        year = BENCH_DATA / "year-forecast"
        if not (year / "demand.csv").exists():
            subprocess.run([PY, str(ROOT / "bench" / "year_bundle.py"), str(year), "--with-forecast"], check=True)
        report("a year of daily demand, forecast.csv given", year, 120, None, baseline="arrow-read")
        if "--year-our-forecast" in sys.argv:
            ours = BENCH_DATA / "year"
            ours.mkdir(exist_ok=True)
            for item in year.iterdir():
                if item.name != "forecast.csv" and not (ours / item.name).exists():
                    (ours / item.name).symlink_to(item.resolve())
            report("a year of daily demand, Rebal's forecast", ours, 120, None, baseline="arrow-read")


if __name__ == "__main__":
    main()
