"""An AppTest for every page, against a store holding the small network."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]

PAGES = [
    "app.py",
    "pages/1_Network.py",
    "pages/2_Hotspots.py",
    "pages/3_Data.py",
    "pages/4_Scenario_lab.py",
    "pages/5_Plans.py",
    "pages/6_Compare.py",
    "pages/9_Backtest.py",
    "pages/10_Monitor.py",
    "pages/7_Audit_log.py",
    "pages/8_Admin.py",
]


@pytest.fixture(autouse=True)
def _store(loaded_db, monkeypatch):
    monkeypatch.setenv("REBAL_DATABASE_URL", loaded_db)


from tests.integration.test_workflow import release  # noqa: E402 - submit, approve, release: one helper for every test


def frame(at: AppTest, column: str):
    """The first table on the page with ``column`` (dataframes carry no key in AppTest)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def run(page: str, user: str | None = "admin") -> AppTest:
    """Run a page signed in as ``user`` (what the sign-in form leaves in the session)."""
    at = AppTest.from_file(str(ROOT / page), default_timeout=120)
    if user:
        at.session_state["signed_in"] = user
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if user:
        assert "signed_in" in at.session_state, (
            f"{user} is not a user of this store: the page stopped at the sign-in form"
        )
    return at


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page):
    run(page)


def test_home_shows_kpis():
    at = run("app.py")
    labels = [m.label for m in at.metric]
    assert "Expected fill rate" in labels and "Stockouts within 7 days" in labels


def test_home_opens_on_a_recommendation():
    """Issue 14: the home page said counts; it now says where it hurts, what inaction costs and
    what the recommended plan would do, with one click to it."""
    at = run("app.py")
    labels = [m.label for m in at.metric]
    assert {"Value at risk today", "Doing nothing costs", "The recommended plan saves"} <= set(labels)
    hurting = at.dataframe[0].value
    assert len(hurting) > 0 and hurting["value_at_risk"].is_monotonic_decreasing
    assert at.button(key="home-open").label.startswith("Open the recommended plan")


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


def test_scenario_lab_draws_uncertainty_only_when_asked():
    """The Monte Carlo bands cost 0.15 s a move: drawn while their expander is open, not otherwise."""
    at = run("pages/4_Scenario_lab.py")
    assert not [c for c in at.get("plotly_chart") if "lab-mc" in str(c.proto.id)]
    closed = len(at.get("plotly_chart"))
    at.session_state["lab-mc"] = True  # what opening the expander does
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == closed + 2  # fill rate and shortage cost bands


def test_sidebar_lists_every_page_and_calls_home_home():
    from pages.components.auth import PAGES as NAV

    assert {p for p, _ in NAV} == {"app.py"} | {f"pages/{f.name}" for f in (ROOT / "pages").glob("*.py")}
    at = run("app.py")
    links = [e.proto.label for e in at.get("page_link")]
    assert links[0] == "Home" and "app" not in links and len(links) == len(NAV)


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


# ----------------------------------------------------------------------------- sign-in and the S&OP pages


@pytest.fixture
def writable(workflow_db, monkeypatch):
    """A store the page may change, with users admin, pat (planner), ann (approver), vic (viewer)."""
    monkeypatch.setenv("REBAL_DATABASE_URL", workflow_db)
    from rebal_core import services, store
    from rebal_core.decisions.scenario import Scenario
    from rebal_core.governance.identity import Actor
    from rebal_core.services import workflow

    engine = store.make_engine(workflow_db)
    dataset = store.find_dataset(engine=engine, name="Small network")
    net = services.load_network(engine=engine, dataset_id=dataset.id)
    pat = Actor("pat", "planner")
    made = []
    for name, sl in (("95% service", 0.95), ("98% service", 0.98)):
        record = workflow.save_scenario(
            engine=engine,
            actor=pat,
            dataset_id=dataset.id,
            scenario=Scenario(name=name, service_level=sl),
            time_limit=5,
        )
        made.append(workflow.solve_scenario(engine=engine, actor=pat, scenario_id=record.id, network=net))
    return engine, made


