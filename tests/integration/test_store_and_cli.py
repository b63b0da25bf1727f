"""The store (one transaction per import, several datasets) and the command line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rebal_core import services, store
from rebal_core.signals.bundle import BundleInvalid

ROOT = Path(__file__).resolve().parents[2]


def snapshot(engine) -> dict[str, int]:
    return {t: store.count_rows(engine=engine, table=t) for t in ("dataset", *store.BUNDLE_TABLES)}


def test_import_stores_every_table(engine, small_bundle):
    result = services.import_bundle(engine=engine, source=small_bundle, name="Net A")
    d = result.dataset
    assert (d.sites, d.skus) == (8, 40)
    assert store.count_rows(engine=engine, table="demand", dataset_id=d.id) == len(
        pd.read_csv(small_bundle / "demand.csv")
    )
    forecast = store.read_table(engine=engine, dataset_id=d.id, table="forecast")
    assert len(forecast) > 0 and forecast["mean_daily"].ge(0).all()
    sites = store.read_table(engine=engine, dataset_id=d.id, table="sites")
    assert sites["site_id"].map(type).eq(str).all()


def test_datasets_side_by_side_and_name_clash(engine, small_bundle):
    a = services.import_bundle(engine=engine, source=small_bundle, name="A").dataset
    b = services.import_bundle(engine=engine, source=small_bundle, name="B").dataset
    assert {d.name for d in store.list_datasets(engine=engine)} == {"A", "B"}
    with pytest.raises(store.DatasetExists):
        services.import_bundle(engine=engine, source=small_bundle, name="A")
    store.delete_dataset(engine=engine, dataset_id=a.id)
    assert [d.id for d in store.list_datasets(engine=engine)] == [b.id]
    assert store.count_rows(engine=engine, table="inventory", dataset_id=a.id) == 0


def test_failed_import_changes_nothing(engine, small_bundle, bundle_copy):
    services.import_bundle(engine=engine, source=small_bundle, name="Live")
    before = snapshot(engine)
    inv = pd.read_csv(bundle_copy / "inventory.csv", dtype=str)
    inv.loc[5, "on_hand"] = "-1"
    inv.to_csv(bundle_copy / "inventory.csv", index=False)
    with pytest.raises(BundleInvalid):
        services.import_bundle(engine=engine, source=bundle_copy, name="Live", replace=True)
    assert snapshot(engine) == before


def _history(engine) -> dict:
    """Every file under the store's history folder with its bytes (hidden staging folders included)."""
    from rebal_core.store.history import history_root

    root = history_root(engine)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failing_table", ["forecast", "counts"])
def test_failure_while_writing_rolls_back(engine, small_bundle, monkeypatch, failing_table):
    """A crash half-way through storing (after some tables and the demand history were written)
    leaves the store as it was: its rows, and its Parquet history (nothing staged left behind)."""
    services.import_bundle(engine=engine, source=small_bundle, name="Live")
    before, history_before = snapshot(engine), _history(engine)
    assert any(name.endswith("demand.parquet") for name in history_before)
    real = store.database._bulk_insert

    def failing(conn, table_name, *args, **kwargs):
        if table_name == failing_table:
            raise OSError("disk full")
        return real(conn, table_name, *args, **kwargs)

    monkeypatch.setattr(store.database, "_bulk_insert", failing)
    with pytest.raises(OSError):
        services.import_bundle(engine=engine, source=small_bundle, name="Live", replace=True)
    assert snapshot(engine) == before
    assert _history(engine) == history_before


def test_a_history_write_that_fails_leaves_nothing(engine, small_bundle, monkeypatch):
    """The Parquet file is written, then the disk fills: no rows and no hidden staged folder stay."""
    from rebal_core.store import history

    services.import_bundle(engine=engine, source=small_bundle, name="Live")
    before, history_before = snapshot(engine), _history(engine)
    real = history._write

    def half_written(staged, demand):
        real(staged, demand)
        raise OSError("disk full")

    monkeypatch.setattr(history, "_write", half_written)
    with pytest.raises(OSError, match="disk full"):
        services.import_bundle(engine=engine, source=small_bundle, name="Live", replace=True)
    assert snapshot(engine) == before
    assert _history(engine) == history_before


def test_a_commit_that_fails_after_the_history_is_published_takes_it_back(engine, small_bundle):
    """The rename happens inside the transaction; when the commit itself fails the new folder goes and
    the replaced dataset's history comes back (SQLite may give the new dataset the old one's id)."""
    from sqlalchemy import event

    services.import_bundle(engine=engine, source=small_bundle, name="Live")
    before, history_before = snapshot(engine), _history(engine)

    def commit_fails(conn) -> None:
        raise OSError("the database went away at the commit")

    event.listen(engine, "commit", commit_fails)
    try:
        with pytest.raises(OSError):
            services.import_bundle(engine=engine, source=small_bundle, name="Live", replace=True)
    finally:
        event.remove(engine, "commit", commit_fails)
    assert snapshot(engine) == before
    assert _history(engine) == history_before


