"""Rules that had several copies now have one (issue 13): money in words, trucks per lane,
the progress sink, the refusals, "critical"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rebal_core.decisions.planning import trucks_for
from rebal_core.format import money, money_whole, signed_money
from rebal_core.signals.quality import blocking


@pytest.mark.parametrize(
    ("value", "compact", "whole", "signed"),
    [
        (1_446_016.9409, "$1.4M", "$1,446,017", "+$1.4M"),
        (12_389, "$12.4k", "$12,389", "+$12.4k"),
        (-461_700, "-$461.7k", "-$461,700", "-$461.7k"),
        (870, "$870", "$870", "+$870"),
        (-4.4, "-$4", "-$4", "-$4"),
    ],
)
def test_money_has_its_sign_before_the_symbol(value, compact, whole, signed):
    assert (money(value), money_whole(value), signed_money(value)) == (compact, whole, signed)


def test_trucks_count_ceil_volume_over_capacity_with_one_slack():
    assert trucks_for(1800.0000001, 1800) == 1  # floating-point sums
    assert trucks_for(139.8, 20) == 7
    assert trucks_for(0, 20) == 0
    assert list(trucks_for(np.array([0.0, 20.0, 20.5, 61.0]), np.array([20.0, 20.0, 20.0, 20.0]))) == [0, 1, 2, 4]


def test_trucks_for_one_lane_counts_as_for_many():
    """The scalar path (one lane at a time, in the greedy rule and the truck trim) gives the array path's count."""
    rng = np.random.default_rng(0)
    volume = np.r_[rng.uniform(0, 5_000, 2_000), rng.integers(1, 40, 200) * 20.0, [0.0, -3.0, np.nan, 1800.0000001]]
    capacity = np.r_[rng.choice([20.0, 33.3, 1800.0, 0.0, np.nan], 2_200), [20.0, 20.0, 20.0, 1800.0]]
    one = [trucks_for(float(v), float(c)) for v, c in zip(volume, capacity)]
    assert all(isinstance(t, float) for t in one)
    np.testing.assert_array_equal(one, trucks_for(volume, capacity))
    assert trucks_for(7, 2) == 4 and trucks_for(140, 20) == 7


def test_critical_is_decided_in_one_place():
    findings = pd.DataFrame({"severity": ["critical", "warning", "info", "critical"], "message": list("abcd")})
    assert list(blocking(findings)["message"]) == ["a", "d"]


def test_violations_are_typed_and_say_which_rule_and_where():
    from rebal_core.decisions.planning import RULES, Violation

    v = Violation("receive_capacity", "S10 receives 120 units, above its receive capacity 100", site_id="S10")
    assert str(v) == v.message and v.rule in RULES
    # the old substring match took S1's line for S10's problem; the typed one does not
    assert not v.touches("K1", "S2", "S1") and v.touches("K1", "S2", "S10")
    assert Violation("budget", "transfer cost 5,000.01 exceeds the budget 5,000.00").touches("K9", "A", "B")
    with pytest.raises(ValueError, match="unknown rule"):
        Violation("made-up", "x")


def _summary(**changes):
    from rebal_core.decisions.planning import PlanSummary

    base = dict(
        scenario={}, method="optimize", network_cost_before=100.0, network_cost_after=80.0, net_benefit=20.0,
        transfer_cost=5.0, truck_cost=2.0, shortage_cost_before=60.0, shortage_cost_after=45.0,
        excess_cost_before=40.0, excess_cost_after=30.0, fill_rate_before=0.9, fill_rate_after=0.95, lines=3,
        units_moved=40, trucks={"A>B": 1}, lanes_used=1, objective="expected", expected_lost_units_before=10.0,
        expected_lost_units_after=6.0, expected_lost_value_before=60.0, expected_lost_value_after=45.0,
        nothing_pays=None, solver_status="FEASIBLE", lower_bound=78.0, gap=0.025, build_seconds=0.1,
        solve_seconds=1.0, fill_rate_target=None, fill_rate_target_met=None, kept_greedy_plan=False,
        kpis_before={"shortage_value": 7.0}, kpis_after={"shortage_value": 3.0},
    )  # fmt: skip
    return PlanSummary(**{**base, **changes})


