"""Monte Carlo check of a plan: exact where demand is certain, equal to the closed form on average."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rebal_core.decisions.positions import expected_shortage
from rebal_core.decisions.what_if.uncertainty import bands, simulate


def positions(position, mu, sigma, p):
    return pd.DataFrame({"position": position, "mu": mu, "sigma": sigma, "p": p}, dtype=float)


def test_certain_demand_gives_exact_figures():
    before = positions([10, 0, 5], [20, 10, 0], [0, 0, 0], [2.0, 1.0, 9.0])
    after = before.assign(position=[20, 5, 5])
    sim = simulate(before, after, draws=50)
    assert np.allclose(sim["fill_rate_before"], 1 - 20 / 30) and np.allclose(sim["fill_rate_after"], 1 - 5 / 30)
    assert np.allclose(sim["shortage_cost_before"], 10 * 2 + 10 * 1) and np.allclose(sim["shortage_cost_after"], 5 * 1)


def test_average_matches_the_expected_shortage():
    rng = np.random.default_rng(3)
    n = 300
    mu = rng.uniform(20, 200, n)
    sigma = mu * rng.uniform(0.1, 0.4, n)  # cutting at zero is negligible this far from it
    P = mu + sigma * rng.normal(0, 1, n)
    before = positions(P, mu, sigma, np.ones(n))
    sim = simulate(before, before.assign(position=P + 10), draws=4000, seed=1)
    expected = expected_shortage(mu, sigma, P).sum()
    assert sim["shortage_cost_before"].mean() == pytest.approx(expected, rel=0.01)
    assert (sim["shortage_cost_after"] <= sim["shortage_cost_before"]).all()  # same draws: more stock never loses more
    b = bands(sim)
    assert list(b.columns) == ["p5", "p25", "p50", "p75", "p95", "mean"] and (b["p5"] <= b["p95"]).all()
    assert simulate(before, before, draws=10, seed=7).equals(simulate(before, before, draws=10, seed=7))  # reproducible
