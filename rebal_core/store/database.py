"""The store: SQLModel on SQLite (default) or PostgreSQL (``REBAL_DATABASE_URL``).

Every import is one transaction: a dataset appears whole or not at all, and a
failed import leaves what was stored untouched. Bulk rows bypass the ORM
(``executemany`` on SQLite, ``COPY`` on PostgreSQL) because row-by-row ORM
inserts would take minutes for millions of demand rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, event, func
from sqlmodel import Session, SQLModel, create_engine, delete, select

from rebal_core.errors import DatasetExists, DatasetInUse, DatasetNameInvalid, StoreBusy  # noqa: F401 (re-exported: callers name them here)
from rebal_core.progress import Progress, quiet
from rebal_core.store import history
from rebal_core.store.tables import (
    BUNDLE_TABLES,
    AuditEvent,
    Dataset,
    DatasetPublic,
    DemandRecord,
    SolvedPlan,
)

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
DEFAULT_DB = DATA_DIR / "rebal.db"
CHUNK_ROWS = 200_000


DATASET_NAME_CHARS = 120  # models.Dataset.name


def when_busy(action, attempts: int = 3):
    """Run ``action``; when SQLite reports "database is locked" (another writer held it past the
    30 s busy timeout) try again, then raise :class:`StoreBusy` in plain words, never the raw SQL.
    Safe because every use case is one transaction: a locked one changed nothing."""
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            return action()
        except OperationalError as exc:
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                raise
            if attempt == attempts - 1:
                raise StoreBusy(
                    "the store is busy with another change (an import, most likely) and stayed locked; nothing was changed, try again in a minute"
                ) from None


def plans_on(*, engine: Engine, dataset_id: int) -> list[tuple[str, str]]:
    """(name, status) of every saved plan on a dataset."""
    from rebal_core.store.tables import SavedScenario

    with Session(engine) as session:
        return [
            tuple(r)
            for r in session.exec(
                select(SavedScenario.name, SavedScenario.status)
                .where(SavedScenario.dataset_id == dataset_id)
                .order_by(SavedScenario.name)
            ).all()
        ]


def database_url() -> str:
    return os.environ.get("REBAL_DATABASE_URL") or f"sqlite:///{DEFAULT_DB}"


def make_engine(url: str | None = None) -> Engine:
    """Create the engine and the schema (idempotent)."""
    url = url or database_url()
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        if not db.exists():
            db.touch(
                mode=0o600
            )  # the store holds password hashes and the audit log: its owner's only (SQLite gives -wal/-shm the same mode)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")  # readers (the app) keep reading while an import writes
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA cache_size=-262144")  # 256 MB: primary-key inserts of bulk imports stay in memory
            cur.close()
    else:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    _add_new_columns(engine)
    _audit_append_only(engine)
    return engine


def _model_default(table_name: str, column: str):
    """The pydantic default of a table model's field (SQLModel keeps defaults there, not on the column)."""
    stack = list(SQLModel.__subclasses__())
    while stack:
        model = stack.pop()
        stack.extend(model.__subclasses__())
        if getattr(model, "__tablename__", None) == table_name and column in model.model_fields:
            default = model.model_fields[column].default
            return (
                None
                if default is None or callable(default) or type(default).__name__ == "PydanticUndefinedType"
                else default
            )
    return None


def _add_new_columns(engine: Engine) -> None:
    """Additive schema changes for stores made by an earlier version: columns the models have and the tables lack.

    Only nullable-or-defaulted columns are ever added this way, so old rows stay valid.
    """
    from sqlalchemy import inspect

    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                default = _model_default(table.name, column.name)
                kind = column.type.compile(dialect=engine.dialect)
                literal = (
                    ""
                    if default is None
                    else " DEFAULT " + (f"'{default}'" if isinstance(default, str) else str(default))
                )
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{literal}')


