"""Use cases that tie loading, forecasting and the store together (no UI here)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import hashlib
import json
import logging
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from rebal_core import store
from rebal_core.decisions.planning import add_to_inventory
from rebal_core.decisions.positions import Network
from rebal_core.errors import PlanningBlocked
from rebal_core.governance.identity import Actor
from rebal_core.progress import Progress, quiet, stage  # noqa: F401
from rebal_core.signals.bundle import Bundle, Finding, load_bundle
from rebal_core.signals.forecast import forecast_demand, with_measured_spread
from rebal_core.signals.geo import RateCard, derive_lanes
from rebal_core.signals.quality import FINDING_COLUMNS, blocking, check_signals
from rebal_core.signals.sample import SynthConfig, synthesize
from rebal_core.store.audit import now
from rebal_core.store.database import StoreBusy, when_busy  # noqa: F401 - pages retry a busy store through services, not the store
from rebal_core.store.tables import AuditEvent, DatasetPublic

SAMPLE_NAME = "Sample network"
SAMPLE_DIR = store.DATA_DIR / "sample"
SAMPLE_CONFIG = SynthConfig()
FIRST_START = Actor("system:first-start", "system")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers without a passwd entry
        return "unknown"


CLI = Actor(f"cli:{_os_user()}", "admin")  # whoever runs the command line holds the store's credentials anyway


@dataclass
class ImportResult:
    dataset: DatasetPublic
    warnings: list[Finding]
    seconds: float
    signals: pd.DataFrame  # signal-quality findings (signals.check_signals)
    deleted_plans: list[tuple[str, str]] = dataclasses.field(
        default_factory=list
    )  # (name, status) deleted with a replaced dataset


def bundle_tables(bundle: Bundle, progress: Progress = quiet) -> tuple[dict[str, pd.DataFrame], str, dict | None]:
    """The tables to store for a bundle: forecast computed and lanes derived when the bundle has none."""
    tables: dict[str, pd.DataFrame] = {
        "sites": bundle.sites,
        "skus": bundle.skus,
        "inventory": bundle.inventory,
        "demand": bundle.demand,
        "inbound": bundle.inbound.reset_index(names="line").assign(line=lambda f: f["line"] + 2),
        "counts": bundle.counts.reset_index(names="line").assign(line=lambda f: f["line"] + 2),
    }
    if bundle.forecast is not None:
        given, calibration = with_measured_spread(bundle.forecast, bundle.demand, bundle.as_of)
        tables["forecast"] = given.assign(method="forecast.csv", pattern="")
        method, accuracy = "given in forecast.csv", ({"calibration": calibration} if calibration else None)
    else:
        result = forecast_demand(bundle.demand, bundle.as_of, progress=progress)
        tables["forecast"] = result.table
        method, accuracy = result.method, (result.accuracy.as_dict() if result.accuracy else None)
    if bundle.lanes is not None:
        tables["lanes"] = bundle.lanes.assign(derived=False)
    else:
        tables["lanes"] = derive_lanes(bundle.sites, bundle.rate_card).drop(columns=["road_km"]).assign(derived=True)
    return tables, method, accuracy


def import_bundle(
    *,
    engine: Engine,
    source: str | Path,
    name: str,
    replace: bool = False,
    progress: Progress = quiet,
    actor: Actor = CLI,
) -> ImportResult:
    """Validate, forecast and store a bundle as dataset ``name`` (all or nothing), audited as ``actor``.

    Raises :class:`rebal_core.signals.bundle.BundleInvalid` for bad input and
    :class:`rebal_core.store.database.DatasetExists` for a name clash without ``replace``;
    in both cases nothing stored changes.
    """
    actor.require("import_data")
    started = time.perf_counter()
    if not name.strip() or len(name.strip()) > store.DATASET_NAME_CHARS:
        raise store.DatasetNameInvalid(
            f"a dataset name needs 1 to {store.DATASET_NAME_CHARS} characters; got {len(name.strip())}"
        )
    existing = store.find_dataset(engine=engine, name=name.strip())
    if not replace and existing is not None:
        raise store.DatasetExists(f"a dataset named {name.strip()!r} already exists; choose another name or replace it")
    orphaned = _replaceable(engine, actor, existing) if replace and existing is not None else []
    bundle = load_bundle(source, progress=stage(progress, 0.0, 0.3))
    tables, method, accuracy = bundle_tables(bundle, stage(progress, 0.3, 0.65))
    progress(0.65, "checking signal quality")
    findings = signal_findings(bundle, tables["forecast"])
    dataset = store.save_dataset(
        engine=engine,
        name=name,
        tables=tables,
        as_of=bundle.as_of,
        source=Path(source).name,
        forecast_method=method,
        forecast_accuracy=accuracy,
        warnings=[w.as_row() for w in bundle.warnings],
        rate_card=bundle.rate_card.as_dict(),
        signals=findings.to_dict(orient="records"),
        replace=replace,
        progress=stage(progress, 0.7, 1.0),
        audit_event=AuditEvent(
            at=now(),
            username=actor.username,
            role=actor.role,
            action="data_imported",
            object_type="dataset",
            summary=f"imported {Path(source).name} as {name.strip()!r}"
            + (" (replacing the dataset of that name)" if replace else "")
            + (
                f"; deleted {len(orphaned)} saved plan(s) with it: {', '.join(repr(n) for n, _ in orphaned)}"
                if orphaned
                else ""
            )
            + f": {len(tables['sites'])} sites, {len(tables['skus'])} skus, {len(tables['inventory'])} positions, {len(bundle.warnings)} warning(s), "
            + f"{len(blocking(findings))} critical signal finding(s)",
            after=json.dumps(
                {
                    "sites": len(tables["sites"]),
                    "skus": len(tables["skus"]),
                    "positions": len(tables["inventory"]),
                    "as_of": str(bundle.as_of),
                }
            ),
        ),
    )
    _solve_ahead(engine, dataset.id)
    return ImportResult(dataset, bundle.warnings, time.perf_counter() - started, findings, orphaned)


def _solve_ahead(engine: Engine, dataset_id: int) -> None:
    """After the import committed: the lab's grid of scenarios solved in the background (issue 24).
    A worker that cannot start costs the meeting its head start, never the import."""
    from rebal_core.services import presolve  # it plans with this module's networks: imported here

    try:
        presolve.submit(engine=engine, dataset_id=dataset_id)
    except Exception:  # noqa: BLE001 - logged; the import stands
        logging.getLogger(__name__).exception("could not start solving the scenario grid of dataset %s", dataset_id)


def ensure_sample(*, engine: Engine, progress: Progress = quiet) -> DatasetPublic | None:
    """On first start (empty store) generate the sample bundle and import it; else do nothing."""
    if store.list_datasets(engine=engine):
        return None
    if not (SAMPLE_DIR / "sites.csv").exists():
        progress(0.0, "generating the sample network")
        synthesize(SAMPLE_DIR, SAMPLE_CONFIG)
    return import_bundle(
        engine=engine, source=SAMPLE_DIR, name=SAMPLE_NAME, progress=progress, actor=FIRST_START
    ).dataset


def load_network(*, engine: Engine, dataset_id: int) -> Network:
    """Everything planning needs of a stored dataset."""
    dataset = store.get_dataset(engine=engine, dataset_id=dataset_id)
    if dataset is None:
        raise LookupError(f"no dataset with id {dataset_id}")
    net = _network(lambda t: store.read_table(engine=engine, dataset_id=dataset_id, table=t), dataset.as_of)
    return with_adjustments(net, store.approved_adjustments(engine=engine, dataset_id=dataset_id))


def with_adjustments(net: Network, adjustments: pd.DataFrame) -> Network:
    """The network with approved count adjustments booked: on hand corrected to what was counted."""
    if adjustments.empty:
        return net
    delta = adjustments.astype({"site_id": str, "sku_id": str}).groupby(["site_id", "sku_id"])["adjustment"].sum()
    return dataclasses.replace(net, inventory=add_to_inventory(net.inventory, on_hand=delta))


def _network(table: Callable[[str], pd.DataFrame], as_of) -> Network:
    """The planning tables, however they are read."""
    return Network(*(table(t) for t in ("sites", "skus", "inventory", "forecast", "inbound", "lanes")), as_of=as_of)


def demand_history(
    *, engine: Engine, dataset_id: int, site_id: str | None = None, sku_id: str | None = None
) -> pd.DataFrame:
    """A dataset's demand rows: all of them (backtest), or one position's (its projection chart)."""
    if site_id is None and sku_id is None:
        return store.read_table(engine=engine, dataset_id=dataset_id, table="demand")
    return store.read_demand_history(engine=engine, dataset_id=dataset_id, site_id=site_id, sku_id=sku_id)


def demand_span(*, engine: Engine, dataset_id: int) -> tuple[dt.date, dt.date] | None:
    """First and last day of demand history: what a backtest can replay, known before reading it."""
    return store.demand_span(engine=engine, dataset_id=dataset_id)


def snapshots_of(*, engine: Engine, dataset: DatasetPublic, site_ids: set[str]) -> list[DatasetPublic]:
    """Stored datasets that are snapshots of the same network (the same sites); the sites
    table is small, so it is compared before any other snapshot's network is loaded."""
    return [
        d
        for d in store.list_datasets(engine=engine)
        if d.id == dataset.id
        or set(store.read_table(engine=engine, dataset_id=d.id, table="sites")["site_id"].astype(str)) == site_ids
    ]


