"""Positions and KPIs against hand-computed values, and the projection against a day-by-day loop."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from rebal_core.decisions.positions import Network, build_positions, kpis, project, projection_series
from rebal_core.decisions.scenario import Scenario, ScenarioInvalid

AS_OF = dt.date(2026, 1, 10)


def network(inventory, forecast, inbound=(), skus=None) -> Network:
    sites = pd.DataFrame(
        {
            "site_id": ["A", "B"],
            "name": ["Alpha", "Beta"],
            "kind": ["store", "dc"],
            "region": ["R1", "R2"],
            "lat": [0.0, 1.0],
            "lon": [0.0, 1.0],
            "receive_capacity_units": [np.nan, np.nan],
        }
    )
    skus = (
        skus
        if skus is not None
        else pd.DataFrame(
            {
                "sku_id": ["s"],
                "name": ["Widget"],
                "category": ["C"],
                "unit_cost": [10.0],
                "unit_price": [14.0],
                "unit_volume": [1.0],
                "pack_size": [1],
                "criticality": [1.0],
                "shelf_life_days": [np.nan],
            }
        )
    )
    return Network(
        sites=sites,
        skus=skus,
        inventory=pd.DataFrame(inventory, columns=["site_id", "sku_id", "on_hand", "in_transit"]),
        forecast=pd.DataFrame(forecast, columns=["site_id", "sku_id", "mean_daily", "std_daily"]),
        inbound=pd.DataFrame(list(inbound), columns=["site_id", "sku_id", "qty", "eta"]).astype(
            {"eta": "datetime64[ns]", "qty": "int64"}
        ),
        lanes=pd.DataFrame(),
        as_of=AS_OF,
    )


def test_hand_computed_position():
    # m = 2/day, sd = 1/day, H = 25 days -> mu = 50, sigma = 5; z(0.95) = 1.6449
    net = network(
        [("A", "s", 40, 5)],
        [("A", "s", 2.0, 1.0)],
        inbound=[("A", "s", 10, "2026-01-20"), ("A", "s", 99, "2026-03-01")],
    )
    pos = build_positions(net, Scenario(horizon_days=25, excess_cover_days=60, objective="target")).iloc[0]
    z = norm.ppf(0.95)
    assert pos["mu"] == pytest.approx(50) and pos["sigma"] == pytest.approx(5)
    assert pos["safety_stock"] == pytest.approx(5 * z)
    assert pos["target"] == pytest.approx(50 + 5 * z)
    assert pos["excess_level"] == pytest.approx(2 * 60 + 5 * z)
    assert pos["position"] == 55  # 40 + 5 + 10 (the March order is beyond the horizon)
    assert pos["shortage_units"] == pytest.approx(50 + 5 * z - 55)
    assert pos["shortage_value"] == pytest.approx((50 + 5 * z - 55) * 10)
    assert pos["shortage_cost"] == pytest.approx((50 + 5 * z - 55) * 4)  # p = price - cost
    assert pos["excess_units"] == 0
    assert pos["status"] == "below_target"  # mu <= P < T
    expected_short = 5 * (norm.pdf(1.0) - 1.0 * norm.sf(1.0))  # (P - mu) / sigma = 1
    assert pos["expected_short"] == pytest.approx(expected_short)
    assert pos["days_of_cover"] == pytest.approx(27.5)


@pytest.mark.parametrize(
    "on_hand, mean, status",
    [
        (10, 2.0, "stockout_risk"),
        (60, 2.0, "balanced"),
        (500, 2.0, "excess"),
        (5, 0.0, "no_demand"),
        (0, 0.0, "balanced"),
    ],
)
def test_status_classes(on_hand, mean, status):
    net = network([("A", "s", on_hand, 0)], [("A", "s", mean, 0.0)])
    assert build_positions(net, Scenario()).iloc[0]["status"] == status


def test_penalties_without_price_and_criticality():
    skus = pd.DataFrame(
        {
            "sku_id": ["s"],
            "name": ["W"],
            "category": ["C"],
            "unit_cost": [10.0],
            "unit_price": [np.nan],
            "unit_volume": [1.0],
            "pack_size": [1],
            "criticality": [2.0],
            "shelf_life_days": [np.nan],
        }
    )
    net = network([("A", "s", 0, 0)], [("A", "s", 1.0, 0.0)], skus=skus)
    pos = build_positions(net, Scenario(horizon_days=10, shortage_cost_factor=0.5, excess_cost_rate=0.1)).iloc[0]
    assert pos["p"] == pytest.approx(2.0 * 0.5 * 10)
    assert pos["h"] == pytest.approx(0.1 * 10)
    assert pos["shortage_cost"] == pytest.approx(10 * 10)


def test_network_kpis_and_fill_rate():
    net = network([("A", "s", 10, 0), ("B", "s", 300, 0)], [("A", "s", 1.0, 0.0), ("B", "s", 1.0, 0.0)])
    pos = build_positions(net, Scenario(horizon_days=28, excess_cover_days=90))
    k = kpis(pos)
    # sigma = 0: A is short 18 of 28, B is in excess by 210; fill rate = 1 - 18 / 56
    assert k["shortage_units"] == pytest.approx(18)
    assert k["excess_units"] == pytest.approx(210)
    assert k["fill_rate"] == pytest.approx(1 - 18 / 56)
    assert k["network_cost"] == pytest.approx(18 * 4 + 210 * 0.5)
    assert k["n_stockout_risk"] == 1 and k["n_excess"] == 1


def test_pairs_without_inventory_row_hold_zero():
    net = network([("A", "s", 10, 0)], [("A", "s", 1.0, 0.0), ("B", "s", 1.0, 0.0)])
    pos = build_positions(net, Scenario()).set_index("site_id")
    assert pos.loc["B", "on_hand"] == 0 and pos.loc["B", "status"] == "stockout_risk"


def brute_force(on_hand, in_transit, m, x_level, arrivals, window=365):
    """Day-by-day reference for project(): first day Q_k < 0 and first day Q_k > X."""
    stock = on_hand + in_transit
    out, exc = np.nan, np.nan
    for k in range(window):
        stock += sum(q for d, q in arrivals if max(d, 0) == k)
        stock -= m
        if np.isnan(out) and stock < -1e-9:
            out = k
        if np.isnan(exc) and stock > x_level + 1e-9:
            exc = k
    return out, exc


def test_projection_matches_day_by_day_loop():
    rng = np.random.default_rng(5)
    rows, fc, inbound, cases = [], [], [], []
    for i in range(300):
        sku = f"s{i}"
        on, it, m = int(rng.integers(0, 60)), int(rng.integers(0, 10)), float(rng.choice([0.0, 0.7, 1.5, 3.0]))
        arrivals = [(int(d), int(q)) for d, q in zip(rng.integers(-3, 80, rng.integers(0, 4)), rng.integers(1, 120, 4))]
        rows.append(("A", sku, on, it))
        fc.append(("A", sku, m, 0.5))
        inbound += [
            ("A", sku, q, (pd.Timestamp(AS_OF) + pd.Timedelta(days=d)).strftime("%Y-%m-%d")) for d, q in arrivals
        ]
        cases.append((on, it, m, arrivals))
    skus = pd.DataFrame(
        {
            "sku_id": [f"s{i}" for i in range(300)],
            "name": "W",
            "category": "C",
            "unit_cost": 1.0,
            "unit_price": 2.0,
            "unit_volume": 1.0,
            "pack_size": 1,
            "criticality": 1.0,
            "shelf_life_days": np.nan,
        }
    )
    net = network(rows, fc, inbound, skus=skus)
    pos = project(build_positions(net, Scenario()), net.inbound, net.as_of).set_index("sku_id")
    for i, (on, it, m, arrivals) in enumerate(cases):
        row = pos.loc[f"s{i}"]
        want_out, want_exc = brute_force(on, it, m, row["excess_level"], arrivals)
        got_out, got_exc = row["days_until_stockout"], row["days_until_excess"]
        assert (np.isnan(want_out) and np.isnan(got_out)) or want_out == got_out, (i, on, it, m, arrivals)
        assert (np.isnan(want_exc) and np.isnan(got_exc)) or want_exc == got_exc, (i, on, it, m, arrivals)


def test_projection_series_agrees_with_days_until():
    net = network([("A", "s", 20, 0)], [("A", "s", 2.0, 1.0)], inbound=[("A", "s", 30, "2026-01-15")])
    pos = project(build_positions(net, Scenario()), net.inbound, net.as_of).iloc[0]
    series = projection_series(pos, net.inbound, net.as_of, days=60)
    first_lost = int(np.flatnonzero(series["lost"].to_numpy() > 0)[0])
    assert first_lost == pos["days_until_stockout"] == 25  # (20 + 30) / 2 = 25 days covered: days 0..24
    # stock floors at 0 and what it cannot serve is lost, not owed (issue 14: it was drawn at -2,000)
    assert series["projected"].min() == 0 and series["lost"].iloc[-1] == pytest.approx(2.0 * 60 - 50)


def test_projection_refills_from_zero_after_a_stockout():
    net = network([("A", "s", 20, 0)], [("A", "s", 2.0, 1.0)], inbound=[("A", "s", 30, "2026-01-25")])
    pos = project(build_positions(net, Scenario()), net.inbound, net.as_of).iloc[0]
    series = projection_series(pos, net.inbound, net.as_of, days=40)
    arrival = int(np.flatnonzero(series["arrivals"].to_numpy() > 0)[0])
    assert int(np.flatnonzero(series["lost"].to_numpy() > 0)[0]) == pos["days_until_stockout"] == 10
    assert series["projected"].iloc[arrival] == pytest.approx(30 - 2.0)  # refilled from 0, nothing owed
    assert series["lost"].iloc[arrival] == pytest.approx(2.0 * (arrival - 10))


@pytest.mark.parametrize(
    "values, message",
    [
        ({"service_level": 1.0}, "service_level"),
        ({"horizon_days": 0}, "horizon_days"),
        ({"excess_cover_days": 10, "horizon_days": 28}, "excess_cover_days: must be >= horizon_days"),
        ({"donor_reserve": 1.5}, "donor_reserve"),
        ({"min_move_units": 0}, "min_move_units"),
        ({"budget": -1}, "budget"),
    ],
)
def test_bad_scenarios_refused(values, message):
    with pytest.raises(ScenarioInvalid) as info:
        Scenario(**values)
    assert message in str(info.value)


def test_scenario_unknown_key():
    with pytest.raises(ScenarioInvalid, match="unknown parameter"):
        Scenario.from_mapping({"servce_level": 0.9})


def test_with_columns_is_assign_without_copies():
    """Positions after a plan are the table with a dozen columns replaced (issue 15: ``assign``
    copied all 43 columns of 850,000 positions for every plan the optimizer scored)."""
    from rebal_core.decisions.positions import with_columns

    frame = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"], "c": [1, 2, 3], "d": [True, False, True]}, index=[7, 3, 5]
    )
    kept = frame.copy()
    new = {"c": np.array([9.5, 8.5, 7.5]), "e": np.array(["p", "q", "r"], dtype=object), "a": np.zeros(3)}
    got = with_columns(frame, **new)
    pd.testing.assert_frame_equal(got, frame.assign(**new), check_exact=True)
    assert list(got.columns) == ["a", "b", "c", "d", "e"]
    assert np.shares_memory(got["c"].to_numpy(), new["c"])  # the new columns as given, no copies
    assert np.shares_memory(got["d"].to_numpy(), frame["d"].to_numpy())
    got["b"] = ["changed", "y", "z"]  # a column replaced in the result leaves the original as it was
    pd.testing.assert_frame_equal(frame, kept)
