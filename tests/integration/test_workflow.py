"""The S&OP workflow against a real store: lifecycle, roles, re-plans around decisions, in transit,
export, concurrent approvals, the append-only audit log, autopilot and reproduction."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import text

from rebal_core import services, store
from rebal_core.decisions.planning import LINE_KEYS
from rebal_core.decisions.scenario import Scenario
from rebal_core.governance.identity import Actor, PermissionDenied
from rebal_core.governance.policy import IllegalTransition, Policy, Thresholds
from rebal_core.services import workflow
from rebal_core.store import audit

ROOT = Path(__file__).resolve().parents[2]
PAT, ANN, AMY, VIC = Actor("pat", "planner"), Actor("ann", "approver"), Actor("amy", "approver"), Actor("vic", "viewer")


@pytest.fixture
def eng(workflow_db):
    return store.make_engine(workflow_db)


def solved(eng, dataset, net, name="Base", **params):
    record = workflow.save_scenario(
        engine=eng, actor=PAT, dataset_id=dataset.id, scenario=Scenario(name=name, **params), time_limit=5
    )
    return workflow.solve_scenario(engine=eng, actor=PAT, scenario_id=record.id, network=net)


def release(eng, record) -> pd.DataFrame:
    """Submit, approve every waiting line and the plan, and export: the released orders."""
    workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="submit")
    waiting = workflow.open_decisions(workflow.lines(engine=eng, scenario_id=record.id))
    workflow.decide_lines(
        engine=eng, actor=ANN, scenario_id=record.id, transfer_ids=waiting["transfer_id"], action="approve"
    )
    workflow.transition(engine=eng, actor=ANN, scenario_id=record.id, event="approve")
    return workflow.export_orders(engine=eng, actor=PAT, scenario_id=record.id)


def keys(frame: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, frame[LINE_KEYS].to_numpy()))


def test_lifecycle_from_draft_to_received(eng, dataset, net):
    workflow.set_policy(
        engine=eng,
        actor=Actor("admin", "admin"),
        policy=Policy(default=Thresholds(line_value=300.0, line_cost=40.0)),
        note="tighter",
    )
    record = solved(eng, dataset, net)
    lines = workflow.lines(engine=eng, scenario_id=record.id)
    assert len(lines) > 5 and (lines["status"] == "proposed").all()
    with pytest.raises(IllegalTransition, match="submit it for review first"):
        workflow.transition(engine=eng, actor=ANN, scenario_id=record.id, event="approve")
    with pytest.raises(IllegalTransition, match="have it approved first"):
        workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="release")

    record = workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="submit")
    lines = workflow.lines(engine=eng, scenario_id=record.id)
    auto = lines[lines["decided_by"] == "policy v2"]
    assert record.status == "in_review" and len(auto) > 0 and not auto["needs_approval"].any()
    waiting = workflow.open_decisions(lines)
    assert len(waiting) >= 2 and waiting["needs_approval"].all()  # the big lines wait for an approver
    with pytest.raises(IllegalTransition, match=f"{len(waiting)} line\\(s\\) still need a decision"):
        workflow.transition(engine=eng, actor=ANN, scenario_id=record.id, event="approve")
    with pytest.raises(IllegalTransition, match="cannot re-plan|only a draft is re-planned"):
        workflow.solve_scenario(engine=eng, actor=PAT, scenario_id=record.id, network=net)

    first = waiting["transfer_id"].iloc[0]
    with pytest.raises(workflow.WorkflowError, match="needs a reason"):
        workflow.decide_lines(engine=eng, actor=ANN, scenario_id=record.id, transfer_ids=[first], action="reject")
    workflow.decide_lines(
        engine=eng,
        actor=ANN,
        scenario_id=record.id,
        transfer_ids=[first],
        action="reject",
        note="receiver is closing",
        network=net,
    )
    result = workflow.decide_lines(
        engine=eng, actor=ANN, scenario_id=record.id, transfer_ids=waiting["transfer_id"], action="approve"
    )
    assert first in " ".join(result.skipped) and len(result.changed) == len(waiting) - 1
    record = workflow.transition(engine=eng, actor=ANN, scenario_id=record.id, event="approve")
    assert record.status == "approved"
    with pytest.raises(IllegalTransition, match="cannot approve lines of a plan that is approved"):
        workflow.decide_lines(engine=eng, actor=ANN, scenario_id=record.id, transfer_ids=[first], action="approve")

    orders = workflow.export_orders(engine=eng, actor=PAT, scenario_id=record.id)
    record = workflow.get_scenario(engine=eng, scenario_id=record.id)
    assert record.status == "released"
    assert first not in set(orders["transfer_id"]) and len(orders) == len(lines) - 1  # the rejected line is not ordered
    assert (pd.to_datetime(orders["ship_by"]) >= pd.Timestamp(dataset.as_of)).all()
    assert (pd.to_datetime(orders["arrive_by"]) > pd.to_datetime(orders["ship_by"]) - pd.Timedelta(days=1)).all()
    assert set(orders["approver"]) >= {"ann", "policy v2"}
    record = workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="receive")
    assert record.status == "received"
    events = audit.log(engine=eng, object_id=str(record.id))["action"].tolist()
    for action in (
        "scenario_saved",
        "plan_solved",
        "plan_submit",
        "plan_approve",
        "plan_release",
        "orders_exported",
        "plan_receive",
    ):
        assert action in events


def test_roles_are_enforced_in_the_core(eng, dataset, net):
    with pytest.raises(PermissionDenied, match="vic is a viewer"):
        workflow.save_scenario(engine=eng, actor=VIC, dataset_id=dataset.id, scenario=Scenario())
    record = solved(eng, dataset, net)
    with pytest.raises(PermissionDenied):
        workflow.solve_scenario(engine=eng, actor=ANN, scenario_id=record.id, network=net)
    one = workflow.lines(engine=eng, scenario_id=record.id)["transfer_id"].iloc[0]
    with pytest.raises(PermissionDenied):
        workflow.firm_line(engine=eng, actor=ANN, scenario_id=record.id, transfer_id=one, qty=1, network=net)
    workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="submit")
    with pytest.raises(
        PermissionDenied, match="pat is a planner; approving or rejecting lines needs the approver or admin role"
    ):
        workflow.decide_lines(engine=eng, actor=PAT, scenario_id=record.id, transfer_ids=[one], action="approve")
    with pytest.raises(PermissionDenied, match="approving plans needs"):
        workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="approve")
    with pytest.raises(PermissionDenied):
        workflow.set_policy(engine=eng, actor=ANN, policy=Policy())
    with pytest.raises(PermissionDenied):
        services.import_bundle(engine=eng, source=ROOT, name="x", actor=VIC)
    with pytest.raises(PermissionDenied):
        workflow.delete_dataset(engine=eng, actor=PAT, dataset_id=dataset.id)


def test_resolve_keeps_decisions_and_replans_the_rest(eng, dataset, net):
    record = solved(eng, dataset, net)
    lines = workflow.lines(engine=eng, scenario_id=record.id).sort_values("qty", ascending=False)
    rejected = lines["transfer_id"].iloc[:2].tolist()
    workflow.decide_lines(
        engine=eng,
        actor=PAT,
        scenario_id=record.id,
        transfer_ids=rejected,
        action="reject",
        note="not this week",
        network=net,
    )
    big = lines[lines["packs"] >= 2].iloc[-1]
    pack = big["qty"] // big["packs"]
    workflow.firm_line(
        engine=eng,
        actor=PAT,
        scenario_id=record.id,
        transfer_id=big["transfer_id"],
        qty=int(big["qty"] - pack),
        note="dock limit",
        network=net,
    )
    # approved lines: approve some in review, then send the plan back and re-plan with other rules
    workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="submit")
    approved = workflow.lines(engine=eng, scenario_id=record.id).query("status == 'approved'")[
        LINE_KEYS + ["transfer_id", "qty"]
    ]
    workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="send_back")
    record = workflow.solve_scenario(
        engine=eng, actor=PAT, scenario_id=record.id, scenario=Scenario(name="Base", cost_per_move=25.0), network=net
    )

    after = workflow.lines(engine=eng, scenario_id=record.id).set_index("transfer_id")
    assert (after.loc[rejected, "status"] == "rejected").all()  # remembered, and out of the plan
    plan_lines = workflow.in_plan(after.reset_index())
    assert not set(rejected) & set(plan_lines["transfer_id"])
    firm = after.loc[big["transfer_id"]]
    assert firm["status"] == "firm" and firm["qty"] == big["qty"] - pack and firm["proposed_qty"] == big["qty"]
    kept = after.loc[approved["transfer_id"]]
    assert (kept["status"] == "approved").all() and (kept["qty"].to_numpy() == approved["qty"].to_numpy()).all()
    assert workflow.parameters(record).cost_per_move == 25.0
    plan, broken = workflow.score_lines(net, record, after.reset_index())
    assert broken == []  # the whole plan, decisions included, obeys every rule
    assert plan.score.network_cost_after == pytest.approx(workflow.summary(record).network_cost_after)
    stored = workflow.summary(record)
    assert stored.lower_bound <= stored.network_cost_after + 1e-6


def test_firm_edits_that_break_rules_are_refused(eng, dataset, net):
    record = solved(eng, dataset, net)
    lines = workflow.lines(engine=eng, scenario_id=record.id)
    packed = lines[lines["qty"] // lines["packs"] > 1]
    if len(packed):
        row = packed.iloc[0]
        with pytest.raises(workflow.WorkflowError, match="not a whole number of packs"):
            workflow.firm_line(
                engine=eng,
                actor=PAT,
                scenario_id=record.id,
                transfer_id=row["transfer_id"],
                qty=int(row["qty"]) + 1,
                network=net,
            )
    row = lines.iloc[0]
    with pytest.raises(workflow.WorkflowError, match="would break the plan's rules: .*may ship at most"):
        workflow.firm_line(
            engine=eng,
            actor=PAT,
            scenario_id=record.id,
            transfer_id=row["transfer_id"],
            qty=int(row["qty"] // row["packs"]) * 100_000,
            network=net,
        )
    with pytest.raises(workflow.WorkflowError, match="whole number > 0"):
        workflow.firm_line(
            engine=eng, actor=PAT, scenario_id=record.id, transfer_id=row["transfer_id"], qty=0, network=net
        )
    assert workflow.lines(engine=eng, scenario_id=record.id).equals(lines)  # nothing changed


def test_released_lines_count_as_in_transit_and_are_never_proposed_twice(eng, dataset, net):
    first = solved(eng, dataset, net, name="Week 1")
    released = release(eng, first)
    assert len(released) > 0

    second = solved(eng, dataset, net, name="Week 1 again")
    c = workflow.commitments_for(engine=eng, scenario_id=second.id)
    assert keys(c.in_transit) == keys(released)
    again = workflow.lines(engine=eng, scenario_id=second.id)
    reverse = {(s, b, a) for s, a, b in keys(released)}
    assert not keys(again) & keys(released) and not keys(again) & reverse
    s1, s2 = workflow.summary(first), workflow.summary(second)
    assert s2.network_cost_before < s1.network_cost_before  # the moves under way already help the receivers
    assert s2.units_moved < s1.units_moved

    workflow.transition(
        engine=eng, actor=PAT, scenario_id=first.id, event="receive"
    )  # received: now in the next snapshot's on hand
    assert workflow.commitments_for(engine=eng, scenario_id=second.id).in_transit.empty


def test_export_is_idempotent_and_formula_safe(eng, small_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "evil"
    shutil.copytree(small_bundle, bundle)
    sites = pd.read_csv(bundle / "sites.csv", dtype=str)
    sites.loc[:, "name"] = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)"] + sites["name"].iloc[4:].tolist()
    sites.to_csv(bundle / "sites.csv", index=False)
    d = services.import_bundle(engine=eng, source=bundle, name="Evil names", actor=PAT).dataset
    evil_net = services.load_network(engine=eng, dataset_id=d.id)
    record = solved(eng, d, evil_net, name="Evil")
    first = release(eng, record)
    second = workflow.export_orders(engine=eng, actor=PAT, scenario_id=record.id)
    pd.testing.assert_frame_equal(first, second)
    assert first["transfer_id"].is_unique
    releases = audit.log(engine=eng, object_id=str(record.id), actions=["plan_release"])
    assert len(releases) == 1  # released once, exported twice
    assert len(audit.log(engine=eng, object_id=str(record.id), actions=["orders_exported"])) == 2

    from rebal_core.execution.files import to_csv_bytes, to_xlsx_bytes

    text_out = to_csv_bytes(first).decode("utf-8-sig")
    names = set(first["from_site"]) | set(first["to_site"])
    risky = [n for n in names if n[0] in "=+-@"]
    assert risky, "the plan should touch a site with a risky name"
    parsed = pd.read_csv(io.StringIO(text_out), dtype=str)
    cells = set(parsed["from_site"]) | set(parsed["to_site"])
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)
    assert {"'" + n for n in risky} <= cells
    assert (parsed["qty"].astype(int) > 0).all()  # numbers stay numbers
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx_bytes(first)))
    sheet = book.active
    values = [c.value for row in sheet.iter_rows(min_row=2) for c in row if isinstance(c.value, str)]
    assert all(not v.startswith("=") for v in values) and all(
        c.data_type != "f" for row in sheet.iter_rows() for c in row
    )


def approve_concurrently(engine, scenario_id: int, approvers: list[Actor]) -> pd.DataFrame:
    """Approvers approve interleaved halves of a plan's lines at the same time, one line per call; the lines after."""
    ids = workflow.lines(engine=engine, scenario_id=scenario_id)["transfer_id"].tolist()
    shares = {a: ids[i :: len(approvers)] for i, a in enumerate(approvers)}
    start = threading.Barrier(len(approvers))
    errors = []

    def approve(actor: Actor) -> None:
        try:
            start.wait()
            for tid in shares[actor]:
                workflow.decide_lines(
                    engine=engine, actor=actor, scenario_id=scenario_id, transfer_ids=[tid], action="approve"
                )
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=approve, args=(a,)) for a in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    after = workflow.lines(engine=engine, scenario_id=scenario_id).set_index("transfer_id")
    for actor, share in shares.items():
        assert after.loc[share, "decided_by"].eq(actor.username).all()
    return after