def dataset_warnings(dataset: DatasetPublic) -> pd.DataFrame:
    return pd.DataFrame(
        json.loads(dataset.warnings or "[]"), columns=["severity", "table", "line", "column", "message"]
    )


def rate_card_of(dataset: DatasetPublic) -> RateCard:
    return RateCard.from_mapping(json.loads(dataset.rate_card or "{}"))


BUSY_PLAN_STATES = ("in_review", "approved", "released")


def _replaceable(engine: Engine, actor: Actor, existing: DatasetPublic) -> list[tuple[str, str]]:
    """The saved plans a replace would delete with the dataset; refused while any is under way,
    and an admin's decision otherwise (their decisions and audit trail go with them)."""
    plans = store.plans_on(engine=engine, dataset_id=existing.id)
    busy = [(n, st) for n, st in plans if st in BUSY_PLAN_STATES]
    if busy:
        listed = ", ".join(f"{n!r} ({st.replace('_', ' ')})" for n, st in busy[:5]) + ("..." if len(busy) > 5 else "")
        raise store.DatasetInUse(
            f"cannot replace {existing.name!r}: {len(busy)} plan(s) on it are under way: {listed}. "
            "Import under another name, or finish (receive) or delete those plans first"
        )
    if plans and not actor.can("replace_planned_data"):
        from rebal_core.governance.identity import PermissionDenied

        raise PermissionDenied(
            f"replacing {existing.name!r} would delete {len(plans)} saved plan(s) with their decisions: "
            f"{', '.join(repr(n) for n, _ in plans[:5])}{'...' if len(plans) > 5 else ''}; only an admin may do that. "
            "Import under another name instead"
        )
    return plans


