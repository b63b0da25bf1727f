"""Shared fixtures: small synthetic bundles and throwaway stores."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from rebal_core import services, store
from rebal_core.signals.sample import SynthConfig, synthesize

# The command line's prepared-bundle cache: never the user's own ~/.cache during tests.
os.environ.setdefault("REBAL_CACHE_DIR", tempfile.mkdtemp(prefix="rebal-test-cache-"))
# Demand history of stores that are not SQLite files (PostgreSQL): never the repository's data/history.
os.environ.setdefault("REBAL_HISTORY_DIR", tempfile.mkdtemp(prefix="rebal-test-history-"))
# No scenario grid solved in the background after each test's import (tests/integration/test_lab_anytime.py runs one).
os.environ.setdefault("REBAL_PRESOLVE", "0")

SMALL = SynthConfig(sites=8, skus=40, days=150, seed=3, as_of=dt.date(2026, 6, 1))


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory) -> Path:
    """A generated 8-site x 40-sku bundle with five months of history (read-only: copy to change)."""
    return synthesize(tmp_path_factory.mktemp("bundle") / "small", SMALL)


@pytest.fixture
def bundle_copy(small_bundle, tmp_path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(small_bundle, target)
    return target


@pytest.fixture
def engine(tmp_path):
    return store.make_engine(f"sqlite:///{tmp_path / 'test.db'}")


@pytest.fixture(scope="session")
def loaded_db(small_bundle, tmp_path_factory) -> str:
    """URL of a store holding the small bundle as 'Small network' (read-only)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'loaded.db'}"
    services.import_bundle(engine=store.make_engine(url), source=small_bundle, name="Small network")
    return url


PASSWORDS = {
    "admin": "admin-password-1",
    "pat": "planner-password-1",
    "ann": "approver-password-1",
    "amy": "approver-password-2",
    "vic": "viewer-password-1",
}
ROLES = {"pat": "planner", "ann": "approver", "amy": "approver", "vic": "viewer"}


def workflow_store(loaded_db: str, target: Path) -> str:
    """A writable copy of the loaded store with users admin, pat (planner), ann and amy (approvers), vic (viewer)."""
    import sqlite3

    from rebal_core.governance.identity import Actor
    from rebal_core.services import accounts, workflow
    from rebal_core.store.history import history_root

    with sqlite3.connect(loaded_db.removeprefix("sqlite:///")) as src, sqlite3.connect(target) as dst:
        src.backup(dst)  # a consistent copy, WAL included
    url = f"sqlite:///{target}"
    engine = store.make_engine(url)
    source_history = history_root(store.make_engine(loaded_db))
    if source_history.exists():  # the demand history lives beside the database (Parquet)
        shutil.copytree(source_history, history_root(engine), dirs_exist_ok=True)
    workflow.ensure_governance(engine=engine)
    # the source store may hold a first-start admin with a random password: give it a known one
    accounts.set_password(
        engine=engine, actor=Actor("cli:test", "admin"), username="admin", password=PASSWORDS["admin"]
    )
    admin = Actor("admin", "admin")
    for name, role in ROLES.items():
        accounts.create_user(engine=engine, actor=admin, username=name, role=role, password=PASSWORDS[name])
    return url


@pytest.fixture
def workflow_db(loaded_db, tmp_path) -> str:
    return workflow_store(loaded_db, tmp_path / "workflow.db")