def test_two_approvers_at_once_lose_no_decision(eng, dataset, net):
    record = solved(eng, dataset, net)
    workflow.set_policy(
        engine=eng,
        actor=Actor("admin", "admin"),
        policy=Policy(default=Thresholds(0.0, 0.0)),
        note="everything needs approval",
    )
    workflow.transition(engine=eng, actor=PAT, scenario_id=record.id, event="submit")
    assert (workflow.lines(engine=eng, scenario_id=record.id)["status"] == "proposed").all()
    after = approve_concurrently(eng, record.id, [ANN, AMY])
    assert (after["status"] == "approved").all()
    assert len(audit.log(engine=eng, actions=["line_approved"])) == len(after)

    # the same line decided from the same (now stale) view: one wins, the other is told
    other = solved(eng, dataset, net, name="Contested")
    workflow.transition(engine=eng, actor=PAT, scenario_id=other.id, event="submit")
    line = workflow.lines(engine=eng, scenario_id=other.id).iloc[0]
    seen = {line["transfer_id"]: int(line["version"])}
    first = workflow.decide_lines(
        engine=eng, actor=ANN, scenario_id=other.id, transfer_ids=seen, action="approve", versions=seen
    )
    second = workflow.decide_lines(
        engine=eng,
        actor=AMY,
        scenario_id=other.id,
        transfer_ids=seen,
        action="reject",
        note="no",
        versions=seen,
        network=net,
    )
    assert first.changed == [line["transfer_id"]] and second.changed == []
    assert "changed by ann meanwhile" in second.skipped[0]


