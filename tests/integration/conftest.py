"""Fixtures of the workflow tests: each module gives its own ``eng`` (a store holding 'Small network')."""

from __future__ import annotations

import pytest

from rebal_core import services, store


@pytest.fixture
def dataset(eng):
    return store.find_dataset(engine=eng, name="Small network")


@pytest.fixture
def net(eng, dataset):
    return services.load_network(engine=eng, dataset_id=dataset.id)
