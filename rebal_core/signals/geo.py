"""Distances, the lane rate card, and offline map outlines.

When a bundle has no ``lanes.csv`` every ordered pair of sites is a lane whose
lead time and cost come from the road distance (great-circle km x 1.22, per
the data contract) priced by a :class:`RateCard`. The card's defaults are
documented in the README and can be overridden in ``bundle.toml`` under
``[rate_card]``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

EARTH_RADIUS_KM = 6371.0088
ROAD_FACTOR = 1.22
GEO_DIR = Path(__file__).resolve().parents[2] / "data" / "geo"


@dataclass(frozen=True)
class RateCard:
    """Prices a derived lane from its road distance ``d`` (km).

    ``lead_time_days = handling_days + d / km_per_day`` and
    ``cost_per_unit = handling_cost_per_unit + cost_per_unit_km * d``;
    trucks cost ``truck_cost_fixed + truck_cost_per_km * d`` each and carry
    ``truck_capacity`` volume units (no trucks when ``truck_cost_fixed`` and
    ``truck_cost_per_km`` are both 0).
    """

    handling_days: float = 1.0
    km_per_day: float = 650.0
    handling_cost_per_unit: float = 0.25
    cost_per_unit_km: float = 0.0008
    truck_cost_fixed: float = 0.0
    truck_cost_per_km: float = 0.0
    truck_capacity: float = 2000.0

    @classmethod
    def from_mapping(cls, raw: dict) -> RateCard:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        values = {}
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key}: expected a number >= 0, got {value!r}")
            values[key] = float(value)
        card = cls(**values)
        if card.km_per_day <= 0 or card.truck_capacity <= 0:
            raise ValueError("km_per_day and truck_capacity must be > 0")
        return card

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def great_circle_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Haversine distance in km between points given in degrees (broadcasts)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def derive_lanes(sites: pd.DataFrame, card: RateCard) -> pd.DataFrame:
    """Every ordered pair of distinct sites as a lane priced by ``card``."""
    n = len(sites)
    lat = sites["lat"].to_numpy(float)
    lon = sites["lon"].to_numpy(float)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = i != j
    i, j = i[keep], j[keep]
    road_km = great_circle_km(lat[i], lon[i], lat[j], lon[j]) * ROAD_FACTOR
    has_trucks = card.truck_cost_fixed > 0 or card.truck_cost_per_km > 0
    ids = sites["site_id"].to_numpy()
    return pd.DataFrame(
        {
            "from_site_id": ids[i],
            "to_site_id": ids[j],
            "lead_time_days": np.round(card.handling_days + road_km / card.km_per_day, 2),
            "cost_per_unit": np.round(card.handling_cost_per_unit + card.cost_per_unit_km * road_km, 4),
            "cost_per_truck": np.round(card.truck_cost_fixed + card.truck_cost_per_km * road_km, 2)
            if has_trucks
            else 0.0,
            "truck_capacity": card.truck_capacity if has_trucks else np.nan,
            "max_units": np.nan,
            "road_km": np.round(road_km, 1),
        }
    )


# ----------------------------------------------------------------------------- outlines


def topojson_paths(topology: dict) -> list[list[list[float]]]:
    """Decode every arc of a TopoJSON topology into a ``[[lon, lat], ...]`` path.

    Arcs are the shared borders, each stored once, which is exactly what an
    outline layer needs (no border drawn twice). Quantized topologies store
    delta-encoded integer positions that ``transform`` scales back.
    """
    transform = topology.get("transform")
    paths = []
    for arc in topology["arcs"]:
        points = np.asarray(arc, dtype=float)
        if transform:
            points = np.cumsum(points, axis=0) * transform["scale"] + transform["translate"]
        paths.append(np.round(points, 3).tolist())
    return paths


@lru_cache(maxsize=4)
def outline_paths(name: str) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Outline arcs shipped in ``data/geo`` (``"world"`` or ``"us"``), cached per process."""
    file = {"world": "world-countries-110m.json", "us": "us-states-10m.json"}[name]
    topology = json.loads((GEO_DIR / file).read_text())
    return tuple(tuple(tuple(p) for p in path) for path in topojson_paths(topology))


@lru_cache(maxsize=32)
def outline_paths_near(
    name: str, box: tuple[float, float, float, float], tolerance: float
) -> tuple[tuple[tuple[float, float], ...], ...]:
    """The outline arcs of ``name`` inside ``box`` (lon_min, lat_min, lon_max, lat_max), cut where they
    leave it, with consecutive points at least ``tolerance`` degrees apart (ends kept), to 3 decimals.

    A map only needs the borders it shows, at the detail its zoom can draw: the whole world at
    full detail was 20,000 points that the browser re-tessellated on every redraw (0.2-0.4 s)."""
    lon0, lat0, lon1, lat1 = box
    kept: list[tuple[tuple[float, float], ...]] = []
    for path in outline_paths(name):
        run: list[tuple[float, float]] = []
        for i, (x, y) in enumerate(path):
            inside = lon0 <= x <= lon1 and lat0 <= y <= lat1
            if inside:
                if not run and i > 0:
                    run.append(path[i - 1])  # from the point outside, so the border reaches the edge
                if not run or i == len(path) - 1 or math.hypot(x - run[-1][0], y - run[-1][1]) >= tolerance:
                    run.append((x, y))
            elif run:
                run.append((x, y))  # to the point outside
                kept.append(tuple(run))
                run = []
        if len(run) >= 2:
            kept.append(tuple(run))
    return tuple(tuple((round(x, 3), round(y, 3)) for x, y in run) for run in kept)
