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


def _text_rate(demand: pd.DataFrame, skus: pd.DataFrame, rows: np.ndarray, days: int) -> pd.Series:
    """The rule as first written: group the rows by (site, category) text; skus without one left out."""
    category = skus.astype({"sku_id": str}).drop_duplicates("sku_id").set_index("sku_id")["category"]
    frame = pd.DataFrame(
        {
            "site_id": demand["site_id"].astype(str).to_numpy()[rows],
            "category": demand["sku_id"].astype(str).map(category).to_numpy()[rows],
            "qty": demand["qty"].to_numpy(float)[rows],
        }
    )
    return frame.groupby(["site_id", "category"])["qty"].sum() / days


def test_rates_per_site_and_category_grouped_on_codes_are_the_text_groupings():
    """The shift and bias checks group a year of rows on integer codes: the sums, labels and order
    must be those of grouping by the text, with fractional quantities, ids typed as text or as
    categoricals in or out of the masters' order, ids missing from the masters, skus without a
    category."""
    from rebal_core.signals.quality import _Coded, _rate_by_site_category

    for seed in range(8):
        rng = np.random.default_rng(seed)
        sites = pd.DataFrame({"site_id": [f"S{i}" for i in rng.permutation(12)]})
        skus = pd.DataFrame(
            {
                "sku_id": [f"K{i:02d}" for i in rng.permutation(30)],
                "category": rng.choice(["Tools", "Paint", "Garden", None], 30),
            }
        )
        n = 5_000
        site = rng.choice([*sites["site_id"], "S99"], n)  # S99: not in sites.csv
        sku = rng.choice([*skus["sku_id"], "K77"], n)  # K77: not in skus.csv
        demand = pd.DataFrame({"site_id": site, "sku_id": sku, "qty": rng.gamma(0.7, 3.0, n).round(3)})
        if seed % 2:  # categoricals, as a bundle types them (masters' order) or in another order
            order = list(sites["site_id"]) + ["S99"] if seed % 4 == 1 else sorted(set(site))
            demand["site_id"] = pd.Categorical(site, categories=order)
            demand["sku_id"] = pd.Categorical(sku)
        demand["date"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 90, n), unit="D")
        d = _Coded(sites, skus, demand)
        rows = np.flatnonzero(rng.random(n) < 0.6)
        ours = _rate_by_site_category(d, rows, 28)
        theirs = _text_rate(demand, skus, rows, 28)
        pd.testing.assert_series_equal(ours, theirs, check_exact=True, check_names=False)
        assert ours.index.names == ["site_id", "category"]


def test_leaving_out_series_that_cannot_spike_changes_no_finding(monkeypatch):
    """Before grouping, the spike check leaves out series whose median provably sits within
    spike_mads of their biggest day: on random histories (steady, intermittent, fractional, with
    spikes, shifts and ties at the edge of the rule) the findings are those of grouping them all."""
    from rebal_core.signals import quality

    as_of = dt.date(2026, 6, 1)
    days = pd.date_range(end=pd.Timestamp(as_of) - pd.Timedelta(days=1), periods=150)
    for seed in range(6):
        rng = np.random.default_rng(seed)
        sites = pd.DataFrame({"site_id": [f"S{i}" for i in range(6)], "region": "R"})
        skus = pd.DataFrame(
            {"sku_id": [f"K{i}" for i in range(25)], "category": rng.choice(["A", "B"], 25), "unit_cost": 1.0}
        )
        parts = []
        for s in sites["site_id"]:
            for k in skus["sku_id"]:
                level = rng.choice([0.3, 2.0, 9.0, 25.0, 60.0])
                qty = rng.poisson(level, len(days)).astype(float)
                if rng.random() < 0.3:
                    qty = np.round(qty * rng.uniform(0.5, 1.5, len(days)), 2)  # fractional units
                if rng.random() < 0.4:
                    qty[rng.integers(60, 150)] += rng.choice([9.99, 10.0, 10.01, 40.0, 200.0])  # spikes, edge cases
                if rng.random() < 0.2:
                    qty[-20:] += level * 3  # a shift, not a spike
                keep = rng.random(len(days)) < 0.9  # rows missing here and there
                parts.append(pd.DataFrame({"date": days[keep], "site_id": s, "sku_id": k, "qty": qty[keep]}))
        demand = pd.concat(parts, ignore_index=True)
        inventory = pd.DataFrame({"site_id": ["S0"], "sku_id": ["K0"], "on_hand": [5]})
        pruned = check_signals(sites, skus, inventory, demand, None, as_of)
        monkeypatch.setattr(quality, "PRUNE_CALM_SERIES", False)
        whole = check_signals(sites, skus, inventory, demand, None, as_of)
        monkeypatch.setattr(quality, "PRUNE_CALM_SERIES", True)
        pd.testing.assert_frame_equal(pruned, whole)
        assert (whole["check"] == "spike").sum() > 0


def test_findings_do_not_depend_on_how_the_rows_are_walked(monkeypatch):
    """Which sites reported on which days is filled a chunk of rows at a time (issue 15): the same
    findings (a feed that dropped out, a site behind) in chunks of one row, of seven, or all at once."""
    import rebal_core.chunks

    worlds = [world(), world(last_day=AS_OF - dt.timedelta(days=40))]
    sites, skus, inventory, demand, forecast = world()
    worlds.append(
        (
            sites,
            skus,
            inventory,
            demand[~((demand["site_id"] == "C") & (demand["date"] > demand["date"].max() - pd.Timedelta(days=20)))],
            forecast,
        )
    )
    for sites, skus, inventory, demand, forecast in worlds:
        runs = []
        for chunk in (1, 7, 1 << 21):
            monkeypatch.setattr(rebal_core.chunks, "CHUNK_ROWS", chunk)
            runs.append(
                check_signals(sites, skus, inventory, demand.sample(frac=1, random_state=chunk), forecast, AS_OF)
            )
        pd.testing.assert_frame_equal(runs[0], runs[1])
        pd.testing.assert_frame_equal(runs[0], runs[2])
        assert runs[0]["check"].isin(["missing_days", "stale"]).any()