def test_sign_in_is_required_and_checks_the_password(writable):
    from tests.conftest import PASSWORDS

    at = run("app.py", user=None)
    assert not at.metric and at.text_input(key="auth-user")
    at.text_input(key="auth-user").input("pat")
    at.text_input(key="auth-password").input("not the password")
    at.button[0].click().run()
    assert any("Wrong user name or password" in e.value for e in at.error)
    at.text_input(key="auth-password").input(PASSWORDS["pat"])
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["signed_in"] == "pat"
    assert any("Signed in as **pat** (planner)" in c.value for c in at.sidebar.caption)


def test_plans_page_submit_approve_release_export(writable):
    engine, (record, _) = writable
    from rebal_core.governance.identity import Actor
    from rebal_core.governance.policy import Policy, Thresholds
    from rebal_core.services import workflow

    # the small network's expected-cost plan moves little value per line: a low threshold routes some to approval
    workflow.set_policy(
        engine=engine,
        actor=Actor("admin", "admin"),
        policy=Policy(default=Thresholds(line_value=100.0, line_cost=20.0)),
    )
    at = run("pages/5_Plans.py", user="pat")
    at.session_state["scenario_id"] = record.id
    at.run()
    assert {"Network cost", "Expected fill rate", "Waiting for a decision"} <= {m.label for m in at.metric}
    assert at.button(key="plans-approve").disabled  # a planner cannot approve, and a draft is not approvable
    at.button(key="plans-submit").click().run()
    assert not at.exception
    assert any("is now in review" in s.value for s in at.success)

    at = run("pages/5_Plans.py", user="ann")
    at.session_state["scenario_id"] = record.id
    at.run()
    waiting = workflow.open_decisions(workflow.lines(engine=engine, scenario_id=record.id))["transfer_id"].tolist()
    assert waiting
    at.multiselect(key="plans-picked").set_value(waiting).run()
    at.button(key="plans-approve-lines").click().run()
    assert not at.exception
    assert any(f"Approve: {len(waiting)} line(s)" in s.value for s in at.success)
    at.button(key="plans-approve").click().run()
    at.button(key="plans-release").click().run()
    assert (
        workflow.get_scenario(engine=engine, scenario_id=record.id).status == "approved"
    )  # not before it is confirmed
    assert any("cannot be changed or withdrawn" in w.value for w in at.warning)
    at.button(key="plans-release-confirm").click().run()
    assert not at.exception
    assert workflow.get_scenario(engine=engine, scenario_id=record.id).status == "released"
    orders = frame(at, "ship_by")
    assert len(orders) == len(workflow.lines(engine=engine, scenario_id=record.id)) and orders["transfer_id"].is_unique


def test_plans_page_solves_a_long_scenario_as_a_job(writable, monkeypatch):
    """Issue 15: over the threshold, Solve starts a job; the page follows it and a second Solve is off meanwhile."""
    import time

    from rebal_core.services import jobs, workflow

    engine, (record, _) = writable
    monkeypatch.setenv("REBAL_JOB_SECONDS", "0")  # every solve is "long"
    at = run("pages/5_Plans.py", user="pat")
    at.session_state["scenario_id"] = record.id
    at.run()
    at.button(key="plans-solve").click().run()
    assert not at.exception
    assert any(s.value.startswith("Solving as job") for s in at.success)
    view = jobs.latest_backtest(engine=engine, dataset_id=record.dataset_id)
    assert view is None  # not a backtest: a solve job
    solving = jobs.active_solve(engine=engine, scenario_id=record.id)
    deadline = time.monotonic() + 300
    if solving is not None:
        at.run()
        assert at.button(key="plans-solve").disabled or jobs.active_solve(engine=engine, scenario_id=record.id) is None
        while jobs.active_solve(engine=engine, scenario_id=record.id) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
    after = workflow.get_scenario(engine=engine, scenario_id=record.id)
    assert after.solved_at is not None and after.solved_at >= record.solved_at
    assert jobs.active_solve(engine=engine, scenario_id=record.id) is None


def test_plans_page_reproduces_a_plan(writable):
    engine, (record, _) = writable
    at = run("pages/5_Plans.py", user="vic")
    at.session_state["scenario_id"] = record.id
    at.run()
    at.button(key="plans-reproduce").click().run()
    assert not at.exception
    assert any("Reproduced: the same lines" in s.value for s in at.success)


