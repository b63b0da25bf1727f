"""Any bundle that validates must plan, import and show: generated bundles of every shape (hypothesis).

Shapes: one site or many, one sku or many, sparse or short history (a single day up to a
few months), float quantities, ids that look like numbers (``007``, ``1e3``), unicode names,
with or without forecast.csv, lanes.csv, inbound orders and replenishment times.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rebal_core import services, store
from rebal_core.decisions.planning import build_problem, evaluate, plan_lines, violations
from rebal_core.decisions.positions import build_positions, kpis, site_summary, summarize
from rebal_core.decisions.scenario import Scenario
from rebal_core.decisions.solvers.optimizer import plan
from rebal_core.signals.bundle import load_bundle

AS_OF = dt.date(2026, 5, 1)
NAMES = (
    st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs", "Pd", "So")), min_size=1, max_size=12)
    .map(str.strip)
    .filter(bool)
)
IDS = st.sampled_from(["007", "1e3", "42", "A-1", "Zürich", "店01", "0", "NaN-ish", "x y"])


@st.composite
def bundles(draw) -> dict[str, pd.DataFrame | str]:
    n_sites = draw(st.integers(1, 5))
    n_skus = draw(st.integers(1, 6))
    site_ids = (
        draw(st.lists(IDS, min_size=n_sites, max_size=n_sites, unique=True))
        if draw(st.booleans())
        else [f"S{i:03d}" for i in range(n_sites)]
    )
    sku_ids = (
        draw(st.lists(IDS, min_size=n_skus, max_size=n_skus, unique=True))
        if draw(st.booleans())
        else [f"{i:04d}" for i in range(n_skus)]
    )
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    sites = pd.DataFrame({
        "site_id": site_ids, "name": [draw(NAMES) for _ in site_ids], "kind": rng.choice(["dc", "store", "fc", "warehouse"], n_sites),
        "region": rng.choice(["North", "Süd", "東"], n_sites), "lat": rng.uniform(-60, 60, n_sites).round(4), "lon": rng.uniform(-170, 170, n_sites).round(4),
        "receive_capacity_units": np.where(rng.random(n_sites) < 0.3, rng.integers(0, 200, n_sites), np.nan),
    })  # fmt: skip
    cost = rng.uniform(0.5, 200, n_skus).round(2)
    skus = pd.DataFrame({
        "sku_id": sku_ids, "name": [draw(NAMES) for _ in sku_ids], "category": rng.choice(["Tools", "Garden"], n_skus), "unit_cost": cost,
        "unit_price": np.where(rng.random(n_skus) < 0.7, (cost * rng.uniform(0.8, 2.5, n_skus)).round(2), np.nan),
        "unit_volume": np.where(rng.random(n_skus) < 0.5, rng.uniform(0.01, 5, n_skus).round(3), np.nan),
        "pack_size": np.where(rng.random(n_skus) < 0.5, rng.integers(1, 13, n_skus), 1),
        "replenishment_days": np.where(rng.random(n_skus) < 0.5, rng.integers(0, 90, n_skus).astype(float), np.nan),
    })  # fmt: skip
    pairs = pd.MultiIndex.from_product([site_ids, sku_ids], names=["site_id", "sku_id"]).to_frame(index=False)
    inventory = pairs[rng.random(len(pairs)) < 0.8].reset_index(drop=True)
    if inventory.empty:
        inventory = pairs.head(1)
    inventory = inventory.assign(
        on_hand=rng.integers(0, 300, len(inventory)),
        in_transit=np.where(rng.random(len(inventory)) < 0.2, rng.integers(0, 20, len(inventory)), 0),
    )
    days = draw(st.sampled_from([1, 3, 20, 60, 120]))
    sparsity = draw(st.sampled_from([0.02, 0.3, 0.9]))
    dates = pd.date_range(end=pd.Timestamp(AS_OF) - pd.Timedelta(days=1), periods=days)
    grid = pairs.merge(pd.DataFrame({"date": dates}), how="cross")
    demand = grid[rng.random(len(grid)) < sparsity].reset_index(drop=True)
    if demand.empty:
        demand = grid.head(1)
    floats = draw(st.booleans())
    qty = rng.gamma(0.8, 4.0, len(demand))
    demand = demand.assign(date=demand["date"].dt.strftime("%Y-%m-%d"), qty=qty.round(3) if floats else np.ceil(qty))
    tables: dict[str, pd.DataFrame | str] = {
        "sites": sites,
        "skus": skus,
        "inventory": inventory,
        "demand": demand[["date", "site_id", "sku_id", "qty"]],
    }
    if draw(st.booleans()):
        fc = pairs[rng.random(len(pairs)) < 0.7]
        tables["forecast"] = fc.assign(
            mean_daily=rng.gamma(0.7, 3, len(fc)).round(4), std_daily=rng.gamma(0.7, 2, len(fc)).round(4)
        )
    if draw(st.booleans()) and n_sites > 1:
        lanes = pd.MultiIndex.from_product([site_ids, site_ids]).to_frame(
            index=False, name=["from_site_id", "to_site_id"]
        )
        lanes = lanes[lanes["from_site_id"] != lanes["to_site_id"]]
        lanes = lanes[rng.random(len(lanes)) < 0.8]
        trucks = rng.random(len(lanes)) < 0.5
        tables["lanes"] = lanes.assign(
            lead_time_days=rng.uniform(0, 10, len(lanes)).round(1), cost_per_unit=rng.uniform(0, 3, len(lanes)).round(2),
            cost_per_truck=np.where(trucks, rng.uniform(10, 400, len(lanes)).round(), 0.0), truck_capacity=np.where(trucks, rng.uniform(5, 300, len(lanes)).round(1), np.nan),
            max_units=np.where(rng.random(len(lanes)) < 0.3, rng.integers(1, 100, len(lanes)), np.nan),
        )  # fmt: skip
    if draw(st.booleans()):
        ib = inventory.sample(min(3, len(inventory)), random_state=seed % 1000)
        tables["inbound"] = ib[["site_id", "sku_id"]].assign(
            qty=rng.integers(1, 50, len(ib)),
            eta=[(AS_OF + dt.timedelta(days=int(d))).isoformat() for d in rng.integers(-3, 40, len(ib))],
        )
    tables["bundle.toml"] = f'as_of = "{AS_OF.isoformat()}"\n'
    return tables


def write(tables: dict[str, pd.DataFrame | str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if isinstance(table, str):
            (folder / name).write_text(table, encoding="utf-8")
        else:
            table.to_csv(folder / f"{name}.csv", index=False)
    return folder


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bundles(), st.sampled_from(["expected", "target"]))
def test_every_valid_bundle_plans_imports_and_shows(tables, objective):
    with tempfile.TemporaryDirectory() as tmp:
        folder = write(tables, Path(tmp) / "bundle")
        bundle = load_bundle(folder)  # valid by construction: must load
        network_tables, _, _ = services.bundle_tables(bundle)
        findings = services.signal_findings(bundle, network_tables["forecast"])
        assert set(findings["severity"]) <= {"info", "warning", "critical"}
        net = services.network_from_tables(network_tables, bundle.as_of)
        scenario = Scenario(objective=objective)
        positions = build_positions(net, scenario)
        k = kpis(positions)
        assert np.isfinite(k["network_cost"]) and 0.0 <= k["fill_rate"] <= 1.0 + 1e-12
        summarize(positions, ["site_id", "category"])
        site_summary(positions, net.sites)
        problem = build_problem(net, scenario)
        for method in ("optimize", "greedy"):
            result = plan(problem, method=method, time_limit=1)
            lines = plan_lines(result.table)
            assert violations(problem, lines) == []
            again = evaluate(problem, lines)
            assert again.network_cost_after == pytest.approx(result.score.network_cost_after, rel=1e-12)
            summary = result.summary()
            assert summary.network_cost_after <= summary.network_cost_before + 1e-6  # the empty plan is always there
            if method == "optimize" and np.isfinite(result.lower_bound):
                assert result.lower_bound <= summary.network_cost_after + 1e-6
            if summary.lines == 0:
                assert summary.nothing_pays
        engine = store.make_engine(f"sqlite:///{Path(tmp) / 'store.db'}")
        dataset = services.import_bundle(engine=engine, source=folder, name="generated").dataset
        stored = services.load_network(engine=engine, dataset_id=dataset.id)
        assert kpis(build_positions(stored, scenario))["positions"] == k["positions"]
