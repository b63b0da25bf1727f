"""The first minute of an S&OP meeting: where it hurts, what doing nothing costs, what the
recommended plan would do (the expected-cost model, the same gate and solver as every plan)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine

from rebal_core.decisions.positions import Network, kpis, site_summary
from rebal_core.decisions.scenario import LAB_SECONDS, Scenario
from rebal_core.errors import PlanningBlocked
from rebal_core.services import lab
from rebal_core.store.tables import DatasetPublic

HURTING_SITES = 5


@dataclass
class Briefing:
    sites: pd.DataFrame  # the sites with value at risk, worst first (at most HURTING_SITES)
    value_at_risk: float  # expected lost margin + excess value across the network today
    cost_of_inaction: float  # the network cost with no transfer (shortage + excess over each horizon)
    expected_lost_value: float  # the margin expected lost over the horizon with no transfer


@dataclass
class Recommendation:
    plan: lab.LabPlan | None  # the recommended plan (default scenario); provisional while it is made
    solving: lab.LabSolve | None = None  # the reproducible plan being made, when ``plan`` is provisional
    blocked: str | None = None  # why no plan was made (critical signal findings), in words


def briefing(*, network: Network, positions: pd.DataFrame) -> Briefing:
    """Rank the sites by value at risk and price inaction."""
    sites = site_summary(positions, network.sites)
    hurting = sites[sites["value_at_risk"] > 0].sort_values("value_at_risk", ascending=False).head(HURTING_SITES)
    k = kpis(positions)
    return Briefing(
        sites=hurting.reset_index(drop=True),
        value_at_risk=float(k["value_at_risk"]),
        cost_of_inaction=float(k["network_cost"]),
        expected_lost_value=float(k["expected_lost_value"]),
    )


def recommendation(
    *,
    engine: Engine,
    dataset: DatasetPublic,
    network: Network,
    moving: pd.DataFrame | tuple = (),
    time_limit: float = LAB_SECONDS,
) -> Recommendation:
    """The default scenario's reproducible plan (``moving``: lines released by saved plans and not yet
    received, counted as in transit as in the lab), the same the lab shows for these settings. Waits at
    most ``time_limit`` for it; then the provisional plan (the nearest solved scenario's, else the
    greedy rule's as soon as it is made) with the solve still running."""
    try:
        solving = lab.request(engine=engine, dataset=dataset, network=network, scenario=Scenario(), moving=moving)
    except PlanningBlocked as exc:
        return Recommendation(plan=None, blocked=str(exc))
    shown = lab.answer(engine=engine, lab_solve=solving, seconds=time_limit)
    return Recommendation(plan=shown, solving=solving if shown is not None and shown.provisional else None)