def test_plan_summary_is_typed_checks_itself_and_round_trips():
    from rebal_core.decisions.planning import PlanSummary

    s = _summary()
    assert s.cost() == 80.0 and s.is_feasible()
    assert PlanSummary.from_dict(s.as_dict()) == s
    stored = {**s.as_dict(), "trucks_by_lane": s.trucks}  # how a saved plan keeps its trucks
    del stored["trucks"]
    assert PlanSummary.from_dict(stored).trucks == {"A>B": 1}
    assert "3 lines, 40 units; network cost 100.00 -> 80.00" in s.describe()
    with pytest.raises(ValueError, match="lower bound 90.00 above the plan's cost 80.00"):
        _summary(lower_bound=90.0)
    with pytest.raises(ValueError, match="lines is negative"):
        _summary(lines=-1)


def test_compare_formats_values_as_values_whatever_the_scenario_names():
    """Issue 14: with names containing " - " every KPI was formatted as a change ("+$2.4M", "+91.61 pts")."""
    from rebal_core.decisions.what_if.compare import kpi_table
    from rebal_core.views.tables import kpi_display

    a = _summary(network_cost_after=2_400_000.0, lower_bound=float("nan"), fill_rate_after=0.9161)
    b = _summary(network_cost_after=2_300_000.0, lower_bound=float("nan"), fill_rate_after=0.9261)
    table = kpi_table({"95% - budget": a, "98% - no budget": b}, base="95% - budget")
    shown = kpi_display(table).set_index("KPI")
    assert shown.loc["Expected fill rate after", "95% - budget"] == "91.61%"
    assert shown.loc["Expected fill rate after", "98% - no budget - 95% - budget"] == "+1.00 pts"
    assert shown.loc["Network cost after", "98% - no budget"] == "$2.3M"
    assert shown.loc["Network cost after", "98% - no budget - 95% - budget"] == "-$100.0k"


def test_a_single_snapshot_trend_reads_in_days_from_zero():
    """Issue 14: with one snapshot the Monitor drew clock times around midnight and 0-150 % fill rates."""
    import datetime as dt

    from rebal_core.views.figures import trend_figure

    one = pd.DataFrame({"snapshot": ["June"], "as_of": [dt.date(2026, 6, 1)], "network_cost": [1.2e6], "fill_rate": [0.94], "turns": [5.5]})  # fmt: skip
    rate = trend_figure(one, "fill_rate").layout
    assert list(rate.yaxis.range) == [0, 1.0] and rate.xaxis.type == "date"
    span = pd.to_datetime(rate.xaxis.range[1]) - pd.to_datetime(rate.xaxis.range[0])
    assert span == pd.Timedelta(days=14)
    assert trend_figure(one, "network_cost").layout.yaxis.range[0] == 0


def test_maps_ask_no_one_for_a_basemap():
    """Issue 14: with map_style=None Streamlit fetched Carto's style for every map; no provider means
    no basemap (the shipped outlines are the map)."""
    import json

    from rebal_core.decisions.positions import build_positions, site_summary
    from rebal_core.decisions.scenario import Scenario
    from rebal_core.decisions.solvers.stress import tiny_trucked_network
    from rebal_core.views.figures import network_map

    net, _ = tiny_trucked_network(0)
    deck = json.loads(network_map(site_summary(build_positions(net, Scenario()), net.sites)).to_json())
    assert "mapProvider" not in deck and deck["mapStyle"] == "__MAP_STYLE__"
    assert "http" not in json.dumps(deck)


