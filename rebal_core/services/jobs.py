"""Long computations off the web process (issue 15): a backtest or a saved scenario's solve over a
size threshold runs as a job.

``submit_backtest`` records the job in the store and starts a background process
(``python -m rebal_core job run ID``) unless a job computing the same thing (same dataset version
and settings) is already queued or running: then it joins that one, so a second user, a reload or
another app replica sees the same job instead of starting another. The worker writes its progress
(the heartbeat) and, at the end, its result to the store; a page only reads. Stop is a flag the
worker reads at its next progress step. A running job whose heartbeat is older than
``LOST_AFTER_SECONDS`` is reported lost (its process died with the machine or was killed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from rebal_core.cluster import connect, ray_address
from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.solvers.method import Cancelled
from rebal_core.decisions.what_if.backtest import ARMS, Replay, backtest
from rebal_core.governance.identity import Actor
from rebal_core.services.accounts import actor_of
from rebal_core.services.datasets import demand_history, load_network
from rebal_core.services.scenarios import get_scenario, solve_scenario, summary
from rebal_core.store import jobs as job_store
from rebal_core.store.database import get_dataset

JOB_SECONDS_ENV = "REBAL_JOB_SECONDS"
JOB_SECONDS = 30.0  # a backtest whose solves may take longer than this runs as a job
LOST_AFTER_SECONDS = 300.0  # no progress for this long: the worker is gone
HEARTBEAT_SECONDS = 1.0  # the worker writes progress at most this often


@dataclass(frozen=True)
class JobView:
    """A job as a page shows it."""

    id: int
    status: str  # queued / running / done / failed / stopped / lost
    progress: float
    message: str
    created_by: str
    created_at: dt.datetime
    params: dict

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


def job_seconds() -> float:
    return float(os.environ.get(JOB_SECONDS_ENV) or JOB_SECONDS)


def backtest_solve_seconds(replay: Replay, arms: tuple[str, ...] = ARMS) -> float:
    """The most a backtest's solves may take: planning days x arms that solve x the limit per solve."""
    planning_days = -(-replay.days // max(1, replay.every))
    solving = sum(1 for a in arms if a in ("optimize", "hindsight"))
    return planning_days * solving * replay.time_limit


def runs_as_job(replay: Replay) -> bool:
    return backtest_solve_seconds(replay) >= job_seconds()


def _view(job) -> JobView:
    status = job.status
    if status in ("queued", "running"):
        age = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - job.updated_at).total_seconds()
        if age > LOST_AFTER_SECONDS:
            status = "lost"
    return JobView(
        job.id, status, job.progress, job.message, job.created_by, job.created_at, json.loads(job.params or "{}")
    )


def _key(dataset, scenario: Scenario, replay: Replay) -> str:
    what = json.dumps(
        {
            "dataset": dataset.id,
            "imported": str(dataset.imported_at),
            "scenario": scenario.as_dict(),
            "replay": dataclasses.asdict(replay),
        },
        sort_keys=True,
        default=str,
    )
    return "backtest:" + hashlib.sha256(what.encode()).hexdigest()[:32]


def submit_backtest(
    *, engine: Engine, actor: Actor, dataset_id: int, scenario: Scenario, replay: Replay, start: bool = True
) -> tuple[JobView, bool]:
    """The job replaying ``dataset_id`` under these settings: a new one (its worker started) or the
    one already queued or running; True when it is new."""
    dataset = get_dataset(engine=engine, dataset_id=dataset_id)
    if dataset is None:
        raise LookupError(f"no dataset with id {dataset_id}")
    params = {"scenario": scenario.as_dict(), "replay": dataclasses.asdict(replay)}
    job, new = job_store.create_or_join(
        engine=engine,
        kind="backtest",
        key=_key(dataset, scenario, replay),
        dataset_id=dataset_id,
        params=json.dumps(params, default=str),
        created_by=actor.username,
        stale_after=LOST_AFTER_SECONDS,
    )
    if new and start:
        start_worker(engine, job.id)
    return _view(job), new


def solves_as_job(time_limit: float) -> bool:
    """A saved scenario whose time limit reaches the threshold is solved as a job."""
    return time_limit >= job_seconds()


def submit_solve(*, engine: Engine, actor: Actor, scenario_id: int, start: bool = True) -> tuple[JobView, bool]:
    """The job (re-)solving a saved scenario: a new one, or the one already queued or running for it.
    Permission is checked here and again by the worker, as the user's role is then."""
    actor.require("edit_scenario")
    record = get_scenario(engine=engine, scenario_id=scenario_id)
    if record is None:
        raise LookupError(f"no scenario with id {scenario_id}")
    job, new = job_store.create_or_join(
        engine=engine,
        kind="solve",
        key=f"solve:{scenario_id}",
        dataset_id=record.dataset_id,
        params=json.dumps({"scenario_id": scenario_id, "name": record.name}),
        created_by=actor.username,
        stale_after=LOST_AFTER_SECONDS,
    )
    if new and start:
        start_worker(engine, job.id)
    return _view(job), new


def active_solve(*, engine: Engine, scenario_id: int) -> JobView | None:
    """The solve job of a scenario still queued or running, if any (what the Plans page shows)."""
    found = job_store.active_by_key(engine=engine, key=f"solve:{scenario_id}")
    return _view(found) if found is not None else None


