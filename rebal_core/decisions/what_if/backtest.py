"""Backtest: what rebalancing would have earned on our own history.

Replay ``days`` of history ending the day before the planning date. Every
``every`` days each arm plans with only what was known then, and the actual
demand is played forward day by day. Arms: ``none`` (no transfers),
``greedy`` (the rules-based baseline), ``optimize`` and ``hindsight`` (the
optimizer with the same constraints, told the demand that actually came in the
planning window: each position's daily mean over its horizon, no spread; the
most a plan could have earned, up to the optimizer's gap). Documented rules,
the same in every arm:

* **Start**: the snapshot's on hand (``inventory.csv``) is the stock at the
  first replayed day; nothing is in transit.
* **Forecast** at a planning day: mean and standard deviation of each
  position's daily demand over the previous ``lookback`` days, and the
  measured error of H-day totals over the history before that day
  (:func:`rebal_core.forecast.horizon_errors`), as planning uses them.
* **Replenishment time**: when the bundle gives ``replenishment_days``, a
  position with a value orders every ``every`` days and its order arrives
  that many days later; a position without one is not replenished at all
  (seasonal stock: what is there is all there is). A bundle without the
  column gets ``supply_lead`` for every position. The arms plan with the
  same replenishment times (the horizon of the expected objective stops
  there). ``replenish=False`` turns supplier orders off everywhere.
* **Replenishment** (supplier orders) at each planning day, unless
  ``replenish=False``: every position orders up to
  ``S = m (every + supply_lead) + z s sqrt(every + supply_lead)`` against its
  stock + pipeline, arriving ``supply_lead`` days later, where ``z`` is the
  scenario's service level quantile. Ordered *after* that day's transfers
  are decided, so transfers move stock that exists.
* **Transfers** leave the donor at once and reach the receiver after the
  lane's lead time (rounded up to whole days); their cost is the plan's
  transfer cost (units, moves, trucks).
* **A day**: arrivals first, then demand is served from stock; what cannot be
  served is lost (no backorders). Lost value = lost units x unit penalty ``p``
  (margin when the price is known, else the scenario's share of cost).
* **Excess value** at each planning day: stock above the excess level
  (``m x excess_cover_days + safety stock``) at unit cost.
* **Promised and realised** (per period): ``promised_net`` is the plan's own
  net benefit (what the model expected to save less transfer cost),
  ``promised_lost_value_avoided`` its expected lost margin avoided;
  ``realised_net`` is the lost value avoided against ``none`` in the same
  period less the transfer spend.
* **Forecast calibration** (per period, the same in every arm that plans on the
  forecast): ``inside_80`` and ``inside_95`` are the shares of positions whose
  actual demand over their horizon fell inside the central 80 % and 95 %
  intervals of the demand the plans priced (``mu H``, ``max(sd sqrt(H), e_H)``);
  near 0.80 and 0.95 when the spread is right.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import numpy as np
import pandas as pd
from scipy.stats import norm

from rebal_core.chunks import row_chunks
from rebal_core.decisions.planning import build_problem
from rebal_core.decisions.positions import Network, position_horizon, replenishment_days, unit_shortage_penalty
from rebal_core.decisions.scenario import REPEATED_SOLVE_SECONDS, Scenario
from rebal_core.decisions.solvers.optimizer import plan
from rebal_core.progress import Progress, quiet
from rebal_core.signals.contract import datetimes, id_codes
from rebal_core.signals.forecast import classify, horizon_errors, spread_at

ARMS = ("none", "greedy", "optimize", "hindsight")
HISTORY_FOR_SPREAD = 365  # days of history before a planning day used to measure the spread


@dataclasses.dataclass(frozen=True)
class Replay:
    days: int = 364
    every: int = 7
    lookback: int = 56
    supply_lead: int = 14
    replenish: bool = True
    time_limit: float = REPEATED_SOLVE_SECONDS


def backtest(
    net: Network,
    demand: pd.DataFrame,
    scenario: Scenario = Scenario(),
    replay: Replay = Replay(),
    arms: tuple[str, ...] = ARMS,
    progress: Progress = quiet,
    cancel: threading.Event | None = None,
) -> pd.DataFrame:
    """One row per arm and replay period: demand, lost units and value, transfer spend, units moved, excess value, fill rate."""
    keys = ["site_id", "sku_id"]
    inv = net.inventory.astype({"site_id": str, "sku_id": str})
    # Demand is read by the ids' codes, a chunk of rows at a time: a national year is a hundred
    # million rows, which as Python strings (what this did) would not fit in memory.
    site, sku = id_codes(demand["site_id"]), id_codes(demand["sku_id"])
    site_names, sku_names = site.cat.categories.astype(str), sku.cat.categories.astype(str)
    site_code, sku_code, n_sku = site.cat.codes.to_numpy(), sku.cat.codes.to_numpy(), len(sku_names)
    present = np.zeros(len(site_names) * n_sku, dtype=bool)
    named = (site_code >= 0) & (sku_code >= 0)  # a row without an id is no position's (a bundle has none)
    for rows in row_chunks(len(demand)):
        present[(site_code[rows].astype(np.int64) * n_sku + sku_code[rows])[named[rows]]] = True
    pairs = np.flatnonzero(present)
    demand_keys = pd.DataFrame({"site_id": site_names[pairs // n_sku], "sku_id": sku_names[pairs % n_sku]})
    pos = pd.concat([inv[keys], demand_keys]).drop_duplicates().sort_values(keys).reset_index(drop=True)
    index = pd.MultiIndex.from_frame(pos)
    row_of_pair = np.full(len(present), -1, dtype=np.int64)
    row_of_pair[pairs] = index.get_indexer(pd.MultiIndex.from_frame(demand_keys))
    when = datetimes(demand["date"])
    end = pd.Timestamp(net.as_of) - pd.Timedelta(days=1)
    first = end - pd.Timedelta(days=replay.days - 1)
    earliest = pd.Timestamp(when.min()) if len(when) else first
    history_start = max(earliest, first - pd.Timedelta(days=HISTORY_FOR_SPREAD)) if pd.notna(earliest) else first
    history_start = min(history_start, first - pd.Timedelta(days=replay.lookback))
    dates = pd.date_range(history_start, end)
    matrix = np.zeros((len(pos), len(dates)))
    cells, qty, start, one_day = (
        matrix.ravel(),
        demand["qty"].to_numpy(float),
        np.datetime64(history_start),
        np.timedelta64(1, "D"),
    )
    for rows in row_chunks(len(demand)):
        since = when[rows] - start
        col = since // one_day
        keep = (
            (col >= 0) & (col < len(dates)) & (since % one_day == np.timedelta64(0)) & named[rows]
        )  # the window's days
        row = row_of_pair[site_code[rows].astype(np.int64) * n_sku + sku_code[rows]]
        np.add.at(cells, row[keep] * len(dates) + col[keep], qty[rows][keep])  # repeated days add up, in row order
    offset = int((first - history_start).days)  # column of the first replayed day

    skus = net.skus.astype({"sku_id": str}).set_index("sku_id")
    sku_rows = skus.reindex(pos["sku_id"])
    p = unit_shortage_penalty(sku_rows.reset_index(), scenario.shortage_cost_factor)
    unit_cost = sku_rows["unit_cost"].to_numpy(float)
    start_stock = inv.set_index(keys)["on_hand"].reindex(index).fillna(0).to_numpy(float)
    z = float(norm.ppf(scenario.service_level))
    lanes = net.lanes.astype({"from_site_id": str, "to_site_id": str})
    lead = dict(
        zip(
            zip(lanes["from_site_id"], lanes["to_site_id"]),
            np.ceil(lanes["lead_time_days"].to_numpy(float)).astype(int),
        )
    )
    row_of = {k: i for i, k in enumerate(zip(pos["site_id"], pos["sku_id"]))}

    events = list(range(0, replay.days, replay.every))
    given = replenishment_days(net, pos)
    if not replay.replenish:
        supply_days = np.full(len(pos), np.nan)
    elif np.isfinite(given).any():
        supply_days = given
    else:
        supply_days = np.full(len(pos), float(replay.supply_lead))
    supplied = np.isfinite(supply_days)
    supply_lead = np.ceil(np.where(supplied, supply_days, 0)).astype(int)
    horizon = position_horizon(scenario, supply_days)
    spread_cache: dict[int, pd.DataFrame] = {}
    inside_cache: dict[int, tuple[float, float]] = {}

    def spread(day0: int, std: np.ndarray) -> pd.DataFrame:
        """Measured error of H-day totals from the history before ``day0`` (same in every arm)."""
        if day0 not in spread_cache:
            past = matrix[:, max(0, offset + day0 - HISTORY_FOR_SPREAD) : offset + day0]
            spread_cache[day0] = horizon_errors(past, std, classify(past)).table.drop(columns=["origins"])
        return spread_cache[day0]

    rows = []
    total_steps = len(arms) * len(events)
    for a, arm in enumerate(arms):
        stock = start_stock.copy()
        arrivals = np.zeros((len(pos), replay.days + int(supply_lead.max(initial=0)) + 400))
        for e, day0 in enumerate(events):
            if cancel is not None and cancel.is_set():
                raise InterruptedError("backtest stopped")
            progress(
                (a * len(events) + e) / total_steps,
                f"{arm}: {(first + pd.Timedelta(days=day0)).date()} ({e + 1} of {len(events)})",
            )
            history = matrix[:, offset + day0 - replay.lookback : offset + day0]
            mean, std = history.mean(axis=1), history.std(axis=1)
            pipeline = arrivals[:, day0:].sum(axis=1)
            spend = moved = promised = promised_lost = 0.0
            lines = 0
            if arm == "hindsight":
                inside = (np.nan, np.nan)
            else:  # the same forecast in every other arm: measured once per planning day
                if day0 not in inside_cache:
                    ahead = matrix[:, offset + day0 : offset + day0 + int(horizon.max(initial=0))]
                    inside_cache[day0] = _inside_intervals(ahead, mean, std, spread(day0, std), horizon)
                inside = inside_cache[day0]
            if arm != "none":
                today = (first + pd.Timedelta(days=day0)).date()
                inbound = _pipeline(pos, arrivals, day0, today)
                if arm == "hindsight":
                    # the demand that actually came over each position's horizon, known exactly
                    cum = np.cumsum(np.c_[np.zeros(len(pos)), matrix[:, offset + day0 :]], axis=1)
                    reach = np.minimum(horizon.astype(int), cum.shape[1] - 1)
                    known = np.where(reach > 0, cum[np.arange(len(pos)), reach] / np.maximum(reach, 1), mean)
                    forecast = pos.assign(mean_daily=known, std_daily=0.0)
                else:
                    forecast = pd.concat([pos.assign(mean_daily=mean, std_daily=std), spread(day0, std)], axis=1)
                at = Network(
                    sites=net.sites, skus=net.skus, lanes=net.lanes, as_of=today,
                    inventory=pos.assign(on_hand=np.floor(stock).astype(np.int64), in_transit=0, replenishment_days=supply_days),
                    forecast=forecast, inbound=inbound,
                )  # fmt: skip
                method = "greedy" if arm == "greedy" else "optimize"
                result = plan(build_problem(at, scenario), method=method, time_limit=replay.time_limit, cancel=cancel)
                promised = float(result.score.after["net_benefit"])
                promised_lost = float(
                    result.score.before["expected_lost_value"] - result.score.after["expected_lost_value"]
                )
                for t in result.table.itertuples():
                    i, j = row_of[(t.from_site_id, t.sku_id)], row_of[(t.to_site_id, t.sku_id)]
                    stock[i] -= t.qty
                    arrivals[j, day0 + lead[(t.from_site_id, t.to_site_id)]] += t.qty
                spend, moved, lines = (
                    result.score.transfer_cost,
                    float(result.table["qty"].sum()) if len(result.table) else 0.0,
                    len(result.table),
                )
            if supplied.any():
                cover = replay.every + supply_lead
                target = mean * cover + z * std * np.sqrt(cover)
                order = np.where(
                    supplied, np.maximum(0.0, np.ceil(target - stock - arrivals[:, day0:].sum(axis=1))), 0.0
                )
                arrivals[np.arange(len(pos)), day0 + supply_lead] += order
            excess_level = mean * scenario.excess_cover_days + z * std * np.sqrt(scenario.horizon_days)
            excess_value = float((np.maximum(0.0, stock + pipeline - excess_level) * unit_cost).sum())
            want = lost = 0.0
            lost_value = 0.0
            for day in range(day0, min(day0 + replay.every, replay.days)):
                stock += arrivals[:, day]
                need = matrix[:, offset + day]
                served = np.minimum(stock, need)
                stock -= served
                short = need - served
                want += need.sum()
                lost += short.sum()
                lost_value += float(short @ p)
            rows.append({
                "arm": arm, "period_start": (first + pd.Timedelta(days=day0)).date(), "demand_units": want, "lost_units": lost,
                "lost_value": lost_value, "transfer_spend": spend, "units_moved": moved, "lines": lines, "excess_value": excess_value,
                "fill_rate": 1 - lost / want if want > 0 else 1.0, "promised_net": promised, "promised_lost_value_avoided": promised_lost,
                "inside_80": inside[0], "inside_95": inside[1],
            })  # fmt: skip
    progress(1.0, "done")
    out = pd.DataFrame(rows)
    if "none" in arms and len(out):
        base = out[out["arm"] == "none"].set_index("period_start")["lost_value"]
        out["realised_net"] = out["period_start"].map(base).to_numpy(float) - out["lost_value"] - out["transfer_spend"]
    return out


def _inside_intervals(
    ahead: np.ndarray, mean: np.ndarray, std: np.ndarray, errors: pd.DataFrame, horizon: np.ndarray
) -> tuple[float, float]:
    """Share of positions whose actual demand over their horizon fell inside the central 80 % and 95 % intervals planned with.

    The interval is ``mu H +- z sigma`` with ``sigma = max(sd sqrt(H), e_H)``, as planning
    prices it; only positions with demand in the lookback and a whole horizon left in the
    replay count (NaN when none do).
    """
    H = np.minimum(horizon.astype(int), ahead.shape[1])
    ok = (H >= 1) & (mean > 0) & (horizon.astype(int) == H)
    if not ok.any():
        return (np.nan, np.nan)
    cum = np.cumsum(np.c_[np.zeros(len(ahead)), ahead], axis=1)
    actual = cum[np.arange(len(ahead)), H][ok]
    measured = spread_at(errors, H.astype(float))[ok]
    sigma = np.fmax(std[ok] * np.sqrt(H[ok]), np.nan_to_num(measured, nan=0.0))
    gap = np.abs(actual - mean[ok] * H[ok])
    return tuple(float(np.mean(gap <= z * sigma + 1e-9)) for z in (norm.ppf(0.9), norm.ppf(0.975)))  # type: ignore[return-value]


def _pipeline(pos: pd.DataFrame, arrivals: np.ndarray, day0: int, today: dt.date) -> pd.DataFrame:
    """Stock on its way (transfers and supplier orders) as inbound orders with their arrival dates."""
    r, c = np.nonzero(arrivals[:, day0:])
    return pd.DataFrame({
        "site_id": pos["site_id"].to_numpy()[r], "sku_id": pos["sku_id"].to_numpy()[r],
        "qty": arrivals[r, day0 + c].astype(np.int64), "eta": pd.to_datetime(today) + pd.to_timedelta(c, unit="D"),
    })  # fmt: skip


def totals(periods: pd.DataFrame) -> pd.DataFrame:
    """Each arm over the whole replay, and its gain against doing nothing."""
    g = periods.groupby("arm", sort=False).agg(
        demand_units=("demand_units", "sum"), lost_units=("lost_units", "sum"), lost_value=("lost_value", "sum"),
        transfer_spend=("transfer_spend", "sum"), units_moved=("units_moved", "sum"), lines=("lines", "sum"), excess_value=("excess_value", "mean"),
    )  # fmt: skip
    g["fill_rate"] = 1 - g["lost_units"] / g["demand_units"].where(g["demand_units"] > 0, 1)
    if "promised_net" in periods:
        g["promised_net"] = periods.groupby("arm", sort=False)["promised_net"].sum()
    for c in ("inside_80", "inside_95"):
        if c in periods:
            g[c] = periods.groupby("arm", sort=False)[c].mean()
    if "none" in g.index:
        g["net_gain_vs_none"] = (g.loc["none", "lost_value"] - g["lost_value"]) - g["transfer_spend"]
        g["realised_net"] = g["net_gain_vs_none"]
        if "hindsight" in g.index:
            best = float(g.loc["hindsight", "realised_net"])
            g["share_of_hindsight"] = g["realised_net"] / best if best > 0 else np.nan
        if "promised_net" in g:
            g["realised_over_promised"] = np.where(
                g["promised_net"].abs() > 1e-9,
                g["realised_net"] / g["promised_net"].where(g["promised_net"].abs() > 1e-9, 1.0),
                np.nan,
            )
    return g.reset_index()