def test_plan_lines_read_most_urgent_first_and_bulk_actions_say_their_total():
    from rebal_core.views.tables import PLAN_LINE_COLUMNS, picked_totals, plan_lines_view

    lines = pd.DataFrame({
        "transfer_id": ["TR-a", "TR-b", "TR-c"], "status": "proposed", "sku_name": "x", "from_site": "A", "to_site": "B",
        "qty": [10, 200, 30], "reason": "r", "days_until_stockout": [None, 3.0, 3.0], "value": [50.0, 48_000.0, 900.0],
        "cost": [5.0, 1_900.0, 20.0], "needs_approval": False, "approval_rule": "", "proposed_qty": [10, 200, 30],
        "sku_id": "K", "decided_by": None, "note": "", "released_at": None, "version": 1,
    })  # fmt: skip
    view = plan_lines_view(lines)
    assert list(view["transfer_id"]) == ["TR-b", "TR-c", "TR-a"]  # urgent first, then value; hash ids last
    assert list(view.columns)[:7] == ["transfer_id", "status", "sku_name", "from_site", "to_site", "qty", "reason"]
    assert set(view.columns) <= set(PLAN_LINE_COLUMNS)
    assert picked_totals(lines, ["TR-b", "TR-c"]) == "2 line(s) · 230 units · $48.9k moved · $1,920 transfer cost"


def test_compare_figures_share_scales_and_start_at_zero():
    """Issue 14: the two waterfalls used different scales, the fill-rate bars a cut axis, side-by-side maps a US view."""
    from rebal_core.decisions.positions import build_positions, site_summary
    from rebal_core.decisions.scenario import Scenario
    from rebal_core.decisions.solvers.stress import tiny_trucked_network
    from rebal_core.views.figures import compare_bars, cost_waterfall, network_map, waterfall_top

    small, big = _summary(network_cost_before=100.0, lower_bound=float("nan")), _summary(network_cost_before=900.0, lower_bound=float("nan"))  # fmt: skip
    top = waterfall_top([small, big])
    assert cost_waterfall(small, y_max=top).layout.yaxis.range == cost_waterfall(big, y_max=top).layout.yaxis.range
    assert cost_waterfall(small, y_max=top).layout.yaxis.range[0] == 0
    assert compare_bars({"a": 0.94, "b": 0.98}, "Fill", percent=True).layout.yaxis.range[0] == 0
    net, _ = tiny_trucked_network(3)
    sites = site_summary(build_positions(net, Scenario()), net.sites)
    wide, half = network_map(sites).initial_view_state, network_map(sites, width_px=600).initial_view_state
    assert half.zoom <= wide.zoom
    span_px = (sites["lon"].max() - sites["lon"].min()) * 256 * 2**half.zoom / 360
    assert span_px <= 600  # every site inside a half-width map (the fixed US view cut them off)
    assert abs(half.longitude - (sites["lon"].max() + sites["lon"].min()) / 2) < 1e-9


def test_the_map_legend_ranks_statuses_by_value_at_risk():
    from rebal_core.views.figures import map_legend

    sites = pd.DataFrame({"status": ["short", "excess", "short", "balanced"], "value_at_risk": [5e5, 2e4, 1e5, 0.0]})
    legend = map_legend("status", sites)
    assert legend.startswith(":red[●] shortage dominates: 2 site(s), $600.0k at risk")
    assert legend.index("excess dominates") < legend.index("balanced")
    assert "$500.0k" in map_legend("value at risk", sites)


def test_position_tables_speak_the_planners_words():
    from rebal_core.views.tables import POSITION_COLUMNS, position_columns

    shown = position_columns(["sku_id", "mean_daily", "shortage_value", "days_until_stockout", "not_a_column"])
    assert shown == {k: POSITION_COLUMNS[k] for k in ("sku_id", "mean_daily", "shortage_value", "days_until_stockout")}
    assert all("_" not in label for label, _ in POSITION_COLUMNS.values())  # no raw headers like on_hand


def test_backtest_and_trend_tables_lead_with_what_matters():
    from rebal_core.views.tables import BACKTEST_COLUMNS, TREND_COLUMNS, in_order

    totals = pd.DataFrame({"arm": ["none"], "demand_units": [1.0], "realised_net": [0.0], "extra": [1]})
    assert list(in_order(totals, BACKTEST_COLUMNS).columns) == ["arm", "realised_net", "demand_units", "extra"]
    assert all("_" not in label for label, _ in [*BACKTEST_COLUMNS.values(), *TREND_COLUMNS.values()])
