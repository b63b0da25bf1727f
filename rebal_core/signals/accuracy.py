"""Record accuracy: cycle counts against the system record, discrepancies classified with their evidence.

Pure: data in, tables out. The system record is ``inventory.csv``'s
``on_hand`` (the snapshot the counts came with). A count *agrees* when
``|counted - on_hand| <= max(abs_tolerance, rel_tolerance x on_hand)``.
Disagreements are classified by the first rule that explains them:

1. ``unit_of_measure``: counted in packs instead of units or the reverse
   (``counted x pack = on_hand`` or ``counted = on_hand x pack``, pack > 1);
2. ``timing``: the difference equals stock in transit to the site (arrived,
   not yet booked), an inbound order due within ``timing_days`` of the count,
   or an open transfer (released, not received) into or out of the site;
3. ``data_sync``: the difference equals the site's recorded demand of the
   count day or the ``sync_days`` days before it (sales posted late or twice),
   for days of at least ``sync_min_units`` (smaller ones match by chance);
4. ``receiving_error`` (counted above the record, unexplained): goods received
   but not booked, or an overcount;
5. ``shrinkage`` (counted below the record, unexplained): loss, theft, damage.

Adjustments are proposed where the count is the truth: unit of measure (book
the count), receiving error and shrinkage (book the count). Timing and data
sync resolve themselves when the postings catch up, so no adjustment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CLASSES = ("agrees", "unit_of_measure", "timing", "data_sync", "receiving_error", "shrinkage")
ADJUSTED = ("unit_of_measure", "receiving_error", "shrinkage")


@dataclass(frozen=True)
class Tolerance:
    abs_units: float = 0.0
    rel_share: float = 0.0  # of the system record
    timing_days: int = 3
    sync_days: int = 1
    sync_min_units: float = (
        3.0  # smaller differences match some day's sales by chance too often to call it a posting lag
    )


def _matches(diff: np.ndarray, candidates: pd.Series, keys: pd.MultiIndex) -> np.ndarray:
    """Whether each difference equals one of the candidate quantities of its key (non-zero)."""
    if candidates.empty:
        return np.zeros(len(diff), dtype=bool)
    frame = pd.DataFrame({"k": keys, "d": diff})
    cand = candidates[candidates != 0].rename("d").reset_index()
    cand["k"] = list(zip(*(cand[c] for c in cand.columns[:-1])))
    hit = frame.reset_index().merge(cand[["k", "d"]], on=["k", "d"], how="inner")["index"].unique()
    out = np.zeros(len(diff), dtype=bool)
    out[hit] = True
    return out


def classify_counts(
    counts: pd.DataFrame,
    inventory: pd.DataFrame,
    skus: pd.DataFrame,
    *,
    inbound: pd.DataFrame | None = None,
    demand: pd.DataFrame | None = None,
    open_transfers: pd.DataFrame | None = None,
    tolerance: Tolerance = Tolerance(),
) -> pd.DataFrame:
    """One row per count: system record, difference, class, evidence, proposed adjustment and its value.

    ``open_transfers``: sku_id, from_site_id, to_site_id, qty of transfers released and not received.
    """
    keys = ["site_id", "sku_id"]
    c = counts.astype({"site_id": str, "sku_id": str}).copy()
    c["date"] = pd.to_datetime(c["date"])
    c = (
        c.sort_values("date").drop_duplicates(keys, keep="last").reset_index(drop=True)
    )  # the latest count of a position rules
    inv = inventory.astype({"site_id": str, "sku_id": str}).set_index(keys)
    key = pd.MultiIndex.from_frame(c[keys])
    system = inv["on_hand"].reindex(key).fillna(0).to_numpy(float)
    in_transit = inv["in_transit"].reindex(key).fillna(0).to_numpy(float) if "in_transit" in inv else np.zeros(len(c))
    sku = skus.astype({"sku_id": str}).set_index("sku_id")
    pack = c["sku_id"].map(sku["pack_size"]).fillna(1).to_numpy(float)
    unit_cost = c["sku_id"].map(sku["unit_cost"]).fillna(0).to_numpy(float)
    counted = c["counted_qty"].to_numpy(float)
    diff = counted - system
    limit = np.maximum(tolerance.abs_units, tolerance.rel_share * system)
    agrees = np.abs(diff) <= limit + 1e-9

    cls = np.full(len(c), "", dtype=object)
    evidence = np.full(len(c), "", dtype=object)

    def assign(mask: np.ndarray, name: str, text) -> None:
        free = mask & (cls == "")
        cls[free] = name
        for i in np.flatnonzero(free):
            evidence[i] = text(i)

    assign(agrees, "agrees", lambda i: f"within tolerance ({diff[i]:+g} units)")
    uom = (
        (pack > 1) & (system > 0) & ((np.abs(counted * pack - system) < 0.5) | (np.abs(counted - system * pack) < 0.5))
    )
    assign(
        uom,
        "unit_of_measure",
        lambda i: (
            f"counted {counted[i]:g} = record {system[i]:g} "
            + ("/" if counted[i] < system[i] else "x")
            + f" pack of {pack[i]:g}: counted in the wrong unit"
        ),
    )

    assign(
        (in_transit > 0) & (np.abs(diff - in_transit) < 0.5),
        "timing",
        lambda i: f"difference {diff[i]:+g} = in transit {in_transit[i]:g} (arrived, not yet booked)",
    )
    if inbound is not None and len(inbound):
        ib = inbound.astype({"site_id": str, "sku_id": str}).copy()
        ib["eta"] = pd.to_datetime(ib["eta"])
        near = ib.merge(c[keys + ["date"]], on=keys)
        near = near[(near["eta"] - near["date"]).abs().dt.days <= tolerance.timing_days]
        hit = _matches(diff, near.set_index(keys)["qty"], key)
        assign(
            hit,
            "timing",
            lambda i: (
                f"difference {diff[i]:+g} = an inbound order due within {tolerance.timing_days} days of the count"
            ),
        )
    if open_transfers is not None and len(open_transfers):
        t = open_transfers.astype({"sku_id": str, "from_site_id": str, "to_site_id": str})
        into = t.rename(columns={"to_site_id": "site_id"}).set_index(["site_id", "sku_id"])["qty"]
        out_of = -t.rename(columns={"from_site_id": "site_id"}).set_index(["site_id", "sku_id"])["qty"]
        hit = _matches(diff, pd.concat([into, out_of]), key)
        assign(
            hit,
            "timing",
            lambda i: (
                f"difference {diff[i]:+g} = an open transfer {'into' if diff[i] > 0 else 'out of'} the site (released, not received)"
            ),
        )
    if demand is not None and len(demand):
        d = demand.astype({"site_id": str, "sku_id": str})[keys + ["date", "qty"]].copy()
        d["date"] = pd.to_datetime(d["date"])
        d = d.merge(c[keys + ["date"]].rename(columns={"date": "count_date"}), on=keys)
        lag = (d["count_date"] - d["date"]).dt.days
        d = d[(lag >= 0) & (lag <= tolerance.sync_days) & (d["qty"] >= tolerance.sync_min_units)]
        # one day's sales posted twice (record too low) or not yet (record too high)
        hit = _matches(diff, d.set_index(keys)["qty"], key) | _matches(diff, -d.set_index(keys)["qty"], key)
        assign(
            hit,
            "data_sync",
            lambda i: (
                f"difference {diff[i]:+g} = one day's recorded sales within {tolerance.sync_days} days of the count (posting lag)"
            ),
        )
    assign(
        diff > 0,
        "receiving_error",
        lambda i: (
            f"{diff[i]:+g} units more on the shelf than on record, unexplained by transit, inbound, transfers or postings"
        ),
    )
    assign(
        diff < 0,
        "shrinkage",
        lambda i: (
            f"{diff[i]:+g} units missing against the record, unexplained by transit, inbound, transfers or postings"
        ),
    )

    adjust = np.where(np.isin(cls, ADJUSTED), diff, 0.0)
    out = c.assign(
        system_qty=system,
        difference=diff,
        abs_value=np.abs(diff) * unit_cost,
        unit_cost=unit_cost,
        pack_size=pack,
        discrepancy_class=cls,
        evidence=evidence,
        adjustment=adjust.astype(np.int64),
        adjustment_value=adjust * unit_cost,
    )
    return out


def record_accuracy(
    classified: pd.DataFrame, by: list[str], sites: pd.DataFrame | None = None, skus: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Record accuracy % (share of counted positions that agree) and value accuracy, grouped ``by`` (e.g. site_id, category)."""
    frame = classified
    if skus is not None and "category" in by and "category" not in frame:
        frame = frame.merge(skus[["sku_id", "category"]].astype({"sku_id": str}), on="sku_id", how="left")
    if sites is not None and "region" in by and "region" not in frame:
        frame = frame.merge(sites[["site_id", "region"]].astype({"site_id": str}), on="site_id", how="left")
    frame = frame.assign(
        ok=frame["discrepancy_class"] == "agrees", system_value=frame["system_qty"] * frame["unit_cost"]
    )
    g = frame.groupby(by, as_index=False).agg(
        counts=("ok", "size"), agree=("ok", "sum"), abs_value=("abs_value", "sum"), system_value=("system_value", "sum")
    )
    g["record_accuracy"] = g["agree"] / g["counts"]
    g["value_accuracy"] = 1 - np.where(
        g["system_value"] > 0, g["abs_value"] / g["system_value"].where(g["system_value"] > 0, 1), 0.0
    )
    return g
