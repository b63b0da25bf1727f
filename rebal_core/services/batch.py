"""The command line's planning run: a bundle on disk in, a plan file out, nothing stored.

The same gate as every other planning path (critical signal findings block unless
overridden with a reason) and the same engine; the time of each phase is kept so that
``plan`` can say where the time went (issue 11).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rebal_core.decisions.planning import Plan, build_problem
from rebal_core.decisions.scenario import SOLVE_SECONDS, Scenario
from rebal_core.decisions.solvers.optimizer import plan
from rebal_core.decisions.solvers.shards import ray_address
from rebal_core.errors import PlanningBlocked
from rebal_core.execution.files import write_plan
from rebal_core.progress import Progress, quiet
from rebal_core.services.datasets import prepared_network
from rebal_core.signals.quality import blocking


@dataclass
class BatchPlan:
    plan: Plan
    phases: dict[str, float] = field(default_factory=dict)  # seconds by phase, in order
    overridden: pd.DataFrame | None = None  # critical findings planned through (with --override-signals)


def plan_bundle(
    bundle: str | Path,
    scenario: Scenario,
    *,
    out: str | Path,
    summary_path: str | Path | None = None,
    method: str = "optimize",
    time_limit: float = SOLVE_SECONDS,
    override_signals: str | None = None,
    use_cache: bool = True,
    progress: Progress = quiet,
    ray: str | None = None,
) -> BatchPlan:
    """Load (or take from the cache), check, plan and write ``bundle`` under ``scenario``.

    Raises :class:`rebal_core.errors.BundleInvalid` for a bundle with errors and
    :class:`rebal_core.errors.PlanningBlocked` (with the findings) when critical signal
    findings stand and ``override_signals`` gives no reason. ``ray``: a Ray address or ``"local"``
    (else REBAL_RAY_ADDRESS, else in this process): the per-sku flows run on shard actors.
    """
    t0 = time.perf_counter()
    prepared = prepared_network(bundle, progress=progress, use_cache=use_cache)
    phases = dict(prepared.phases)
    critical = blocking(prepared.findings)
    if len(critical) and not override_signals:
        raise PlanningBlocked(
            "planning blocked by critical signal findings; fix the data, or pass --override-signals REASON; no plan was made",
            findings=critical,
        )
    t = time.perf_counter()
    problem = build_problem(prepared.network, scenario)
    t1 = time.perf_counter()
    phases["build"] = t1 - t
    result = plan(
        problem,
        method=method,
        time_limit=time_limit,
        progress=progress,
        build_seconds=t1 - t0,
        ray_address=ray_address(ray),
    )
    t2 = time.perf_counter()
    phases["solve"] = result.solve_seconds
    phases["score and reasons"] = t2 - t1 - result.solve_seconds
    write_plan(result, out, summary_path)
    phases["write"] = time.perf_counter() - t2
    return BatchPlan(result, phases, critical if len(critical) else None)
