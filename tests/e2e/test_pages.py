"""An AppTest for every page, against a store holding the small network."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]

PAGES = ["app.py", "pages/1_Network.py", "pages/2_Hotspots.py", "pages/3_Data.py", "pages/4_Scenario_lab.py", "pages/5_Plans.py", "pages/6_Compare.py",
         "pages/7_Audit_log.py", "pages/8_Admin.py"]


@pytest.fixture(autouse=True)
def _store(loaded_db, monkeypatch):
    monkeypatch.setenv("REBAL_DATABASE_URL", loaded_db)


def run(page: str, user: str | None = "admin") -> AppTest:
    """Run a page signed in as ``user`` (what the sign-in form leaves in the session)."""
    at = AppTest.from_file(str(ROOT / page), default_timeout=120)
    if user:
        at.session_state["signed_in"] = user
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page):
    run(page)


def test_home_shows_kpis():
    at = run("app.py")
    labels = [m.label for m in at.metric]
    assert "Expected fill rate" in labels and "Stockouts within 7 days" in labels


def test_network_filters_and_site_drilldown():
    at = run("pages/1_Network.py")
    all_value = next(m.value for m in at.metric if m.label == "Shortage value")
    at.sidebar.multiselect[1].select(at.sidebar.multiselect[1].options[0]).run()  # one region
    assert not at.exception
    assert next(m.value for m in at.metric if m.label == "Shortage value") != all_value
    site_id = at.selectbox[0].options[0].rsplit("(", 1)[1].rstrip(")")  # "Chicago Store (ST003)"
    at.session_state["focus_site"] = site_id  # what a click on the map sets
    at.run()
    assert not at.exception
    assert any(m.label == "Days of cover" for m in at.metric)
    assert at.selectbox[0].value == site_id


def test_hotspots_metric_and_position():
    at = run("pages/2_Hotspots.py")
    for option in ("excess value", "days of cover against target"):
        at.button_group[0].set_value(option).run()
        assert not at.exception
    at.radio[0].set_value("days until stockout").run()
    assert not at.exception
    assert any("Position" in c.value for c in at.caption)


def test_data_page_lists_dataset_and_accuracy():
    at = run("pages/3_Data.py")
    assert "Small network" in at.dataframe[0].value["name"].tolist()
    assert any("Demand forecast" in m.value for m in at.markdown)


def test_scenario_lab_solves_compares_and_resolves():
    at = run("pages/4_Scenario_lab.py")
    labels = [m.label for m in at.metric]
    assert {"Network cost", "Expected fill rate", "Transfer cost"} <= set(labels)
    compare = at.dataframe[0].value
    assert list(compare.columns) == ["", "Optimized", "Greedy rule"]
    plan = at.dataframe[1].value
    assert len(plan) > 0 and plan["reason"].str.len().min() > 20
    before = next(m.value for m in at.metric if m.label == "Transfer cost")
    at.number_input(key="lab-cpm").set_value(40.0).run()  # a cost per move: fewer, larger lines
    assert not at.exception
    assert len(at.dataframe[1].value) < len(plan)
    assert next(m.value for m in at.metric if m.label == "Transfer cost") != before


def test_scenario_lab_refuses_bad_values():
    at = run("pages/4_Scenario_lab.py")
    at.slider(key="lab-h").set_value(120).run()  # horizon above the excess cover of 90 days
    assert not at.exception
    assert any("excess_cover_days: must be >= horizon_days (120)" in e.value for e in at.error)


def test_scenario_lab_map_pick_filters_the_plan():
    at = run("pages/4_Scenario_lab.py")
    plan = at.dataframe[1].value
    lane = (plan["from_site_id"].iloc[0], plan["to_site_id"].iloc[0])
    at.session_state["lab_lane"] = lane  # what a click on the lane's arc sets
    at.run()
    assert not at.exception
    shown = at.dataframe[1].value
    assert 0 < len(shown) < len(plan)
    assert set(zip(shown["from_site_id"], shown["to_site_id"])) == {lane}
