"""Signal quality: catch bad signals before they drive transfers. Pure: tables in, findings out.

Each finding has a check, a severity (``critical`` blocks planning until an
admin overrides it, ``warning``, ``info``), where it is (site, sku, category)
and a message with the figure behind it. Checks:

* ``stale``: the last demand date is far behind the planning date
  (network and per site): > ``stale_warning_days`` warning, > ``stale_critical_days`` critical;
* ``missing_days`` / ``missing_site``: a site without demand rows on days the
  rest of the network has them (a feed that dropped out), or with none at all;
* ``impossible``: demand dated after the planning date (critical), a selling
  price below cost;
* ``spike``: a day of the last ``spike_window_days`` far above its series'
  robust level (``qty > median + spike_mads x max(MAD, 1)`` and ``>= spike_min_units``)
  while the 3 days before and the 3 after are not (else it is a shift);
* ``shift``: a site x category whose demand over the last ``recent_days``
  differs from the ``baseline_days`` before by more than ``shift_ratio`` x;
* ``dead_stock``: stock on hand with no demand in ``dead_days`` days (value shown);
* ``forecast_bias``: the forecast's daily mean against the last
  ``recent_days`` of actuals per site x category, beyond ``bias_limit``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rebal_core.format import money_whole

SEVERITIES = ("critical", "warning", "info")
FINDING_COLUMNS = ["check", "severity", "site_id", "sku_id", "category", "message", "figure"]


@dataclass(frozen=True)
class Thresholds:
    stale_warning_days: int = 7
    stale_critical_days: int = 28
    missing_run_days: int = 3
    spike_mads: float = 10.0
    spike_min_units: float = 10.0
    spike_window_days: int = 90
    recent_days: int = 28
    baseline_days: int = 56
    shift_ratio: float = 2.0
    shift_min_units: float = 50.0
    dead_days: int = 90
    bias_limit: float = 0.3
    bias_min_units: float = 50.0


def _finding(
    check: str,
    severity: str,
    message: str,
    figure: float = np.nan,
    site_id: str = "",
    sku_id: str = "",
    category: str = "",
) -> dict:
    return {
        "check": check,
        "severity": severity,
        "site_id": site_id,
        "sku_id": sku_id,
        "category": category,
        "message": message,
        "figure": figure,
    }


def _day(value) -> str:
    """A date as YYYY-MM-DD; never raises (a missing date reads "an unknown day")."""
    stamp = pd.Timestamp(value) if value is not None else pd.NaT
    return "an unknown day" if pd.isna(stamp) else f"{stamp:%Y-%m-%d}"


def check_signals(
    sites: pd.DataFrame,
    skus: pd.DataFrame,
    inventory: pd.DataFrame,
    demand: pd.DataFrame,
    forecast: pd.DataFrame | None,
    as_of: dt.date,
    thresholds: Thresholds = Thresholds(),
) -> pd.DataFrame:
    """Every finding, most severe first."""
    t = thresholds
    out: list[dict] = []
    d = demand.astype({"site_id": str, "sku_id": str})[["site_id", "sku_id", "date", "qty"]].copy()
    d["date"] = pd.to_datetime(d["date"])
    start = pd.Timestamp(as_of)
    category = skus.astype({"sku_id": str}).set_index("sku_id")["category"]

    # impossible values
    future = d[d["date"] >= start]
    if len(future):
        out.append(
            _finding(
                "impossible",
                "critical",
                f"{len(future):,} demand row(s) dated on or after the planning date {as_of} (first {future['date'].min():%Y-%m-%d}): the planning date or the feed is wrong",
                len(future),
            )
        )
    if "unit_price" in skus:
        below = skus[skus["unit_price"].notna() & (skus["unit_price"] < skus["unit_cost"])]
        for r in below.itertuples():
            out.append(
                _finding(
                    "impossible",
                    "warning",
                    f"selling price {r.unit_price:g} below unit cost {r.unit_cost:g}",
                    r.unit_price - r.unit_cost,
                    sku_id=str(r.sku_id),
                    category=str(r.category),
                )
            )
    past = d[d["date"] < start]

    # stale data, network and per site
    if len(past):
        lag = (start - past["date"].max()).days - 1
        if lag > t.stale_warning_days:
            sev = "critical" if lag > t.stale_critical_days else "warning"
            out.append(
                _finding(
                    "stale",
                    sev,
                    f"the newest demand is {lag} days before the planning date {as_of}: positions and forecasts are out of date",
                    lag,
                )
            )
        last = past.groupby("site_id")["date"].max()
        network_last = past["date"].max()
        for site, when in last.items():
            behind = (network_last - when).days
            if behind > t.stale_warning_days:
                sev = "critical" if behind > t.stale_critical_days else "warning"
                out.append(
                    _finding(
                        "stale",
                        sev,
                        f"last demand on {when:%Y-%m-%d}, {behind} days behind the rest of the network",
                        behind,
                        site_id=site,
                    )
                )

    # missing sites and missing days
    site_ids = sites["site_id"].astype(str)
    with_demand = set(past["site_id"])
    stocked = set(inventory.astype({"site_id": str})["site_id"])
    for site in site_ids:
        if site not in with_demand and site in stocked:
            out.append(
                _finding(
                    "missing_site",
                    "warning",
                    "holds stock but has no demand history at all: its forecast is zero",
                    0,
                    site_id=site,
                )
            )
    if len(past):
        network_days = pd.DatetimeIndex(sorted(past["date"].unique()))
        for site, days in past.groupby("site_id")["date"]:
            span = network_days[network_days >= days.min()]
            gaps = ~span.isin(days.unique())
            if gaps.any():
                runs = np.diff(np.flatnonzero(np.diff(np.r_[0, gaps.astype(int), 0])).reshape(-1, 2), axis=1).ravel()
                longest = int(runs.max()) if len(runs) else 0
                if longest >= t.missing_run_days:
                    out.append(
                        _finding(
                            "missing_days",
                            "warning",
                            f"no demand rows on {int(gaps.sum())} day(s) the rest of the network reported, {longest} in a row: a feed that dropped out?",
                            int(gaps.sum()),
                            site_id=site,
                        )
                    )

    # spikes
    if len(past):
        group = past.groupby(["site_id", "sku_id"])["qty"]
        median = group.transform("median")
        mad = (past["qty"] - median).abs().groupby([past["site_id"], past["sku_id"]]).transform("median")
        joined = past.assign(median=median, mad=mad)
        level = joined["median"] + t.spike_mads * joined["mad"].clip(lower=1.0)
        window = joined["date"] >= start - pd.Timedelta(
            days=t.spike_window_days
        )  # the days that still drive the forecast
        candidates = joined[window & (joined["qty"] > level) & (joined["qty"] >= t.spike_min_units)].assign(level=level)
        # a spike stands alone: the days around it are normal (else it is a shift, reported below)
        around = (
            candidates[["site_id", "sku_id", "date", "level"]]
            .reset_index()
            .merge(past, on=["site_id", "sku_id"], suffixes=("", "_n"))
        )
        around = around[((around["date_n"] - around["date"]).abs().dt.days <= 3) & (around["date_n"] != around["date"])]
        after = around["date_n"] > around["date"]
        lvl = candidates["level"].to_numpy()
        calm_before = (
            around[~after].groupby("index")["qty"].median().reindex(candidates.index).fillna(0.0).to_numpy() <= lvl
        )
        calm_after = (
            around[after].groupby("index")["qty"].median().reindex(candidates.index).fillna(0.0).to_numpy() <= lvl
        )
        spikes = candidates[calm_before & calm_after]
        for r in spikes.itertuples():
            out.append(
                _finding(
                    "spike",
                    "warning",
                    f"{r.qty:g} units on {_day(r.date)} against a typical {r.median:g} a day (promotion, bulk order or a keying error?)",
                    r.qty,
                    site_id=r.site_id,
                    sku_id=r.sku_id,
                    category=str(category.get(r.sku_id, "")),
                )
            )

    # sudden shifts per site x category, and forecast bias against recent actuals
    recent = past[past["date"] >= start - pd.Timedelta(days=t.recent_days)]
    base = past[
        (past["date"] < start - pd.Timedelta(days=t.recent_days))
        & (past["date"] >= start - pd.Timedelta(days=t.recent_days + t.baseline_days))
    ]
    rate_recent = (
        recent.assign(category=recent["sku_id"].map(category)).groupby(["site_id", "category"])["qty"].sum()
        / t.recent_days
    )
    rate_base = (
        base.assign(category=base["sku_id"].map(category)).groupby(["site_id", "category"])["qty"].sum()
        / t.baseline_days
    )
    if len(base):
        both = pd.concat([rate_recent.rename("recent"), rate_base.rename("base")], axis=1).fillna(0.0)
        volume = both.max(axis=1) * t.recent_days
        ratio = (both["recent"] + 1e-9) / (both["base"] + 1e-9)
        for (site, cat), r in both[
            ((ratio > t.shift_ratio) | (ratio < 1 / t.shift_ratio)) & (volume >= t.shift_min_units)
        ].iterrows():
            change = r["recent"] / r["base"] - 1 if r["base"] > 0 else np.inf
            out.append(
                _finding(
                    "shift",
                    "warning",
                    f"{cat} demand at {r['recent']:.1f}/day over the last {t.recent_days} days against {r['base']:.1f}/day before ({change:+.0%})",
                    change,
                    site_id=site,
                    category=cat,
                )
            )
    if forecast is not None and len(forecast) and len(recent):
        fc = forecast.astype({"site_id": str, "sku_id": str})
        fc_rate = fc.assign(category=fc["sku_id"].map(category)).groupby(["site_id", "category"])["mean_daily"].sum()
        both = pd.concat([fc_rate.rename("forecast"), rate_recent.rename("actual")], axis=1).fillna(0.0)
        both = both[both["actual"] * t.recent_days >= t.bias_min_units]
        bias = both["forecast"] / both["actual"] - 1
        for (site, cat), b in bias[bias.abs() > t.bias_limit].items():
            out.append(
                _finding(
                    "forecast_bias",
                    "warning",
                    f"{cat} forecast {both.loc[(site, cat), 'forecast']:.1f}/day against {both.loc[(site, cat), 'actual']:.1f}/day actual over the last {t.recent_days} days ({b:+.0%})",
                    b,
                    site_id=site,
                    category=cat,
                )
            )

    # dead stock
    inv = inventory.astype({"site_id": str, "sku_id": str})
    sold = pd.MultiIndex.from_frame(past[past["date"] >= start - pd.Timedelta(days=t.dead_days)][["site_id", "sku_id"]])
    cost = skus.astype({"sku_id": str}).set_index("sku_id")["unit_cost"]
    held = inv[inv["on_hand"] > 0]
    dead = held[~pd.MultiIndex.from_frame(held[["site_id", "sku_id"]]).isin(sold)]
    for r in dead.itertuples():
        value = r.on_hand * float(cost.get(r.sku_id, 0.0))
        out.append(
            _finding(
                "dead_stock",
                "info",
                f"{r.on_hand:,} on hand ({money_whole(value)}) with no demand in {t.dead_days} days: a candidate to move or write off",
                value,
                site_id=r.site_id,
                sku_id=r.sku_id,
                category=str(category.get(r.sku_id, "")),
            )
        )

    frame = pd.DataFrame(out, columns=FINDING_COLUMNS)
    order = frame["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    return (
        frame.assign(_o=order)
        .sort_values(["_o", "check", "site_id", "sku_id"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def blocking(findings: pd.DataFrame) -> pd.DataFrame:
    """The critical findings: planning waits until they are fixed or an admin overrides them."""
    return findings[findings["severity"] == "critical"]
