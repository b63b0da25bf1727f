"""Bad, hostile and mutated bundles are refused with a located message (BundleInvalid), never a crash,
and within bounded time and memory (issue 12). A seeded fuzz run mutates a tiny bundle a few hundred ways."""

from __future__ import annotations

import datetime as dt
import gzip
import random
import shutil
import zipfile
from pathlib import Path

import pytest

from rebal_core.signals.bundle import MAX_NUMBER, BundleInvalid, load_bundle
from rebal_core.signals.sample import SynthConfig, synthesize

TINY = SynthConfig(sites=4, skus=6, days=60, seed=2, as_of=dt.date(2026, 6, 1))
FUZZ_CASES = 300


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("tiny") / "b", TINY)


@pytest.fixture
def copy(tiny, tmp_path):
    def make(name: str = "b") -> Path:
        target = tmp_path / name
        shutil.copytree(tiny, target)
        return target

    return make


def refused(source: Path, *fragments: str) -> str:
    with pytest.raises(BundleInvalid) as caught:
        load_bundle(source)
    text = caught.value.report()
    for f in fragments:
        assert f in text, text
    return text


def _set_cell(path: Path, line: int, column: int, value: str) -> None:
    rows = path.read_text().splitlines()
    cells = rows[line].split(",")
    cells[column] = value
    rows[line] = ",".join(cells)
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("value", ["1e19", "9223372036854775808", "1e308", "inf", "nan"])
def test_numbers_beyond_reason_are_refused_not_stored_corrupted(copy, value):
    b = copy()
    _set_cell(b / "inventory.csv", 1, 2, value)
    refused(b, "inventory.csv line 2, column on_hand")
    assert MAX_NUMBER <= 2**53


@pytest.mark.parametrize("as_of", ["9999-12-31", "0001-01-01"])
def test_planning_dates_out_of_range_are_refused(copy, as_of):
    b = copy()
    (b / "bundle.toml").write_text(f'as_of = "{as_of}"\n')
    refused(b, "bundle.toml: as_of", "is outside")


def test_bundle_toml_too_big_or_too_deep(copy):
    b = copy()
    (b / "bundle.toml").write_text('as_of = "2026-06-01"\na = ' + "[" * 5000 + "]" * 5000 + "\n")
    refused(b, "bundle.toml", "nested too deeply")
    (b / "bundle.toml").write_text("".join(f'k{i} = "{"y" * 100}"\n' for i in range(2000)))
    refused(b, "bundle.toml: is", "at most 65,536")


def test_invalid_utf8_with_a_ragged_row_is_located(copy):
    b = copy()
    (b / "sites.csv").write_bytes((b / "sites.csv").read_bytes() + b'"ST\xff\xfe","x","store","R",1,2,3,4\n')
    refused(b, "sites.csv line 6: has 8 values where the header has 7 columns")


def test_old_mac_line_endings_load_like_the_original(copy, tiny):
    b = copy()
    for f in b.glob("*.csv"):
        f.write_bytes(f.read_bytes().replace(b"\n", b"\r"))
    assert load_bundle(b).inventory.equals(load_bundle(tiny).inventory)


def test_long_fields_are_refused_with_the_limit(copy):
    b = copy()
    _set_cell(b / "skus.csv", 1, 1, '"' + "x" * 200_000 + '"')
    refused(b, "skus.csv line 2, column name: longer than 1,000 characters")


def test_encrypted_zip_and_zip_bomb_and_gzip_bomb(copy, tmp_path, tiny):
    enc = tmp_path / "enc.zip"
    with zipfile.ZipFile(enc, "w") as z:
        for f in tiny.iterdir():
            z.write(f, f.name)
    data = bytearray(enc.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig)
        while i >= 0:
            data[i + off] |= 1
            i = data.find(sig, i + 4)
    enc.write_bytes(bytes(data))
    refused(enc, "enc.zip: is encrypted")

    row = b"2026-05-01,DC001,SKU00001,1\n" * 100_000
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for f in tiny.iterdir():
            if f.name != "demand.csv":
                z.write(f, f.name)
        with z.open("demand.csv", "w", force_zip64=True) as w:
            w.write(b"date,site_id,sku_id,qty\n")
            for _ in range(40):
                w.write(row)
    refused(bomb, "bomb.zip: expands to", "compression bomb")

    b = copy("gz")
    (b / "demand.csv").unlink()
    with gzip.open(b / "demand.csv.gz", "wb", compresslevel=9) as g:
        g.write(b"date,site_id,sku_id,qty\n")
        for _ in range(40):
            g.write(row)
    refused(b, "demand.csv: expands to more than", "compression bomb")


