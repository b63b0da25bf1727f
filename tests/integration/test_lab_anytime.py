"""Issue 24: the lab answers at once and the best answer soon. Reproducible plans are made in a
background thread, shown provisionally until then (the greedy rule's plan, or the nearest settings
solved before), and stored by dataset, settings and engine version, so another replica reuses them."""

from __future__ import annotations

import threading

import pytest

from rebal_core import store
from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.solvers import method
from rebal_core.services import lab
from rebal_core.store import solved_plans


@pytest.fixture
def eng(workflow_db):
    return store.make_engine(workflow_db)


@pytest.fixture(autouse=True)
def _fresh_memo():
    lab._MEMO.clear()  # each test starts as a new replica would: only the store knows
    yield
    lab._MEMO.clear()


def _lines(table) -> list:
    return sorted(map(tuple, table[["sku_id", "from_site_id", "to_site_id", "qty"]].astype(str).to_numpy()))


def test_a_plan_is_solved_once_stored_and_reused_by_another_replica(eng, dataset, net):
    scenario = Scenario(service_level=0.97)
    solving = lab.request(engine=eng, dataset=dataset, network=net, scenario=scenario)
    assert lab.wait(solving, 120) and solving.result is not None and not solving.result.provisional
    assert solving.provisional is not None and solving.provisional.kind == lab.GREEDY  # shown while it ran
    assert solving.provisional.summary.method == "greedy"
    direct = lab.solve(dataset=dataset, problem=lab.problem(net, scenario), draws=0)
    assert _lines(solving.result.table) == _lines(direct.table)  # the same reproducible plan
    lab._MEMO.clear()  # another replica: nothing in its memory
    again = lab.request(engine=eng, dataset=dataset, network=net, scenario=scenario)
    assert again.done.is_set() and again.message == "solved before"
    assert _lines(again.result.table) == _lines(direct.table)
    assert again.result.summary.network_cost_after == pytest.approx(direct.summary.network_cost_after, rel=1e-12)
    assert again.result.rule.network_cost_after == pytest.approx(direct.rule.network_cost_after, rel=1e-12)
    assert len(again.result.sites_after) == len(net.sites)


def test_the_key_names_the_data_the_settings_and_the_engine(eng, dataset, net):
    family = lab.plan_family(engine=eng, dataset=dataset)
    assert lab.plan_key(family, Scenario()) == lab.plan_key(family, Scenario(name="other name"))
    assert lab.plan_key(family, Scenario()) != lab.plan_key(family, Scenario(service_level=0.96))
    assert lab.plan_key(family, Scenario(excess_cover_days=90)) == lab.plan_key(family, Scenario())  # 90 is 90.0
    slider = 0.5 + 89 * 0.005  # what a slider's steps make of 0.945: 0.9450000000000001
    assert slider != 0.945 and lab.plan_key(family, Scenario(service_level=slider)) == lab.plan_key(
        family, Scenario(service_level=0.945)
    )
    moving = (("SKU-0001", "S01", "S02", 5),)
    assert lab.plan_family(engine=eng, dataset=dataset, moving=moving) != family
    assert "decisions " in lab.ENGINE_VERSION  # a digest of the planning code: a change never serves old plans


def test_the_nearest_solved_settings_answer_first_labelled(eng, dataset, net):
    solved = lab.request(engine=eng, dataset=dataset, network=net, scenario=Scenario(service_level=0.95))
    lab.wait(solved, 120)
    family = lab.plan_family(engine=eng, dataset=dataset)
    near = lab.nearest(engine=eng, family=family, scenario=Scenario(service_level=0.955))
    assert near is not None and near.kind == lab.NEAREST and near.provisional
    assert "service level 0.95" in near.label
    assert _lines(near.table) == _lines(solved.result.table)
    assert lab.nearest(engine=eng, family=family, scenario=Scenario(objective="target")) is None  # another model
    assert lab.nearest(engine=eng, family=family, scenario=Scenario(regions=("West",))) is None  # other positions


def test_the_last_session_to_leave_stops_the_solve_and_nothing_is_stored(eng, dataset, net, monkeypatch):
    gate = threading.Event()
    real = method.optimize

    def slow(*args, **kwargs):  # the optimizer waits until the test has left
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(method, "optimize", slow)
    scenario = Scenario(service_level=0.93)
    first = lab.request(engine=eng, dataset=dataset, network=net, scenario=scenario)
    second = lab.request(engine=eng, dataset=dataset, network=net, scenario=scenario)
    assert first is second and first.watchers == 2  # a second session joins the same solve
    assert lab.wait(first, 60, until_provisional=True) and first.provisional.kind == lab.GREEDY
    lab.leave(second)
    assert not first.cancel.is_set()  # one session still waits
    lab.leave(first)
    assert first.cancel.is_set()
    gate.set()
    assert first.done.wait(60) and first.result is None and first.stopped
    family = lab.plan_family(engine=eng, dataset=dataset)
    assert lab.plan_key(family, scenario) not in solved_plans.keys(engine=eng, family=family)


def test_planning_blocked_is_refused_before_any_solve(eng, dataset, net, monkeypatch):
    from rebal_core.errors import PlanningBlocked

    def blocked(_dataset):
        raise PlanningBlocked("critical signal finding: stale data")

    monkeypatch.setattr(lab, "require_planning_allowed", blocked)
    with pytest.raises(PlanningBlocked):
        lab.request(engine=eng, dataset=dataset, network=net, scenario=Scenario())


