"""Trust (issue 12): nothing executes twice across plans, four eyes on every approval."""

from __future__ import annotations

import pytest

from rebal_core import services, store
from rebal_core.decisions.scenario import Scenario
from rebal_core.governance.identity import Actor
from rebal_core.governance.policy import IllegalTransition, Policy, Thresholds
from rebal_core.services import workflow
from rebal_core.store import audit

PAT, ANN, ADMIN = Actor("pat", "planner"), Actor("ann", "approver"), Actor("root", "admin")
LOW = Policy(default=Thresholds(line_value=100.0, line_cost=20.0))


@pytest.fixture
def eng(workflow_db):
    engine = store.make_engine(workflow_db)
    workflow.set_policy(engine=engine, actor=ADMIN, policy=LOW)
    return engine


def solved(eng, dataset, net, name, actor=PAT, **params):
    record = workflow.save_scenario(
        engine=eng, actor=actor, dataset_id=dataset.id, scenario=Scenario(name=name, **params), time_limit=5
    )
    return workflow.solve_scenario(engine=eng, actor=actor, scenario_id=record.id, network=net)


def approve_all(eng, record, approver=ANN):
    workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="submit")
    waiting = workflow.open_decisions(workflow.lines(engine=eng, scenario_id=record.id))
    workflow.decide_lines(
        engine=eng, actor=approver, scenario_id=record.id, transfer_ids=waiting["transfer_id"], action="approve"
    )
    return workflow.transition(engine=eng, actor=approver, scenario_id=record.id, event="approve")


def test_an_older_plan_cannot_release_the_same_moves_again(eng, dataset, net):
    a = solved(eng, dataset, net, "A, saved first", service_level=0.95)
    b = solved(eng, dataset, net, "B, saved later", service_level=0.97)
    approve_all(eng, a)
    approve_all(eng, b)
    orders_b = workflow.export_orders(engine=eng, actor=PAT, scenario_id=b.id)
    assert len(orders_b)
    with pytest.raises(workflow.WorkflowError, match="still in transit") as refused:
        workflow.export_orders(engine=eng, actor=PAT, scenario_id=a.id)
    assert "Re-solve this plan" in str(refused.value)
    assert workflow.get_scenario(engine=eng, scenario_id=a.id).status == "approved"  # nothing released
    assert not workflow.lines(engine=eng, scenario_id=a.id)["released"].any()
    # once B is received, A's lines are other orders: never the same id with another quantity
    workflow.transition(engine=eng, actor=PAT, scenario_id=b.id, event="receive")
    orders_a = workflow.export_orders(engine=eng, actor=PAT, scenario_id=a.id)
    assert not set(orders_a["transfer_id"]) & set(orders_b["transfer_id"])
    assert set(orders_a["line_id"]) & set(orders_b["line_id"])  # the same lanes and skus, moved twice on purpose


