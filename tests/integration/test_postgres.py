"""The store on PostgreSQL: a throwaway server is started for the test (Debian's postgresql)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from rebal_core import services, store
from rebal_core.governance.identity import Actor
from rebal_core.services import workflow
from rebal_core.signals.bundle import BundleInvalid

pytestmark = pytest.mark.postgres


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@pytest.fixture(scope="module")
def pg_url():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries are missing; `make test` installs Debian's postgresql")
        pytest.skip("PostgreSQL is not installed")
    root = os.geteuid() == 0
    data = tempfile.mkdtemp(prefix="rebal-pg-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd):
        prefix = ["runuser", "-u", "postgres", "--"] if root else []
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    if root:
        shutil.chown(data, "postgres")
    run(initdb, "-D", data, "-A", "trust", "-U", "rebal")
    run(
        pg_ctl,
        "-D",
        data,
        "-o",
        f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
        "-w",
        "-l",
        f"{data}/log",
        "start",
    )
    try:
        yield f"postgresql://rebal@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", data, "-m", "fast", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_import_and_all_or_nothing_on_postgres(pg_url, small_bundle, bundle_copy):
    engine = store.make_engine(pg_url)
    d = services.import_bundle(engine=engine, source=small_bundle, name="PG net").dataset
    assert store.count_rows(engine=engine, table="inventory", dataset_id=d.id) > 0
    assert len(store.read_table(engine=engine, dataset_id=d.id, table="demand")) == store.count_rows(
        engine=engine, table="demand", dataset_id=d.id
    )
    net = services.load_network(engine=engine, dataset_id=d.id)
    assert len(net.sites) == 8
    before = store.count_rows(engine=engine, table="demand")
    (bundle_copy / "skus.csv").write_text("sku_id,name,category,unit_cost\nX,Thing,C,0\n")
    with pytest.raises(BundleInvalid):
        services.import_bundle(engine=engine, source=bundle_copy, name="PG net", replace=True)
    assert store.count_rows(engine=engine, table="demand") == before
    engine.dispose()


def test_workflow_on_postgres(pg_url, small_bundle, monkeypatch):
    """Concurrent approvals and the append-only audit log hold on PostgreSQL too (row locks, a trigger)."""
    from sqlalchemy import text

    from rebal_core.decisions.scenario import Scenario
    from rebal_core.governance.identity import Actor
    from rebal_core.governance.policy import Policy, Thresholds
    from rebal_core.services import accounts, workflow
    from rebal_core.store import audit
    from tests.integration.test_workflow import approve_concurrently

    monkeypatch.setenv("REBAL_ADMIN_PASSWORD", "admin-password-1")  # no password file under data/
    engine = store.make_engine(pg_url)
    workflow.ensure_governance(engine=engine)
    admin = Actor("cli:test", "admin")
    for name, role in (("pat", "planner"), ("ann", "approver"), ("amy", "approver")):
        accounts.create_user(engine=engine, actor=admin, username=name, role=role, password=f"{name}-password-1")
    d = services.import_bundle(engine=engine, source=small_bundle, name="PG workflow").dataset
    pat = Actor("pat", "planner")
    record = workflow.save_scenario(engine=engine, actor=pat, dataset_id=d.id, scenario=Scenario(), time_limit=5)
    record = workflow.solve_scenario(engine=engine, actor=pat, scenario_id=record.id)
    workflow.set_policy(engine=engine, actor=admin, policy=Policy(default=Thresholds(0.0, 0.0)))
    workflow.transition(engine=engine, actor=pat, scenario_id=record.id, event="submit")
    after = approve_concurrently(engine, record.id, [Actor("ann", "approver"), Actor("amy", "approver")])
    assert (after["status"] == "approved").all()
    record = workflow.transition(engine=engine, actor=Actor("ann", "approver"), scenario_id=record.id, event="approve")
    orders = workflow.export_orders(engine=engine, actor=pat, scenario_id=record.id)
    assert len(orders) == len(after)
    with engine.connect() as conn:
        for sql in (
            "UPDATE audit_log SET username = 'mallory'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "DROP TABLE audit_log",
            "INSERT INTO audit_log SELECT * FROM audit_log ORDER BY id LIMIT 1 ON CONFLICT (id) DO UPDATE SET summary = 'rewritten'",
        ):
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text(sql))
            conn.rollback()
    assert len(audit.log(engine=engine, actions=["line_approved"])) == len(after)
    engine.dispose()


def test_concurrent_policy_saves_and_long_names_on_postgres(pg_url, small_bundle):
    import threading

    from rebal_core.governance.policy import Policy, Thresholds

    engine = store.make_engine(pg_url)
    admin = Actor("root", "admin")
    workflow.ensure_governance(engine=engine)
    start = workflow.current_policy(engine=engine).version
    gate = threading.Barrier(4)
    errors: list[Exception] = []

    def save(i: int) -> None:
        gate.wait()
        try:
            workflow.set_policy(
                engine=engine, actor=admin, policy=Policy(default=Thresholds(float(100 + i), 50.0)), note=f"writer {i}"
            )
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert workflow.current_policy(engine=engine).version == start + 4
    with pytest.raises(store.DatasetNameInvalid, match="1 to 120 characters"):
        services.import_bundle(engine=engine, source=small_bundle, name="N" * 121)
    engine.dispose()
