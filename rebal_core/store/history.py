"""Demand history in Parquet beside the database (issue 15): one folder a dataset.

Millions of daily demand rows are the one table that outgrows SQL rows (about 200,000 rows/s
into SQLite; a national network has billions). They are kept as Parquet, sorted by site, sku and
date (a position's history is a few row groups), read with pyarrow; the database keeps everything
else: the dataset's record, scenarios, plans, decisions and the audit log.

All or nothing with the import: the file is written to a hidden folder, which is renamed to the
dataset's folder inside the import's transaction, before it commits; if the transaction fails the
folder is removed. A process killed between the rename and the commit leaves a folder no dataset
owns: never read (a dataset's record is the only way in), and replaced if its id is used again.

Where: next to an SQLite file (``rebal.db`` -> ``rebal-history/``), else ``REBAL_HISTORY_DIR``
(or ``data/history``). Several app replicas need it on a shared file system, as they share the
database.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq
from sqlalchemy import Engine

from rebal_core.chunks import row_chunks

HISTORY_DIR_ENV = "REBAL_HISTORY_DIR"
ROW_GROUP_ROWS = 1_000_000
COLUMNS = ["site_id", "sku_id", "date", "qty"]


def history_root(engine: Engine) -> Path:
    """The folder that holds the datasets' history folders for this store."""
    if engine.dialect.name == "sqlite" and engine.url.database and engine.url.database != ":memory:":
        db = Path(engine.url.database)
        return db.with_name(f"{db.stem}-history")
    from rebal_core.store.database import DATA_DIR

    return Path(os.environ.get(HISTORY_DIR_ENV) or DATA_DIR / "history")


def folder(engine: Engine, dataset_id: int) -> Path:
    return history_root(engine) / f"dataset-{int(dataset_id)}"


def has_history(engine: Engine, dataset_id: int) -> bool:
    """Whether the dataset's demand is in Parquet (datasets imported before issue 15 keep it in SQL)."""
    return (folder(engine, dataset_id) / "demand.parquet").exists()


def stage(engine: Engine, demand: pd.DataFrame) -> Path:
    """Write ``demand`` (site_id, sku_id, date, qty) to a hidden folder; :func:`publish` makes it a dataset's.

    Rows are sorted by site and sku as text, then date (a position's history is a few row
    groups), and written a row group at a time from the ids' codes: a year of a national
    network is a hundred million rows, which as Python strings would not fit in memory.
    A write that fails leaves no folder behind."""
    root = history_root(engine)
    root.mkdir(parents=True, exist_ok=True)
    staged = root / f".staged-{uuid.uuid4().hex}"
    staged.mkdir()
    try:
        _write(staged, demand)
    except BaseException:
        discard(staged)
        raise
    return staged


def _write(staged: Path, demand: pd.DataFrame) -> None:
    # Everything a row group needs is worked out for its rows alone, from the ids' codes and the
    # dates as they are: whole-column steps (days, ranks, sort keys) took a fresh gigabyte each, 14 s
    # of a year's 24 s write on this machine, most of it page faults.
    site_ids, site_rank, site = _text_codes(demand["site_id"])
    sku_ids, sku_rank, sku = _text_codes(demand["sku_id"])
    dates = demand["date"]  # typed already when it comes from a bundle: not parsed again
    when = (dates if pd.api.types.is_datetime64_dtype(dates) else pd.to_datetime(dates)).to_numpy()
    qty = demand["qty"].to_numpy(np.float64)
    n_sku = len(sku_ids)

    def day(rows: slice | np.ndarray) -> np.ndarray:
        return when[rows].astype("datetime64[D]").view(np.int64).astype(np.int32)  # the day a timestamp falls on

    def key(rows: slice) -> np.ndarray:
        pair = site_rank[site[rows]].astype(np.int64) * n_sku + sku_rank[sku[rows]]
        return pair << 32 | (day(rows).astype(np.int64) - np.iinfo(np.int32).min)

    order, last = None, None
    for rows in row_chunks(len(when)):  # sorted already (an export by position)? chunk by chunk
        part = key(rows)
        if (last is not None and part[0] < last) or not bool((part[1:] >= part[:-1]).all()):
            order = np.argsort(np.concatenate([key(r) for r in row_chunks(len(when))]), kind="stable")
            break
        last = part[-1]
    # Ids go in as dictionary codes (Parquet's own encoding of them: no strings built) and, with
    # no Arrow schema stored, read back as plain text.
    text = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema([("site_id", text), ("sku_id", text), ("date", pa.date32()), ("qty", pa.float64())])
    with pq.ParquetWriter(staged / "demand.parquet", schema, compression="zstd", store_schema=False) as writer:
        for lo in range(0, max(len(when), 1), ROW_GROUP_ROWS):
            rows = slice(lo, lo + ROW_GROUP_ROWS) if order is None else order[lo : lo + ROW_GROUP_ROWS]
            writer.write_table(
                pa.table(
                    [
                        pa.DictionaryArray.from_arrays(pa.array(site_rank[site[rows]], pa.int32()), site_ids),
                        pa.DictionaryArray.from_arrays(pa.array(sku_rank[sku[rows]], pa.int32()), sku_ids),
                        pa.array(day(rows), pa.int32()).cast(pa.date32()),
                        pa.array(qty[rows], pa.float64()),
                    ],
                    schema=schema,
                )
            )


