"""Unit tests: pure functions on in-memory data; no files, no database (tests that read a bundle
from disk are integration tests). Those that solve the exact reference MIP on many networks are
marked ``slow``; ``make test-fast`` runs the rest in seconds."""

from __future__ import annotations

import pytest

SLOW_FIXTURES = {"small_bundle", "small_net", "bundle_copy", "tmp_path", "engine"}
SLOW_MODULES = {"test_claims_are_true", "test_optimizer_random"}


def pytest_collection_modifyitems(items):
    for item in items:
        if (
            SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
            or item.module.__name__.split(".")[-1] in SLOW_MODULES
        ):
            item.add_marker(pytest.mark.slow)