def network_from_bundle(bundle: Bundle, progress: Progress = quiet) -> Network:
    """A validated bundle as a planning network (forecast from demand.csv when it has none)."""
    tables, _, _ = bundle_tables(bundle, progress)
    return network_from_tables(tables, bundle.as_of)


def network_from_tables(tables: dict[str, pd.DataFrame], as_of) -> Network:
    """The planning network of :func:`bundle_tables`' output."""
    return _network(tables.__getitem__, as_of)


def signal_findings(bundle: Bundle, forecast: pd.DataFrame) -> pd.DataFrame:
    """Signal-quality findings of a bundle (with the forecast that will drive planning)."""
    return check_signals(bundle.sites, bundle.skus, bundle.inventory, bundle.demand, forecast, bundle.as_of)


def dataset_signals(dataset: DatasetPublic) -> pd.DataFrame:
    return pd.DataFrame(json.loads(dataset.signals or "[]"), columns=FINDING_COLUMNS)


def planning_blocked(dataset: DatasetPublic) -> str | None:
    """Why planning must wait (critical findings, not overridden), in words; None when it may go ahead."""
    critical = blocking(dataset_signals(dataset))
    if critical.empty or dataset.signal_override:
        return None
    listed = "; ".join(critical["message"].head(3)) + ("..." if len(critical) > 3 else "")
    return (
        f"planning on {dataset.name!r} is blocked by {len(critical)} critical signal finding(s): {listed}. "
        "Fix the data and import it again, or an admin overrides on the Data page."
    )