def test_plans_page_viewer_cannot_act(writable):
    engine, (record, _) = writable
    at = run("pages/5_Plans.py", user="vic")
    for key in ("plans-solve", "plans-submit", "plans-approve", "plans-release"):
        assert at.button(key=key).disabled


def test_plans_page_rejection_needs_a_reason(writable):
    engine, (record, _) = writable
    from rebal_core.services import workflow

    at = run("pages/5_Plans.py", user="pat")
    at.session_state["scenario_id"] = record.id
    at.run()
    one = workflow.lines(engine=engine, scenario_id=record.id)["transfer_id"].iloc[0]
    at.multiselect(key="plans-picked").set_value([one]).run()
    at.button(key="plans-reject-lines").click().run()
    assert any("needs a reason" in e.value for e in at.error)
    at.text_input(key="plans-reason").input("donor is being audited")
    at.button(key="plans-reject-lines").click().run()
    assert (
        workflow.lines(engine=engine, scenario_id=record.id).set_index("transfer_id").loc[one, "status"] == "rejected"
    )


def test_compare_page_kpis_differences_and_sweep(writable):
    at = run("pages/6_Compare.py", user="vic")
    kpis = frame(at, "KPI")
    base, other = kpis.columns[1], kpis.columns[2]
    assert {base, other} == {"95% service", "98% service"} and list(kpis.columns) == [
        "KPI",
        base,
        other,
        f"{other} - {base}",
    ]
    assert "Expected fill rate after" in kpis["KPI"].tolist()
    assert len(frame(at, "spread")) > 0
    at.slider(key="cmp-sweep-n").set_value(3).run()
    at.button(key="cmp-sweep").click().run()
    assert not at.exception
    sweep = frame(at, "pareto")
    assert len(sweep) == 3 and sweep["pareto"].any()


def test_audit_log_page_filters(writable):
    at = run("pages/7_Audit_log.py", user="vic")
    events = frame(at, "action")
    assert {"plan_solved", "scenario_saved"} <= set(events["action"])
    at.multiselect(key="audit-actions").set_value(["plan_solved"]).run()
    assert set(frame(at, "action")["action"]) == {"plan_solved"}
    # an event with nothing before: the viewer was handed JSON null and the browser showed
    # '"ERROR": "src property must be a valid json object"' (issue 14)
    at.multiselect(key="audit-actions").set_value(["scenario_saved"]).run()
    assert not at.exception
    assert all(j.value not in ("null", "") for j in at.json)
    assert any(c.value == "Nothing recorded." for c in at.caption)


def test_admin_page_policy_and_users(writable):
    engine, _ = writable
    from rebal_core.services import workflow

    at = run("pages/8_Admin.py", user="pat")
    assert any("needs the admin role" in c.value for c in at.caption)
    assert at.button(key="adm-save-policy").disabled
    at = run("pages/8_Admin.py", user="admin")
    assert {"pat", "ann", "vic"} <= set(frame(at, "username")["username"])
    at.number_input(key="adm-value").set_value(1234.0).run()
    at.text_input(key="adm-note").input("tighter for Q4").run()
    at.button(key="adm-save-policy").click().run()
    assert not at.exception
    policy = workflow.current_policy(engine=engine)
    assert policy.version == 2 and policy.default.line_value == 1234.0


def test_scenario_lab_saves_a_scenario(writable):
    engine, _ = writable
    from rebal_core.services import workflow

    at = run("pages/4_Scenario_lab.py", user="pat")
    at.text_input(key="lab-save-name").input("From the lab").run()
    at.button(key="lab-save").click().run()
    assert not at.exception
    saved = workflow.find_scenario(engine=engine, name="From the lab")
    assert saved is not None and saved.solved_at is not None
    assert any("Saved 'From the lab'" in s.value for s in at.success)
    # what you see is what you save (issue 14: the lab showed 1,664 lines, the saved plan had 1,521)
    shown = at.dataframe[1].value
    stored = workflow.summary(saved)
    assert stored.lines == len(shown) == len(workflow.lines(engine=engine, scenario_id=saved.id))
    shown_cost = next(m.value for m in at.metric if m.label == "Network cost")
    from rebal_core.views.figures import money

    assert money(stored.network_cost_after) == shown_cost


def test_identity_provider_sign_in_when_configured(writable):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "rebal",
        "client_secret": "s",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
    }
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in with your identity provider"]
    assert not at.text_input  # no password form when sign-in is delegated


