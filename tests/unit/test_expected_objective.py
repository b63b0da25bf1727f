"""The expected objective: measured spread, never worse than the rule of thumb, fill-rate targets, hindsight."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.what_if.backtest import Replay, backtest, totals
from rebal_core.signals.forecast import SPREAD_LOOKBACK, horizon_errors, spread_at


def ar1(n: int, days: int, phi: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, days))
    e = rng.normal(0, 1, (n, days))
    for t in range(1, days):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x * np.sqrt(1 - phi**2)  # unit variance whatever phi


def test_measured_spread_of_independent_days():
    """Independent days with sd 1: a 28-day total less 28 x the 56-day mean has variance 28 (1 + 28/56)."""
    days = 50 + ar1(400, 365, 0.0)
    sd = days[:, -56:].std(axis=1)
    spread = horizon_errors(days.astype(np.float32), sd, np.array(["smooth"] * len(days)))
    expected = np.sqrt(28 * (1 + 28 / SPREAD_LOOKBACK))
    assert np.median(spread.table["err_28"]) == pytest.approx(expected, rel=0.1)
    assert spread.calibration["inside80_measured"] == pytest.approx(0.8, abs=0.05)
    assert spread.calibration["inside95_measured"] == pytest.approx(0.95, abs=0.04)


def test_running_totals_at_the_columns_read_are_the_day_by_day_running_sums():
    """The spread reads running totals at a few days only (issue 15: summed span by span): the same
    figures as a day-by-day running sum, to the unit for whole units, whichever days are read."""
    from rebal_core.signals.forecast import _running_totals

    rng = np.random.default_rng(3)
    for trial in range(40):
        n, days = int(rng.integers(1, 30)), int(rng.integers(1, 120))
        block = rng.poisson(2.0, (n, days)).astype(np.float32)
        if trial % 2:
            block *= rng.random((n, days)).astype(np.float32)
        columns = np.unique(rng.integers(0, days + 1, int(rng.integers(1, days + 2))))
        full = np.zeros((n, days + 1))
        np.cumsum(block, axis=1, dtype=float, out=full[:, 1:])
        got = _running_totals(block, columns)
        if trial % 2:
            np.testing.assert_allclose(got, full[:, columns], rtol=1e-12, atol=1e-9)
        else:
            assert np.array_equal(got, full[:, columns])


def test_measured_spread_sees_autocorrelation():
    """Persistent demand (AR(1), phi 0.8): H-day totals vary far more than sd sqrt(H), and intervals from
    sd sqrt(H) miss most actual totals while the measured spread covers them as it says."""
    days = 50 + 3 * ar1(400, 365, 0.8, seed=1)
    sd = days[:, -56:].std(axis=1)
    spread = horizon_errors(days.astype(np.float32), sd, np.array(["smooth"] * len(days)))
    # Var of a 28-day sum of an AR(1) with unit variance: 28 + 2 sum_k (28 - k) phi^k
    k = np.arange(1, 28)
    truth = 3 * np.sqrt(28 + 2 * ((28 - k) * 0.8**k).sum())
    assert np.median(spread.table["err_28"]) >= 0.9 * truth
    assert np.median(spread.table["err_28"] / (sd * np.sqrt(28))) > 2.0
    assert spread.calibration["inside80_sd"] < 0.5
    assert spread.calibration["inside80_measured"] == pytest.approx(0.8, abs=0.07)
    # interpolation: exact at the measured horizons, between them in log-log, never negative
    at = spread_at(spread.table.head(3), np.array([28, 40, 3]))
    assert at[0] == pytest.approx(spread.table["err_28"].iat[0], rel=1e-6)
    assert spread.table["err_28"].iat[1] <= at[1] <= spread.table["err_56"].iat[1]
    assert at[2] == pytest.approx(spread.table["err_7"].iat[2] * np.sqrt(3 / 7), rel=1e-6)


def test_hindsight_beats_the_forecast_when_demand_moves():
    """Store C sold nothing in history but sells 10 a day in the replayed window: only hindsight serves it."""
    import datetime as dt

    from rebal_core.decisions.positions import Network

    as_of = dt.date(2026, 3, 1)
    sites = pd.DataFrame(
        {
            "site_id": ["A", "B", "C"],
            "name": ["DC A", "Store B", "Store C"],
            "kind": ["dc", "store", "store"],
            "region": ["R"] * 3,
            "lat": [40.0, 41.0, 42.0],
            "lon": [-74.0, -73.0, -72.0],
            "receive_capacity_units": [np.nan] * 3,
        }
    )
    skus = pd.DataFrame(
        {
            "sku_id": ["S"],
            "name": ["Thing"],
            "category": ["C"],
            "unit_cost": [10.0],
            "unit_price": [15.0],
            "unit_volume": [1.0],
            "pack_size": [1],
            "criticality": [1.0],
        }
    )
    inventory = pd.DataFrame(
        {"site_id": ["A", "B", "C"], "sku_id": ["S"] * 3, "on_hand": [300, 0, 0], "in_transit": [0, 0, 0]}
    )
    pairs = [(f, t) for f in "ABC" for t in "ABC" if f != t]
    lanes = pd.DataFrame(
        {
            "from_site_id": [p[0] for p in pairs],
            "to_site_id": [p[1] for p in pairs],
            "lead_time_days": 1.0,
            "cost_per_unit": 0.1,
            "cost_per_truck": 0.0,
            "truck_capacity": np.nan,
            "max_units": np.nan,
        }
    )
    days = pd.date_range(end=pd.Timestamp(as_of) - pd.Timedelta(days=1), periods=90)
    window = days[-28:]
    demand = pd.concat([
        pd.DataFrame({"site_id": "B", "sku_id": "S", "date": days, "qty": 10.0}),
        pd.DataFrame({"site_id": "C", "sku_id": "S", "date": window, "qty": 10.0}),
    ])  # fmt: skip
    forecast = pd.DataFrame(
        {"site_id": ["A", "B", "C"], "sku_id": ["S"] * 3, "mean_daily": [0.0, 10.0, 0.0], "std_daily": [0.0, 0.0, 0.0]}
    )
    inbound = pd.DataFrame(
        {
            "site_id": pd.Series(dtype=str),
            "sku_id": pd.Series(dtype=str),
            "qty": pd.Series(dtype=np.int64),
            "eta": pd.Series(dtype="datetime64[ns]"),
        }
    )
    net = Network(sites, skus, inventory, forecast, inbound, lanes, as_of)
    t = totals(
        backtest(net, demand, Scenario(), Replay(days=28, every=28, lookback=56, replenish=False, time_limit=5))
    ).set_index("arm")
    assert t.loc["hindsight", "realised_net"] > t.loc["optimize", "realised_net"] >= t.loc["none", "realised_net"] == 0
    assert 0 < t.loc["optimize", "share_of_hindsight"] < 1
    assert t.loc["optimize", "promised_net"] > 0