class _RayJobRunner:
    """A detached Ray actor that runs one job against the store at ``url`` and then exits."""

    def run(self, url: str, job_id: int) -> str:
        from rebal_core.store.database import make_engine

        os.environ["REBAL_JOB_RUNNER"] = "a Ray actor"  # said in the job's messages
        try:
            return run(engine=make_engine(url), job_id=job_id).status
        finally:
            import ray

            ray.actor.exit_actor()


def start_worker(engine: Engine, job_id: int) -> None:
    """Where the job runs: on the Ray cluster when one is configured (a detached actor: it outlives
    this process), else a detached background process here; either outlives the page and the browser."""
    address = ray_address()
    if address:
        ray = connect(address)
        runner = ray.remote(num_cpus=1)(_RayJobRunner).options(name=f"rebal-job-{job_id}", lifetime="detached")
        runner.remote().run.remote(engine.url.render_as_string(hide_password=False), job_id)
        return
    _start_process(engine, job_id)


def _start_process(engine: Engine, job_id: int) -> None:
    """A detached background process: it outlives the page's run and the browser."""
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "REBAL_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p),
    }
    subprocess.Popen(
        [sys.executable, "-m", "rebal_core", "job", "run", str(job_id)],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def run(*, engine: Engine, job_id: int) -> JobView:
    """The worker: run the job, writing progress as it goes and the result (or why not) at the end."""
    job = job_store.get(engine=engine, job_id=job_id)
    if job is None:
        raise LookupError(f"no job with id {job_id}")
    params = json.loads(job.params)
    where = f"{os.environ.get('REBAL_JOB_RUNNER', 'a background process')}, pid {os.getpid()}"
    job_store.update(engine=engine, job_id=job_id, status="running", message=f"starting on {where}")
    cancel = threading.Event()
    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        if time.monotonic() - last[0] < HEARTBEAT_SECONDS:
            return
        last[0] = time.monotonic()
        current = job_store.update(engine=engine, job_id=job_id, progress=float(fraction), message=message)
        if current.stop_requested:
            cancel.set()

    try:
        if job.kind == "solve":
            return _view(
                job_store.update(engine=engine, job_id=job_id, **_solve(engine, job, params, progress, cancel))
            )
        if job.kind == "grid":
            return _view(job_store.update(engine=engine, job_id=job_id, **_grid(engine, job, progress, cancel, where)))
        net = load_network(engine=engine, dataset_id=job.dataset_id)
        demand = demand_history(engine=engine, dataset_id=job.dataset_id)
        periods = backtest(
            net,
            demand,
            Scenario.from_mapping(params["scenario"]),
            Replay(**params["replay"]),
            progress=progress,
            cancel=cancel,
        )
    except (InterruptedError, Cancelled):
        return _view(job_store.update(engine=engine, job_id=job_id, status="stopped", message="stopped on request"))
    except Exception as exc:  # noqa: BLE001 - the job records why it failed; the page says it
        return _view(
            job_store.update(engine=engine, job_id=job_id, status="failed", message=f"{type(exc).__name__}: {exc}")
        )
    return _view(
        job_store.update(
            engine=engine,
            job_id=job_id,
            status="done",
            progress=1.0,
            message=f"done on {where}",
            result=periods.to_json(orient="split", date_format="iso"),
        )
    )


def _grid(engine: Engine, job, progress, cancel: threading.Event, where: str) -> dict:
    """The lab's grid of settings solved before the meeting (:mod:`rebal_core.services.presolve`)."""
    from rebal_core.services import presolve  # it submits its jobs here: imported when a grid job runs

    done = presolve.solve_grid(engine=engine, dataset_id=job.dataset_id, progress=progress, cancel=cancel)
    return {
        "status": "done",
        "progress": 1.0,
        "message": f"{done['scenarios']} scenarios ready ({done['solved']} solved in {done['seconds']:.0f} s) on {where}",
        "result": json.dumps(done),
    }


def _solve(engine: Engine, job, params: dict, progress, cancel: threading.Event) -> dict:
    """A saved scenario's solve, as the user who asked for it is now (a role taken away stops it)."""
    actor = actor_of(engine=engine, username=job.created_by)
    if actor is None:
        return {"status": "failed", "message": f"{job.created_by} can no longer sign in"}
    record = solve_scenario(
        engine=engine, actor=actor, scenario_id=params["scenario_id"], progress=progress, cancel=cancel
    )
    lines = getattr(summary(record), "lines", 0)
    return {
        "status": "done",
        "progress": 1.0,
        "message": f"solved: {lines:,} lines",
        "result": json.dumps({"lines": lines}),
    }


def latest_backtest(*, engine: Engine, dataset_id: int) -> JobView | None:
    job = job_store.latest(engine=engine, kind="backtest", dataset_id=dataset_id)
    return _view(job) if job is not None else None


def job(*, engine: Engine, job_id: int) -> JobView | None:
    found = job_store.get(engine=engine, job_id=job_id)
    return _view(found) if found is not None else None


def backtest_result(*, engine: Engine, job_id: int) -> pd.DataFrame | None:
    """A finished backtest's periods (None until it is done)."""
    found = job_store.get(engine=engine, job_id=job_id)
    if found is None or found.status != "done" or not found.result:
        return None
    return pd.read_json(io.StringIO(found.result), orient="split")


def request_stop(*, engine: Engine, actor: Actor, job_id: int) -> JobView:  # noqa: ARG001 - anyone who sees it may stop it
    return _view(job_store.update(engine=engine, job_id=job_id, stop_requested=True, message="stopping..."))
