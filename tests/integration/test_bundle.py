"""The loader: one test per error kind, the all-or-nothing rule, and each format."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from rebal_core.signals.bundle import MAX_ERRORS, BundleInvalid, load_bundle


def edit(bundle: Path, table: str, fn) -> None:
    """Rewrite one table of a bundle copy as text, through ``fn(frame) -> frame``."""
    path = bundle / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    fn(frame).to_csv(path, index=False)


def errors_of(bundle: Path) -> list[str]:
    with pytest.raises(BundleInvalid) as info:
        load_bundle(bundle)
    return [str(e) for e in info.value.errors]


def test_valid_bundle_loads_with_types(small_bundle):
    b = load_bundle(small_bundle)
    assert str(b.as_of) == "2026-06-01"
    assert len(b.sites) == 8 and len(b.skus) == 40
    assert b.inventory["on_hand"].dtype == "int64"
    assert b.demand["date"].dtype.kind == "M"
    assert b.forecast is None and b.lanes is not None


def test_identifiers_stay_strings(bundle_copy):
    edit(bundle_copy, "sites", lambda f: f.assign(site_id=f["site_id"].where(f.index != 0, "007")))
    first = pd.read_csv(bundle_copy / "sites.csv", dtype=str)["site_id"][0]
    assert first == "007"
    # the renamed site is now unknown to the other tables: the error quotes it as text
    errs = errors_of(bundle_copy)
    assert not any('"7"' in e for e in errs)
    assert any("site_id" in e for e in errs)


def test_missing_required_table(bundle_copy):
    (bundle_copy / "skus.csv").unlink()
    assert "skus.csv: required table is missing" in errors_of(bundle_copy)


def test_missing_required_column(bundle_copy):
    edit(bundle_copy, "inventory", lambda f: f.drop(columns=["on_hand"]))
    assert "inventory.csv line 1, column on_hand: required column is missing" in errors_of(bundle_copy)


def test_empty_required_table(bundle_copy):
    edit(bundle_copy, "demand", lambda f: f.iloc[0:0])
    assert any(e.startswith("demand.csv: required table has no rows") for e in errors_of(bundle_copy))


def test_negative_on_hand_names_line_and_column(bundle_copy):
    edit(bundle_copy, "inventory", lambda f: f.assign(on_hand=f["on_hand"].where(f.index != 12, "-3")))
    assert 'inventory.csv line 14, column on_hand: expected a whole number >= 0, got "-3"' in errors_of(bundle_copy)


def test_unparseable_and_fractional_numbers(bundle_copy):
    def change(f):
        f.loc[0, "on_hand"] = "12abc"
        f.loc[1, "on_hand"] = "2.5"
        return f

    edit(bundle_copy, "inventory", change)
    errs = errors_of(bundle_copy)
    assert 'inventory.csv line 2, column on_hand: expected a whole number >= 0, got "12abc"' in errs
    assert 'inventory.csv line 3, column on_hand: expected a whole number >= 0, got "2.5"' in errs


def test_out_of_range_coordinates(bundle_copy):
    edit(bundle_copy, "sites", lambda f: f.assign(lat=f["lat"].where(f.index != 2, "95")))
    assert 'sites.csv line 4, column lat: expected a number >= -90 and <= 90, got "95"' in errors_of(bundle_copy)


def test_bad_date(bundle_copy):
    edit(bundle_copy, "demand", lambda f: f.assign(date=f["date"].where(f.index != 0, "01/02/2026")))
    assert 'demand.csv line 2, column date: expected a date as YYYY-MM-DD, got "01/02/2026"' in errors_of(bundle_copy)


def test_bad_choice(bundle_copy):
    edit(bundle_copy, "sites", lambda f: f.assign(kind=f["kind"].where(f.index != 0, "shop")))
    assert 'sites.csv line 2, column kind: expected one of dc, store, fc, warehouse, got "shop"' in errors_of(
        bundle_copy
    )


def test_blank_required_value(bundle_copy):
    edit(bundle_copy, "skus", lambda f: f.assign(unit_cost=f["unit_cost"].where(f.index != 0, "")))
    assert 'skus.csv line 2, column unit_cost: expected a number > 0, got ""' in errors_of(bundle_copy)


def test_duplicate_key(bundle_copy):
    edit(bundle_copy, "sites", lambda f: pd.concat([f, f.iloc[[1]]], ignore_index=True))
    errs = errors_of(bundle_copy)
    assert any(
        e.startswith("sites.csv line 10, column site_id: duplicate site_id") and "(first on line 3)" in e for e in errs
    )


def test_unknown_references(bundle_copy):
    edit(bundle_copy, "inventory", lambda f: f.assign(site_id=f["site_id"].where(f.index != 0, "NOPE")))
    edit(bundle_copy, "demand", lambda f: f.assign(sku_id=f["sku_id"].where(f.index != 4, "SKU-X")))
    errs = errors_of(bundle_copy)
    assert 'inventory.csv line 2, column site_id: unknown site "NOPE" (not in sites.csv)' in errs
    assert 'demand.csv line 6, column sku_id: unknown sku "SKU-X" (not in skus.csv)' in errs


def test_lane_rules(bundle_copy):
    def change(f):
        f.loc[0, "to_site_id"] = f.loc[0, "from_site_id"]
        f.loc[1, "cost_per_truck"] = "100"
        f.loc[1, "truck_capacity"] = ""
        return f

    edit(bundle_copy, "lanes", change)
    errs = errors_of(bundle_copy)
    assert any(e.startswith("lanes.csv line 2, column to_site_id: a lane must join two distinct sites") for e in errs)
    assert any(
        e.startswith("lanes.csv line 3, column truck_capacity: expected a number > 0 because cost_per_truck is 100")
        for e in errs
    )


def test_bad_bundle_toml(bundle_copy):
    (bundle_copy / "bundle.toml").write_text('as_of = "tomorrow"\n')
    assert 'bundle.toml: as_of: expected a date as YYYY-MM-DD, got "tomorrow"' in errors_of(bundle_copy)


def test_semicolon_and_encoding_and_ragged(bundle_copy):
    (bundle_copy / "counts.csv").write_text("date;site_id;sku_id;counted_qty\n2026-05-01;DC001;SKU00001;3\n")
    (bundle_copy / "inbound.csv").write_bytes(
        b"site_id,sku_id,qty,eta\nDC001,SKU00001,5,2026-06-03\n" + "ST\xe9,x,1,2026-06-03\n".encode("latin-1")
    )
    (bundle_copy / "forecast.csv").write_text(
        "site_id,sku_id,mean_daily,std_daily\nDC001,SKU00001,1.0,0.5\nDC001,SKU00002,1.0\n"
    )
    errs = errors_of(bundle_copy)
    assert "counts.csv line 1: columns are separated by semicolons; expected commas" in errs
    assert any(e.startswith("inbound.csv: is not UTF-8 text") for e in errs)
    assert "forecast.csv line 3: has 3 values where the header has 4 columns" in errs


def test_every_error_reported_together(bundle_copy):
    edit(bundle_copy, "inventory", lambda f: f.assign(on_hand="-1"))
    edit(bundle_copy, "skus", lambda f: f.assign(pack_size=f["pack_size"].where(f.index != 0, "0")))
    with pytest.raises(BundleInvalid) as info:
        load_bundle(bundle_copy)
    exc = info.value
    tables = {e.table for e in exc.errors}
    assert {"inventory.csv", "skus.csv"} <= tables
    # many identical errors are summarised, and the total stays under the cap
    assert len(exc.errors) <= MAX_ERRORS
    assert any("more row(s) with the same problem" in str(e) for e in exc.errors)


def test_headers_case_spaces_bom_and_extra_columns(bundle_copy):
    path = bundle_copy / "sites.csv"
    text = path.read_text()
    header, rest = text.split("\n", 1)
    header = ",".join(" " + h.strip('"').upper() + " " for h in header.split(",")) + ",Notes"
    rest = "\n".join(line + ",x" if line else line for line in rest.split("\n"))
    path.write_bytes(b"\xef\xbb\xbf" + (header + "\n" + rest).encode())
    b = load_bundle(bundle_copy)
    assert len(b.sites) == 8
    assert any("extra column(s) notes" in str(w) for w in b.warnings)


def test_gzip_tables(bundle_copy):
    src = bundle_copy / "demand.csv"
    with open(src, "rb") as fin, gzip.open(bundle_copy / "demand.csv.gz", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    src.unlink()
    assert len(load_bundle(bundle_copy).demand) > 0


def test_both_csv_and_gz_is_an_error(bundle_copy):
    shutil.copy(bundle_copy / "sites.csv", bundle_copy / "tmp")
    with open(bundle_copy / "tmp", "rb") as fin, gzip.open(bundle_copy / "sites.csv.gz", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    assert any("table sites given twice" in e for e in errors_of(bundle_copy))


def test_zip_with_top_folder(small_bundle, tmp_path):
    archive = tmp_path / "net.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in small_bundle.iterdir():
            z.write(f, f"export-2026/{f.name}")
    b = load_bundle(archive)
    assert len(b.skus) == 40 and str(b.as_of) == "2026-06-01"


def test_xlsx_workbook(small_bundle, tmp_path):
    """A workbook as a planner would build it by hand: typed cells, dates as dates."""
    book = tmp_path / "net.xlsx"
    with pd.ExcelWriter(book) as xl:
        for name in ("sites", "skus", "inventory", "inbound", "lanes"):
            pd.read_csv(small_bundle / f"{name}.csv").to_excel(xl, sheet_name=name, index=False)
        demand = pd.read_csv(small_bundle / "demand.csv", parse_dates=["date"]).tail(3000)
        demand.to_excel(xl, sheet_name="demand", index=False)
        pd.DataFrame({"key": ["as_of"], "value": [pd.Timestamp("2026-06-01")]}).to_excel(
            xl, sheet_name="bundle", index=False
        )
    b = load_bundle(book)
    assert str(b.as_of) == "2026-06-01"
    assert len(b.demand) == 3000 and b.demand["date"].dtype.kind == "M"


def test_failed_load_returns_nothing(bundle_copy):
    edit(bundle_copy, "inventory", lambda f: f.assign(on_hand=f["on_hand"].where(f.index != 0, "x")))
    with pytest.raises(BundleInvalid):
        load_bundle(bundle_copy)


def test_warnings_for_demand_without_inventory(bundle_copy):
    edit(bundle_copy, "inventory", lambda f: f.iloc[1:])
    b = load_bundle(bundle_copy)
    assert any("have demand but no inventory row" in str(w) for w in b.warnings)


def test_a_demand_file_read_in_many_batches_names_lines_across_them(tmp_path, monkeypatch) -> None:
    """demand.csv parsed in 2 kB blocks (about 60 batches): line numbers count across batches, the
    typed table is the file's, and a bad cell far down is found on its own line."""
    from rebal_core.signals import bundle as b
    from rebal_core.signals.sample import SynthConfig, synthesize

    folder = synthesize(tmp_path / "b", SynthConfig(sites=4, skus=12, days=60, seed=2))
    whole = b.load_bundle(folder)
    monkeypatch.setattr(b, "CSV_BLOCK_BYTES", 2048)
    batched = b.load_bundle(folder)
    import pandas as pd

    pd.testing.assert_frame_equal(whole.demand, batched.demand)
    lines = (folder / "demand.csv").read_text().splitlines()
    row = len(lines) - 3  # a line in one of the last batches
    cells = lines[row].split(",")
    cells[-1] = "-4"
    lines[row] = ",".join(cells)
    (folder / "demand.csv").write_text("\n".join(lines) + "\n")
    try:
        b.load_bundle(folder)
    except b.BundleInvalid as exc:
        assert [str(e) for e in exc.errors] == [
            f'demand.csv line {row + 1}, column qty: expected a number >= 0, got "-4"'
        ]
    else:
        raise AssertionError("a negative quantity was accepted")
