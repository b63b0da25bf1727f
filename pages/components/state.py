"""Shared Streamlit state: the engine, the active dataset, cached data and positions.

Shared choices live in ``st.session_state`` under non-widget keys
(``dataset_id``, ``focus_site``, ``focus_sku``) because widget state is per page.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.components import auth
from rebal_core import services
from rebal_core.services import Actor, DatasetPublic, Network, Scenario, accounts, build_positions, project, workflow


def engine():
    """The store's engine (one per database URL, so tests pointing elsewhere get their own)."""
    return _engine(services.database_url())


@st.cache_resource
def _engine(url: str):
    return services.make_engine(url)


def ensure_started() -> Actor:
    """First start (sample network, admin account, policy v1), then sign-in; returns who is signed in."""
    try:
        first_start = workflow.ensure_governance(engine=engine())
    except accounts.ConfigurationError as exc:  # say which setting is wrong, on every page, instead of a traceback
        st.error(str(exc))
        st.stop()
    if first_start is None and accounts.admin_password_file(engine()).exists():
        first_start = f"First start: sign in as admin with the password in {accounts.admin_password_file(engine())}, then change it on the Admin page."
    if not services.list_datasets(engine=engine()):
        bar = st.progress(0.0, text="First start: loading the sample network...")
        services.ensure_sample(
            engine=engine(), progress=lambda f, m: bar.progress(min(f, 1.0), text=f"First start: {m}")
        )
        bar.empty()
    return auth.require_actor(engine(), first_start)


def active_dataset() -> DatasetPublic | None:
    """The dataset chosen on the Data page (default: the most recent import)."""
    datasets = services.list_datasets(engine=engine())
    if not datasets:
        return None
    by_id = {d.id: d for d in datasets}
    chosen = st.session_state.get("dataset_id")
    if chosen not in by_id:
        chosen = datasets[0].id
        st.session_state["dataset_id"] = chosen
    return by_id[chosen]


@st.cache_data(show_spinner="Loading the dataset...", max_entries=4)
def network(dataset_id: int, version: str) -> Network:  # noqa: ARG001 - version keys the cache
    return services.load_network(engine=engine(), dataset_id=dataset_id)


@st.cache_data(show_spinner="Computing positions...", max_entries=8)
def positions(dataset_id: int, version: str, scenario: Scenario) -> pd.DataFrame:
    net = network(dataset_id, version)
    return project(build_positions(net, scenario), net.inbound, net.as_of)


def dataset_record(dataset_id: int) -> DatasetPublic:
    """The stored dataset (its signal override included), read afresh."""
    return services.get_dataset(engine=engine(), dataset_id=dataset_id)


def actor() -> Actor:
    """Who is signed in (call after :func:`ensure_started` or :func:`require_dataset`)."""
    return accounts.actor_of(engine=engine(), username=st.session_state[auth.SIGNED_IN])


def version(dataset: DatasetPublic) -> str:
    """Cache key that changes when a dataset is replaced under the same id or name."""
    stamp = services.adjustment_stamp(
        engine=engine(), dataset_id=dataset.id
    )  # approved count adjustments change the on hand
    return f"{services.database_url()}:{dataset.id}:{dataset.imported_at.isoformat()}:{stamp}"


def require_dataset() -> tuple[DatasetPublic, Network, pd.DataFrame]:
    """The active dataset, its network and default-scenario positions; stops the page if none (or nobody signed in)."""
    ensure_started()
    dataset = active_dataset()
    if dataset is None:
        st.info("No dataset is loaded yet. Import a bundle on the **Data** page.")
        st.stop()
    v = version(dataset)
    return dataset, network(dataset.id, v), positions(dataset.id, v, Scenario())


def keep_settings(keys: tuple[str, ...]) -> None:
    """Settings that survive a visit to another page: Streamlit drops a widget's state when its page
    is left, so each run copies ``keys`` into a non-widget store and puts back the ones that were
    dropped (call it before the widgets are drawn, and at the top of a fragment that draws them)."""
    kept = st.session_state.setdefault("kept_settings", {})
    for key in keys:
        if key in st.session_state:
            kept[key] = st.session_state[key]
        elif key in kept:
            st.session_state[key] = kept[key]