def _audit_append_only(engine: Engine) -> None:
    """Database triggers that keep the audit log append-only, whatever the client.

    SQLite: UPDATE and DELETE refused, and an INSERT whose id exists (``INSERT OR REPLACE``,
    ``REPLACE INTO`` would otherwise delete the old row without firing the DELETE trigger).
    SQLite has no roles: whoever can write the file can drop the table, so the file is the
    owner's only (0600, see :func:`make_engine`). PostgreSQL: UPDATE, DELETE and TRUNCATE
    refused by triggers (``INSERT ... ON CONFLICT DO UPDATE`` fires the UPDATE one); DROP by an
    event trigger when the app's role may create one (a superuser), else by not owning the table.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{op.lower()} BEFORE {op} ON audit_log "
                    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
                )
            conn.exec_driver_sql(
                "CREATE TRIGGER IF NOT EXISTS audit_log_no_replace BEFORE INSERT ON audit_log "
                "WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id) "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION rebal_audit_append_only() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION rebal_audit_append_only()"
            )
            conn.exec_driver_sql(
                "CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                "FOR EACH STATEMENT EXECUTE FUNCTION rebal_audit_append_only()"
            )
            superuser = conn.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar()
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_event_trigger WHERE evtname = 'rebal_audit_no_drop'"
            ).scalar()
            if superuser and not exists:
                conn.exec_driver_sql(
                    "CREATE OR REPLACE FUNCTION rebal_audit_no_drop() RETURNS event_trigger AS $$ BEGIN "
                    "IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() WHERE object_type = 'table' AND object_name = 'audit_log') "
                    "THEN RAISE EXCEPTION 'the audit log is append-only'; END IF; END $$ LANGUAGE plpgsql"
                )
                conn.exec_driver_sql(
                    "CREATE EVENT TRIGGER rebal_audit_no_drop ON sql_drop EXECUTE FUNCTION rebal_audit_no_drop()"
                )


# ----------------------------------------------------------------------------- writing


def _column_lists(frame: pd.DataFrame, columns: list[str]) -> list[list]:
    """Columns as plain Python lists (None for missing), dates as ISO text."""
    out = []
    for col in columns:
        series = frame[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(str)
        if pd.api.types.is_datetime64_any_dtype(series):
            # numpy's day-precision cast is ~10x faster than .dt.strftime on millions of rows
            values = series.to_numpy().astype("datetime64[D]").astype(str).tolist()
        else:
            values = series.tolist()
        if (series.dtype.kind == "f" or series.dtype == object) and series.isna().any():
            values = [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in values]
        out.append(values)
    return out


def _rows(frame: pd.DataFrame, columns: list[str]) -> Iterator[list[tuple]]:
    for start in range(0, len(frame), CHUNK_ROWS):
        part = frame.iloc[start : start + CHUNK_ROWS]
        yield list(zip(*_column_lists(part, columns)))


def _bulk_insert(
    conn, table_name: str, frame: pd.DataFrame, columns: list[str], progress: Callable[[int], None]
) -> None:
    raw = conn.connection.driver_connection
    cursor = raw.cursor()
    try:
        if conn.dialect.name == "postgresql":
            with cursor.copy(f'COPY "{table_name}" ({", ".join(columns)}) FROM STDIN') as copy:
                for chunk in _rows(frame, columns):
                    for row in chunk:
                        copy.write_row(row)
                    progress(len(chunk))
        else:
            sql = f'INSERT INTO "{table_name}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'
            for chunk in _rows(frame, columns):
                cursor.executemany(sql, chunk)
                progress(len(chunk))
    finally:
        cursor.close()


def save_dataset(
    *,
    engine: Engine,
    name: str,
    tables: dict[str, pd.DataFrame],
    as_of: dt.date,
    source: str = "",
    forecast_method: str = "",
    forecast_accuracy: dict | None = None,
    warnings: Iterable[dict] = (),
    rate_card: dict | None = None,
    signals: Iterable[dict] = (),
    replace: bool = False,
    progress: Progress = quiet,
    audit_event: AuditEvent | None = None,
) -> DatasetPublic:
    """Store a dataset's tables in one transaction; raise :class:`DatasetExists` unless ``replace``.

    ``audit_event`` is recorded in the same transaction (its dataset id filled in).
    """
    name = name.strip()
    if not name:
        raise ValueError("a dataset needs a name")
    # Demand history goes to Parquet (store/history.py): written first, outside the transaction,
    # into a hidden folder that becomes the dataset's just before the transaction commits.
    demand = tables.get("demand")
    staged = history.stage(engine, demand) if demand is not None else None
    published = aside = None
    sql_tables = {k: v for k, v in tables.items() if k != "demand"}
    total = sum(len(t) for t in sql_tables.values()) or 1
    written = 0
    progress(0.0, f"demand history written to Parquet ({len(demand) if demand is not None else 0:,} rows)")
    try:
        with engine.begin() as conn:
            existing = conn.execute(select(Dataset.id).where(Dataset.name == name)).scalar_one_or_none()
            if existing is not None:
                if not replace:
                    raise DatasetExists(f"a dataset named {name!r} already exists; choose another name or replace it")
                _delete_rows(conn, existing)
            inventory = tables["inventory"]
            record = Dataset(
                name=name,
                source=source,
                as_of=as_of,
                imported_at=dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
                sites=len(tables["sites"]),
                skus=len(tables["skus"]),
                positions=len(inventory),
                demand_rows=len(demand) if demand is not None else 0,
                forecast_method=forecast_method,
                forecast_accuracy=json.dumps(forecast_accuracy or {}),
                warnings=json.dumps(list(warnings)),
                rate_card=json.dumps(rate_card or {}),
                signals=json.dumps(list(signals), default=str),
            )
            dataset_id = conn.execute(
                Dataset.__table__.insert().values(**record.model_dump(exclude={"id"})).returning(Dataset.__table__.c.id)
            ).scalar_one()
            for key, model in BUNDLE_TABLES.items():
                frame = sql_tables.get(key)
                if frame is None or frame.empty:
                    continue
                columns = [
                    c.name for c in model.__table__.columns if c.name != "dataset_id" and c.name in frame.columns
                ]
                frame = frame.assign(dataset_id=dataset_id)

                def step(n: int, key: str = key) -> None:
                    nonlocal written
                    written += n
                    progress(written / total, f"storing {key} ({written:,} of {total:,} rows)")

                _bulk_insert(conn, model.__tablename__, frame, ["dataset_id", *columns], step)
            if audit_event is not None:
                audit_event.dataset_id, audit_event.object_id = dataset_id, str(dataset_id)
                conn.execute(AuditEvent.__table__.insert().values(**audit_event.model_dump(exclude={"id"})))
            row = conn.execute(select(Dataset).where(Dataset.id == dataset_id)).one()
            if staged is not None:
                (published, aside), staged = history.publish(engine, staged, dataset_id), None
    except BaseException:
        history.discard(staged)
        history.unpublish(published, aside)  # the transaction did not commit: neither does the history
        raise
    history.discard(aside)  # committed: what the dataset's folder held before goes
    if existing is not None and existing != dataset_id:
        history.remove(engine, existing)  # the replaced dataset's history, once its rows are gone for good
    return DatasetPublic.model_validate(row._mapping)


def _delete_rows(conn, dataset_id: int) -> None:
    for model in BUNDLE_TABLES.values():
        conn.execute(delete(model).where(model.dataset_id == dataset_id))
    conn.execute(delete(SolvedPlan).where(SolvedPlan.dataset_id == dataset_id))  # plans of stock that is gone
    conn.execute(delete(Dataset).where(Dataset.id == dataset_id))


def delete_dataset(*, engine: Engine, dataset_id: int, audit_event: AuditEvent | None = None) -> None:
    """Delete a dataset's rows (its scenarios cascade), recording ``audit_event`` in the same transaction;
    then its demand history (a folder left by a failure here is never read: no record points to it)."""
    with engine.begin() as conn:
        _delete_rows(conn, dataset_id)
        if audit_event is not None:
            conn.execute(AuditEvent.__table__.insert().values(**audit_event.model_dump(exclude={"id"})))
    history.remove(engine, dataset_id)


# ----------------------------------------------------------------------------- reading


def list_datasets(*, engine: Engine) -> list[DatasetPublic]:
    with Session(engine) as session:
        rows = session.exec(select(Dataset).order_by(Dataset.imported_at.desc(), Dataset.id.desc())).all()
        return [DatasetPublic.model_validate(r) for r in rows]


def get_dataset(*, engine: Engine, dataset_id: int) -> DatasetPublic | None:
    with Session(engine) as session:
        row = session.get(Dataset, dataset_id)
        return DatasetPublic.model_validate(row) if row else None


def find_dataset(*, engine: Engine, name: str) -> DatasetPublic | None:
    with Session(engine) as session:
        row = session.exec(select(Dataset).where(Dataset.name == name)).first()
        return DatasetPublic.model_validate(row) if row else None


def read_table(*, engine: Engine, dataset_id: int, table: str) -> pd.DataFrame:
    """One bundle table of a dataset as a DataFrame (dates parsed, no dataset_id column)."""
    if table == "demand" and history.has_history(engine, dataset_id):
        return history.read_demand(engine, dataset_id)
    model = BUNDLE_TABLES[table]
    query = select(model).where(model.dataset_id == dataset_id)
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame = frame.drop(columns=["dataset_id"])
    for col in ("date", "eta"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col])
    return frame


def read_demand_history(*, engine: Engine, dataset_id: int, site_id: str, sku_id: str) -> pd.DataFrame:
    """Daily demand of one position (missing days are zero, as the contract says)."""
    if history.has_history(engine, dataset_id):
        return history.read_position(engine, dataset_id, site_id, sku_id)
    query = select(DemandRecord.date, DemandRecord.qty).where(
        DemandRecord.dataset_id == dataset_id, DemandRecord.site_id == site_id, DemandRecord.sku_id == sku_id
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.sort_values("date").reset_index(drop=True)


def count_rows(*, engine: Engine, table: str, dataset_id: int | None = None) -> int:
    if table == "demand" and dataset_id is not None and history.has_history(engine, dataset_id):
        return history.rows(engine, dataset_id)
    model = BUNDLE_TABLES.get(table, Dataset)
    query = select(func.count()).select_from(model)
    if dataset_id is not None and model is not Dataset:
        query = query.where(model.dataset_id == dataset_id)
    with Session(engine) as session:
        return int(session.exec(query).one())


def read_demand_since(*, engine: Engine, dataset_id: int, since: dt.date) -> pd.DataFrame:
    """Demand rows of a dataset from ``since`` on (recent evidence without reading the whole history)."""
    if history.has_history(engine, dataset_id):
        return history.read_since(engine, dataset_id, since)
    query = select(DemandRecord.site_id, DemandRecord.sku_id, DemandRecord.date, DemandRecord.qty).where(
        DemandRecord.dataset_id == dataset_id, DemandRecord.date >= since
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def demand_span(*, engine: Engine, dataset_id: int) -> tuple[dt.date, dt.date] | None:
    """First and last day of a dataset's demand history (one indexed query, not the whole history)."""
    if history.has_history(engine, dataset_id):
        return history.span(engine, dataset_id)
    with Session(engine) as session:
        first, last = session.exec(
            select(func.min(DemandRecord.date), func.max(DemandRecord.date)).where(
                DemandRecord.dataset_id == dataset_id
            )
        ).one()
    if first is None:
        return None
    as_date = lambda v: v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])  # noqa: E731 - SQLite gives text
    return as_date(first), as_date(last)


def approved_adjustments(*, engine: Engine, dataset_id: int) -> pd.DataFrame:
    """Approved stock adjustments of a dataset (site_id, sku_id, adjustment): they correct its on-hand for every plan."""
    from rebal_core.store.tables import StockAdjustment

    query = select(StockAdjustment.site_id, StockAdjustment.sku_id, StockAdjustment.adjustment).where(
        StockAdjustment.dataset_id == dataset_id, StockAdjustment.status == "approved"
    )
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def adjustment_stamp(*, engine: Engine, dataset_id: int) -> str:
    """Changes whenever an adjustment of the dataset is decided (cache keys of the network use it)."""
    from rebal_core.store.tables import StockAdjustment

    query = select(func.count(), func.max(StockAdjustment.decided_at)).where(
        StockAdjustment.dataset_id == dataset_id, StockAdjustment.status == "approved"
    )
    with engine.connect() as conn:
        n, last = conn.execute(query).one()
    return f"{n}:{last}"
