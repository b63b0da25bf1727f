"""Issue 15: the optimizer's per-sku flows on a local Ray (2 CPUs) make the plan this process makes.

Round counts, not the clock, end the search here (``reproducible``), as the issue asks: the
same rounds give the same plan and bound wherever the flows run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="requirements-ray.txt (make test installs it)")

from rebal_core import services  # noqa: E402
from rebal_core.decisions.planning import build_problem  # noqa: E402
from rebal_core.decisions.scenario import Scenario  # noqa: E402
from rebal_core.decisions.solvers.method import plan  # noqa: E402
from rebal_core.decisions.solvers.shards import InProcess, RayShards, bucket_arcs  # noqa: E402
from rebal_core.decisions.solvers.stress import coupled_network  # noqa: E402

pytestmark = pytest.mark.slow
ROUNDS = dict(time_limit=0.001, reproducible=True)  # the rounds end the search, never the clock


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bundle_problem(loaded_db):
    engine = services.make_engine(loaded_db)
    dataset = services.list_datasets(engine=engine)[0]
    net = services.load_network(engine=engine, dataset_id=dataset.id)
    return build_problem(net, Scenario())


def _same(a, b) -> None:
    cols = ["sku_id", "from_site_id", "to_site_id", "qty"]
    pd.testing.assert_frame_equal(
        a.table[cols].sort_values(cols).reset_index(drop=True), b.table[cols].sort_values(cols).reset_index(drop=True)
    )
    assert a.lower_bound == pytest.approx(b.lower_bound, rel=1e-12, abs=1e-9)
    assert a.score.network_cost_after == b.score.network_cost_after


def test_the_ray_path_makes_the_in_process_plan_on_a_bundle(local_ray, bundle_problem):
    """The small bundle cut into 4 buckets of 10 skus, 2 workers: same lines, same bound."""
    assert len(bucket_arcs(bundle_problem, 10)) == 4
    here = plan(bundle_problem, skus=InProcess(10), **ROUNDS)
    shards = RayShards(bundle_problem, "local", skus_per_shard=10)
    try:
        there = plan(bundle_problem, skus=shards, **ROUNDS)
        # every round went through the shards (two at least: the relaxation and a re-flow; a stage that
        # finds no better plan ends, so fewer rounds than the caps run)
        assert len(shards.actors) == 2 and len(shards.rounds) >= 2
        # A round sends the resources' and lanes' prices (and the few capacities a re-flow changed),
        # not the arcs' costs: 8 bytes a lane or resource where costs are 8 bytes an arc.
        prices = 8 * (2 * len(bundle_problem.lanes) + len(bundle_problem.sites) + 1) * len(shards.actors)
        assert sorted(shards.sent_bytes)[len(shards.sent_bytes) // 2] <= prices  # whatever the number of arcs
    finally:
        shards.close()
    _same(here, there)
    assert here.table["qty"].sum() > 0


def test_the_public_switch_plans_on_ray(local_ray, bundle_problem):
    """plan(ray_address=...) (the command line's --ray) against the default in-process plan."""
    _same(plan(bundle_problem, **ROUNDS), plan(bundle_problem, ray_address="local", **ROUNDS))


def test_a_worker_lost_mid_round_is_retried_and_the_plan_is_the_same(local_ray, tmp_path):
    """A shard process dies in its first call (os._exit): Ray restarts it and retries; nothing changes."""
    problem = build_problem(coupled_network(10, 120, seed=3), Scenario(objective="target"))
    here = plan(problem, skus=InProcess(30), **ROUNDS)
    marker = tmp_path / "crashed"
    shards = RayShards(problem, "local", skus_per_shard=30, crash_once=str(marker))
    try:
        before = shards.pids()
        there = plan(problem, skus=shards, **ROUNDS)
        after = shards.pids()
    finally:
        shards.close()
    # Back come the arcs the buckets' plans use (4 + 4 bytes each) and each bucket's use of the
    # resources, not every arc's packs (8 bytes an arc).
    resource_bytes = 8 * (len(problem.lanes) + len(problem.sites) + 1) * len(bucket_arcs(problem, 30))
    assert max(shards.received_bytes) - resource_bytes < 8 * len(problem.arcs) / 4
    # A re-flow sends which arcs' capacities changed (a bit an arc) and the few that are not 0: under a
    # byte an arc, where the capacities themselves were 4.
    assert len(shards.sent_bytes) >= 2 and max(shards.sent_bytes) < len(problem.arcs)
    assert marker.exists()  # a worker did die
    assert before != after  # and was replaced
    _same(here, there)
    assert np.isfinite(there.lower_bound)


def test_forecasts_on_ray_are_the_in_process_figures(local_ray, small_bundle):
    """The series fitted in chunks as Ray tasks: same models chosen, same means and spreads, same accuracy."""
    from rebal_core.signals.bundle import load_bundle
    from rebal_core.signals.forecast import forecast_demand

    bundle = load_bundle(small_bundle)
    here = forecast_demand(bundle.demand, bundle.as_of)
    there = forecast_demand(bundle.demand, bundle.as_of, ray="local", chunk_series=70)  # 5 tasks for 320 series
    assert there.method == here.method
    pd.testing.assert_frame_equal(there.table, here.table)
    assert there.accuracy.as_dict() == here.accuracy.as_dict()


def test_a_job_runs_on_the_cluster_when_one_is_configured(local_ray, tmp_path, small_bundle, monkeypatch):
    """With REBAL_RAY_ADDRESS the backtest job runs in a detached Ray actor, writing to the same store."""
    import time

    from rebal_core.decisions.what_if.backtest import Replay
    from rebal_core.governance.identity import Actor
    from rebal_core.services import jobs

    monkeypatch.setenv("REBAL_RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    engine = services.make_engine(f"sqlite:///{tmp_path / 'ray-jobs.db'}")
    dataset = services.import_bundle(engine=engine, source=small_bundle, name="On Ray").dataset
    view, new = jobs.submit_backtest(
        engine=engine,
        actor=Actor("pat", "planner"),
        dataset_id=dataset.id,
        scenario=Scenario(),
        replay=Replay(days=14, every=7, time_limit=0.5),
    )
    assert new
    deadline = time.monotonic() + 300
    while jobs.job(engine=engine, job_id=view.id).active and time.monotonic() < deadline:
        time.sleep(0.2)
    done = jobs.job(engine=engine, job_id=view.id)
    assert done.status == "done", done.message
    assert "a Ray actor" in done.message  # not a background process of this machine
    assert list(jobs.backtest_result(engine=engine, job_id=view.id)["arm"].unique()) == [
        "none",
        "greedy",
        "optimize",
        "hindsight",
    ]
