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
    run(pg_ctl, "-D", data, "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "-w", "-l", f"{data}/log", "start")
    try:
        yield f"postgresql://rebal@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", data, "-m", "fast", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_import_and_all_or_nothing_on_postgres(pg_url, small_bundle, bundle_copy):
    engine = store.make_engine(pg_url)
    d = services.import_bundle(engine=engine, source=small_bundle, name="PG net").dataset
    assert store.count_rows(engine=engine, table="inventory", dataset_id=d.id) > 0
    assert len(store.read_table(engine=engine, dataset_id=d.id, table="demand")) == store.count_rows(engine=engine, table="demand", dataset_id=d.id)
    net = services.load_network(engine=engine, dataset_id=d.id)
    assert len(net.sites) == 8
    before = store.count_rows(engine=engine, table="demand")
    (bundle_copy / "skus.csv").write_text("sku_id,name,category,unit_cost\nX,Thing,C,0\n")
    with pytest.raises(Exception):
        services.import_bundle(engine=engine, source=bundle_copy, name="PG net", replace=True)
    assert store.count_rows(engine=engine, table="demand") == before
    engine.dispose()
