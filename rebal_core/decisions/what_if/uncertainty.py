"""Monte Carlo check of a plan: demand drawn from the forecast distribution, fill rate and shortage cost
with and without the plan, on the same draws (common random numbers, so the difference is the plan's).

Demand of a position over the horizon is ``D ~ max(0, Normal(mu, sigma))`` (the
spec's forecast distribution, cut at zero). For each draw:
``fill rate = 1 - sum (D - P)+ / sum D`` and ``shortage cost = sum p (D - P)+``
(units lost, at the unit shortage penalty), for the positions ``P`` before and
after the plan. Vectorised in blocks of draws so memory stays bounded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BLOCK_CELLS = 4_000_000  # positions x draws per block (32 MB of float64)


def simulate(before: pd.DataFrame, after: pd.DataFrame, draws: int = 500, seed: int = 0) -> pd.DataFrame:
    """One row per draw: fill rate and shortage cost before and after. ``before``/``after``: positions tables
    (same rows and order; ``mu``, ``sigma``, ``position``, ``p``)."""
    mu = before["mu"].to_numpy(float)
    sigma = before["sigma"].to_numpy(float)
    p = before["p"].to_numpy(float)
    P0 = before["position"].to_numpy(float)
    P1 = after["position"].to_numpy(float)
    live = (mu > 0) | (sigma > 0)  # positions without demand lose nothing
    mu, sigma, p, P0, P1 = mu[live], sigma[live], p[live], P0[live], P1[live]
    rng = np.random.default_rng(seed)
    out = {
        k: np.empty(draws)
        for k in ("fill_rate_before", "fill_rate_after", "shortage_cost_before", "shortage_cost_after", "demand")
    }
    block = max(1, BLOCK_CELLS // max(1, len(mu)))
    for start in range(0, draws, block):
        n = min(block, draws - start)
        D = np.maximum(0.0, mu + sigma * rng.standard_normal((n, len(mu))))
        total = D.sum(axis=1)
        for tag, P in (("before", P0), ("after", P1)):
            lost = np.maximum(0.0, D - P)
            out[f"fill_rate_{tag}"][start : start + n] = 1.0 - lost.sum(axis=1) / np.where(total > 0, total, 1.0)
            out[f"shortage_cost_{tag}"][start : start + n] = lost @ p
        out["demand"][start : start + n] = total
    return pd.DataFrame(out)


def bands(sim: pd.DataFrame, quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> pd.DataFrame:
    """Percentiles of each figure (rows: figure, columns: p5 ... p95 and the mean)."""
    q = sim.quantile(list(quantiles)).T
    q.columns = [f"p{int(round(x * 100))}" for x in quantiles]
    q["mean"] = sim.mean()
    return q.drop(index="demand")


def plan_positions(plan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A plan's positions before and after, aligned row by row (positions the plan added have no demand)."""
    before = plan.problem.positions
    after = plan.score.positions_after.iloc[: len(before)]
    return before, after