def test_demand_history_reads_the_same_from_parquet(engine, small_bundle):
    """The store's readers answer from Parquet as they did from SQL rows."""
    import datetime as dt

    from rebal_core.signals.bundle import load_bundle

    d = services.import_bundle(engine=engine, source=small_bundle, name="Parquet").dataset
    from rebal_core.store import history

    assert history.has_history(engine, d.id)
    assert store.count_rows(engine=engine, table="demand", dataset_id=d.id) == d.demand_rows
    raw = load_bundle(small_bundle).demand
    demand = store.read_table(engine=engine, dataset_id=d.id, table="demand")
    assert len(demand) == len(raw) and demand["qty"].sum() == pytest.approx(raw["qty"].sum())
    first, last = store.demand_span(engine=engine, dataset_id=d.id)
    assert (first, last) == (demand["date"].min().date(), demand["date"].max().date())
    one = demand[(demand["site_id"] == demand["site_id"].iloc[0]) & (demand["sku_id"] == demand["sku_id"].iloc[0])]
    position = store.read_demand_history(
        engine=engine, dataset_id=d.id, site_id=one["site_id"].iloc[0], sku_id=one["sku_id"].iloc[0]
    )
    assert position["qty"].tolist() == one.sort_values("date")["qty"].tolist()
    since = last - dt.timedelta(days=6)
    assert (
        len(store.read_demand_since(engine=engine, dataset_id=d.id, since=since))
        == (demand["date"].dt.date >= since).sum()
    )
    store.delete_dataset(engine=engine, dataset_id=d.id)
    assert not history.folder(engine, d.id).exists()


def test_replace_keeps_one_dataset(engine, small_bundle):
    services.import_bundle(engine=engine, source=small_bundle, name="Net")
    services.import_bundle(engine=engine, source=small_bundle, name="Net", replace=True)
    assert len(store.list_datasets(engine=engine)) == 1
    assert store.count_rows(engine=engine, table="sites") == 8


