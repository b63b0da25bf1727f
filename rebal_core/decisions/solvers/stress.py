"""Random coupled networks that no one here tuned the optimizer to (issue 11).

Not the sample's generator: sites at random points, lanes to the nearest few
sites, every position long, short or balanced at random, pack volumes that
never divide a truck's capacity, trucks of several sizes, minimum moves and a
budget at a chosen tightness. The tests check the optimizer's claims on the
small ones against the exact MIP (:mod:`rebal_core.decisions.solvers.reference`); ``bench/``
times the large ones.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from rebal_core.decisions.positions import Network
from rebal_core.decisions.scenario import Scenario

AS_OF = dt.date(2026, 1, 1)
AWKWARD_VOLUMES = (0.3, 0.7, 1.3, 2.9, 0.45)  # none divides 20, 37, 50 or 140
TRUCK_CAPACITIES = (20.0, 37.0, 50.0, 140.0)


def _no_inbound() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site_id": pd.Series([], dtype=str),
            "sku_id": pd.Series([], dtype=str),
            "qty": pd.Series([], dtype=int),
            "eta": pd.Series([], dtype="datetime64[ns]"),
        }
    )


def tiny_trucked_network(seed: int) -> tuple[Network, Scenario]:
    """6-10 sites, 3-6 skus, most lanes trucked: small enough for the exact MIP to prove its optimum."""
    rng = np.random.default_rng(10_000 + seed)
    n_sites, n_skus = int(rng.integers(6, 11)), int(rng.integers(3, 7))
    sites = pd.DataFrame({
        "site_id": [f"S{i}" for i in range(n_sites)], "name": [f"Site {i}" for i in range(n_sites)], "kind": "store",
        "region": "All", "lat": rng.uniform(30, 45, n_sites), "lon": rng.uniform(-110, -75, n_sites),
        "receive_capacity_units": np.where(rng.random(n_sites) < 0.2, rng.integers(20, 150, n_sites), np.nan),
    })  # fmt: skip
    skus = pd.DataFrame({
        "sku_id": [f"K{k}" for k in range(n_skus)], "name": [f"Item {k}" for k in range(n_skus)], "category": "A",
        "unit_cost": rng.uniform(5, 120, n_skus).round(2), "unit_price": np.nan,
        "unit_volume": rng.choice(AWKWARD_VOLUMES, n_skus), "pack_size": rng.choice([1, 1, 3, 7], n_skus),
        "criticality": 1.0,
    })  # fmt: skip
    pairs = [(s, k) for s in range(n_sites) for k in range(n_skus)]
    mean = rng.gamma(1.5, 1.5, len(pairs)).round(3)
    long = rng.random(n_sites) < 0.5  # about half the sites sit long, half run short: transfers matter
    on_hand = np.array([rng.integers(60, 300) if long[s] else rng.integers(0, 20) for s, _ in pairs])
    inventory = pd.DataFrame(
        {
            "site_id": [f"S{s}" for s, _ in pairs],
            "sku_id": [f"K{k}" for _, k in pairs],
            "on_hand": on_hand,
            "in_transit": 0,
        }
    )
    forecast = inventory[["site_id", "sku_id"]].assign(
        mean_daily=mean, std_daily=rng.uniform(0.2, 2, len(pairs)).round(3)
    )
    lanes = [(a, b) for a in range(n_sites) for b in range(n_sites) if a != b and rng.random() < 0.5]
    truck = rng.random(len(lanes)) < 0.8
    lanes = pd.DataFrame({
        "from_site_id": [f"S{a}" for a, _ in lanes], "to_site_id": [f"S{b}" for _, b in lanes],
        "lead_time_days": rng.uniform(0.5, 5, len(lanes)).round(1), "cost_per_unit": rng.uniform(0, 1.5, len(lanes)).round(2),
        "cost_per_truck": np.where(truck, rng.uniform(30, 400, len(lanes)).round(0), 0.0),
        "truck_capacity": np.where(truck, rng.choice(TRUCK_CAPACITIES, len(lanes)), np.nan),
        "max_units": np.where(rng.random(len(lanes)) < 0.2, rng.integers(20, 200, len(lanes)), np.nan),
    })  # fmt: skip
    net = Network(sites, skus, inventory, forecast, _no_inbound(), lanes, AS_OF)
    params: dict = {"objective": "target", "service_level": 0.95, "horizon_days": 28, "excess_cover_days": 45.0}
    if rng.random() < 0.6:
        params["min_move_units"] = int(rng.integers(2, 15))
    if rng.random() < 0.4:
        params["cost_per_move"] = round(float(rng.uniform(0, 25)), 1)
    if rng.random() < 0.6:
        params["budget"] = round(float(rng.uniform(100, 3000)), 2)
    return net, Scenario(**params)


def coupled_network(n_sites: int, n_skus: int, seed: int = 0, neighbours: int = 6) -> Network:
    """A network at scale: lanes to each site's nearest ``neighbours``, most of them trucked with
    capacities of several sizes, a third of the positions long, a third short."""
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(30, 45, n_sites), rng.uniform(-110, -75, n_sites)
    sites = pd.DataFrame({
        "site_id": [f"S{i:03d}" for i in range(n_sites)], "name": [f"Site {i}" for i in range(n_sites)], "kind": "store",
        "region": np.where(lon < -92, "West", "East"), "lat": lat, "lon": lon,
        "receive_capacity_units": np.where(rng.random(n_sites) < 0.3, rng.integers(2_000, 20_000, n_sites), np.nan),
    })  # fmt: skip
    skus = pd.DataFrame({
        "sku_id": [f"K{k:05d}" for k in range(n_skus)], "name": [f"Item {k}" for k in range(n_skus)],
        "category": rng.choice(["Tools", "Garden", "Parts"], n_skus), "unit_cost": rng.lognormal(3, 0.8, n_skus).round(2),
        "unit_price": np.nan, "unit_volume": rng.choice(AWKWARD_VOLUMES, n_skus), "pack_size": rng.choice([1, 1, 2, 3, 6, 12], n_skus),
        "criticality": 1.0,
    })  # fmt: skip
    site = np.repeat(np.arange(n_sites), n_skus)
    sku = np.tile(np.arange(n_skus), n_sites)
    mean = rng.gamma(1.2, 1.0, len(site)) * rng.lognormal(0, 0.5, n_skus)[sku]
    state = rng.choice(3, len(site), p=[0.34, 0.33, 0.33])  # long, short, balanced
    days = np.select(
        [state == 0, state == 1],
        [rng.uniform(60, 150, len(site)), rng.uniform(0, 10, len(site))],
        rng.uniform(25, 45, len(site)),
    )
    inventory = pd.DataFrame(
        {
            "site_id": sites["site_id"].to_numpy()[site],
            "sku_id": skus["sku_id"].to_numpy()[sku],
            "on_hand": np.round(mean * days).astype(np.int64),
            "in_transit": 0,
        }
    )
    forecast = inventory[["site_id", "sku_id"]].assign(
        mean_daily=mean.round(3), std_daily=(mean * rng.uniform(0.4, 1.2, len(site))).round(3)
    )
    d = np.hypot(lat[:, None] - lat[None, :], (lon[:, None] - lon[None, :]) * 0.8)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1)[:, :neighbours]
    a, b = np.repeat(np.arange(n_sites), neighbours), near.ravel()
    km = d[a, b] * 111
    truck = rng.random(len(a)) < 0.85
    lanes = pd.DataFrame({
        "from_site_id": sites["site_id"].to_numpy()[a], "to_site_id": sites["site_id"].to_numpy()[b],
        "lead_time_days": np.clip(km / 500, 0.5, 6).round(1), "cost_per_unit": (0.05 + km * rng.uniform(0.0005, 0.002, len(a))).round(2),
        "cost_per_truck": np.where(truck, (150 + km * rng.uniform(0.8, 1.6, len(a))).round(0), 0.0),
        "truck_capacity": np.where(truck, rng.choice([400.0, 770.0, 1_300.0, 2_650.0], len(a)), np.nan),
        "max_units": np.where(rng.random(len(a)) < 0.15, rng.integers(500, 5_000, len(a)), np.nan),
    })  # fmt: skip
    return Network(sites, skus, inventory, forecast, _no_inbound(), lanes, AS_OF)
