"""A 200 x 20,000 bundle with a full year of daily demand, for the import bench (issue 15).

``synth`` builds its demand as one dense (positions x days) matrix, which does not fit in memory
for 850,000 positions x 365 days; this writes the year position-block by position-block instead.
Sites, skus, inventory, lanes, inbound and counts are the 7-day ``large`` bundle's; each
position's daily demand is Poisson around its ``forecast.csv`` rate, with the sample's weekday
profile and a yearly swing, so the history has the size and shape of real point-of-sale data
(about 107 M rows with sales). ``--with-forecast`` keeps ``forecast.csv`` (the case where the
retailer's demand-planning system supplies the forecast).

    .venv/bin/python bench/year_bundle.py OUT [--days 365] [--with-forecast]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
LARGE = ROOT / "data" / "bench" / "large"
BLOCK = 20_000  # positions a block: 20,000 x 365 float64 draws = 58 MB
WEEKDAY = np.array([0.85, 0.85, 0.9, 0.95, 1.1, 1.3, 1.05])


def ensure_large() -> Path:
    if not (LARGE / "sites.csv").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rebal_core",
                "synth",
                "--sites",
                "200",
                "--skus",
                "20000",
                "--days",
                "7",
                "--seed",
                "1",
                str(LARGE),
            ],
            cwd=ROOT,
            check=True,
        )
    return LARGE


def build(out: Path, days: int = 365, with_forecast: bool = False, seed: int = 7) -> Path:
    source = ensure_large()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("sites", "skus", "inventory", "lanes", "inbound", "counts"):
        shutil.copy(source / f"{name}.csv", out / f"{name}.csv")
    if with_forecast:
        shutil.copy(source / "forecast.csv", out / "forecast.csv")
    shutil.copy(source / "bundle.toml", out / "bundle.toml")
    as_of = pd.Timestamp(
        next(
            line.split('"')[1] for line in (source / "bundle.toml").read_text().splitlines() if line.startswith("as_of")
        )
    )
    rates = pd.read_csv(source / "forecast.csv", dtype={"site_id": str, "sku_id": str})
    dates = pd.date_range(as_of - pd.Timedelta(days=days), periods=days, freq="D")
    day_text = pa.array(dates.strftime("%Y-%m-%d").to_numpy())
    shape = WEEKDAY[dates.dayofweek.to_numpy()] * (
        1 + 0.25 * np.cos(2 * np.pi * (dates.dayofyear.to_numpy() - 200) / 365.25)
    )
    shape = shape / shape[-28:].mean()  # the forecast's rate is the recent level
    rng = np.random.default_rng(seed)
    schema = pa.schema([("date", pa.string()), ("site_id", pa.string()), ("sku_id", pa.string()), ("qty", pa.int64())])
    sites = pa.array(rates["site_id"].to_numpy())
    skus = pa.array(rates["sku_id"].to_numpy())
    rows = 0
    with pacsv.CSVWriter(out / "demand.csv", schema) as writer:
        for start in range(0, len(rates), BLOCK):
            rate = rates["mean_daily"].to_numpy()[start : start + BLOCK]
            qty = rng.poisson(rate[:, None] * shape[None, :])
            pair, day = np.nonzero(qty)
            rows += pair.size
            writer.write_table(
                pa.table(
                    {
                        "date": day_text.take(pa.array(day)),
                        "site_id": sites.take(pa.array(pair + start)),
                        "sku_id": skus.take(pa.array(pair + start)),
                        "qty": pa.array(qty[pair, day].astype(np.int64)),
                    },
                    schema=schema,
                )
            )
    print(f"{out}: {len(rates):,} positions, {rows:,} demand rows over {days} days")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--with-forecast", action="store_true")
    args = parser.parse_args()
    build(args.out, args.days, args.with_forecast)


if __name__ == "__main__":
    main()
