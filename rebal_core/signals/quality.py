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

from rebal_core.chunks import row_chunks
from rebal_core.format import money_whole
from rebal_core.signals.contract import datetimes, id_codes

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


class _Coded:
    """Demand with site and sku as integer codes of the masters (extra ids appended), dates as days.

    A year of a national network's demand is a hundred million rows: grouping by text ids
    (or turning categoricals back into text) costs minutes and gigabytes; codes cost seconds."""

    def __init__(self, sites: pd.DataFrame, skus: pd.DataFrame, demand: pd.DataFrame) -> None:
        self.site_ids, self.site = _codes(demand["site_id"], sites["site_id"].astype(str).tolist())
        self.sku_ids, self.sku = _codes(demand["sku_id"], skus["sku_id"].astype(str).tolist())
        category = skus.astype({"sku_id": str}).drop_duplicates("sku_id").set_index("sku_id")["category"]
        self.category_of_sku = category.reindex(self.sku_ids).to_numpy(dtype=object)  # NaN: sku not in skus.csv
        # Each sku's category as a code into ``categories`` (-1: none), to group rows by integers.
        self.category_code, self.categories = pd.factorize(self.category_of_sku)
        self.date = datetimes(demand["date"])
        self.qty = demand["qty"].to_numpy(np.float64)

    def keep(self, rows: np.ndarray) -> None:
        """Only these rows from now on (the history before the planning date)."""
        self.site, self.sku, self.date, self.qty = self.site[rows], self.sku[rows], self.date[rows], self.qty[rows]

    def pair(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Each row's (site, sku) as one code: 4 bytes when they fit, built in place (fresh memory is
        what costs on a hundred million rows)."""
        n = len(self.sku_ids)
        out = self.site[rows].astype(np.int32 if len(self.site_ids) * n < 2**31 else np.int64)
        out *= n
        out += self.sku[rows]
        return out

    def pair_codes(self, site_ids: pd.Series, sku_ids: pd.Series) -> np.ndarray:
        """Pair codes of other tables' (site, sku) (-1 where either is unknown to the demand's masters)."""
        site = pd.Index(self.site_ids).get_indexer(site_ids.astype(str))
        sku = pd.Index(self.sku_ids).get_indexer(sku_ids.astype(str))
        return np.where((site >= 0) & (sku >= 0), site.astype(np.int64) * len(self.sku_ids) + sku, -1)


def _codes(values: pd.Series, ids: list[str]) -> tuple[list[str], np.ndarray]:
    """(ids, code of each value): ``ids`` first, then values missing from them, in order of appearance."""
    cat = id_codes(values)
    names = cat.cat.categories.astype(str)
    at = pd.Index(ids).get_indexer(names)
    if (at < 0).any():
        extra = list(dict.fromkeys(names[at < 0]))
        ids = ids + extra
        at = pd.Index(ids).get_indexer(names)
    codes = cat.cat.codes.to_numpy()
    if not len(names):
        return ids, np.zeros(len(codes), np.int32)
    if np.array_equal(at, np.arange(len(at))) and not (codes < 0).any():
        return ids, codes  # a bundle's ids: their codes are the masters' rows already (no pass over the rows)
    return ids, at.astype(np.int32)[codes]


PRUNE_CALM_SERIES = True
"""Leave out, before grouping, the series that cannot spike (see :func:`_spikes`); a test holds the
findings to those without it."""


def _spikes(d: _Coded, start: pd.Timestamp, t: Thresholds) -> list[dict]:
    """Days far above their series' robust level that stand alone (see the module docstring).

    A spike has at least ``spike_min_units``, so only series with such a day in the window can
    have one: only their rows are grouped (the same findings as grouping every series, on a
    fraction of a year's hundred million rows)."""
    window = d.date >= np.datetime64(start - pd.Timedelta(days=t.spike_window_days))
    may = np.flatnonzero(window & (d.qty >= t.spike_min_units))
    del window
    if may.size == 0:
        return []
    pairs = d.pair()
    n_pairs = len(d.site_ids) * len(d.sku_ids)
    may_pair = pairs[may]
    chosen = np.zeros(n_pairs, dtype=bool)
    chosen[may_pair] = True
    # A series whose biggest day in the window is within spike_mads units of a level that more than
    # half its rows reach has its median at or above that level, so no day of it clears median +
    # spike_mads x MAD (MAD >= 1): it cannot spike. Counting those rows is two passes over the rows;
    # grouping them (medians, MADs) is many.
    if PRUNE_CALM_SERIES:
        top = np.zeros(n_pairs)
        biggest = pd.Series(d.qty[may]).groupby(may_pair).max()
        top[biggest.index.to_numpy()] = biggest.to_numpy()
        del biggest
        # The least a level sits above its median is spike_mads (MAD >= 1); 0.999 of it keeps the
        # rule clear of rounding in ``median + spike_mads x MAD``.
        reach = d.qty >= top[pairs] - 0.999 * t.spike_mads
        reach &= chosen[pairs]
        above = np.bincount(pairs[reach], minlength=n_pairs)
        del reach
        chosen &= ~(2 * above > np.bincount(pairs, minlength=n_pairs))
        del above, top
    del may_pair
    rows = np.flatnonzero(chosen[pairs])
    del pairs
    # Rows keep their order (findings of a series come in date order) under a plain index: an
    # index of row numbers would be checked for uniqueness at every assignment.
    sub = pd.DataFrame({"pair": d.pair(rows), "date": d.date[rows], "qty": d.qty[rows]}, copy=False)
    del rows
    median = sub.groupby("pair")["qty"].transform("median")
    mad = (sub["qty"] - median).abs().groupby(sub["pair"]).transform("median")
    sub["median"] = median.to_numpy()
    sub["level"] = (median + t.spike_mads * mad.clip(lower=1.0)).to_numpy()
    del median, mad
    in_window = sub["date"] >= start - pd.Timedelta(days=t.spike_window_days)
    candidates = sub[in_window & (sub["qty"] > sub["level"]) & (sub["qty"] >= t.spike_min_units)]
    if candidates.empty:
        return []
    # a spike stands alone: the days around it are normal (else it is a shift, reported below)
    neighbours = sub.loc[sub["pair"].isin(candidates["pair"]), ["pair", "date", "qty"]]
    around = (
        candidates[["pair", "date", "level"]]
        .reset_index(names="index")
        .merge(neighbours, on="pair", suffixes=("", "_n"))
    )
    around = around[((around["date_n"] - around["date"]).abs().dt.days <= 3) & (around["date_n"] != around["date"])]
    after = around["date_n"] > around["date"]
    lvl = candidates["level"].to_numpy()
    calm_before = (
        around[~after].groupby("index")["qty"].median().reindex(candidates.index).fillna(0.0).to_numpy() <= lvl
    )
    calm_after = around[after].groupby("index")["qty"].median().reindex(candidates.index).fillna(0.0).to_numpy() <= lvl
    out = []
    for r in candidates[calm_before & calm_after].itertuples():
        site, sku = divmod(int(r.pair), len(d.sku_ids))
        category = d.category_of_sku[sku]
        out.append(
            _finding(
                "spike",
                "warning",
                f"{r.qty:g} units on {_day(r.date)} against a typical {r.median:g} a day (promotion, bulk order or a keying error?)",
                r.qty,
                site_id=d.site_ids[site],
                sku_id=d.sku_ids[sku],
                category="" if pd.isna(category) else str(category),
            )
        )
    return out


def _rate_by_site_category(d: _Coded, rows: np.ndarray, days: int) -> pd.Series:
    """Units a day per (site, category) over ``rows`` (groups with rows only, sorted by their text;
    rows of skus without a category left out). Grouped on integer keys, in row order within a group
    (the sums pandas makes grouping by the text), then labelled."""
    category = d.category_code[d.sku[rows]]
    ok = category >= 0
    width = max(len(d.categories), 1)
    key = d.site[rows][ok].astype(np.int64) * width + category[ok]
    sums = pd.Series(d.qty[rows][ok]).groupby(key).sum()
    code = sums.index.to_numpy()
    index = pd.MultiIndex.from_arrays(
        [np.asarray(d.site_ids, dtype=object)[code // width], np.asarray(d.categories, dtype=object)[code % width]],
        names=["site_id", "category"],
    )
    return (pd.Series(sums.to_numpy(), index=index, name="qty") / days).sort_index()


def _site_days(d: _Coded) -> tuple[np.ndarray, np.ndarray]:
    """Which sites have demand rows on which of the network's days: (sites x days with any row,
    those days). Filled by position, not by grouping a hundred million rows, a chunk of rows at a
    time (a year's days as one array were 9 s of fresh memory)."""
    first = int(d.date.min().astype("datetime64[D]").view(np.int64))
    n_days = int(d.date.max().astype("datetime64[D]").view(np.int64)) - first + 1
    present = np.zeros((len(d.site_ids), n_days), dtype=bool)
    cells = present.ravel()
    for rows in row_chunks(len(d.date)):
        cell = d.site[rows].astype(np.int64) * n_days
        cell += d.date[rows].astype("datetime64[D]").view(np.int64) - first
        cells[cell] = True
    reported = present.any(axis=0)
    return present[:, reported], (np.flatnonzero(reported) + first).astype("datetime64[D]")


def _missing_days(d: _Coded, present: np.ndarray, t: Thresholds) -> list[dict]:
    """Sites without rows on days the rest of the network has them (from their first day on)."""
    out = []
    for code in sorted(np.flatnonzero(present.any(axis=1)), key=lambda c: d.site_ids[c]):
        row = present[code]
        gaps = ~row[int(np.argmax(row)) :]
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
                        site_id=d.site_ids[code],
                    )
                )
    return out


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
    d = _Coded(sites, skus, demand)
    start = pd.Timestamp(as_of)
    category = skus.astype({"sku_id": str}).set_index("sku_id")["category"]

    # impossible values
    future = d.date >= np.datetime64(start)
    if future.any():
        out.append(
            _finding(
                "impossible",
                "critical",
                f"{int(future.sum()):,} demand row(s) dated on or after the planning date {as_of} (first {pd.Timestamp(d.date[future].min()):%Y-%m-%d}): the planning date or the feed is wrong",
                int(future.sum()),
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
    if future.any():
        d.keep(np.flatnonzero(~future))  # the rest looks at the history only
    del future
    past = d.date.size  # rows of history

    # stale data, network and per site
    present, network_days = _site_days(d) if past else (np.zeros((len(d.site_ids), 0), bool), None)
    if past:
        network_last = pd.Timestamp(network_days[-1])
        lag = (start - network_last).days - 1
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
        last_column = present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
        for code in sorted(np.flatnonzero(present.any(axis=1)), key=lambda c: d.site_ids[c]):
            when = pd.Timestamp(network_days[last_column[code]])
            behind = (network_last - when).days
            if behind > t.stale_warning_days:
                sev = "critical" if behind > t.stale_critical_days else "warning"
                out.append(
                    _finding(
                        "stale",
                        sev,
                        f"last demand on {when:%Y-%m-%d}, {behind} days behind the rest of the network",
                        behind,
                        site_id=d.site_ids[code],
                    )
                )

    # missing sites and missing days
    with_demand = {d.site_ids[c] for c in np.flatnonzero(present.any(axis=1))}
    stocked = set(inventory.astype({"site_id": str})["site_id"])
    for site in sites["site_id"].astype(str):
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
    if past:
        out += _missing_days(d, present, t)
        out += _spikes(d, start, t)

    # sudden shifts per site x category, and forecast bias against recent actuals
    recent = np.flatnonzero(d.date >= np.datetime64(start - pd.Timedelta(days=t.recent_days)))
    base = np.flatnonzero(
        (d.date < np.datetime64(start - pd.Timedelta(days=t.recent_days)))
        & (d.date >= np.datetime64(start - pd.Timedelta(days=t.recent_days + t.baseline_days)))
    )
    rate_recent = _rate_by_site_category(d, recent, t.recent_days)
    rate_base = _rate_by_site_category(d, base, t.baseline_days)
    if base.size:
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
    if forecast is not None and len(forecast) and recent.size:
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
    sold = np.zeros(len(d.site_ids) * len(d.sku_ids), dtype=bool)
    sold[d.pair(np.flatnonzero(d.date >= np.datetime64(start - pd.Timedelta(days=t.dead_days))))] = True
    inv = inventory.astype({"site_id": str, "sku_id": str})
    cost = skus.astype({"sku_id": str}).set_index("sku_id")["unit_cost"]
    held = inv[inv["on_hand"] > 0]
    pair = d.pair_codes(held["site_id"], held["sku_id"])
    dead = held[(pair < 0) | ~sold[np.maximum(pair, 0)]]
    # One finding per idle position: hundreds of thousands on a large network, so no row lookups.
    values = dead["on_hand"].to_numpy() * dead["sku_id"].map(cost).fillna(0.0).to_numpy(float)
    categories = dead["sku_id"].map(category).fillna("").astype(str).to_numpy()
    for on_hand, value, site, sku, cat in zip(
        dead["on_hand"].to_numpy(), values, dead["site_id"].to_numpy(), dead["sku_id"].to_numpy(), categories
    ):
        out.append(
            _finding(
                "dead_stock",
                "info",
                f"{on_hand:,} on hand ({money_whole(value)}) with no demand in {t.dead_days} days: a candidate to move or write off",
                value,
                site_id=site,
                sku_id=sku,
                category=cat,
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