def test_scenario_lab_carries_released_lines_as_in_transit(writable):
    engine, (record, _) = writable

    released = release(engine, record)
    at = run("pages/4_Scenario_lab.py", user="pat")
    assert any(f"{len(released):,} released transfer line(s)" in c.value for c in at.caption)
    plan = frame(at, "reason")
    assert not set(plan["transfer_id"]) & set(released["transfer_id"])


def test_data_page_shows_signal_quality_and_record_accuracy():
    at = run("pages/3_Data.py")
    assert any("Critical findings block planning" in c.value for c in at.caption)
    assert "record_accuracy" in frame(at, "record_accuracy").columns
    assert set(frame(at, "discrepancy_class")["discrepancy_class"]) - {"agrees"}


def test_backtest_page_runs_a_short_replay():
    at = run("pages/9_Backtest.py")
    at.slider(key="bt-days").set_value(14).run()
    at.slider(key="bt-every").set_value(7).run()
    at.button(key="bt-run").click().run()
    assert not at.exception
    t = frame(at, "net_gain_vs_none")
    assert list(t["arm"]) == ["none", "greedy", "optimize", "hindsight"] and (t["demand_units"] > 0).all()
    assert {
        "Realised fill rate, optimized",
        "Realised net vs no rebalancing",
        "Promised by the plans",
        "Share of hindsight captured",
    } <= {m.label for m in at.metric}
    assert any("Forecast calibration" in c.value for c in at.caption)


def test_a_long_backtest_runs_as_a_job_and_a_reload_finds_it(writable, monkeypatch):
    """Issue 15: over the threshold the page starts a job on the server; a new session (a reload,
    another user) shows the same job and, once it is done, its result."""
    import time

    from rebal_core import services
    from rebal_core.services import jobs

    monkeypatch.setenv("REBAL_JOB_SECONDS", "0")  # every backtest is "long"
    at = run("pages/9_Backtest.py")
    at.slider(key="bt-days").set_value(14).run()
    at.button(key="bt-run").click().run()
    assert not at.exception
    engine = writable[0]
    dataset = services.list_datasets(engine=engine)[0]
    job = jobs.latest_backtest(engine=engine, dataset_id=dataset.id)
    assert job is not None and job.created_by == "admin"
    deadline = time.monotonic() + 300
    while jobs.job(engine=engine, job_id=job.id).active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jobs.job(engine=engine, job_id=job.id).status == "done"
    reloaded = run("pages/9_Backtest.py", user="pat")  # a new session: nothing in its state
    t = frame(reloaded, "net_gain_vs_none")
    assert list(t["arm"]) == ["none", "greedy", "optimize", "hindsight"]
    assert any(f"Job {job.id}, run by admin" in c.value for c in reloaded.caption)


def test_backtest_shows_its_sliders_before_reading_history_and_can_stop():
    """Issue 14: the sliders waited 11-14 s for the whole demand history; a 51 s run had no Stop."""
    import streamlit as st

    from rebal_core import services

    st.cache_data.clear()  # an earlier test's replay cached the history
    calls = []
    real = services.datasets.demand_history
    services.datasets.demand_history = lambda **kw: calls.append(kw) or real(**kw)
    try:
        at = run("pages/9_Backtest.py")
        assert at.slider(key="bt-days").max > 14 and calls == []  # the span came from one query
        at.button(key="bt-stop").click().run()
        assert any("Backtest stopped" in i.value for i in at.info) and calls == []
        at.slider(key="bt-days").set_value(14).run()
        at.button(key="bt-run").click().run()
        assert len(calls) == 1  # read once, when the replay runs
    finally:
        services.datasets.demand_history = real


def test_monitor_page_follows_a_released_plan(writable, bundle_copy):
    engine, (record, _) = writable
    from rebal_core import services
    from rebal_core.governance.identity import Actor
    from rebal_core.services import workflow

    release(engine, record)
    pat = Actor("pat", "planner")
    (bundle_copy / "bundle.toml").write_text('as_of = "2026-06-15"\n')
    services.import_bundle(engine=engine, source=bundle_copy, name="Two weeks later", actor=pat)
    at = AppTest.from_file(str(ROOT / "pages/10_Monitor.py"), default_timeout=120)
    at.session_state["signed_in"] = "admin"
    at.session_state["dataset_id"] = record.dataset_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    labels = {m.label for m in at.metric}
    assert {"Released lines followed", "Stockouts avoided", "Donors out of stock later"} <= labels
    assert len(frame(at, "stockout_avoided")) == len(workflow.lines(engine=engine, scenario_id=record.id))
    assert list(frame(at, "turns")["snapshot"]) == ["Small network", "Two weeks later"]


