"""demand.csv is checked batch by batch on its distinct cells (issue 15): the same findings, in the
same order, and the same typed table as the whole-table rules every other table goes through."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from rebal_core.signals import bundle as b
from rebal_core.signals.contract import DEMAND

SITES = pd.Index(["S1", "S2", "007"])
SKUS = pd.Index(["K1", "K2"])
DATES = ["2024-01-05", "2024-01-06", " 2024-01-07 ", "2024-1-8", "2024-01-32", "", "x", "2024-01-05T00:00", "20240105"]
SITE_CELLS = ["S1", "S2", " S1", "007", "7", "X", ""]
SKU_CELLS = ["K1", "K2", "K1 ", "k1", ""]
QTY = ["1", "0", "3", "-1", "1.5", "1e3", "nan", "inf", "abc", "", " 2", "1e13", "+4", ".5", "0x10"]


def whole_table(frame: pd.DataFrame) -> tuple[list[b.Finding], pd.DataFrame | None]:
    """The oracle: the rules and checks every other table goes through, on the whole table."""
    found = b._Collector()
    trimmed = pd.DataFrame({c: pc.utf8_trim_whitespace(pa.array(frame[c], pa.string())).to_pandas() for c in frame})
    typed = b._convert(DEMAND, trimmed, found)
    if typed is not None:
        b._check_references(DEMAND, typed, {"site": SITES, "sku": SKUS}, found)
        b._check_key(DEMAND, typed, found)
    return found.errors, typed


def streamed(frame: pd.DataFrame, cuts: list[int]) -> tuple[list[b.Finding], b._DemandCheck]:
    found = b._Collector()
    check = b._DemandCheck(SITES, SKUS, room=len(cuts) * 7)  # rows reserved: none, too few or enough
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(frame))), len(frame)]
    for lo, hi in zip(bounds, bounds[1:]):
        part = frame.iloc[lo:hi]
        check.add({c: pa.array(part[c].to_numpy(), pa.string()) for c in frame})
    check.report_columns(found)
    check.report_references(found)
    check.report_duplicates(found)
    return found.errors, check


@st.composite
def demand_tables(draw: st.DrawFn) -> tuple[pd.DataFrame, list[int]]:
    n = draw(st.integers(1, 60))
    clean = draw(st.booleans())  # half the tables are valid, so typing and duplicates are compared too

    def cells(options: list[str], good: list[str]) -> list[str]:
        return draw(st.lists(st.sampled_from(good if clean else options), min_size=n, max_size=n))

    frame = pd.DataFrame(
        {
            "date": cells(DATES, DATES[:4]),
            "site_id": cells(SITE_CELLS, SITE_CELLS[:4]),
            "sku_id": cells(SKU_CELLS, SKU_CELLS[:3]),
            "qty": cells(QTY, ["1", "0", "3", "1.5", "1e3", " 2", "+4", ".5"]),
        }
    )
    if draw(st.booleans()):  # a file sorted by position or by date, as exports usually are
        frame = frame.sort_values(draw(st.sampled_from([["site_id", "sku_id", "date"], ["date", "site_id"]])))
    return frame.reset_index(drop=True), draw(st.lists(st.integers(0, n), max_size=4))


@settings(max_examples=300, deadline=None)
@given(demand_tables())
def test_streamed_check_finds_what_the_whole_table_rules_find(case: tuple[pd.DataFrame, list[int]]) -> None:
    frame, cuts = case
    expected, typed = whole_table(frame)
    got, check = streamed(frame, cuts)
    if any("duplicate" not in f.message for f in expected):
        # Rows that break a rule are left out of the key check (they are reported already).
        expected = [f for f in expected if "duplicate" not in f.message]
        got = [f for f in got if "duplicate" not in f.message]
    assert got == expected
    if not expected:
        result = check.typed()
        assert list(result.columns) == ["date", "site_id", "sku_id", "qty"]
        assert result["date"].equals(typed["date"].reset_index(drop=True))
        assert result["qty"].equals(typed["qty"].reset_index(drop=True))
        for col in ("site_id", "sku_id"):
            assert result[col].astype(str).tolist() == typed[col].tolist()


def test_a_repeated_key_far_apart_is_found_with_both_lines() -> None:
    rows = [("2024-01-05", "S1", "K1", "1"), ("2024-01-06", "S2", "K2", "2"), ("2024-01-05", "S2", "K1", "3")] * 1
    rows += [("2024-01-05", "S1", "K1", "4")]
    frame = pd.DataFrame(rows, columns=["date", "site_id", "sku_id", "qty"])
    got, _ = streamed(frame, [1, 2, 3])
    assert [str(f) for f in got] == [
        'demand.csv line 5: duplicate date + site_id + sku_id "2024-01-05, S1, K1" (first on line 2)'
    ]


def test_sorted_files_are_proved_unique_without_a_sort() -> None:
    """Keys increasing by position (or by date, ids as text) across batches settle the check batch by
    batch, whatever the order of sites.csv (here 007 comes last)."""
    days = pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d")
    frame = pd.DataFrame(
        [(d, s, k, "1") for s in sorted(SITES) for k in sorted(SKUS) for d in days],
        columns=["date", "site_id", "sku_id", "qty"],
    )
    _, by_position = streamed(frame, [17, 90])
    assert by_position.increasing == [True, False]
    _, by_date = streamed(frame.sort_values(["date", "site_id", "sku_id"]).reset_index(drop=True), [17, 90])
    assert by_date.increasing[1] is True
    shuffled = frame.sample(frac=1, random_state=1).reset_index(drop=True)
    found, check = streamed(shuffled, [40])
    assert check.increasing == [False, False] and found == []
    assert np.array_equal(check.typed()["qty"].to_numpy(), np.ones(len(frame)))


def test_masters_in_text_order_follow_the_order_by_their_codes() -> None:
    """sites.csv and skus.csv listed in text order (most exports): keys are built from the codes
    with no rank lookup, and decide the orders as the lookup does (forced here for the oracle)."""
    sites, skus = pd.Index(sorted(SITES)), pd.Index(sorted(SKUS))
    days = pd.date_range("2024-01-01", periods=20).strftime("%Y-%m-%d")
    frame = pd.DataFrame(
        [(d, s, k, "1") for s in sites for k in skus for d in days], columns=["date", "site_id", "sku_id", "qty"]
    )
    orders = {
        "by position": frame,
        "by date": frame.sort_values(["date", "site_id", "sku_id"]),
        "shuffled": frame.sample(frac=1, random_state=2),
        "a bad row": pd.concat([frame.iloc[:30], frame.iloc[[5]].assign(qty="x"), frame.iloc[30:]]),
    }
    for name, rows in orders.items():
        flags = []
        for shortcut in (True, False):
            check = b._DemandCheck(sites, skus)
            assert check.in_text_order == {"site": True, "sku": True}
            if not shortcut:
                check.in_text_order = {"site": False, "sku": False}
            for lo in range(0, len(rows), 23):
                part = rows.iloc[lo : lo + 23]
                check.add({c: pa.array(part[c].to_numpy(), pa.string()) for c in rows})
            flags.append(check.increasing)
        assert flags[0] == flags[1], name
        assert (
            flags[0]
            == {
                "by position": [True, False],
                "by date": [False, True],
                "shuffled": [False, False],
                "a bad row": [True, False],
            }[name]
        )
    assert b._DemandCheck(SITES, SKUS).in_text_order == {"site": False, "sku": True}  # "007" listed last