def test_a_solve_does_not_overwrite_decisions_taken_meanwhile(eng, dataset, net):
    record = solved(eng, dataset, net)
    one = workflow.lines(engine=eng, scenario_id=record.id)["transfer_id"].iloc[0]
    done = []

    def meanwhile(fraction: float, message: str) -> None:
        if not done:
            done.append(
                workflow.decide_lines(
                    engine=eng,
                    actor=PAT,
                    scenario_id=record.id,
                    transfer_ids=[one],
                    action="reject",
                    note="meanwhile",
                    network=net,
                )
            )

    with pytest.raises(workflow.Conflict, match="changed while it was being solved"):
        workflow.solve_scenario(engine=eng, actor=PAT, scenario_id=record.id, network=net, progress=meanwhile)
    assert workflow.lines(engine=eng, scenario_id=record.id).set_index("transfer_id").loc[one, "status"] == "rejected"


def test_audit_log_is_append_only(eng, dataset, net):
    solved(eng, dataset, net)
    first = int(audit.log(engine=eng)["id"].min())
    with eng.connect() as conn:
        for sql in (
            "UPDATE audit_log SET username = 'mallory'",
            "DELETE FROM audit_log",
            f"INSERT OR REPLACE INTO audit_log (id, at, username, role, action, object_type, object_id, summary, before, after) "
            f"VALUES ({first}, '2026-01-01 00:00:00', 'mallory', 'admin', 'x', 'x', 'x', 'rewritten', '{{}}', '{{}}')",
            f"REPLACE INTO audit_log (id, at, username, role, action, object_type, object_id, summary, before, after) "
            f"VALUES ({first}, '2026-01-01 00:00:00', 'mallory', 'admin', 'x', 'x', 'x', 'rewritten', '{{}}', '{{}}')",
        ):
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text(sql))
            conn.rollback()
    assert "mallory" not in set(audit.log(engine=eng)["username"])