def test_lab_settings_survive_a_visit_to_another_page():
    """Issue 14: every lab setting reset after visiting another page (Streamlit drops a widget's
    state when its page is left). keep_settings copies them aside and puts back the dropped ones."""

    def page():
        import streamlit as st

        from pages.components import state

        state.keep_settings(("lab-h",))
        st.slider("Horizon", 1, 365, 28, key="lab-h")

    at = AppTest.from_function(page, default_timeout=60)
    at.run()
    at.slider(key="lab-h").set_value(35).run()
    at.run()  # the next run copies the changed value aside
    assert at.session_state["kept_settings"] == {"lab-h": 35}
    back = AppTest.from_function(page, default_timeout=60)  # a page whose widget state was dropped
    back.session_state["kept_settings"] = {"lab-h": 35}
    back.run()
    assert not back.exception and back.slider(key="lab-h").value == 35
    lab = (ROOT / "pages" / "4_Scenario_lab.py").read_text()
    assert "state.keep_settings(LAB_SETTINGS)" in lab and '"lab-h"' in lab  # the lab keeps its settings so


def _lab_with_a_held_optimizer(monkeypatch, service_level: float, then: str) -> AppTest:
    """The lab on settings nobody solved, its optimizer still working when the wait shown (1 s) ends;
    after 3 s the optimizer goes on (``then="finish"``) or is stopped (``then="stop"``)."""
    import threading

    from rebal_core.decisions.solvers import method

    gate = threading.Event()
    real = method.optimize

    def held(*args, **kwargs):
        gate.wait(60)
        if then == "stop":
            raise method.Cancelled
        return real(*args, **kwargs)

    monkeypatch.setattr(method, "optimize", held)
    at = AppTest.from_file(str(ROOT / "pages/4_Scenario_lab.py"), default_timeout=120)
    at.session_state["signed_in"] = "admin"
    at.session_state["lab-sl"] = service_level
    at.session_state["lab-save-name"] = "Provisional?"
    timer = threading.Timer(3.0, gate.set)
    timer.start()
    try:
        at.run()
    finally:
        gate.set()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_scenario_lab_shows_the_greedy_plan_provisionally_and_never_saves_it(monkeypatch):
    """Issue 24: past the wait shown, the lab draws the greedy rule's plan, labelled provisional, and
    it cannot be saved as the scenario's plan."""
    at = _lab_with_a_held_optimizer(monkeypatch, 0.915, then="stop")
    assert any(w.value.startswith("Provisional: the greedy rule's plan") for w in at.warning)
    assert len(at.dataframe[1].value) > 0  # its lines are drawn, with reasons
    assert at.button(key="lab-save").disabled
    assert any("optimizer stopped" in c.value for c in at.caption)


def test_scenario_lab_replaces_the_provisional_plan_with_the_optimizers(monkeypatch):
    at = _lab_with_a_held_optimizer(monkeypatch, 0.925, then="finish")
    assert not [w.value for w in at.warning if w.value.startswith("Provisional")]
    assert any(c.value.startswith("Solver: ") for c in at.caption)
    assert not at.button(key="lab-save").disabled


def test_the_labs_default_settings_are_the_grids_default_scenario():
    """Issue 24: the widgets' numbers (an integer slider's 90, a step's 0.9450000000000001) key the same
    plan as the grid solved ahead, or no move would ever hit it."""
    from rebal_core.services import Scenario, lab, presolve

    at = run("pages/4_Scenario_lab.py")
    shown = Scenario.from_mapping(at.session_state["lab_scenario"])
    assert lab.plan_key("family", shown) == lab.plan_key("family", presolve.grid()[0])
    at.slider(key="lab-sl").set_value(0.945).run()
    moved = Scenario.from_mapping(at.session_state["lab_scenario"])
    assert lab.plan_key("family", moved) == lab.plan_key("family", Scenario(service_level=0.945))
