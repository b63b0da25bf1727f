"""Outcome monitoring: what released plans did, read from a later snapshot of the same network. Pure.

For each released line, the *planned* positions are the plan's view (the
snapshot it was planned on, with the plan applied) and the *actual* ones are
the later snapshot's ``on_hand + in_transit``. A receiver's stockout was
*avoided* when the plan saw it short (below target, or out of stock within the
horizon) and the later snapshot has stock on hand; the donor side shows
whether the move left the donor short.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rebal_core.decisions.positions import Network, build_positions, kpis
from rebal_core.decisions.scenario import Scenario


def line_outcomes(
    released: pd.DataFrame, planned_before: pd.DataFrame, planned_after: pd.DataFrame, later: Network
) -> pd.DataFrame:
    """One row per released line: planned and actual positions at its receiver and donor, and whether the stockout was avoided.

    ``released``: transfer_id, sku_id, from_site_id, to_site_id, qty; ``planned_before/after``: positions tables of the
    planning snapshot without and with the plan (site_id, sku_id, position, target).
    """
    keys = ["site_id", "sku_id"]
    inv = later.inventory.astype({"site_id": str, "sku_id": str}).set_index(keys)
    actual = (inv["on_hand"] + inv.get("in_transit", 0)).rename("actual")
    on_hand = inv["on_hand"].rename("on_hand_later")
    before = planned_before.set_index(keys)
    after = planned_after.set_index(keys)
    out = released.copy()
    for side, col in (("receiver", "to_site_id"), ("donor", "from_site_id")):
        key = pd.MultiIndex.from_arrays([out[col].astype(str), out["sku_id"].astype(str)])
        out[f"{side}_target"] = before["target"].reindex(key).to_numpy()
        out[f"{side}_position_before"] = before["position"].reindex(key).to_numpy()
        out[f"{side}_position_planned"] = after["position"].reindex(key).to_numpy()
        out[f"{side}_position_actual"] = actual.reindex(key).to_numpy()
        out[f"{side}_on_hand_later"] = on_hand.reindex(key).to_numpy()
    short = out["receiver_position_before"] < out["receiver_target"]
    out["stockout_avoided"] = np.where(short, out["receiver_on_hand_later"].fillna(0) > 0, np.nan)
    out["donor_short_later"] = out["donor_on_hand_later"].fillna(0) <= 0
    return out


def snapshot_trend(snapshots: list[tuple[str, Network]], scenario: Scenario = Scenario()) -> pd.DataFrame:
    """Network cost of inaction, expected fill rate, stock value and turns per snapshot, in date order.

    Turns = annual demand (forecast daily mean x 365) / stock value at cost, the snapshot's view.
    """
    rows = []
    for name, net in snapshots:
        pos = build_positions(net, scenario)
        k = kpis(pos)
        annual = float((pos["mean_daily"] * pos["unit_cost"]).sum() * 365)
        rows.append(
            {
                "snapshot": name,
                "as_of": net.as_of,
                "network_cost": k["network_cost"],
                "fill_rate": k["fill_rate"],
                "shortage_value": k["shortage_value"],
                "excess_value": k["excess_value"],
                "stock_value": k["stock_value"],
                "turns": annual / k["stock_value"] if k["stock_value"] > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows).sort_values("as_of").reset_index(drop=True)
