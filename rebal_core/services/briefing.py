"""The first minute of an S&OP meeting: where it hurts, what doing nothing costs, what the
recommended plan would do (the expected-cost model, the same gate and solver as every plan)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

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
    plan: lab.LabPlan | None  # the recommended plan (default scenario), None when planning is blocked
    blocked: str | None = None  # why no plan was made (critical signal findings), in words


def briefing(
    *,
    dataset: DatasetPublic,
    network: Network,
    positions: pd.DataFrame,
    moving: pd.DataFrame | tuple = (),
    time_limit: float = LAB_SECONDS,
) -> Briefing:
    """Rank the sites by value at risk, price inaction, and plan the default scenario once (``moving``:
    lines released by saved plans and not yet received, counted as in transit as in the lab)."""
    sites = site_summary(positions, network.sites)
    hurting = sites[sites["value_at_risk"] > 0].sort_values("value_at_risk", ascending=False).head(HURTING_SITES)
    k = kpis(positions)
    try:
        plan = lab.solve(
            # no Monte Carlo: the home page shows no uncertainty bands
            dataset=dataset,
            problem=lab.problem(network, Scenario(), moving),
            time_limit=time_limit,
            draws=0,
        )
        blocked = None
    except PlanningBlocked as exc:
        plan, blocked = None, str(exc)
    return Briefing(
        sites=hurting.reset_index(drop=True),
        value_at_risk=float(k["value_at_risk"]),
        cost_of_inaction=float(k["network_cost"]),
        expected_lost_value=float(k["expected_lost_value"]),
        plan=plan,
        blocked=blocked,
    )