def test_lanes_derived_when_bundle_has_none(engine, bundle_copy):
    (bundle_copy / "lanes.csv").unlink()
    d = services.import_bundle(engine=engine, source=bundle_copy, name="No lanes").dataset
    lanes = store.read_table(engine=engine, dataset_id=d.id, table="lanes")
    assert len(lanes) == 8 * 7 and lanes["derived"].all()


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rebal_core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_cli_validate_ok_and_broken(small_bundle, bundle_copy):
    ok = cli("validate", "--quiet", str(small_bundle))
    assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1].startswith("valid: 8 sites, 40 skus")
    (bundle_copy / "sites.csv").write_text("site_id,name\nA,Alpha\n")
    bad = cli("validate", "--quiet", str(bundle_copy))
    assert bad.returncode == 2
    assert "sites.csv line 1, column kind: required column is missing" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_cli_validate_missing_path_and_garbage_zip(tmp_path):
    missing = cli("validate", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stdout
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    bad = cli("validate", str(junk))
    assert bad.returncode == 2 and "not a readable zip archive" in bad.stdout and "Traceback" not in bad.stderr


def test_cli_import_prints_progress(small_bundle, tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run = cli("import", str(small_bundle), "--name", "CLI net", "--database", url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[import" in run.stderr and "imported dataset" in run.stdout
    again = cli("import", str(small_bundle), "--name", "CLI net", "--database", url)
    assert again.returncode == 2 and "already exists" in again.stdout


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_synth_is_deterministic_and_valid(tmp_path):
    for name in ("a", "b"):
        run = cli("synth", "--sites", "10", "--skus", "30", "--days", "60", "--seed", "11", str(tmp_path / name))
        assert run.returncode == 0, run.stderr
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert (tmp_path / "a" / "forecast.csv").exists()  # short history carries a forecast
    assert cli("validate", "--quiet", str(tmp_path / "a")).returncode == 0


def test_cli_backtest(small_bundle, tmp_path):
    out = tmp_path / "bt.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rebal_core",
            "backtest",
            str(small_bundle),
            "--days",
            "14",
            "--every",
            "7",
            "--time-limit",
            "1",
            "--quiet",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["none", "greedy", "optimize", "hindsight"]
    periods = pd.read_csv(out, encoding="utf-8-sig")
    assert len(periods) == 4 * 2 and {"fill_rate", "lost_value", "transfer_spend"} <= set(periods.columns)
    too_long = subprocess.run(
        [sys.executable, "-m", "rebal_core", "backtest", str(small_bundle), "--days", "400", "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert too_long.returncode == 2 and "needs 456 days of history; the bundle has 150" in too_long.stdout


def _plan_cli(bundle: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rebal_core",
            "plan",
            str(bundle),
            "--out",
            str(out),
            "--method",
            "greedy",
            "--quiet",
            *extra,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "REBAL_CACHE_DIR": str(cache)},
        timeout=300,
    )


def test_cli_plan_takes_an_unchanged_bundle_from_the_cache(bundle_copy, tmp_path):
    cache = tmp_path / "cache"
    first = _plan_cli(bundle_copy, tmp_path / "a.csv", cache)
    assert first.returncode == 0, first.stderr
    assert "time by phase: load and validate" in first.stdout and "forecast" in first.stdout and "solve" in first.stdout
    assert len(list(cache.glob("prepared-*.pkl"))) == 1 and (cache.stat().st_mode & 0o077) == 0
    again = _plan_cli(bundle_copy, tmp_path / "b.csv", cache)
    assert "load prepared bundle from cache" in again.stdout
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # one changed byte in one file: prepared afresh, and the plan follows the new stock
    inv = pd.read_csv(bundle_copy / "inventory.csv")
    inv.loc[0, "on_hand"] = int(inv.loc[0, "on_hand"]) + 500
    inv.to_csv(bundle_copy / "inventory.csv", index=False)
    changed = _plan_cli(bundle_copy, tmp_path / "c.csv", cache)
    assert "load and validate" in changed.stdout and len(list(cache.glob("prepared-*.pkl"))) == 2
    # a damaged entry is prepared again, not trusted; --no-cache never reads it
    for entry in cache.glob("prepared-*.pkl"):
        entry.write_bytes(b"not a pickle")
    damaged = _plan_cli(bundle_copy, tmp_path / "d.csv", cache)
    assert damaged.returncode == 0 and "load and validate" in damaged.stdout
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "d.csv").read_bytes()
    fresh = _plan_cli(bundle_copy, tmp_path / "e.csv", cache, "--no-cache")
    assert fresh.returncode == 0 and "load and validate" in fresh.stdout


def test_cli_plan_refuses_a_broken_bundle_with_its_errors(bundle_copy, tmp_path):
    (bundle_copy / "sites.csv").write_text("site_id,name\nS1,x\n")
    done = _plan_cli(bundle_copy, tmp_path / "x.csv", tmp_path / "cache")
    assert done.returncode == 2 and "no plan was made" in done.stdout and not (tmp_path / "x.csv").exists()


def test_cli_plan_never_reads_a_cache_others_can_write(bundle_copy, tmp_path):
    cache = tmp_path / "cache"
    assert _plan_cli(bundle_copy, tmp_path / "a.csv", cache).returncode == 0
    cache.chmod(0o777)
    again = _plan_cli(bundle_copy, tmp_path / "b.csv", cache)
    assert again.returncode == 0 and "load and validate" in again.stdout


@pytest.mark.parametrize("chunk", [1, 5, 1 << 21])
def test_history_is_written_sorted_by_position_from_any_order_in_any_chunking(tmp_path, monkeypatch, chunk):
    """The Parquet history (issue 15: worked out a chunk of rows at a time) holds every row, sorted
    by site and sku as text, then date, whether the rows came sorted, by date or shuffled; ids
    categorical in another order than the text's, or plain text; dates before 1970 too."""
    import pyarrow.parquet as pq

    import rebal_core.chunks
    from rebal_core.store import history

    monkeypatch.setattr(rebal_core.chunks, "CHUNK_ROWS", chunk)
    rng = np.random.default_rng(chunk)
    n = 300
    demand = pd.DataFrame(
        {
            "site_id": pd.Categorical(rng.choice(["S10", "S9", "A1"], n), categories=["S9", "S10", "A1"]),
            "sku_id": pd.Categorical(rng.choice(["k2", "K1", "k10"], n), categories=["k2", "k10", "K1"]),
            "date": pd.Timestamp("1969-12-20") + pd.to_timedelta(rng.integers(0, 40, n), "D"),
            "qty": rng.integers(0, 9, n).astype(float),
        }
    ).drop_duplicates(["site_id", "sku_id", "date"])
    expected = demand.astype({"site_id": str, "sku_id": str}).sort_values(["site_id", "sku_id", "date"])
    for name, rows in {
        "by position": expected.astype({"site_id": demand["site_id"].dtype, "sku_id": demand["sku_id"].dtype}),
        "by date": demand.sort_values("date"),
        "shuffled": demand.sample(frac=1, random_state=3),
        "text ids": demand.sample(frac=1, random_state=4).astype({"site_id": str, "sku_id": str}),
    }.items():
        folder = tmp_path / f"{name}-{chunk}"
        folder.mkdir()
        history._write(folder, rows.reset_index(drop=True))
        back = pq.read_table(folder / "demand.parquet").to_pandas()
        assert back["site_id"].astype(str).tolist() == expected["site_id"].tolist(), name
        assert back["sku_id"].astype(str).tolist() == expected["sku_id"].tolist(), name
        assert pd.to_datetime(back["date"]).tolist() == expected["date"].tolist(), name
        assert back["qty"].tolist() == expected["qty"].tolist(), name
