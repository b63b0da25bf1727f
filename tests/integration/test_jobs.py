"""Issue 15: a long backtest runs as a job in a background process; its progress and result are in the store."""

from __future__ import annotations

import time

import pytest

from rebal_core import services
from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.what_if.backtest import Replay, backtest, totals
from rebal_core.governance.identity import Actor
from rebal_core.services import jobs

pytestmark = pytest.mark.slow
PAT, ANN = Actor("pat", "planner"), Actor("ann", "approver")
WAIT = 300.0  # a busy machine is slow, not broken


def _until(engine, job_id: int, done: tuple[str, ...]) -> jobs.JobView:
    """Poll the store until the job reaches one of ``done`` (what a page does)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        view = jobs.job(engine=engine, job_id=job_id)
        if view.status in done:
            return view
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {view.status} ({view.message}) after {WAIT:.0f} s")


@pytest.fixture
def stored(tmp_path, small_bundle):
    engine = services.make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    dataset = services.import_bundle(engine=engine, source=small_bundle, name="Jobs").dataset
    return engine, dataset


def test_a_backtest_job_runs_in_the_background_and_a_second_user_joins_it(stored):
    engine, dataset = stored
    replay = Replay(days=28, every=7, time_limit=0.5)
    first, new = jobs.submit_backtest(
        engine=engine, actor=PAT, dataset_id=dataset.id, scenario=Scenario(), replay=replay
    )
    second, again = jobs.submit_backtest(
        engine=engine, actor=ANN, dataset_id=dataset.id, scenario=Scenario(), replay=replay
    )
    assert new and not again and second.id == first.id  # the same job, not another one
    assert jobs.latest_backtest(engine=engine, dataset_id=dataset.id).id == first.id  # what a reload finds
    view = _until(engine, first.id, ("done", "failed", "lost"))
    assert view.status == "done", view.message
    assert "a background process" in view.message
    periods = jobs.backtest_result(engine=engine, job_id=first.id)
    local = backtest(
        services.load_network(engine=engine, dataset_id=dataset.id),
        services.demand_history(engine=engine, dataset_id=dataset.id),
        Scenario(),
        replay,
    )
    assert list(totals(periods)["arm"]) == list(totals(local)["arm"]) == ["none", "greedy", "optimize", "hindsight"]
    # the arms that do not solve are exact; the solving ones depend on the clock at 0.5 s per solve
    for arm in ("none", "greedy"):
        assert totals(periods).set_index("arm").loc[arm, "lost_units"] == pytest.approx(
            totals(local).set_index("arm").loc[arm, "lost_units"]
        )
    third, new = jobs.submit_backtest(
        engine=engine, actor=ANN, dataset_id=dataset.id, scenario=Scenario(), replay=replay
    )
    assert new and third.id != first.id  # a finished job is not joined: asking again runs it again
    _until(engine, third.id, ("done", "failed", "lost"))


def test_a_job_stops_when_asked(stored):
    engine, dataset = stored
    view, _ = jobs.submit_backtest(
        engine=engine,
        actor=PAT,
        dataset_id=dataset.id,
        scenario=Scenario(),
        replay=Replay(days=98, every=1, time_limit=2),
    )
    _until(engine, view.id, ("running",))
    jobs.request_stop(engine=engine, actor=ANN, job_id=view.id)
    stopped = _until(engine, view.id, ("stopped", "done", "failed"))
    assert stopped.status == "stopped" and jobs.backtest_result(engine=engine, job_id=view.id) is None


def test_a_job_without_a_heartbeat_reads_lost(stored):
    """Its worker died (the machine restarted): the page says so instead of waiting forever."""
    import datetime as dt

    from rebal_core.store import jobs as job_store

    engine, dataset = stored
    view, _ = jobs.submit_backtest(
        engine=engine, actor=PAT, dataset_id=dataset.id, scenario=Scenario(), replay=Replay(), start=False
    )
    assert jobs.job(engine=engine, job_id=view.id).status == "queued"
    from sqlmodel import Session

    with Session(engine) as session:
        row = session.get(job_store.Job, view.id)
        row.updated_at = row.updated_at - dt.timedelta(seconds=jobs.LOST_AFTER_SECONDS + 1)
        session.add(row)
        session.commit()
    assert jobs.job(engine=engine, job_id=view.id).status == "lost"
    assert jobs.runs_as_job(Replay()) and not jobs.runs_as_job(Replay(days=14, every=7, time_limit=1.0))


def test_a_lost_job_is_not_joined_a_new_one_starts(stored):
    import datetime as dt

    from sqlmodel import Session

    from rebal_core.store import jobs as job_store

    engine, dataset = stored
    lost, _ = jobs.submit_backtest(
        engine=engine, actor=PAT, dataset_id=dataset.id, scenario=Scenario(), replay=Replay(), start=False
    )
    with Session(engine) as session:
        row = session.get(job_store.Job, lost.id)
        row.updated_at = row.updated_at - dt.timedelta(seconds=jobs.LOST_AFTER_SECONDS + 1)
        session.add(row)
        session.commit()
    fresh, new = jobs.submit_backtest(
        engine=engine, actor=ANN, dataset_id=dataset.id, scenario=Scenario(), replay=Replay(), start=False
    )
    assert new and fresh.id != lost.id
    assert jobs.job(engine=engine, job_id=lost.id).status == "failed"


def test_a_saved_scenario_is_solved_as_a_job_by_the_user_as_they_are_now(stored):
    from rebal_core.services import accounts, workflow

    engine, dataset = stored
    workflow.ensure_governance(engine=engine)
    accounts.create_user(
        engine=engine, actor=Actor("cli:test", "admin"), username="pat", role="planner", password="planner-password-1"
    )
    record = workflow.save_scenario(
        engine=engine, actor=PAT, dataset_id=dataset.id, scenario=Scenario(name="Long"), time_limit=2
    )
    view, new = jobs.submit_solve(engine=engine, actor=PAT, scenario_id=record.id)
    again, joined = jobs.submit_solve(engine=engine, actor=PAT, scenario_id=record.id)
    assert new and not joined and again.id == view.id
    with pytest.raises(Exception, match="needs the planner or admin role"):
        jobs.submit_solve(engine=engine, actor=Actor("vic", "viewer"), scenario_id=record.id)
    done = _until(engine, view.id, ("done", "failed", "lost"))
    assert done.status == "done", done.message
    solved = workflow.get_scenario(engine=engine, scenario_id=record.id)
    assert solved.solved_at is not None and done.message == f"solved: {workflow.summary(solved).lines:,} lines"
    assert jobs.active_solve(engine=engine, scenario_id=record.id) is None
