"""Forecast patterns, distances and outlines, and spreadsheet-safe CSV."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from rebal_core.execution.files import neutralize_formulas, to_csv_bytes
from rebal_core.signals.forecast import MODEL_NAMES, _chunk_means, _models, classify, forecast_demand
from rebal_core.signals.geo import RateCard, derive_lanes, great_circle_km, outline_paths, topojson_paths


def test_classify_patterns():
    smooth = np.full(100, 5.0)
    erratic = np.tile([1.0, 20.0], 50)
    intermittent = np.zeros(100)
    intermittent[::5] = 3.0
    lumpy = np.zeros(100)
    lumpy[::5] = [1, 30] * 10
    assert list(classify(np.vstack([smooth, erratic, intermittent, lumpy]))) == [
        "smooth",
        "erratic",
        "intermittent",
        "lumpy",
    ]


def test_forecast_constant_and_intermittent_series():
    as_of = dt.date(2026, 3, 1)
    days = pd.date_range(end=pd.Timestamp(as_of) - pd.Timedelta(days=1), periods=120)
    steady = pd.DataFrame({"date": days, "site_id": "A", "sku_id": "x", "qty": 5.0})
    sparse = pd.DataFrame({"date": days[::10], "site_id": "A", "sku_id": "y", "qty": 2.0})
    result = forecast_demand(pd.concat([steady, sparse]), as_of)
    table = result.table.set_index("sku_id")
    assert table.loc["x", "mean_daily"] == pytest.approx(5.0, rel=1e-3)
    assert table.loc["x", "std_daily"] == pytest.approx(0.0, abs=1e-3)
    assert table.loc["y", "pattern"] == "intermittent"
    assert table.loc["y", "mean_daily"] == pytest.approx(0.2, rel=0.25)
    assert result.accuracy is not None and result.accuracy.series == 2


@pytest.mark.parametrize("days", [5, 10, 60, 365])
def test_models_called_per_series_give_statsforecasts_figures_to_the_bit(days):
    """The fits run statsforecast's kernels per series (no long data frame): the means must be
    exactly what ``StatsForecast.forecast`` gives, on every kind of series and history length
    (shorter than a season, one or two points a season day, a year)."""
    from statsforecast import StatsForecast

    rng = np.random.default_rng(days)
    horizon = 28
    smooth = rng.poisson(20, (40, days))
    intermittent = rng.poisson(0.3, (40, days)) * rng.integers(1, 30, (40, days))
    lumpy = (rng.random((40, days)) < 0.05) * rng.gamma(0.5, 40, (40, days))
    edges = np.zeros((4, days))
    edges[1, -1] = 5.0  # one sale, on the last day
    edges[2, 0] = 3.0  # one sale, on the first day
    edges[3] = np.arange(days) % 7 == 0  # a sale every week
    block = np.vstack([smooth, intermittent, lumpy, edges]).astype(np.float32)
    dates = pd.date_range("2026-01-01", periods=days, freq="D")
    names = list(_models())
    assert names == list(MODEL_NAMES)  # the names tried without importing the models
    ours = _chunk_means(block, dates, horizon, names)
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(len(block)), days),
            "ds": np.tile(dates.values, len(block)),
            "y": block.ravel().astype(np.float64),
        }
    )
    models = _models()
    fc = StatsForecast(models=list(models.values()), freq="D", n_jobs=1).forecast(df=frame, h=horizon)
    if "unique_id" not in fc.columns:
        fc = fc.reset_index()
    means = fc.groupby("unique_id")[[m.alias for m in models.values()]].mean()
    for name, model in models.items():
        theirs = np.clip(means[model.alias].to_numpy(), 0, None)
        assert np.array_equal(ours[name], theirs, equal_nan=True), name
    assert all(len(v) == 0 for v in _chunk_means(block[:0], dates, horizon, names).values())


def test_great_circle_new_york_los_angeles():
    assert great_circle_km(40.7128, -74.0060, 34.0522, -118.2437) == pytest.approx(3936, rel=0.01)


def test_derived_lanes_priced_by_rate_card():
    sites = pd.DataFrame(
        {"site_id": ["a", "b", "c"], "lat": [40.7128, 34.0522, 41.8781], "lon": [-74.0060, -118.2437, -87.6298]}
    )
    card = RateCard(truck_cost_fixed=100, truck_cost_per_km=1.0)
    lanes = derive_lanes(sites, card)
    assert len(lanes) == 6
    ab = lanes[(lanes.from_site_id == "a") & (lanes.to_site_id == "b")].iloc[0]
    road = ab["road_km"]
    assert road == pytest.approx(3936 * 1.22, rel=0.01)
    assert ab["lead_time_days"] == pytest.approx(1.0 + road / 650, abs=0.01)
    assert ab["cost_per_unit"] == pytest.approx(0.25 + 0.0008 * road, abs=1e-3)
    assert ab["cost_per_truck"] == pytest.approx(100 + road, abs=0.1)


def test_rate_card_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown key"):
        RateCard.from_mapping({"speed": 3})
    with pytest.raises(ValueError, match="km_per_day"):
        RateCard.from_mapping({"km_per_day": -1})


def test_topojson_decoding():
    topo = {"transform": {"scale": [0.5, 0.25], "translate": [10, 20]}, "arcs": [[[0, 0], [2, 4], [2, -4]]]}
    assert topojson_paths(topo) == [[[10.0, 20.0], [11.0, 21.0], [12.0, 20.0]]]
    world = outline_paths("world")
    assert len(world) > 100 and all(-180.01 <= p[0] <= 180.01 for path in world for p in path)


def test_formulas_neutralised_numbers_untouched():
    frame = pd.DataFrame({"name": ['=HYPERLINK("x")', "+1", "-cmd", "@sum", "plain"], "qty": [-3, 1, 2, 3, 4]})
    out = neutralize_formulas(frame)
    assert list(out["name"]) == ['\'=HYPERLINK("x")', "'+1", "'-cmd", "'@sum", "plain"]
    assert list(out["qty"]) == [-3, 1, 2, 3, 4]
    assert to_csv_bytes(frame).startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize(
    "cell",
    [
        "=1+1",
        "+1",
        "-1+2",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "\n=1",
        " =1",
        "  +cmd",
        "\u00a0=1",
        "\u3000=1",
        "\ufeff=1",
        '\uff1dHYPERLINK("http://x")',
        "\uff0b1",
        "\uff0d1",
        "\uff20SUM(A1)",
        "|calc",
        "%0A=1",
        "\tplain",
        "\nplain",
    ],
)
def test_every_owasp_formula_start_is_neutralised_in_csv_and_xlsx(cell):
    import io

    import openpyxl

    from rebal_core.execution.files import is_formula_like, to_xlsx_bytes

    assert is_formula_like(cell)
    frame = pd.DataFrame({"name": [cell], cell: [1]})
    import csv

    rows = list(csv.reader(io.StringIO(to_csv_bytes(frame).decode("utf-8-sig"), newline="")))
    assert rows[0][1] == "'" + cell and rows[1][0] == "'" + cell  # header and cell, as written
    sheet = openpyxl.load_workbook(io.BytesIO(to_xlsx_bytes(frame))).active
    assert all(str(c.value).startswith("'") for c in (sheet["A2"], sheet["B1"]))


@pytest.mark.parametrize("cell", ["plain", "Phoenix DC", "ST-001", "SKU=3", "a-b", "", " leading space", "1e5"])
def test_ordinary_text_is_left_alone(cell):
    from rebal_core.execution.files import is_formula_like

    assert not is_formula_like(cell)


@pytest.mark.parametrize(
    "name",
    ["![px](http://127.0.0.1:9/p.png)", "[plan](http://evil)", ":red[alarm]", "<img src=x>", "*bold* _it_ `code` $x$"],
)
def test_names_are_shown_as_text_never_markdown(name):
    import re

    from rebal_core.views.figures import plain

    shown = plain(name)
    assert not re.search(r"(?<!\\)[\[\]*_`$<>]", shown)  # every markdown character escaped
    assert re.sub(r"\\(.)", r"\1", shown) == name  # and nothing else changed


def test_names_in_figures_cannot_carry_links_or_tags():
    from rebal_core.views.figures import compare_bars, region_units_figure

    evil = '<a href="http://evil">click</a>'
    bars = compare_bars({evil: 0.9, "B": 0.95}, "fill rate", percent=True)
    assert "<a " not in " ".join(map(str, bars.data[0].x)) and "&lt;a href" in bars.data[0].x[0]
    units = region_units_figure(pd.DataFrame({"scenario": [evil], "region": ["<b>West</b>"], "units": [3]}))
    assert "<" not in units.data[0].name and "<" not in units.data[0].x[0]


@pytest.mark.parametrize("chunk", [1, 7, 50, 1 << 21])
def test_demand_matrix_is_the_daily_sums_in_any_row_order_and_any_chunking(monkeypatch, chunk):
    """The series x day matrix (issue 15: built in chunks of rows) against a pandas pivot: rows
    sorted by position (placed), by date or shuffled with repeated days (added up), days outside the
    window left out, text and categorical ids."""
    import rebal_core.chunks
    import rebal_core.signals.forecast as fc

    monkeypatch.setattr(rebal_core.chunks, "CHUNK_ROWS", chunk)
    rng = np.random.default_rng(chunk)
    for trial in range(12):
        n = int(rng.integers(1, 300))
        demand = pd.DataFrame(
            {
                "date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 70, n), "D"),
                "site_id": rng.choice(["A", "B", "C"], n),
                "sku_id": rng.choice(["x", "y", "z", "w"], n),
                "qty": rng.integers(0, 9, n) + (trial % 2) * rng.random(n).round(3),
            }
        )
        if trial % 3 == 0:
            demand = demand.drop_duplicates(["site_id", "sku_id", "date"]).sort_values(["site_id", "sku_id", "date"])
        elif trial % 3 == 1:
            demand = demand.sort_values("date", kind="stable")
        if trial % 4 == 0:
            demand = demand.astype({"site_id": "category", "sku_id": "category"})
        as_of, days = dt.date(2026, 2, 20), int(rng.choice([10, 40, 365]))
        pairs, matrix, dates = fc.demand_matrix(demand, as_of, days)
        inside = demand[(demand["date"] >= dates[0]) & (demand["date"] <= dates[-1])]
        expected = (
            inside.astype({"site_id": str, "sku_id": str, "qty": np.float32})
            .pivot_table(index=["site_id", "sku_id"], columns="date", values="qty", aggfunc="sum", fill_value=0.0)
            .reindex(columns=dates, fill_value=0.0)
        )
        got = pd.DataFrame(matrix, index=pd.MultiIndex.from_frame(pairs.astype(str)), columns=dates)
        got = got[got.sum(axis=1) > 0] if len(got) else got
        expected = expected[expected.sum(axis=1) > 0]
        assert dates[-1] == pd.Timestamp(as_of) - pd.Timedelta(days=1)
        np.testing.assert_allclose(got.sort_index().to_numpy(), expected.sort_index().to_numpy(), rtol=1e-6)
        assert list(got.sort_index().index) == list(expected.sort_index().index)
