"""Issue 15: two app replicas (two `streamlit run` processes) on one PostgreSQL store.

What a load balancer with sticky sessions does: each person's session stays on one replica, and
every decision is in the store, so a plan approved through one replica is what the other shows.
"""

from __future__ import annotations

import urllib.request

import pytest

from tests.e2e import harness
from tests.integration.test_postgres import pg_url  # noqa: F401 - the throwaway PostgreSQL server

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
PASSWORDS = {"pat": "planner-password-1", "ann": "approver-password-1"}


@pytest.fixture(scope="module")
def shared_store(pg_url, small_bundle):  # noqa: F811 - the fixture imported above
    """The small network on PostgreSQL with a solved plan waiting for review."""
    import os

    from rebal_core import services, store
    from rebal_core.decisions.scenario import Scenario
    from rebal_core.governance.identity import Actor
    from rebal_core.services import accounts, workflow

    os.environ.setdefault("REBAL_ADMIN_PASSWORD", "admin-password-1")  # no password file under data/
    engine = store.make_engine(pg_url)
    workflow.ensure_governance(engine=engine)
    admin = Actor("cli:test", "admin")
    existing = {u.username for u in accounts.list_users(engine=engine)}
    for name, role in (("pat", "planner"), ("ann", "approver")):
        if name not in existing:
            accounts.create_user(engine=engine, actor=admin, username=name, role=role, password=PASSWORDS[name])
    dataset = services.import_bundle(engine=engine, source=small_bundle, name="Replicated network").dataset
    pat = Actor("pat", "planner")
    record = workflow.save_scenario(
        engine=engine, actor=pat, dataset_id=dataset.id, scenario=Scenario(name="Two replicas"), time_limit=5
    )
    record = workflow.solve_scenario(engine=engine, actor=pat, scenario_id=record.id)
    workflow.transition(engine=engine, actor=pat, scenario_id=record.id, event="submit")
    engine.dispose()
    return pg_url


def test_a_plan_approved_through_one_replica_is_seen_through_the_other(shared_store):
    env = {"REBAL_ADMIN_PASSWORD": "admin-password-1"}
    with harness.serve(shared_store, env) as first, harness.serve(shared_store, env) as second:
        assert first != second
        for url in (first, second):  # the load balancer's probe
            assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=10).read() == b"ok"
        with harness.chromium() as browser:
            before = harness.open_page(browser, second, "Plans", "pat", PASSWORDS["pat"])
            before.get_by_text("Waiting for a decision").wait_for()
            assert before.get_by_text("The plan is approved").count() == 0
            before.close()

            ann = harness.open_page(browser, first, "Plans", "ann", PASSWORDS["ann"])
            ann.get_by_role("button", name="Pick all").click()
            harness.wait_idle(ann)
            ann.get_by_role("button", name="Approve", exact=False).filter(has_text="line(s)").click()
            ann.get_by_text("Approve:").first.wait_for()
            harness.wait_idle(ann)
            ann.get_by_role("button", name="Approve plan").click()
            ann.get_by_text("is now approved").wait_for()
            ann.close()

            after = harness.open_page(browser, second, "Plans", "pat", PASSWORDS["pat"])
            after.get_by_text("The plan is approved").wait_for()  # the other replica reads the store
            assert after.locator('[data-testid="stException"]').count() == 0
            after.close()