def _text_codes(ids: pd.Series) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Distinct ids sorted as text, each category's position among them, and each row's category."""
    cat = ids if isinstance(ids.dtype, pd.CategoricalDtype) else ids.astype(str).astype("category")
    names = cat.cat.categories.astype(str).to_numpy()
    rank = np.argsort(np.argsort(names, kind="stable")).astype(np.int32)
    return pa.array(np.sort(names), pa.string()), rank, cat.cat.codes.to_numpy()


def publish(engine: Engine, staged: Path, dataset_id: int) -> tuple[Path, Path | None]:
    """Rename the staged folder to the dataset's (inside the import's transaction, before it commits).

    A folder already there (a replaced dataset whose id came back, or one no record owns) is moved
    aside, not deleted: :func:`unpublish` puts it back if the transaction fails, :func:`discard`
    removes it once it has committed. Returns (published, aside)."""
    target = folder(engine, dataset_id)
    aside = None
    if target.exists():
        aside = target.with_name(f".replaced-{uuid.uuid4().hex}")
        os.replace(target, aside)
    os.replace(staged, target)
    return target, aside


def unpublish(published: Path | None, aside: Path | None) -> None:
    """The transaction failed: remove what was published and put back what was there."""
    discard(published)
    if aside is not None and published is not None and aside.exists():
        os.replace(aside, published)


def discard(path: Path | None) -> None:
    """Remove a staged folder, or one moved aside once its replacement has committed."""
    if path is not None and path.exists():
        shutil.rmtree(path, ignore_errors=True)


def remove(engine: Engine, dataset_id: int) -> None:
    """After a dataset's rows are deleted (committed): its history goes too."""
    discard(folder(engine, dataset_id))


def _dataset(engine: Engine, dataset_id: int) -> pds.Dataset:
    return pds.dataset(folder(engine, dataset_id) / "demand.parquet", format="parquet")


def _frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def read_demand(engine: Engine, dataset_id: int) -> pd.DataFrame:
    """Every demand row of the dataset (site_id, sku_id, date, qty)."""
    return _frame(_dataset(engine, dataset_id).to_table(columns=COLUMNS))


def read_position(engine: Engine, dataset_id: int, site_id: str, sku_id: str) -> pd.DataFrame:
    """One position's daily demand (date, qty), sorted by date."""
    condition = (pc.field("site_id") == str(site_id)) & (pc.field("sku_id") == str(sku_id))
    frame = _frame(_dataset(engine, dataset_id).to_table(columns=["date", "qty"], filter=condition))
    return frame.sort_values("date").reset_index(drop=True)


def read_since(engine: Engine, dataset_id: int, since: dt.date) -> pd.DataFrame:
    """Demand rows from ``since`` on."""
    condition = pc.field("date") >= pa.scalar(since, pa.date32())
    return _frame(_dataset(engine, dataset_id).to_table(columns=COLUMNS, filter=condition))


def span(engine: Engine, dataset_id: int) -> tuple[dt.date, dt.date] | None:
    """First and last day, from the row groups' statistics (no data read)."""
    meta = pq.ParquetFile(folder(engine, dataset_id) / "demand.parquet").metadata
    column = meta.schema.names.index("date")
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is not None and stats.has_min_max:
            lows.append(stats.min)
            highs.append(stats.max)
    return (min(lows), max(highs)) if lows else None


def rows(engine: Engine, dataset_id: int) -> int:
    return pq.ParquetFile(folder(engine, dataset_id) / "demand.parquet").metadata.num_rows
