"""Backtest on a constructed history with a known result."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.what_if.backtest import Replay, backtest, totals

AS_OF = dt.date(2026, 3, 1)


def two_sites(a_stock: int = 200, b_stock: int = 10) -> tuple[Network, pd.DataFrame]:
    """DC A holds idle stock, store B sells 10 a day: the plan should move A's stock to B."""
    sites = pd.DataFrame(
        {
            "site_id": ["A", "B"],
            "name": ["DC A", "Store B"],
            "kind": ["DC", "store"],
            "region": ["R", "R"],
            "lat": [40.0, 41.0],
            "lon": [-74.0, -73.0],
            "receive_capacity_units": [np.nan, np.nan],
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
            "shelf_life_days": [np.nan],
        }
    )
    inventory = pd.DataFrame(
        {"site_id": ["A", "B"], "sku_id": ["S", "S"], "on_hand": [a_stock, b_stock], "in_transit": [0, 0]}
    )
    lanes = pd.DataFrame(
        {
            "from_site_id": ["A", "B"],
            "to_site_id": ["B", "A"],
            "lead_time_days": [1.0, 1.0],
            "cost_per_unit": [0.1, 0.1],
            "cost_per_truck": [0.0, 0.0],
            "truck_capacity": [np.nan, np.nan],
            "max_units": [np.nan, np.nan],
        }
    )
    days = pd.date_range(end=pd.Timestamp(AS_OF) - pd.Timedelta(days=1), periods=60)
    demand = pd.DataFrame({"site_id": "B", "sku_id": "S", "date": days, "qty": 10.0})
    forecast = pd.DataFrame(
        {"site_id": ["A", "B"], "sku_id": ["S", "S"], "mean_daily": [0.0, 10.0], "std_daily": [0.0, 0.0]}
    )
    inbound = pd.DataFrame(
        {
            "site_id": pd.Series(dtype=str),
            "sku_id": pd.Series(dtype=str),
            "qty": pd.Series(dtype=np.int64),
            "eta": pd.Series(dtype="datetime64[ns]"),
        }
    )
    return Network(sites, skus, inventory, forecast, inbound, lanes, AS_OF), demand


def test_known_result_without_replenishment():
    net, demand = two_sites()
    periods = backtest(net, demand, Scenario(), Replay(days=28, every=7, lookback=14, replenish=False, time_limit=5))
    t = totals(periods).set_index("arm")
    assert t.loc["none", "demand_units"] == 280
    assert t.loc["none", "lost_units"] == 270  # B sells its 10, then loses every day
    # A's 200 units leave on day 0 and arrive on day 1: B sells days 0-20 and loses days 21-27
    assert t.loc["optimize", "lost_units"] == 70 and t.loc["greedy", "lost_units"] == 70
    assert t.loc["optimize", "units_moved"] == 200 and t.loc["optimize", "transfer_spend"] == pytest.approx(200 * 0.1)
    assert t.loc["optimize", "lost_value"] == pytest.approx(70 * 5.0)  # margin 15 - 10
    assert t.loc["optimize", "net_gain_vs_none"] == pytest.approx(200 * 5.0 - 20.0)
    assert t.loc["optimize", "fill_rate"] == pytest.approx(1 - 70 / 280)
    assert len(periods) == 4 * 4 and set(periods["arm"]) == {"none", "greedy", "optimize", "hindsight"}
    # knowing the demand cannot do worse here, and the optimizer captures all of it
    assert (
        t.loc["hindsight", "realised_net"]
        >= t.loc["optimize", "realised_net"] - 1e-6
        >= t.loc["none", "realised_net"] - 1e-6
    )
    assert t.loc["optimize", "share_of_hindsight"] == pytest.approx(1.0)


def test_replenishment_is_the_same_in_every_arm():
    net, demand = two_sites(a_stock=0, b_stock=10)  # nothing to rebalance: the arms must agree exactly
    periods = backtest(net, demand, Scenario(), Replay(days=35, every=7, lookback=14, supply_lead=7, time_limit=5))
    t = totals(periods).set_index("arm")
    assert t.loc["none", "lost_units"] == t.loc["optimize", "lost_units"] == t.loc["greedy", "lost_units"]
    assert t.loc["none", "lost_units"] < 350 - 10  # replenishment arrived and sold
    assert (t["transfer_spend"] == 0).all()


def test_forecast_intervals_hold_their_share_when_the_spread_is_right():
    from rebal_core.decisions.what_if.backtest import _inside_intervals
    from rebal_core.signals.forecast import SPREAD_COLUMNS

    rng = np.random.default_rng(7)
    n, H, mu, sd = 20_000, 28, 10.0, 3.0
    ahead = rng.normal(mu, sd, size=(n, 40))
    unmeasured = pd.DataFrame({c: np.full(n, np.nan) for c in SPREAD_COLUMNS})
    inside80, inside95 = _inside_intervals(ahead, np.full(n, mu), np.full(n, sd), unmeasured, np.full(n, float(H)))
    assert inside80 == pytest.approx(0.80, abs=0.015) and inside95 == pytest.approx(0.95, abs=0.01)
    # days that move together: sd sqrt(H) alone is too narrow, the measured spread puts it right
    together = mu + sd * rng.normal(size=(n, 1)) + rng.normal(0, sd, size=(n, 40))
    narrow, _ = _inside_intervals(together, np.full(n, mu), np.full(n, sd), unmeasured, np.full(n, float(H)))
    true_sigma = sd * np.sqrt(H + H**2)
    measured = pd.DataFrame({c: np.full(n, true_sigma * (int(c.split("_")[1]) / H) ** 0.97) for c in SPREAD_COLUMNS})
    right, _ = _inside_intervals(together, np.full(n, mu), np.full(n, sd), measured, np.full(n, float(H)))
    assert narrow < 0.4 and right == pytest.approx(0.80, abs=0.02)


def test_history_is_read_the_same_whatever_the_ids_type_and_the_row_order():
    """The replay reads demand by the ids' codes (issue 15: a national year as Python strings would
    not fit in memory): categorical ids in another order than the text's, rows shuffled, a day split
    over two rows and a row after the window give the known result of text ids in order."""
    net, demand = two_sites()
    replay = Replay(days=28, every=7, lookback=14, replenish=False, time_limit=5)
    expected = backtest(net, demand, Scenario(), replay)
    assert totals(expected).set_index("arm").loc["optimize", "lost_units"] == 70
    split = demand.iloc[[-3]].assign(qty=4.0)
    other = pd.concat(
        [
            demand.assign(qty=np.where(demand.index == demand.index[-3], 6.0, demand["qty"])),
            split,
            pd.DataFrame(
                {"site_id": ["A"], "sku_id": ["S"], "date": [pd.Timestamp(AS_OF) + pd.Timedelta(days=3)], "qty": [99.0]}
            ),
        ]
    ).sample(frac=1, random_state=5)
    other = other.astype({"site_id": pd.CategoricalDtype(["B", "A", "X"]), "sku_id": pd.CategoricalDtype(["T", "S"])})
    pd.testing.assert_frame_equal(backtest(net, other, Scenario(), replay), expected)
