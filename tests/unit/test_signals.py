"""Signal-quality checks on a constructed history where every finding is known."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rebal_core.signals.quality import blocking, check_signals

AS_OF = dt.date(2026, 6, 1)


def world(last_day: dt.date = AS_OF - dt.timedelta(days=1)):
    days = pd.date_range(end=pd.Timestamp(last_day), periods=120)
    sites = pd.DataFrame({"site_id": ["A", "B", "C", "D"], "region": ["R"] * 4})
    skus = pd.DataFrame(
        {
            "sku_id": ["S1", "S2", "S3"],
            "category": ["Tools", "Paint", "Tools"],
            "unit_cost": [10.0, 5.0, 20.0],
            "unit_price": [15.0, 4.0, 30.0],
        }
    )
    rows = []
    for site in ("A", "B", "C"):
        for i, day in enumerate(days):
            if site == "B" and 60 <= i < 66:  # B's feed dropped out for six days
                continue
            rows.append((site, "S1", day, 10.0))
            paint = 5.0 if not (site == "C" and i >= len(days) - 28) else 20.0  # C's paint demand quadrupled recently
            rows.append((site, "S2", day, paint))
    demand = pd.DataFrame(rows, columns=["site_id", "sku_id", "date", "qty"])
    demand.loc[(demand["site_id"] == "A") & (demand["sku_id"] == "S1") & (demand["date"] == days[-10]), "qty"] = (
        400.0  # a keying error
    )
    inventory = pd.DataFrame(
        {
            "site_id": ["A", "A", "B", "C", "D"],
            "sku_id": ["S1", "S3", "S1", "S2", "S1"],
            "on_hand": [100, 7, 50, 40, 30],
            "in_transit": [0] * 5,
        }
    )
    forecast = pd.DataFrame(
        {
            "site_id": ["A", "B", "C", "A", "B", "C"],
            "sku_id": ["S1", "S1", "S1", "S2", "S2", "S2"],
            "mean_daily": [10.0, 10.0, 10.0, 5.0, 5.0, 5.0],
            "std_daily": [1.0] * 6,
        }
    )
    return sites, skus, inventory, demand, forecast


def test_each_check_fires_where_expected():
    sites, skus, inventory, demand, forecast = world()
    f = check_signals(sites, skus, inventory, demand, forecast, AS_OF)
    got = {(r.check, r.site_id, r.sku_id, r.category) for r in f.itertuples()}
    assert ("missing_days", "B", "", "") in got
    assert ("missing_site", "D", "", "") in got  # stock, no history
    assert ("spike", "A", "S1", "Tools") in got
    assert ("shift", "C", "", "Paint") in got
    assert ("forecast_bias", "C", "", "Paint") in got  # forecast 5/day against 20/day
    assert ("dead_stock", "A", "S3", "Tools") in got and ("dead_stock", "D", "S1", "Tools") in got
    assert ("impossible", "", "S2", "Paint") in got  # price below cost
    spikes = f[f["check"] == "spike"]
    assert len(spikes) == 1 and spikes["figure"].iloc[0] == 400
    assert not (f["check"] == "stale").any() and blocking(f).empty
    assert f["severity"].iloc[0] in ("critical", "warning")  # most severe first
    dead = f[(f["check"] == "dead_stock") & (f["site_id"] == "A")]
    assert "$140" in dead["message"].iloc[0]


def test_stale_and_future_data_are_critical():
    sites, skus, inventory, demand, forecast = world(last_day=AS_OF - dt.timedelta(days=40))
    f = check_signals(sites, skus, inventory, demand, forecast, AS_OF)
    stale = f[f["check"] == "stale"]
    assert (stale["severity"] == "critical").any() and "39 days before the planning date" in stale["message"].iloc[0]
    sites, skus, inventory, demand, forecast = world()
    future = pd.concat(
        [
            demand,
            pd.DataFrame(
                {"site_id": ["A"], "sku_id": ["S1"], "date": [pd.Timestamp(AS_OF) + pd.Timedelta(days=3)], "qty": [1.0]}
            ),
        ]
    )
    critical = blocking(check_signals(sites, skus, inventory, future, forecast, AS_OF))
    assert (
        list(critical["check"]) == ["impossible"]
        and "dated on or after the planning date" in critical["message"].iloc[0]
    )


def test_one_site_behind_the_others_is_stale():
    sites, skus, inventory, demand, forecast = world()
    demand = demand[~((demand["site_id"] == "C") & (demand["date"] > pd.Timestamp(AS_OF) - pd.Timedelta(days=20)))]
    f = check_signals(sites, skus, inventory, demand, forecast, AS_OF)
    stale = f[(f["check"] == "stale") & (f["site_id"] == "C")]
    assert len(stale) == 1 and stale["severity"].iloc[0] == "warning" and np.isclose(stale["figure"].iloc[0], 19)