def require_planning_allowed(dataset: DatasetPublic) -> None:
    """Refuse (:class:`PlanningBlocked`) to plan on a dataset whose critical findings stand:
    every path that makes a plan (save, re-plan, the Scenario lab) goes through here."""
    blocked = planning_blocked(dataset)
    if blocked:
        raise PlanningBlocked(blocked)


# ----------------------------------------------------------------------------- prepared bundles (command line)

PREPARED_KEEP = 8  # prepared bundles kept in the cache, newest first


@dataclass
class Prepared:
    """A bundle made ready to plan: its network (forecast, measured spread, lanes) and signal findings."""

    network: Network
    findings: pd.DataFrame
    phases: dict[str, float]  # seconds per phase of preparing it (empty parts when it came from the cache)
    cached: bool


def cache_dir() -> Path:
    """Where prepared bundles are kept: ``REBAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/rebal`` (``~/.cache/rebal``)."""
    if os.environ.get("REBAL_CACHE_DIR"):
        return Path(os.environ["REBAL_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rebal"


def _bundle_key(path: Path) -> str:
    """What a prepared bundle depends on: every byte of its files and the engine's own source."""
    h = hashlib.blake2b(digest_size=20)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        with f.open("rb") as stream:
            while chunk := stream.read(1 << 22):
                h.update(chunk)
    for src in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):  # a change to the engine prepares afresh
        h.update(src.read_bytes())
    return h.hexdigest()


def _only_mine(path: Path) -> bool:
    """A pickle runs code when read: only files and a folder that only this user can write to."""
    if not hasattr(os, "getuid"):
        return True
    mine = os.getuid()
    return all(p.stat().st_uid == mine and not p.stat().st_mode & 0o022 for p in (path, path.parent))


def prepared_network(path: str | Path, progress: Progress = quiet, use_cache: bool = True) -> Prepared:
    """Load, validate, forecast and check a bundle, or take all of it from the cache when its files
    are byte for byte the same. Raises :class:`rebal_core.signals.bundle.BundleInvalid` like :func:`load_bundle`.

    The command line plans the same bundle many times (scenarios, time limits); preparing it
    is most of the time (sample: about 8 s against a 1 s solve). The cache lives in
    :func:`cache_dir`, readable by the user only; a cached file that cannot be read is
    prepared again.
    """
    path = Path(path)
    phases: dict[str, float] = {}
    t = time.perf_counter()
    key = _bundle_key(path) if use_cache else ""
    where = cache_dir() / f"prepared-{key}.pkl"
    if use_cache and where.exists() and _only_mine(where):
        try:
            network, findings = pickle.loads(where.read_bytes())
            phases["load prepared bundle from cache"] = time.perf_counter() - t
            return Prepared(network, findings, phases, cached=True)
        except Exception:  # noqa: BLE001 - a damaged or foreign cache entry is only a lost shortcut
            where.unlink(missing_ok=True)
    bundle = load_bundle(path, progress=progress)
    t0 = time.perf_counter()
    phases["load and validate"] = t0 - t
    tables, _, _ = bundle_tables(bundle, progress=progress)
    t1 = time.perf_counter()
    phases["forecast"] = t1 - t0
    findings = signal_findings(bundle, tables["forecast"])
    network = network_from_tables(tables, bundle.as_of)
    phases["signals"] = time.perf_counter() - t1
    if use_cache:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        partial = where.with_suffix(".tmp")
        partial.touch(mode=0o600)
        partial.write_bytes(pickle.dumps((network, findings), protocol=pickle.HIGHEST_PROTOCOL))
        partial.replace(where)
        for old in sorted(folder.glob("prepared-*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)[PREPARED_KEEP:]:
            old.unlink(missing_ok=True)
    return Prepared(network, findings, phases, cached=False)