def test_xlsx_with_xml_entities_is_refused(tiny, tmp_path):
    import csv

    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for f in sorted(tiny.glob("*.csv")):
        sheet = book.create_sheet(f.stem)
        for r in list(csv.reader(f.open()))[:50]:
            sheet.append(r)
    plain = tmp_path / "plain.xlsx"
    book.save(plain)
    hostile = tmp_path / "entities.xlsx"
    with zipfile.ZipFile(plain) as zin, zipfile.ZipFile(hostile, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("sheet1.xml"):
                data = (
                    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                    + data.replace(b"<v>", b"<v>&b;", 1)
                )
            zout.writestr(item, data)
    refused(hostile, "entities.xlsx")


MUTATIONS = (
    "flip_bytes",
    "truncate",
    "drop_line",
    "duplicate_line",
    "swap_header",
    "blank_cell",
    "odd_value",
    "drop_file",
    "binary_file",
    "cr_endings",
)
ODD_VALUES = [
    "-1",
    "1e400",
    "NaN",
    "",
    "  ",
    "=cmd|' /C calc'!A0",
    "２０２６-01-01",
    "9" * 40,
    "0x10",
    "1_000",
    "\u00a0",
    '"',
    "a,b",
    "2026-02-30",
    "-0",
    "true",
]


def _mutate(root: Path, rng: random.Random) -> str:
    files = sorted(p for p in root.iterdir() if p.is_file())
    target = rng.choice(files)
    kind = rng.choice(MUTATIONS)
    data = target.read_bytes()
    if kind == "flip_bytes" and data:
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        target.write_bytes(bytes(b))
    elif kind == "truncate":
        target.write_bytes(data[: rng.randrange(len(data) + 1)])
    elif kind in ("drop_line", "duplicate_line", "swap_header", "blank_cell", "odd_value") and target.suffix == ".csv":
        lines = data.decode("utf-8", "replace").splitlines()
        if len(lines) > 1:
            i = rng.randrange(1, len(lines))
            if kind == "drop_line":
                del lines[i]
            elif kind == "duplicate_line":
                lines.insert(i, lines[i])
            elif kind == "swap_header":
                head = lines[0].split(",")
                rng.shuffle(head)
                lines[0] = ",".join(head)
            else:
                cells = lines[i].split(",")
                cells[rng.randrange(len(cells))] = "" if kind == "blank_cell" else rng.choice(ODD_VALUES)
                lines[i] = ",".join(cells)
        target.write_text("\n".join(lines) + "\n")
    elif kind == "drop_file":
        target.unlink()
    elif kind == "binary_file":
        target.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000))))
    elif kind == "cr_endings":
        target.write_bytes(data.replace(b"\n", b"\r"))
    return f"{kind} {target.name}"


def test_fuzzed_bundles_are_loaded_or_refused_never_crash(tiny, tmp_path):
    rng = random.Random(20261201)
    crashes = []
    for case in range(FUZZ_CASES):
        b = tmp_path / f"f{case}"
        shutil.copytree(tiny, b)
        done = [_mutate(b, rng) for _ in range(rng.randint(1, 3))]
        try:
            load_bundle(b)
        except BundleInvalid as exc:
            assert exc.errors and all(e.table for e in exc.errors)
        except Exception as exc:  # noqa: BLE001 - the point of the test
            crashes.append(f"case {case} ({'; '.join(done)}): {type(exc).__name__}: {exc}")
        shutil.rmtree(b)
    assert not crashes, "\n".join(crashes[:10])


def test_the_row_limit_refuses_a_table_and_a_streamed_demand_file_before_holding_them(tiny, monkeypatch):
    """Past REBAL_MAX_ROWS a table is refused with the limit named; demand.csv, streamed, stops at the
    batch that crosses it (its rows are never all held)."""
    import rebal_core.signals.bundle as b

    demand_rows = len((tiny / "demand.csv").read_text().splitlines()) - 1
    inventory_rows = len((tiny / "inventory.csv").read_text().splitlines()) - 1
    limit = min(demand_rows, inventory_rows) - 1
    monkeypatch.setattr(b, "MAX_ROWS", limit)
    monkeypatch.setattr(b, "CSV_BLOCK_BYTES", 4096)  # several batches: the stream stops part-way
    text = refused(
        tiny,
        f"inventory.csv: has {inventory_rows:,} rows; at most {limit:,} are accepted (REBAL_MAX_ROWS raises the limit)",
        f"demand.csv: has more than {limit:,} rows; at most {limit:,} are accepted",
    )
    assert "demand.csv line" not in text  # nothing past the limit was checked