def test_a_stored_plan_reads_back_as_it_was(eng, dataset, net):
    """Ids that look like numbers or dates stay text; numbers stay numbers."""
    shown = lab.solve(dataset=dataset, problem=lab.problem(net, Scenario(service_level=0.9)), draws=0)
    table = shown.table.copy()
    table.loc[table.index[:1], "sku_id"] = "0012"
    table.loc[table.index[1:2], "sku_id"] = "2026-01-01"
    family = lab.plan_family(engine=eng, dataset=dataset)
    value = lab.LabPlan(shown.summary, table, shown.sites_after, None, shown.rule)
    lab.store(engine=eng, dataset=dataset, family=family, scenario=Scenario(service_level=0.9), value=value, seconds=1)
    lab._MEMO.clear()
    back = lab.solved(engine=eng, key=lab.plan_key(family, Scenario(service_level=0.9)))
    assert list(back.table["sku_id"][:2]) == ["0012", "2026-01-01"]
    assert back.table["qty"].tolist() == table["qty"].tolist() and back.table.columns.tolist() == table.columns.tolist()
    assert back.sites_after["site_id"].tolist() == shown.sites_after["site_id"].tolist()


def test_the_grid_is_solved_as_a_job_and_the_lab_answers_from_it(eng, dataset, net, monkeypatch):
    """Issue 24: scenarios solved before the meeting. The grid job (run here in process, as its worker
    would) stores the lab's reproducible plans; a request for one of them is answered from the store."""
    from rebal_core.services import jobs, presolve

    scenarios = presolve.grid()
    assert scenarios[0] == Scenario() and Scenario(objective="target") in scenarios
    levels = [s.service_level for s in scenarios if s.objective == "expected" and s.target_fill_rate is None]
    assert sorted(levels) == list(presolve.SERVICE_LEVELS) and levels[1] in (0.945, 0.955)  # nearest first
    assert {s.target_fill_rate for s in scenarios if s.target_fill_rate} == set(presolve.SWEEP_FILL_RATES)

    monkeypatch.setenv(presolve.PRESOLVE_ENV, "1")
    monkeypatch.setattr(presolve, "grid", lambda: [Scenario(), Scenario(service_level=0.9)])
    job = presolve.submit(engine=eng, dataset_id=dataset.id, start=False)  # the worker is run below, in process
    assert job is not None and job.status == "queued"
    assert presolve.submit(engine=eng, dataset_id=dataset.id, start=False).id == job.id  # joined, not doubled
    family = lab.plan_family(engine=eng, dataset=dataset)
    missing = {lab.plan_key(family, s) for s in presolve.grid()} - solved_plans.keys(engine=eng, family=family)
    done = jobs.run(engine=eng, job_id=job.id)  # (the store this test copies may hold plans the pages made)
    assert done.status == "done" and f"2 scenarios ready ({len(missing)} solved" in done.message
    assert {lab.plan_key(family, s) for s in presolve.grid()} <= solved_plans.keys(engine=eng, family=family)
    assert presolve.latest(engine=eng, dataset_id=dataset.id).status == "done"
    again = presolve.solve_grid(engine=eng, dataset_id=dataset.id)
    assert again["solved"] == 0 and again["already_solved"] == 2  # nothing solved twice

    answer = lab.request(engine=eng, dataset=dataset, network=net, scenario=Scenario(service_level=0.9))
    assert answer.done.is_set() and answer.message == "solved before" and not answer.result.provisional
    direct = lab.solve(dataset=dataset, problem=lab.problem(net, Scenario(service_level=0.9)), draws=0)
    assert _lines(answer.result.table) == _lines(direct.table)


def test_presolving_is_off_when_asked(eng, dataset, monkeypatch):
    from rebal_core.services import presolve

    monkeypatch.setenv(presolve.PRESOLVE_ENV, "0")
    assert presolve.submit(engine=eng, dataset_id=dataset.id, start=False) is None


def test_an_import_starts_the_grid_after_its_commit_and_never_fails_for_it(engine, small_bundle, monkeypatch):
    from rebal_core import services
    from rebal_core.services import jobs, presolve

    monkeypatch.setenv(presolve.PRESOLVE_ENV, "1")
    started = []
    monkeypatch.setattr(jobs, "start_worker", lambda _engine, job_id: started.append(job_id))
    first = services.import_bundle(engine=engine, source=small_bundle, name="A").dataset
    job = presolve.latest(engine=engine, dataset_id=first.id)
    assert job is not None and started == [job.id] and job.params["scenarios"] == len(presolve.grid())

    def broken(*_args, **_kwargs):
        raise OSError("no process can be started")

    monkeypatch.setattr(jobs, "start_worker", broken)
    second = services.import_bundle(engine=engine, source=small_bundle, name="B").dataset
    assert services.get_dataset(engine=engine, dataset_id=second.id) is not None  # the import stands


def test_the_command_line_solves_the_grid_for_the_nightly_run(eng, workflow_db, monkeypatch, capsys):
    from rebal_core.cli import main
    from rebal_core.services import presolve

    monkeypatch.setattr(presolve, "grid", lambda: [Scenario(service_level=0.88)])
    assert main(["presolve", "--database", workflow_db, "--quiet"]) == 0
    assert "1 scenarios ready: 1 solved now" in capsys.readouterr().out
    assert main(["presolve", "--database", workflow_db, "--quiet"]) == 0
    assert "0 solved now" in capsys.readouterr().out
    assert main(["presolve", "--database", workflow_db, "--dataset", "Small network", "--quiet"]) == 0
    assert "1 solved before" in capsys.readouterr().out  # a dataset named on the command line (was an AttributeError)
    assert main(["presolve", "--database", workflow_db, "--dataset", "No such data"]) == 2