def test_scenarios_clone_rename_delete_and_reproduce(eng, dataset, net):
    record = solved(eng, dataset, net, service_level=0.97)
    check = workflow.reproduce(engine=eng, scenario_id=record.id, network=net)
    assert check.same and check.new_cost == pytest.approx(check.stored_cost)
    clone = workflow.clone_scenario(engine=eng, actor=PAT, scenario_id=record.id, name="Base copy")
    assert workflow.parameters(clone).service_level == 0.97 and clone.solved_at is None and clone.status == "draft"
    with pytest.raises(workflow.WorkflowError, match="already exists"):
        workflow.rename_scenario(engine=eng, actor=PAT, scenario_id=clone.id, name="Base")
    clone = workflow.rename_scenario(engine=eng, actor=PAT, scenario_id=clone.id, name="97%")
    workflow.delete_scenario(engine=eng, actor=PAT, scenario_id=clone.id)
    assert [s.name for s in workflow.list_scenarios(engine=eng, dataset_id=dataset.id)] == ["Base"]
    assert {"scenario_cloned", "scenario_renamed", "scenario_deleted"} <= set(audit.log(engine=eng)["action"])


def test_autopilot_is_idempotent_and_audited(workflow_db, tmp_path, eng):
    env = {**os.environ, "REBAL_DATABASE_URL": workflow_db, "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rebal_core", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert cli("save-scenario", "Nightly").returncode == 0
    one = cli("autopilot", "--scenario", "Nightly", "--out", "one.csv", "--quiet")
    assert one.returncode == 0, one.stderr
    assert "released" in one.stdout and "created 'Nightly (autopilot)'" in one.stdout
    two = cli("autopilot", "--scenario", "Nightly", "--out", "two.csv", "--quiet")
    assert two.returncode == 0, two.stderr
    assert "not re-planned" in two.stdout and "no new lines to release" in two.stdout
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    log = audit.log(engine=eng, username="system:autopilot")
    assert {"plan_solved", "plan_submit", "lines_released"} <= set(log["action"])
    assert len(log[log["action"] == "plan_solved"]) == 1
    orders = pd.read_csv(tmp_path / "one.csv", encoding="utf-8-sig")
    assert len(orders) > 0 and orders["approval_status"].str.startswith("approved").all()
    bad = cli("export", "--scenario", "Nightly", "--out", "x.csv")
    assert bad.returncode == 2 and "no released lines" in bad.stdout
    assert not (tmp_path / "x.csv").exists()


def test_accounts(eng):
    from rebal_core.services import accounts
    from tests.conftest import PASSWORDS

    admin = Actor("admin", "admin")
    assert accounts.authenticate(engine=eng, username="pat", password=PASSWORDS["pat"]) == PAT
    assert accounts.authenticate(engine=eng, username="pat", password="wrong password!") is None
    assert accounts.authenticate(engine=eng, username="nobody", password="whatever it is") is None
    accounts.update_user(engine=eng, actor=admin, username="pat", active=False)
    assert accounts.authenticate(engine=eng, username="pat", password=PASSWORDS["pat"]) is None
    assert accounts.actor_of(engine=eng, username="pat") is None  # a locked user is signed out at the next page run
    with pytest.raises(accounts.AccountError, match="last active admin"):
        accounts.update_user(engine=eng, actor=admin, username="admin", role="viewer")
    with pytest.raises(PermissionDenied):
        accounts.create_user(engine=eng, actor=ANN, username="eve", role="admin", password="eve-password-1")
    with pytest.raises(accounts.AccountError, match="already exists"):
        accounts.create_user(engine=eng, actor=admin, username="ann", role="viewer")
    with pytest.raises(accounts.AccountError, match="current password is wrong"):
        accounts.set_password(engine=eng, actor=ANN, username="ann", password="new-password-1", current="nope")
    accounts.set_password(engine=eng, actor=ANN, username="ann", password="new-password-1", current=PASSWORDS["ann"])
    assert accounts.authenticate(engine=eng, username="ann", password="new-password-1") == ANN
    # identity-provider sign-ins: a new e-mail becomes a viewer, a known one gets its user's role
    assert accounts.actor_for_oidc(engine=eng, email="New.Person@Example.com") == Actor(
        "new.person@example.com", "viewer"
    )
    accounts.create_user(engine=eng, actor=admin, username="olga", role="approver", email="olga@example.com")
    assert accounts.actor_for_oidc(engine=eng, email="OLGA@example.com") == Actor("olga", "approver")
    log = audit.log(engine=eng, actions=["user_created", "user_changed", "password_changed"])
    assert {"olga", "new.person@example.com", "pat", "ann"} <= set(log["object_id"])


def test_repeated_edits_keep_packs_and_value_right(eng, dataset, net):
    record = solved(eng, dataset, net)
    lines = workflow.lines(engine=eng, scenario_id=record.id)
    packed = lines[(lines["packs"] >= 3) & (lines["qty"] // lines["packs"] > 1)]
    assert len(packed), "the small network should have a line of several multi-unit packs"
    row = packed.iloc[0]
    pack, tid = int(row["qty"] // row["packs"]), row["transfer_id"]
    unit_cost = row["value"] / row["qty"]
    for packs in (1, 2):  # two edits in a row, then undo
        workflow.firm_line(engine=eng, actor=PAT, scenario_id=record.id, transfer_id=tid, qty=packs * pack, network=net)
        line = workflow.lines(engine=eng, scenario_id=record.id).set_index("transfer_id").loc[tid]
        assert (line["qty"], line["packs"], line["status"]) == (packs * pack, packs, "firm")
        assert line["value"] == pytest.approx(packs * pack * unit_cost)
    workflow.decide_lines(engine=eng, actor=PAT, scenario_id=record.id, transfer_ids=[tid], action="reset", network=net)
    line = workflow.lines(engine=eng, scenario_id=record.id).set_index("transfer_id").loc[tid]
    assert (line["qty"], line["packs"], line["status"]) == (row["qty"], row["packs"], "proposed")
    assert line["value"] == pytest.approx(row["value"])


def test_critical_signals_block_planning_until_an_admin_overrides(eng, bundle_copy, tmp_path):
    demand = pd.read_csv(bundle_copy / "demand.csv", dtype=str)
    late = demand.iloc[:1].assign(date="2026-06-05")  # dated after the planning date 2026-06-01
    pd.concat([demand, late]).to_csv(bundle_copy / "demand.csv", index=False)
    (bundle_copy / "bundle.toml").write_text('as_of = "2026-06-01"\n')
    result = services.import_bundle(engine=eng, source=bundle_copy, name="Future rows", actor=PAT)
    assert (result.signals["severity"] == "critical").any()
    d = result.dataset
    record = workflow.save_scenario(engine=eng, actor=PAT, dataset_id=d.id, scenario=Scenario(), time_limit=2)
    with pytest.raises(
        workflow.WorkflowError, match="blocked by 1 critical signal finding.*on or after the planning date"
    ):
        workflow.solve_scenario(engine=eng, actor=PAT, scenario_id=record.id)
    with pytest.raises(PermissionDenied):
        workflow.override_signals(engine=eng, actor=PAT, dataset_id=d.id, reason="known late feed")
    with pytest.raises(workflow.WorkflowError, match="needs a reason"):
        workflow.override_signals(engine=eng, actor=Actor("admin", "admin"), dataset_id=d.id, reason=" ")
    workflow.override_signals(
        engine=eng, actor=Actor("admin", "admin"), dataset_id=d.id, reason="one test row, harmless"
    )
    assert workflow.solve_scenario(engine=eng, actor=PAT, scenario_id=record.id).solved_at is not None
    event = audit.log(engine=eng, actions=["signals_overridden"])
    assert len(event) == 1 and event["username"].iloc[0] == "admin" and "harmless" in event["summary"].iloc[0]

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    plan = [
        sys.executable,
        "-m",
        "rebal_core",
        "plan",
        str(bundle_copy),
        "--out",
        str(tmp_path / "PLAN.csv"),
        "--quiet",
        "--time-limit",
        "2",
    ]
    refused = subprocess.run(plan, capture_output=True, text=True, env=env, timeout=300)
    assert (
        refused.returncode == 2
        and "signal critical: impossible" in refused.stdout
        and not (tmp_path / "PLAN.csv").exists()
    )
    allowed = subprocess.run(
        [*plan, "--override-signals", "test row"], capture_output=True, text=True, env=env, timeout=300
    )
    assert allowed.returncode == 0 and (tmp_path / "PLAN.csv").exists()


def test_count_discrepancies_of_a_stored_dataset(eng, dataset, net):
    found = workflow.count_discrepancies(engine=eng, dataset_id=dataset.id, network=net)
    assert len(found) > 0 and set(found["discrepancy_class"]) <= {
        "agrees",
        "unit_of_measure",
        "timing",
        "data_sync",
        "receiving_error",
        "shrinkage",
    }
    assert (found["discrepancy_class"] != "agrees").any()  # the synthetic network plants some


def test_count_adjustments_are_approved_and_feed_the_next_plan(eng, bundle_copy):
    inventory = pd.read_csv(bundle_copy / "inventory.csv", dtype={"site_id": str, "sku_id": str})
    held = inventory[inventory["on_hand"] > 20].head(6)
    wrong = held["on_hand"].to_numpy() + [-7, -13, 9, -2, -18, 11]  # shrinkage and surplus of different values
    counts = pd.DataFrame(
        {"date": "2026-05-28", "site_id": held["site_id"], "sku_id": held["sku_id"], "counted_qty": wrong}
    )
    counts.to_csv(bundle_copy / "counts.csv", index=False)
    dataset = services.import_bundle(engine=eng, source=bundle_copy, name="Counted", actor=PAT).dataset
    net = services.load_network(engine=eng, dataset_id=dataset.id)
    admin = Actor("admin", "admin")
    workflow.set_policy(
        engine=eng,
        actor=admin,
        policy=Policy(default=Thresholds(line_value=30.0, line_cost=500.0)),
        note="small adjustments flow",
    )
    n = workflow.propose_adjustments(engine=eng, actor=PAT, dataset_id=dataset.id, network=net)
    table = workflow.adjustments(engine=eng, dataset_id=dataset.id)
    assert n == len(table) > 0 and set(table["discrepancy_class"]) <= {
        "unit_of_measure",
        "receiving_error",
        "shrinkage",
    }
    auto = table[table["status"] == "approved"]
    assert (auto["value"].abs() <= 30).all() and (auto["decided_by"] == "policy v2").all()
    assert (
        workflow.propose_adjustments(engine=eng, actor=PAT, dataset_id=dataset.id, network=net) == 0
    )  # nothing proposed twice
    waiting = table[table["status"] == "proposed"]
    assert len(waiting) >= 2
    positions = list(zip(waiting["site_id"], waiting["sku_id"]))
    with pytest.raises(PermissionDenied):
        workflow.decide_adjustments(engine=eng, actor=PAT, dataset_id=dataset.id, positions=positions, action="approve")
    with pytest.raises(workflow.WorkflowError, match="needs a reason"):
        workflow.decide_adjustments(
            engine=eng, actor=ANN, dataset_id=dataset.id, positions=positions[:1], action="reject"
        )
    workflow.decide_adjustments(
        engine=eng, actor=ANN, dataset_id=dataset.id, positions=positions[:1], action="reject", note="recount first"
    )
    done = workflow.decide_adjustments(
        engine=eng, actor=ANN, dataset_id=dataset.id, positions=positions, action="approve"
    )
    assert len(done.changed) == len(positions) - 1 and "already rejected" in done.skipped[0]

    adjusted = services.load_network(engine=eng, dataset_id=dataset.id).inventory.set_index(["site_id", "sku_id"])[
        "on_hand"
    ]
    final = workflow.adjustments(engine=eng, dataset_id=dataset.id).set_index(["site_id", "sku_id"])
    for key, row in final.iterrows():
        assert adjusted[key] == (row["counted_qty"] if row["status"] == "approved" else row["system_qty"])
    assert {"adjustments_proposed", "adjustment_approved", "adjustment_rejected"} <= set(
        audit.log(engine=eng)["action"]
    )


def test_monitor_a_released_plan_with_a_later_snapshot(eng, dataset, net, bundle_copy):
    from rebal_core.execution.outcomes import snapshot_trend

    record = solved(eng, dataset, net)
    orders = release(eng, record)
    inventory = pd.read_csv(bundle_copy / "inventory.csv", dtype={"site_id": str, "sku_id": str})
    got = orders.groupby(["to_site_id", "sku_id"])["qty"].sum().rename_axis(["site_id", "sku_id"])
    inventory = inventory.set_index(["site_id", "sku_id"])
    inventory = (
        inventory.reindex(inventory.index.union(got.index)).fillna(0).astype({"on_hand": int, "in_transit": int})
    )
    inventory["on_hand"] += got.reindex(inventory.index).fillna(0).astype(int)  # the transfers arrived
    inventory.reset_index().to_csv(bundle_copy / "inventory.csv", index=False)
    (bundle_copy / "bundle.toml").write_text('as_of = "2026-06-08"\n')
    later = services.import_bundle(engine=eng, source=bundle_copy, name="A week later", actor=PAT).dataset
    out = workflow.plan_outcomes(engine=eng, scenario_id=record.id, later_dataset_id=later.id, network=net)
    assert len(out) == len(orders)
    short = out[out["stockout_avoided"].notna()]
    assert len(short) > 0 and short["stockout_avoided"].astype(bool).all()  # every short receiver has stock now
    assert (out["receiver_position_planned"] >= out["receiver_position_before"]).all()
    trend = snapshot_trend([("later", services.load_network(engine=eng, dataset_id=later.id)), ("first", net)])
    assert list(trend["snapshot"]) == ["first", "later"] and (trend["turns"] > 0).all()


def test_an_edited_line_still_steps_by_its_pack(eng, dataset, net):
    """The Plans page offers +/- steps of the line's pack size. It used to derive the step from the
    proposed quantity and the edited number of packs: 100 units in packs of 10, edited to 30, gave
    steps of 33, which the core then refused. The line now carries its pack size."""
    record = solved(eng, dataset, net)
    lines = workflow.lines(engine=eng, scenario_id=record.id)
    packed = lines[(lines["packs"] >= 3) & (lines["qty"] // lines["packs"] > 1)]
    row = packed.iloc[0]
    pack, tid = int(row["qty"] // row["packs"]), row["transfer_id"]
    assert (lines["pack_size"] == lines["qty"] // lines["packs"]).all()
    edited = (int(row["packs"]) - 1) * pack
    workflow.firm_line(engine=eng, actor=PAT, scenario_id=record.id, transfer_id=tid, qty=edited, network=net)
    line = workflow.lines(engine=eng, scenario_id=record.id).set_index("transfer_id").loc[tid]
    assert line["pack_size"] == pack
    # one step up from the edit is a quantity the core accepts
    workflow.firm_line(
        engine=eng, actor=PAT, scenario_id=record.id, transfer_id=tid, qty=edited + int(line["pack_size"]), network=net
    )


def test_the_scenario_lab_is_blocked_by_critical_signals_in_the_core(eng, bundle_copy):
    """The lab used to enforce the block itself (the page), so the core did not block that path."""
    from rebal_core.errors import PlanningBlocked
    from rebal_core.services import lab

    demand = pd.read_csv(bundle_copy / "demand.csv", dtype=str)
    pd.concat([demand, demand.iloc[:1].assign(date="2026-06-05")]).to_csv(bundle_copy / "demand.csv", index=False)
    (bundle_copy / "bundle.toml").write_text('as_of = "2026-06-01"\n')
    d = services.import_bundle(engine=eng, source=bundle_copy, name="Future rows", actor=PAT).dataset
    problem = lab.problem(services.load_network(engine=eng, dataset_id=d.id), Scenario())
    with pytest.raises(PlanningBlocked, match="blocked by 1 critical signal finding"):
        lab.solve(dataset=services.get_dataset(engine=eng, dataset_id=d.id), problem=problem)
    workflow.override_signals(engine=eng, actor=Actor("admin", "admin"), dataset_id=d.id, reason="one test row")
    shown = lab.solve(dataset=services.get_dataset(engine=eng, dataset_id=d.id), problem=problem, draws=20)
    assert shown.summary.lines == len(shown.table) and len(shown.sites_after) == len(problem.sites)


def test_the_home_briefing_ranks_sites_and_plans_through_the_gate(eng, dataset, net, bundle_copy):
    from rebal_core.decisions.positions import build_positions
    from rebal_core.services import briefing

    pos = build_positions(net, Scenario())
    brief = briefing.briefing(network=net, positions=pos)
    assert brief.sites["value_at_risk"].is_monotonic_decreasing and len(brief.sites) <= briefing.HURTING_SITES
    rec = briefing.recommendation(engine=eng, dataset=dataset, network=net, time_limit=60)
    assert rec.plan is not None and not rec.plan.provisional and rec.plan.summary.lines == len(rec.plan.table)
    assert rec.plan.summary.net_benefit >= 0 and brief.cost_of_inaction >= rec.plan.summary.network_cost_after
    demand = pd.read_csv(bundle_copy / "demand.csv", dtype=str)
    pd.concat([demand, demand.iloc[:1].assign(date="2026-06-05")]).to_csv(bundle_copy / "demand.csv", index=False)
    (bundle_copy / "bundle.toml").write_text('as_of = "2026-06-01"\n')
    late = services.import_bundle(engine=eng, source=bundle_copy, name="Future rows", actor=PAT).dataset
    blocked = briefing.recommendation(engine=eng, dataset=late, network=net, time_limit=1)
    assert blocked.plan is None and "critical signal finding" in blocked.blocked


def test_a_saved_plan_is_the_plan_shown(eng, dataset, net):
    """What you see is what you save: the lab's lines are stored as shown, scored by the judge."""
    from rebal_core.services import lab

    shown = lab.solve(dataset=dataset, problem=lab.problem(net, Scenario(cost_per_move=5.0)), draws=20)
    record = workflow.save_scenario(engine=eng, actor=PAT, dataset_id=dataset.id, scenario=Scenario(cost_per_move=5.0))
    stored = workflow.solve_scenario(
        engine=eng, actor=PAT, scenario_id=record.id, network=net, shown=(shown.table, shown.summary)
    )
    s = workflow.summary(stored)
    assert s.lines == shown.summary.lines and s.network_cost_after == pytest.approx(shown.summary.network_cost_after)
    assert s.solver_status == shown.summary.solver_status
    other = workflow.save_scenario(engine=eng, actor=PAT, dataset_id=dataset.id, scenario=Scenario(), name="Other")
    with pytest.raises(workflow.WorkflowError, match="other parameters"):
        workflow.solve_scenario(
            engine=eng, actor=PAT, scenario_id=other.id, network=net, shown=(shown.table, shown.summary)
        )
    bad = shown.table.assign(qty=shown.table["qty"] * 10_000)
    same = workflow.save_scenario(
        engine=eng, actor=PAT, dataset_id=dataset.id, scenario=Scenario(cost_per_move=5.0), name="Bad"
    )
    with pytest.raises(workflow.WorkflowError, match="breaks the plan's rules"):
        workflow.solve_scenario(engine=eng, actor=PAT, scenario_id=same.id, network=net, shown=(bad, shown.summary))
