"""Scenarios solved before the meeting (issue 24): the grid the lab's main sliders offer, solved in
the background after an import (and nightly beside the autopilot), so moving a slider to one of
them answers from the store at once.

The grid: the default scenario (the home page's recommendation) and the target objective's default;
every service level of the lab's slider from 0.85 to 0.99, nearest to the default first; the
fill-rate targets the Compare page's sweep starts with. Each is the lab's reproducible plan
(:func:`rebal_core.services.lab.solve`), stored under the lab's key, so the lab, the home page and
another replica reuse it. The work runs as a job (:mod:`rebal_core.services.jobs`: a background
process, or a Ray actor when ``REBAL_RAY_ADDRESS`` is set): an import commits first and never waits.
``REBAL_PRESOLVE=0`` turns the automatic grid off (tests, or a store that should not spend the CPU).
"""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
from sqlalchemy import Engine

from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.solvers.method import Cancelled
from rebal_core.progress import Progress, quiet
from rebal_core.services import lab
from rebal_core.services.datasets import load_network, planning_blocked
from rebal_core.services.scenarios import released_in_transit
from rebal_core.store import jobs as job_store
from rebal_core.store import solved_plans
from rebal_core.store.database import get_dataset

PRESOLVE_ENV = "REBAL_PRESOLVE"
SERVICE_LEVELS = tuple(round(0.85 + 0.005 * i, 3) for i in range(29))  # the lab slider's steps, 0.85 to 0.99
SWEEP_FILL_RATES = tuple(round(float(t), 3) for t in np.linspace(0.90, 0.99, 6))  # the sweep's default points
GRID_USER = "system:presolve"


def grid() -> list[Scenario]:
    """The settings solved ahead, in the order a meeting is likely to reach them."""
    default = Scenario()
    levels = sorted(SERVICE_LEVELS, key=lambda s: (abs(s - default.service_level), s))
    out = [default, Scenario(objective="target")]
    out += [Scenario(service_level=s) for s in levels if s != default.service_level]
    out += [Scenario(target_fill_rate=t) for t in SWEEP_FILL_RATES]
    return out


def enabled() -> bool:
    return os.environ.get(PRESOLVE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _key(family: str) -> str:
    return f"grid:{family}"


def submit(*, engine: Engine, dataset_id: int, start: bool = True):
    """Start solving the grid of ``dataset_id`` in the background (or join the job already doing it);
    None when presolving is turned off or the dataset may not be planned (critical findings)."""
    from rebal_core.services import jobs  # jobs runs this module's work: imported here, not at the top

    if not enabled():
        return None
    dataset = get_dataset(engine=engine, dataset_id=dataset_id)
    if dataset is None or planning_blocked(dataset):
        return None
    moving = released_in_transit(engine=engine, dataset_id=dataset_id)
    family = lab.plan_family(engine=engine, dataset=dataset, moving=moving)
    job, new = job_store.create_or_join(
        engine=engine,
        kind="grid",
        key=_key(family),
        dataset_id=dataset_id,
        params=json.dumps({"family": family, "scenarios": len(grid())}),
        created_by=GRID_USER,
        stale_after=jobs.LOST_AFTER_SECONDS,
    )
    if new and start:
        jobs.start_worker(engine, job.id)
    return jobs.job(engine=engine, job_id=job.id)


def latest(*, engine: Engine, dataset_id: int):
    """The dataset's newest grid job (what the Data page shows), or None."""
    from rebal_core.services import jobs

    found = job_store.latest(engine=engine, kind="grid", dataset_id=dataset_id)
    return jobs.job(engine=engine, job_id=found.id) if found is not None else None


def solve_grid(
    *,
    engine: Engine,
    dataset_id: int,
    scenarios: list[Scenario] | None = None,
    progress: Progress = quiet,
    cancel: threading.Event | None = None,
) -> dict:
    """Solve every grid scenario of ``dataset_id`` not yet in the store; what was done, in numbers."""
    dataset = get_dataset(engine=engine, dataset_id=dataset_id)
    if dataset is None:
        raise LookupError(f"no dataset with id {dataset_id}")
    scenarios = grid() if scenarios is None else scenarios
    network = load_network(engine=engine, dataset_id=dataset_id)
    moving = released_in_transit(engine=engine, dataset_id=dataset_id)
    family = lab.plan_family(engine=engine, dataset=dataset, moving=moving)
    have = solved_plans.keys(engine=engine, family=family)
    solved, took = 0, []
    for i, scenario in enumerate(scenarios):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        if lab.plan_key(family, scenario) in have:
            continue
        progress(i / len(scenarios), f"solving {i + 1} of {len(scenarios)}: {describe(scenario)}")
        t0 = time.perf_counter()
        scenario = lab.settled(scenario)  # as the lab solves it
        value = lab.solve(dataset=dataset, problem=lab.problem(network, scenario, moving), draws=0, cancel=cancel)
        took.append(time.perf_counter() - t0)
        lab.store(engine=engine, dataset=dataset, family=family, scenario=scenario, value=value, seconds=took[-1])
        solved += 1
    return {
        "scenarios": len(scenarios),
        "solved": solved,
        "already_solved": len(scenarios) - solved,
        "seconds": round(sum(took), 1),
        "slowest": round(max(took), 1) if took else 0.0,
    }


def describe(scenario: Scenario) -> str:
    """A grid scenario in words (what differs from the defaults)."""
    default = Scenario()
    differs = [
        f"{name.replace('_', ' ')} {value}"
        for name, value in scenario.as_dict().items()
        if name != "name" and value != getattr(default, name)
    ]
    return ", ".join(differs) or "default scenario"
