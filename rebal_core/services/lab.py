"""The Scenario lab's use case: plan a network under a scenario the planner is still tuning.

Nothing is stored (saving goes through :mod:`rebal_core.services.workflow`), but the same
gate as every other planning path holds: critical signal findings that nobody overrode
block the plan (:func:`rebal_core.services.datasets.require_planning_allowed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from rebal_core.decisions.planning import (
    LINE_KEYS,
    PlanningProblem,
    PlanSummary,
    evaluate,
    plan_lines,
    problem_with_moves,
)
from rebal_core.decisions.positions import Network, site_summary
from rebal_core.decisions.scenario import LAB_ROUNDS_SECONDS, LAB_SECONDS, Scenario
from rebal_core.decisions.solvers.optimizer import plan
from rebal_core.decisions.what_if.uncertainty import bands, plan_positions, simulate
from rebal_core.progress import Progress, quiet
from rebal_core.services.datasets import require_planning_allowed
from rebal_core.store.tables import DatasetPublic

MC_DRAWS = 500  # demand draws behind the lab's uncertainty bands


@dataclass
class LabPlan:
    """One lab solve, as the page shows it."""

    summary: PlanSummary  # Plan.summary()
    table: pd.DataFrame  # the plan's lines with their reasons
    sites_after: pd.DataFrame  # site statuses after the plan (the map)
    uncertainty: pd.DataFrame | None  # fill rate and lost sales bands over MC_DRAWS draws (None: draws=0)
    rule: PlanSummary | None = None  # the greedy rule's plan on the same problem (optimize only)


def problem(network: Network, scenario: Scenario, moving: pd.DataFrame | tuple = ()) -> PlanningProblem:
    """The planning problem of ``scenario`` on ``network``, with ``moving`` (lines released by saved
    plans and not yet received: sku_id, from_site_id, to_site_id, qty) counted as in transit."""
    moves = moving if isinstance(moving, pd.DataFrame) else pd.DataFrame(list(moving), columns=LINE_KEYS + ["qty"])
    return problem_with_moves(network, scenario, moves)


def solve(
    *,
    dataset: DatasetPublic,
    problem: PlanningProblem,
    method: str = "optimize",
    time_limit: float = LAB_SECONDS,
    progress: Progress = quiet,
    draws: int = MC_DRAWS,
) -> LabPlan:
    """Plan ``problem`` (built on ``dataset``) with ``method``; refused with
    :class:`rebal_core.errors.PlanningBlocked` while the dataset's critical findings stand.

    Reproducible: the search completes its rounds whatever the machine's load (up to
    LAB_ROUNDS_SECONDS), so the same settings give the same plan here, on the home page and
    when saved; ``time_limit`` bounds the MIP that may follow."""
    require_planning_allowed(dataset)
    result = plan(problem, method=method, time_limit=time_limit, progress=progress, rounds_within=LAB_ROUNDS_SECONDS)
    rule = result.rule_summary() if method == "optimize" else result.summary()
    if rule is None:  # a fill-rate target plans by bisection, without one rule's plan to show
        rule = plan(problem, method="greedy").summary()
    uncertainty = bands(simulate(*plan_positions(result), draws=draws)) if draws else None
    return LabPlan(
        summary=result.summary(),
        table=result.table,
        sites_after=site_summary(result.score.positions_after, (problem.network or problem).sites),
        uncertainty=uncertainty,
        rule=rule,
    )


def uncertainty(problem: PlanningProblem, table: pd.DataFrame, draws: int = MC_DRAWS) -> pd.DataFrame:
    """Fill rate and lost-sales bands over ``draws`` demand draws, without and with the plan whose lines
    are ``table`` (a :class:`LabPlan`'s): the same draws for both, so the difference is the plan's.
    Separate from :func:`solve` so a page computes it only when someone looks."""
    score = evaluate(problem, plan_lines(table))
    return bands(simulate(problem.positions, score.positions_after.iloc[: len(problem.positions)], draws=draws))
