"""Record accuracy on constructed counts where each class is known."""

from __future__ import annotations

import pandas as pd
import pytest

from rebal_core.signals.accuracy import Tolerance, classify_counts, record_accuracy


@pytest.fixture
def world():
    skus = pd.DataFrame(
        {"sku_id": ["P", "U"], "category": ["Packs", "Units"], "unit_cost": [2.0, 10.0], "pack_size": [12, 1]}
    )
    inventory = pd.DataFrame({
        "site_id": ["A", "A", "A", "A", "B", "B", "B", "B"],
        "sku_id": ["P", "U", "X", "Y", "P", "U", "X", "Y"],
        "on_hand": [144, 50, 30, 40, 24, 20, 60, 10],
        "in_transit": [0, 0, 0, 0, 0, 5, 0, 0],
    })  # fmt: skip
    skus = pd.concat(
        [
            skus,
            pd.DataFrame(
                {"sku_id": ["X", "Y"], "category": ["Units", "Units"], "unit_cost": [1.0, 1.0], "pack_size": [1, 1]}
            ),
        ]
    )
    counts = pd.DataFrame({
        "date": ["2026-05-20"] * 8,
        "site_id": ["A", "A", "A", "A", "B", "B", "B", "B"],
        "sku_id": ["P", "U", "X", "Y", "P", "U", "X", "Y"],
        "counted_qty": [12, 50, 38, 33, 24, 25, 51, 13],
    })  # fmt: skip
    inbound = pd.DataFrame({"site_id": ["A"], "sku_id": ["X"], "qty": [8], "eta": pd.to_datetime(["2026-05-19"])})
    demand = pd.DataFrame(
        {
            "site_id": ["B", "B"],
            "sku_id": ["X", "X"],
            "date": pd.to_datetime(["2026-05-19", "2026-05-10"]),
            "qty": [9.0, 4.0],
        }
    )
    transfers = pd.DataFrame({"sku_id": ["Y"], "from_site_id": ["A"], "to_site_id": ["B"], "qty": [3]})
    return counts, inventory, skus, inbound, demand, transfers


def test_each_class_with_its_evidence(world):
    counts, inventory, skus, inbound, demand, transfers = world
    out = classify_counts(counts, inventory, skus, inbound=inbound, demand=demand, open_transfers=transfers).set_index(
        ["site_id", "sku_id"]
    )
    expect = {
        ("A", "P"): "unit_of_measure",  # 12 counted = 144 / pack of 12
        ("A", "U"): "agrees",
        ("A", "X"): "timing",  # +8 = inbound due the day before the count
        ("A", "Y"): "shrinkage",  # -7, nothing explains it
        ("B", "P"): "agrees",
        ("B", "U"): "timing",  # +5 = in transit
        ("B", "X"): "data_sync",  # -9 = the sales of the day before the count
        ("B", "Y"): "timing",  # +3 = the open transfer into B
    }
    assert out["discrepancy_class"].to_dict() == expect
    assert "pack of 12" in out.loc[("A", "P"), "evidence"]
    assert out.loc[("A", "P"), "adjustment"] == 12 - 144  # book the count
    assert out.loc[("A", "Y"), "adjustment"] == -7 and out.loc[("A", "Y"), "adjustment_value"] == -7.0
    assert out.loc[("A", "X"), "adjustment"] == 0 and out.loc[("B", "X"), "adjustment"] == 0  # resolve themselves


def test_unexplained_surplus_is_a_receiving_error_and_tolerance_applies(world):
    counts, inventory, skus, *_ = world
    out = classify_counts(counts, inventory, skus).set_index(["site_id", "sku_id"])
    assert out.loc[("A", "X"), "discrepancy_class"] == "receiving_error"  # without the inbound order as evidence
    loose = classify_counts(counts, inventory, skus, tolerance=Tolerance(abs_units=0, rel_share=0.2)).set_index(
        ["site_id", "sku_id"]
    )
    assert loose.loc[("A", "Y"), "discrepancy_class"] == "agrees"  # 7 of 40 is within 20 %


def test_record_accuracy_by_site_and_category(world):
    counts, inventory, skus, inbound, demand, transfers = world
    out = classify_counts(counts, inventory, skus, inbound=inbound, demand=demand, open_transfers=transfers)
    by_site = record_accuracy(out, ["site_id"]).set_index("site_id")
    assert by_site.loc["A", "record_accuracy"] == pytest.approx(1 / 4) and by_site.loc[
        "B", "record_accuracy"
    ] == pytest.approx(1 / 4)
    by_cat = record_accuracy(out, ["category"], skus=skus).set_index("category")
    assert by_cat.loc["Packs", "record_accuracy"] == pytest.approx(1 / 2)
    assert by_cat.loc["Units", "counts"] == 6