def test_a_firm_line_above_the_policy_waits_for_someone_else(eng, dataset, net):
    record = solved(eng, dataset, net, "Firmed")
    record = workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="submit")
    lines = workflow.lines(engine=eng, scenario_id=record.id)
    policy_ok = lines[(lines["status"] == "approved") & (lines["decided_by"].str.startswith("policy"))]
    policy_ok = policy_ok.assign(unit=policy_ok["value"] / policy_ok["qty"]).sort_values("unit", ascending=False)
    small = None
    for _, candidate in policy_ok.iterrows():  # a line the donor can grow by a few packs, past the $100 threshold
        pack = int(candidate["qty"] // candidate["packs"])
        for k in range(1, 6):
            try:
                workflow.firm_line(
                    engine=eng,
                    actor=ADMIN,
                    scenario_id=record.id,
                    transfer_id=candidate["transfer_id"],
                    qty=int(candidate["qty"]) + k * pack,
                    network=net,
                )
            except workflow.WorkflowError:
                break
            if (
                workflow.lines(engine=eng, scenario_id=record.id)
                .set_index("transfer_id")
                .loc[candidate["transfer_id"], "needs_approval"]
            ):
                small = candidate
                break
        if small is not None:
            break
    assert small is not None, "no policy-approved line could be firmed above the threshold"
    line = workflow.lines(engine=eng, scenario_id=record.id).set_index("transfer_id").loc[small["transfer_id"]]
    assert line["status"] == "firm" and line["needs_approval"]
    # not released early, nor by the autopilot's path
    workflow.release_approved(engine=eng, actor=ADMIN, scenario_id=record.id)
    assert (
        not workflow.lines(engine=eng, scenario_id=record.id)
        .set_index("transfer_id")
        .loc[small["transfer_id"], "released"]
    )
    # who set the quantity cannot approve it
    mine = workflow.decide_lines(
        engine=eng, actor=ADMIN, scenario_id=record.id, transfer_ids=[small["transfer_id"]], action="approve"
    )
    assert not mine.changed and "four eyes" in mine.skipped[0]
    other = workflow.decide_lines(
        engine=eng, actor=ANN, scenario_id=record.id, transfer_ids=[small["transfer_id"]], action="approve"
    )
    assert other.changed == [small["transfer_id"]]


def test_the_author_of_a_plan_cannot_approve_it_unless_four_eyes_is_off(eng, dataset, net):
    record = solved(eng, dataset, net, "Admin's own", actor=ADMIN)
    workflow.transition(engine=eng, actor=ADMIN, scenario_id=record.id, event="submit")
    waiting = workflow.open_decisions(workflow.lines(engine=eng, scenario_id=record.id))
    workflow.decide_lines(
        engine=eng, actor=ANN, scenario_id=record.id, transfer_ids=waiting["transfer_id"], action="approve"
    )
    with pytest.raises(IllegalTransition, match="four eyes"):
        workflow.transition(engine=eng, actor=ADMIN, scenario_id=record.id, event="approve")
    workflow.set_policy(
        engine=eng, actor=ADMIN, policy=Policy(default=LOW.default, four_eyes=False), note="one-person business"
    )
    assert workflow.transition(engine=eng, actor=ADMIN, scenario_id=record.id, event="approve").status == "approved"
    changed = audit.log(engine=eng, actions=["policy_changed"], limit=1)
    assert "four eyes switched OFF" in changed["summary"].iat[0] and changed["username"].iat[0] == "root"


def test_replacing_a_dataset_with_plans_is_refused_or_left_to_an_admin(eng, dataset, net, small_bundle):
    from rebal_core.governance.identity import PermissionDenied

    draft = solved(eng, dataset, net, "Draft plan")
    with pytest.raises(PermissionDenied, match="would delete 1 saved plan"):
        services.import_bundle(engine=eng, source=small_bundle, name="Small network", replace=True, actor=PAT)
    busy = solved(eng, dataset, net, "Under way")
    workflow.transition(engine=eng, actor=PAT, scenario_id=busy.id, event="submit")
    for who in (PAT, ADMIN):
        with pytest.raises(store.DatasetInUse, match="'Under way' \\(in review\\)"):
            services.import_bundle(engine=eng, source=small_bundle, name="Small network", replace=True, actor=who)
    assert workflow.get_scenario(engine=eng, scenario_id=draft.id).status == "draft"  # nothing changed
    workflow.transition(engine=eng, actor=PAT, scenario_id=busy.id, event="send_back")
    done = services.import_bundle(engine=eng, source=small_bundle, name="Small network", replace=True, actor=ADMIN)
    assert sorted(n for n, _ in done.deleted_plans) == ["Draft plan", "Under way"]
    event = audit.log(engine=eng, actions=["data_imported"], limit=1)["summary"].iat[0]
    assert "deleted 2 saved plan(s)" in event and "'Draft plan'" in event


def test_password_guessing_locks_the_account_with_back_off(eng, monkeypatch):
    import datetime as dt

    from rebal_core.services import accounts
    from tests.conftest import PASSWORDS

    for _ in range(accounts.LOCK_AFTER):
        assert accounts.authenticate(engine=eng, username="pat", password="not the password") is None
    with pytest.raises(accounts.AccountLocked, match="locked for"):
        accounts.authenticate(engine=eng, username="pat", password=PASSWORDS["pat"])  # the right one, too late
    failed = audit.log(engine=eng, actions=["sign_in_failed"])
    assert len(failed) == accounts.LOCK_AFTER + 1 and (failed["object_id"] == "pat").all()
    assert len(audit.log(engine=eng, actions=["account_locked"])) == 1
    assert [accounts.lock_seconds(n) for n in (4, 5, 6, 7, 30)] == [0, 60, 120, 240, 3600]
    # when the lock has run out, one more failure locks again for longer
    later = audit.now() + dt.timedelta(seconds=61)
    monkeypatch.setattr(audit, "now", lambda: later)
    assert accounts.authenticate(engine=eng, username="pat", password="still not it") is None
    with pytest.raises(accounts.AccountLocked, match="locked for 1[12][0-9] more"):
        accounts.authenticate(engine=eng, username="pat", password=PASSWORDS["pat"])
    accounts.unlock_user(engine=eng, actor=ADMIN, username="pat")
    assert accounts.authenticate(engine=eng, username="pat", password=PASSWORDS["pat"]) == PAT
    assert audit.log(engine=eng, actions=["account_unlocked"])["summary"].iat[0] == "pat unlocked"
    # an unknown name is audited too, and costs the same argon2 check
    assert accounts.authenticate(engine=eng, username="mallory", password="guess guess") is None
    assert "(no such user)" in audit.log(engine=eng, actions=["sign_in_failed"], limit=1)["summary"].iat[0]


def test_passwords_must_resist_guessing():
    from rebal_core.governance.identity import password_problem

    assert password_problem(" " * 10) and password_problem("aaaaaaaaaaaa") and password_problem("short")
    assert password_problem("correct horse battery") is None


def test_a_new_sqlite_store_is_its_owners_only(tmp_path):
    import stat

    store.make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert stat.S_IMODE((tmp_path / "fresh.db").stat().st_mode) == 0o600


def test_a_weak_admin_password_in_the_environment_is_named(tmp_path, monkeypatch):
    from rebal_core.services import accounts

    monkeypatch.setenv("REBAL_ADMIN_PASSWORD", "short")
    engine = store.make_engine(f"sqlite:///{tmp_path / 'cfg.db'}")
    with pytest.raises(accounts.ConfigurationError, match="REBAL_ADMIN_PASSWORD: a password needs at least"):
        workflow.ensure_governance(engine=engine)


def test_a_locked_store_is_retried_then_refused_in_plain_words():
    from sqlalchemy.exc import OperationalError

    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("INSERT INTO policy ...", {}, Exception("database is locked"))
        return "saved"

    assert store.when_busy(flaky) == "saved" and len(calls) == 3

    def stuck():
        raise OperationalError(
            "INSERT INTO policy (version, created_at) VALUES (?, ?)", {}, Exception("database is locked")
        )

    with pytest.raises(store.StoreBusy) as busy:
        store.when_busy(stuck)
    assert "INSERT" not in str(busy.value) and "try again" in str(busy.value)


def test_long_names_are_refused_not_crashing(eng, dataset, small_bundle):
    with pytest.raises(store.DatasetNameInvalid):
        services.import_bundle(engine=eng, source=small_bundle, name="N" * 121, actor=PAT)
    with pytest.raises(workflow.WorkflowError, match="at most 160"):
        workflow.save_scenario(engine=eng, actor=PAT, dataset_id=dataset.id, scenario=Scenario(name="S" * 161))
