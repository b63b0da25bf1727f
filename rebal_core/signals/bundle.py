"""Load and validate a network data bundle (``shared/spec/data-contract.md``).

A bundle is a folder, a ``.zip`` of one, or an ``.xlsx`` workbook. Loading is
all or nothing: :func:`load_bundle` either returns a complete, typed
:class:`Bundle` or raises :class:`BundleInvalid` carrying *every* error found
(up to :data:`MAX_ERRORS`), each naming table, line and column.

Values are read as text first (so ``007`` stays ``007``) and converted column
by column with vectorized pandas operations; that is what keeps a
4-million-row bundle within seconds. demand.csv, the table that reaches a
hundred million rows, is streamed instead: checked batch by batch on its
distinct cells with the same rules and kept as codes (:class:`_DemandCheck`).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from zlib import error as zlib_error

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import tomllib

from rebal_core.chunks import row_chunks
from rebal_core.errors import BundleInvalid  # noqa: F401 (re-exported: callers name them here)
from rebal_core.progress import Progress, quiet, stage  # noqa: F401
from rebal_core.signals.contract import DEMAND, SITES, SKUS, TABLES, TABLES_BY_NAME, Column, Table
from rebal_core.signals.geo import RateCard

MAX_ERRORS = 200
"""Errors reported per bundle; past it the report says how many more there were."""

# Limits on what a bundle may hold (SECURITY.md): beyond them a bundle is refused with the limit named,
# before it can exhaust the server. The row limit may be raised with REBAL_MAX_ROWS.
MAX_ROWS = int(os.environ.get("REBAL_MAX_ROWS", "20000000"))
MAX_UNPACKED_BYTES = 4 << 30  # a zip's or .gz file's content, in all
MAX_EXPANSION = 100  # content / compressed size, for anything over BOMB_FLOOR_BYTES unpacked
BOMB_FLOOR_BYTES = 64 << 20
MAX_ZIP_MEMBERS = 200
MAX_TOML_BYTES = 64 << 10
MAX_TEXT_CHARS = 1000  # an id, name or other text cell
MAX_NUMBER = 1e12  # no quantity, cost, capacity or rate beyond this (2^53 keeps whole numbers exact)
EARLIEST_AS_OF, LATEST_AS_OF = dt.date(1970, 1, 1), dt.date(2200, 12, 31)
CSV_BLOCK_BYTES = 1 << 24
"""Arrow parses CSV in blocks of this size; demand.csv is checked a block (a batch) at a time."""
EXAMPLES_PER_RULE = 20
"""Errors listed for one rule on one column before summarising the rest."""


def _no_progress(fraction: float, message: str) -> None:  # noqa: ARG001 - default sink
    return None


@dataclass(frozen=True)
class Finding:
    """One error or warning, located as precisely as the input allows."""

    severity: str  # "error" or "warning"
    table: str  # file name, e.g. "inventory.csv"
    message: str
    line: int | None = None  # line in the file, header = 1
    column: str | None = None

    def __str__(self) -> str:
        where = self.table
        if self.line is not None:
            where += f" line {self.line}"
        if self.column is not None:
            where += f", column {self.column}" if self.line is not None else f" column {self.column}"
        return f"{where}: {self.message}"

    def as_row(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "table": self.table,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


@dataclass
class Bundle:
    """A validated bundle: typed frames, identifiers as categoricals over the master tables."""

    sites: pd.DataFrame
    skus: pd.DataFrame
    inventory: pd.DataFrame
    demand: pd.DataFrame
    forecast: pd.DataFrame | None
    inbound: pd.DataFrame
    lanes: pd.DataFrame | None
    counts: pd.DataFrame
    as_of: dt.date
    rate_card: RateCard = field(default_factory=RateCard)
    warnings: list[Finding] = field(default_factory=list)
    source: str = ""


class _Collector:
    """Gathers findings with a global cap, counting what it leaves off."""

    def __init__(self) -> None:
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []
        self.more = 0

    def error(self, table: str, message: str, line: int | None = None, column: str | None = None) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(Finding("error", table, message, line, column))
        else:
            self.more += 1

    def warn(self, table: str, message: str, line: int | None = None, column: str | None = None) -> None:
        if len(self.warnings) < MAX_ERRORS:
            self.warnings.append(Finding("warning", table, message, line, column))

    def rows(
        self,
        table: str,
        column: str,
        mask: np.ndarray,
        values: pd.Series,
        say: Callable[[str], str],
        warn: bool = False,
    ) -> None:
        """Report the rows where ``mask`` holds, at most EXAMPLES_PER_RULE of them by line."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        report = self.warn if warn else self.error
        for i in idx[:EXAMPLES_PER_RULE]:
            report(table, say(str(values.iat[i])), int(i) + 2, column)
        rest = idx.size - EXAMPLES_PER_RULE
        if rest > 0:
            report(table, f"{rest} more row(s) with the same problem (lines up to {int(idx[-1]) + 2})", None, column)


# ----------------------------------------------------------------------------- sources


def _table_name(file_name: str) -> str | None:
    lower = file_name.lower()
    for suffix in (".csv.gz", ".csv"):
        if lower.endswith(suffix):
            return lower[: -len(suffix)].strip()
    return None


def _find_tables(folder: Path, found: _Collector) -> tuple[dict[str, Path], Path | None]:
    """Map table name -> file in a folder (or its single sub-folder, as zips often have)."""
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(("._", "~$")) and "__MACOSX" not in p.parts
    ]
    tables: dict[str, Path] = {}
    toml: Path | None = None
    for path in sorted(files):
        if path.name.lower() == "bundle.toml":
            toml = path
            continue
        name = _table_name(path.name)
        if name is None:
            continue
        if name not in TABLES_BY_NAME:
            found.warn(path.name, "not a table of the contract; ignored")
            continue
        if name in tables:
            found.error(path.name, f"table {name} given twice ({tables[name].name} and {path.name})")
            continue
        tables[name] = path
    return tables, toml


def _read_header(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        return fh.read(64 * 1024)


def _gz_within_limits(path: Path, table: str, found: _Collector) -> bool:
    """A .gz file's content, measured while streaming (never held): refused past the limits."""
    packed = max(1, path.stat().st_size)
    unpacked = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            unpacked += len(chunk)
            if unpacked > MAX_UNPACKED_BYTES or (unpacked > BOMB_FLOOR_BYTES and unpacked / packed > MAX_EXPANSION):
                found.error(
                    table,
                    f"expands to more than {unpacked:,} bytes from {packed:,} (over {MAX_EXPANSION}x, or past {MAX_UNPACKED_BYTES:,}): "
                    "refused as a compression bomb; send it uncompressed or split it",
                )
                return False
    return True


def _with_unix_newlines(path: Path, tmp: Path) -> Path:
    """A copy of a CR-only file (old Mac Excel) with LF line endings, streamed."""
    target = tmp / path.name.removesuffix(".gz")
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(1 << 22):
            dst.write(chunk.replace(b"\r", b"\n"))
    return target


@contextmanager
def _csv_file(path: Path, table: str, found: _Collector) -> Iterator[tuple[Path, list[str]] | None]:
    """The checks every CSV goes through before its rows are parsed (size limits, encoding,
    header); yields the file to parse (a LF copy of a CR-only one) and the header's column names
    (lower-cased, stripped), or None with the errors reported."""
    try:
        if path.name.lower().endswith(".gz") and not _gz_within_limits(path, table, found):
            yield None
            return
        head = _read_header(path)
    except (OSError, EOFError, gzip.BadGzipFile, zlib_error) as exc:
        found.error(table, f"cannot be read ({exc})")
        yield None
        return
    if b"\r" in head and b"\n" not in head:  # old Mac line endings: read a converted copy
        with (
            tempfile.TemporaryDirectory(prefix="rebal-cr-") as tmp,
            _csv_file(_with_unix_newlines(path, Path(tmp)), table, found) as converted,
        ):
            yield converted
        return
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    try:
        first_line = head.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        found.error(table, "is not UTF-8 text; save it as 'CSV UTF-8 (comma delimited)'")
        yield None
        return
    if not first_line.strip():
        found.error(table, "is empty; expected a header row first", 1)
        yield None
        return
    header = next(csv.reader([first_line]))
    if len(header) == 1 and ";" in first_line:
        found.error(table, "columns are separated by semicolons; expected commas", 1)
        yield None
        return
    names = [h.strip().lower() for h in header]
    if len(set(n for n in names if n)) < len([n for n in names if n]):
        dup = sorted({n for n in names if n and names.count(n) > 1})
        found.error(table, f"column(s) {', '.join(dup)} appear more than once in the header", 1)
        yield None
        return
    yield path, names


def _csv_options(names: list[str], kind: pa.DataType, keep: list[str] | None = None) -> dict:
    """Arrow's CSV options for text cells: blanks stay "", our own header names (skipped row 1)."""
    generated = [f"c{i}" for i in range(len(names))]
    include = [g for g, n in zip(generated, names) if n and (keep is None or n in keep)]
    return {
        "read_options": pacsv.ReadOptions(column_names=generated, skip_rows=1, block_size=CSV_BLOCK_BYTES),
        "convert_options": pacsv.ConvertOptions(
            column_types={g: kind for g in include},
            include_columns=include,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }


def _unparseable(exc: Exception, path: Path, table: str, width: int, found: _Collector) -> None:
    """Report why Arrow could not parse a CSV file, naming the row where the input allows."""
    if isinstance(exc, pa.ArrowInvalid):
        text = str(exc)
        if "UTF8" in text or "utf8" in text or "UTF-8" in text:
            found.error(table, "is not UTF-8 text; save it as 'CSV UTF-8 (comma delimited)'")
        else:
            _locate_ragged_row(path, table, width, found, text)
    else:
        found.error(table, f"cannot be read ({exc})")


PARSE_FAILURES = (pa.ArrowInvalid, OSError, EOFError, zlib_error)


def _read_csv_text(path: Path, table: str, found: _Collector) -> pd.DataFrame | None:
    """Read a CSV file with every value as stripped text; None (with errors) when unreadable."""
    with _csv_file(path, table, found) as opened:
        if opened is None:
            return None
        path, names = opened
        try:
            arrow = pacsv.read_csv(path, **_csv_options(names, pa.string()))
        except PARSE_FAILURES as exc:
            _unparseable(exc, path, table, len(names), found)
            return None
    if arrow.num_rows > MAX_ROWS:
        found.error(
            table, f"has {arrow.num_rows:,} rows; at most {MAX_ROWS:,} are accepted (REBAL_MAX_ROWS raises the limit)"
        )
        return None
    # Trimming in Arrow (C++) rather than pandas' .str.strip() is ~20x faster on millions of cells.
    kept = [n for n in names if n]
    return pd.DataFrame({name: pc.utf8_trim_whitespace(arrow.column(i)).to_pandas() for i, name in enumerate(kept)})


def _locate_ragged_row(path: Path, table: str, width: int, found: _Collector, detail: str) -> None:
    """Name the first row whose width differs from the header's (bytes that are not UTF-8 are
    replaced for the search only; the file was already refused)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(1 << 30)  # a long field is not the problem being located
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            for line_no, row in enumerate(csv.reader(fh), start=1):
                if line_no > 1 and row and len(row) != width:
                    found.error(table, f"has {len(row)} values where the header has {width} columns", line_no)
                    return
    except (csv.Error, OSError, EOFError, zlib_error) as exc:
        found.error(table, f"cannot be parsed as CSV ({exc}; {detail.splitlines()[0]})")
        return
    finally:
        csv.field_size_limit(limit)
    found.error(table, f"cannot be parsed as CSV ({detail.splitlines()[0]})")


def _xlsx_cell_text(value: object) -> str:
    """Spreadsheet cells arrive typed; turn them back into the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_xlsx(path: Path, found: _Collector, progress: Progress) -> tuple[dict[str, pd.DataFrame], dict]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(path) as archive:  # a workbook is a zip of XML: the same limits
            _zip_within_limits(archive, path, found)
    except (zipfile.BadZipFile, OSError) as exc:
        found.error(path.name, f"cannot be opened as an Excel workbook ({exc})")
    if found.errors:
        return {}, {}
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        found.error(path.name, f"cannot be opened as an Excel workbook ({exc})")
        return {}, {}
    frames: dict[str, pd.DataFrame] = {}
    settings: dict = {}
    try:
        _read_sheets(book, frames, settings, found, progress)
    except Exception as exc:  # noqa: BLE001 - rows are parsed lazily: a damaged or hostile sheet fails here
        found.error(
            path.name, f"a sheet cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        )
    book.close()
    return frames, settings


def _read_sheets(book, frames: dict[str, pd.DataFrame], settings: dict, found: _Collector, progress: Progress) -> None:
    for sheet in book.worksheets:
        name = (
            _table_name(sheet.title + ".csv") if not sheet.title.lower().endswith(".csv") else _table_name(sheet.title)
        )
        progress(0.05, f"reading sheet {sheet.title}")
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if name == "bundle":
            for row in rows:
                if row and row[0]:
                    settings[str(row[0]).strip().lower()] = _xlsx_cell_text(row[1] if len(row) > 1 else None)
            continue
        if name not in TABLES_BY_NAME:
            found.warn(f"sheet {sheet.title}", "not a table of the contract; ignored")
            continue
        label = f"{name}.csv"
        if header is None or all(h is None for h in header):
            found.error(label, "is empty; expected a header row first", 1)
            continue
        names = [_xlsx_cell_text(h).lower() for h in header]
        data = [[_xlsx_cell_text(v) for v in row] for row in rows]
        while data and all(v == "" for v in data[-1]):
            data.pop()  # spreadsheets often carry formatted but empty trailing rows
        width = len(names)
        data = [(r + [""] * width)[:width] for r in data]
        frame = pd.DataFrame(data, columns=names, dtype=object) if data else pd.DataFrame(columns=names, dtype=object)
        frames[name] = frame.loc[:, [n for n in names if n]]


# ----------------------------------------------------------------------------- column rules


def _numbers(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text.mask(text == ""), errors="coerce").astype("float64")


def _columns_present(table: Table, names: list[str], found: _Collector) -> bool:
    """Report missing required columns (errors) and extra ones (a warning); False if any is missing."""
    label = table.file_name
    missing = [c.name for c in table.columns if c.required and c.name not in names]
    for name in missing:
        found.error(label, "required column is missing", 1, name)
    extra = [c for c in names if c not in {col.name for col in table.columns}]
    if extra:
        found.warn(label, f"extra column(s) {', '.join(extra)} kept in the file but ignored", 1)
    return not missing


Rule = tuple[np.ndarray, Callable[[str], str]]
"""Rows breaking one rule of a column, and the message for a row given its text."""


def _column_rules(col: Column, text: pd.Series) -> tuple[pd.Series, list[Rule]]:
    """Typed values of one column's text cells and the rules they break, in reporting order.

    The one place a column's rules live: whole tables apply it to every cell; the streamed
    demand table to each batch's distinct cells."""
    blank = (text == "").to_numpy()
    say = lambda got, c=col: f"expected {c.expectation()}, got {_quote(got)}"  # noqa: E731
    rules: list[Rule] = []
    if col.required:
        rules.append((blank, say))
    if col.kind in ("id", "text"):
        long = (text.str.len() > MAX_TEXT_CHARS).to_numpy()
        rules.append((long, lambda got: f"longer than {MAX_TEXT_CHARS:,} characters: {_quote(got)}"))
        return text, rules
    if col.kind == "choice":
        lowered = text.str.lower()
        rules.append((~lowered.isin(col.choices).to_numpy() & ~blank, say))
        return lowered, rules
    if col.kind == "date":
        parsed = pd.to_datetime(text.mask(blank), format="%Y-%m-%d", errors="coerce")
        rules.append((parsed.isna().to_numpy() & ~blank, say))
        return parsed, rules
    values = _numbers(text)
    arr = values.to_numpy()
    bad = ~np.isfinite(arr) & ~blank
    with np.errstate(invalid="ignore"):
        if col.kind == "whole":
            bad |= np.isfinite(arr) & (arr != np.floor(arr))
        if col.minimum is not None:
            bad |= (arr < col.minimum) if col.minimum_inclusive else (arr <= col.minimum)
        if col.maximum is not None:
            bad |= arr > col.maximum
    huge = np.isfinite(arr) & (np.abs(arr) > MAX_NUMBER)
    rules.append((bad & ~huge, say))
    rules.append((huge, lambda got: f"{_quote(got)} is beyond the largest number accepted ({MAX_NUMBER:,.0f})"))
    if col.default is not None:
        values = values.fillna(col.default)
    return values, rules


def _convert(table: Table, frame: pd.DataFrame, found: _Collector) -> pd.DataFrame | None:
    """Check every column rule of ``table``; return typed columns (None if a column is missing)."""
    if not _columns_present(table, list(frame.columns), found):
        return None
    out: dict[str, pd.Series] = {}
    for col in table.columns:
        if col.name not in frame.columns:
            out[col.name] = pd.Series(
                col.default if col.default is not None else np.nan,
                index=frame.index,
                dtype="float64" if col.kind in ("number", "whole") else object,
            )
            continue
        text = frame[col.name].astype(object)
        values, rules = _column_rules(col, text)
        for mask, say in rules:
            found.rows(table.file_name, col.name, mask, text, say)
        out[col.name] = values
    return pd.DataFrame(out, index=frame.index)


def _quote(value: str) -> str:
    return '""' if value == "" else '"' + (value if len(value) <= 40 else value[:37] + "...") + '"'


def _check_key(table: Table, frame: pd.DataFrame, found: _Collector) -> None:
    if not table.key:
        return
    dup = frame.duplicated(list(table.key), keep="first").to_numpy()
    if not dup.any():
        return
    keyed = (
        frame[list(table.key)].astype(str).agg("|".join, axis=1)
        if len(table.key) > 1
        else frame[table.key[0]].astype(str)
    )
    first_seen = pd.Series(np.arange(len(frame)), index=keyed.to_numpy()).groupby(level=0).min()
    idx = np.flatnonzero(dup)
    examples = [
        (int(i) + 2, keyed.iat[i].replace("|", ", "), int(first_seen[keyed.iat[i]]) + 2)
        for i in idx[:EXAMPLES_PER_RULE]
    ]
    _report_duplicates(table, examples, idx.size, found)


def _report_duplicates(table: Table, examples: list[tuple[int, str, int]], count: int, found: _Collector) -> None:
    """Errors for rows repeating a key: (line, key as text, line of its first row) for the first few."""
    for line, key, first_line in examples:
        found.error(
            table.file_name,
            f"duplicate {' + '.join(table.key)} {_quote(key)} (first on line {first_line})",
            line,
            table.key[-1] if len(table.key) == 1 else None,
        )
    if count > EXAMPLES_PER_RULE:
        found.error(table.file_name, f"{count - EXAMPLES_PER_RULE} more duplicate row(s)")


def _check_references(table: Table, frame: pd.DataFrame, known: dict[str, pd.Index], found: _Collector) -> None:
    for col in table.columns:
        if col.references is None:
            continue
        values = frame[col.name]
        bad = (~values.isin(known[col.references]) & (values != "")).to_numpy()
        master = "sites.csv" if col.references == "site" else "skus.csv"
        found.rows(
            table.file_name,
            col.name,
            bad,
            values,
            lambda got, r=col.references, m=master: f"unknown {r} {_quote(got)} (not in {m})",
        )


# ----------------------------------------------------------------------------- public


def load_bundle(source: str | Path, progress: Progress | None = None) -> Bundle:
    """Read, validate and type a bundle; raise :class:`BundleInvalid` with all errors.

    Parameters
    ----------
    source
        A folder, a ``.zip`` of one, or an ``.xlsx`` workbook with one sheet per table.
    progress
        Called as ``progress(fraction, message)`` while reading large tables.
    """
    progress = progress or _no_progress
    path = Path(source)
    found = _Collector()
    if not path.exists():
        found.error(str(path), "no such file or folder")
        raise BundleInvalid(found.errors, found.warnings)
    if path.is_file() and path.suffix.lower() == ".zip":
        with tempfile.TemporaryDirectory(prefix="rebal-zip-") as tmp:
            try:
                with zipfile.ZipFile(path) as archive:
                    _zip_within_limits(archive, path, found)
                    if found.errors:
                        raise BundleInvalid(found.errors, found.warnings)
                    archive.extractall(tmp)
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                zlib_error,
                NotImplementedError,
                RuntimeError,
                ValueError,
            ) as exc:
                # RuntimeError: encrypted members; NotImplementedError: compression methods zipfile lacks
                why = (
                    "is encrypted; send an unencrypted zip"
                    if "encrypted" in str(exc) or "password" in str(exc)
                    else f"is not a readable zip archive ({exc})"
                )
                found.error(path.name, why)
                raise BundleInvalid(found.errors, found.warnings) from None
            bundle = _load_folder(Path(tmp), found, progress)
    elif path.is_file() and path.suffix.lower() in (".xlsx", ".xlsm"):
        frames, settings = _read_xlsx(path, found, progress)
        bundle = _assemble(frames, settings, found, progress)
    elif path.is_dir():
        bundle = _load_folder(path, found, progress)
    else:
        found.error(path.name, "expected a folder, a .zip or an .xlsx workbook")
        bundle = None
    if found.errors or bundle is None:
        raise BundleInvalid(found.errors, found.warnings, found.more)
    bundle.source = str(path)
    progress(1.0, "bundle valid")
    return bundle


def _zip_within_limits(archive: zipfile.ZipFile, path: Path, found: _Collector) -> None:
    """Refuse an archive before unpacking it: too many members, encrypted ones, or content that
    expands past the limits (sizes from the archive's directory, checked again while unpacking)."""
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        found.error(path.name, f"holds {len(members):,} files; a bundle has at most {MAX_ZIP_MEMBERS}")
        return
    if any(m.flag_bits & 0x1 for m in members):
        found.error(path.name, "is encrypted; send an unencrypted zip")
        return
    unpacked = sum(m.file_size for m in members)
    packed = max(1, path.stat().st_size)
    if unpacked > MAX_UNPACKED_BYTES or (unpacked > BOMB_FLOOR_BYTES and unpacked / packed > MAX_EXPANSION):
        found.error(
            path.name,
            f"expands to {unpacked:,} bytes from {packed:,} (over {MAX_EXPANSION}x, or past {MAX_UNPACKED_BYTES:,}): "
            "refused as a compression bomb; send the files uncompressed or split them",
        )


def _load_folder(folder: Path, found: _Collector, progress: Progress) -> Bundle | None:
    files, toml_path = _find_tables(folder, found)
    settings: dict = {}
    if toml_path is not None:
        size = toml_path.stat().st_size
        if size > MAX_TOML_BYTES:
            found.error(
                "bundle.toml", f"is {size:,} bytes; at most {MAX_TOML_BYTES:,} are accepted (it holds a few settings)"
            )
        else:
            try:
                settings = tomllib.loads(toml_path.read_text(encoding="utf-8-sig"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
                found.error(
                    "bundle.toml",
                    f"is not valid TOML ({'nested too deeply' if isinstance(exc, RecursionError) else exc})",
                )
    frames: dict[str, pd.DataFrame] = {}
    total = sum(p.stat().st_size for p in files.values()) or 1
    done = 0
    for name, file in files.items():
        if name == "demand":  # streamed when the masters are known (see _DemandCheck)
            frames[name] = file
            continue
        progress(0.6 * done / total, f"reading {file.name}")
        frame = _read_csv_text(file, TABLES_BY_NAME[name].file_name, found)
        done += file.stat().st_size
        if frame is not None:
            frames[name] = frame
    return _assemble(frames, settings, found, progress)


def _assemble(
    frames: dict[str, pd.DataFrame | Path], settings: dict, found: _Collector, progress: Progress
) -> Bundle | None:
    """Check and type every table. ``frames`` holds each table's text cells, except demand.csv,
    which may be its file, streamed (see :class:`_DemandCheck`)."""
    typed: dict[str, pd.DataFrame] = {}
    demand: _DemandCheck | None = None
    for table in TABLES:
        if table.name not in frames:
            if table.required:
                found.error(table.file_name, "required table is missing")
            continue
        progress(0.6 + 0.3 * TABLES.index(table) / len(TABLES), f"checking {table.file_name}")
        frame = frames[table.name]
        if table is DEMAND:
            demand = _check_demand(frame, typed, found, stage(progress, 0.0, 0.6))
            continue
        if table.required and len(frame) == 0:
            found.error(table.file_name, "required table has no rows")
        converted = _convert(table, frame, found)
        if converted is not None:
            typed[table.name] = converted
    sites, skus = typed.get("sites"), typed.get("skus")
    if sites is not None:
        _check_key(SITES, sites, found)
    if skus is not None:
        _check_key(SKUS, skus, found)
    if sites is None or skus is None:
        return None
    known = {"site": pd.Index(sites["site_id"]), "sku": pd.Index(skus["sku_id"])}
    for table in TABLES:
        if table is DEMAND and demand is not None:
            demand.report_references(found)
            demand.report_duplicates(found)
        elif table.name in typed and table.name not in ("sites", "skus"):
            _check_references(table, typed[table.name], known, found)
            _check_key(table, typed[table.name], found)
    if demand is not None and not found.errors:
        typed["demand"] = demand.typed()
    lanes = typed.get("lanes")
    if lanes is not None:
        _check_lanes(lanes, found)
    as_of = _as_of(settings, typed.get("demand"), found)
    rate_card = _rate_card(settings, found)
    if found.errors or "inventory" not in typed or "demand" not in typed or as_of is None:
        return None
    _warn(typed, as_of, found)
    progress(0.95, "typing identifiers")
    return _typed_bundle(typed, as_of, rate_card, found.warnings)


def _check_demand(
    source: pd.DataFrame | Path, typed: dict[str, pd.DataFrame], found: _Collector, progress: Progress
) -> _DemandCheck | None:
    """Check demand.csv (a file, streamed, or a workbook's text cells) against the masters typed so far."""
    masters = {
        name: pd.Index(typed[name][column]).drop_duplicates() if name in typed else None
        for name, column in (("sites", "site_id"), ("skus", "sku_id"))
    }
    # Rows to expect: a CSV row takes at least 14 bytes ("2024-1-8,A,B,1" and its line end); a .gz
    # holds more (its columns grow when short).
    room = min(MAX_ROWS + 1, source.stat().st_size // 14 + 1) if isinstance(source, Path) else len(source)
    check = _DemandCheck(masters["sites"], masters["skus"], room)
    usable = (
        _demand_from_csv(source, check, found, progress)
        if isinstance(source, Path)
        else _demand_from_frame(source, check, found)
    )
    if not usable:
        return None
    if check.rows == 0:
        found.error(DEMAND.file_name, "required table has no rows")
    check.report_columns(found)
    return check if check.can_type else None


def _check_lanes(lanes: pd.DataFrame, found: _Collector) -> None:
    same = (lanes["from_site_id"] == lanes["to_site_id"]).to_numpy() & (lanes["from_site_id"] != "").to_numpy()
    found.rows(
        "lanes.csv",
        "to_site_id",
        same,
        lanes["to_site_id"],
        lambda got: f"a lane must join two distinct sites, got {_quote(got)} at both ends",
    )
    needs_capacity = (lanes["cost_per_truck"].to_numpy() > 0) & lanes["truck_capacity"].isna().to_numpy()
    found.rows(
        "lanes.csv",
        "truck_capacity",
        needs_capacity,
        lanes["cost_per_truck"].astype(str),
        lambda got: f"expected a number > 0 because cost_per_truck is {got}, got blank",
    )


def _as_of(settings: dict, demand: pd.DataFrame | None, found: _Collector) -> dt.date | None:
    raw = settings.get("as_of")
    if raw is not None:
        if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
            day = raw
        else:
            try:
                day = dt.date.fromisoformat(str(raw).strip())
            except ValueError:
                found.error("bundle.toml", f"as_of: expected a date as YYYY-MM-DD, got {_quote(str(raw))}")
                return None
        if not EARLIEST_AS_OF <= day <= LATEST_AS_OF:
            found.error(
                "bundle.toml",
                f"as_of: {day.isoformat()} is outside {EARLIEST_AS_OF.isoformat()} to {LATEST_AS_OF.isoformat()}",
            )
            return None
        return day
    if demand is None:
        return None
    latest = demand["date"].max()
    if pd.isna(latest):
        found.error(
            "demand.csv", "has no valid dates, so the planning date cannot be derived; add as_of to bundle.toml"
        )
        return None
    return (latest + pd.Timedelta(days=1)).date()


def _rate_card(settings: dict, found: _Collector) -> RateCard:
    raw = settings.get("rate_card", {})
    if not isinstance(raw, dict):
        found.error("bundle.toml", "rate_card: expected a table of numbers")
        return RateCard()
    try:
        return RateCard.from_mapping(raw)
    except ValueError as exc:
        found.error("bundle.toml", f"rate_card: {exc}")
        return RateCard()


def _warn(typed: dict[str, pd.DataFrame], as_of: dt.date, found: _Collector) -> None:
    demand = typed["demand"]  # site and sku as codes of the masters (see _DemandCheck.typed)
    sites, skus = demand["site_id"].cat.categories, demand["sku_id"].cat.categories
    inventory = typed["inventory"]
    stocked = np.zeros(len(sites) * len(skus), dtype=bool)
    stocked[
        sites.get_indexer(inventory["site_id"]).astype(np.int64) * len(skus) + skus.get_indexer(inventory["sku_id"])
    ] = True
    site, sku = demand["site_id"].cat.codes.to_numpy(), demand["sku_id"].cat.codes.to_numpy()
    stray = []  # per chunk of rows, the distinct pairs without stock, in order of first appearance
    for rows in row_chunks(len(demand)):
        pair = site[rows].astype(np.int64) * len(skus) + sku[rows]
        missing = pair[~stocked[pair]]
        if missing.size:
            stray.append(missing)
    if stray:
        first = stray[0][0]
        found.warn(
            "demand.csv",
            f"{np.unique(np.concatenate(stray)).size} site/sku pair(s) have demand but no inventory row; they hold zero stock (first: {sites[first // len(skus)]} / {skus[first % len(skus)]})",
        )
    del stray
    if len(demand) and demand["date"].max() >= pd.Timestamp(as_of):  # else no row can be (one pass, no mask)
        future = int((demand["date"] >= pd.Timestamp(as_of)).sum())
        found.warn(
            "demand.csv",
            f"{future} row(s) dated on or after the planning date {as_of}; history ends the day before",
        )
    if "inbound" in typed:
        late = (typed["inbound"]["eta"] < pd.Timestamp(as_of)).to_numpy()
        if late.any():
            found.warn(
                "inbound.csv",
                f"{int(late.sum())} order(s) have an eta before the planning date {as_of}: counted as due now (first on line {int(np.flatnonzero(late)[0]) + 2})",
            )
    sites = typed["sites"]
    origin = ((sites["lat"] == 0) & (sites["lon"] == 0)).to_numpy()
    found.rows(
        "sites.csv",
        "lat",
        origin,
        sites["site_id"],
        lambda got: f"site {_quote(got)} is at 0, 0 (in the ocean off Africa); missing coordinates?",
        warn=True,
    )


def _typed_bundle(
    typed: dict[str, pd.DataFrame], as_of: dt.date, rate_card: RateCard, warnings: list[Finding]
) -> Bundle:
    sites = typed["sites"].reset_index(drop=True)
    skus = typed["skus"].reset_index(drop=True)
    site_type = pd.CategoricalDtype(sites["site_id"].astype(str).tolist())
    sku_type = pd.CategoricalDtype(skus["sku_id"].astype(str).tolist())

    def ids(frame: pd.DataFrame) -> pd.DataFrame:
        # A table typed already (demand.csv's, streamed) is kept as it is: resetting its index and
        # casting its ids to the type they have copied a year's 111 M rows twice (8 s).
        if frame.index.equals(pd.RangeIndex(len(frame))):
            frame = frame.copy(deep=False)  # its columns may be replaced below; the caller's stay
        else:
            frame = frame.reset_index(drop=True)
        for col in frame.columns:
            kind = (
                site_type if col in ("site_id", "from_site_id", "to_site_id") else sku_type if col == "sku_id" else None
            )
            if kind is not None and frame[col].dtype != kind:
                frame[col] = frame[col].astype(kind)
        return frame

    for col in ("name", "region", "kind"):
        sites[col] = sites[col].astype(str)
    for col in ("name", "category"):
        skus[col] = skus[col].astype(str)
    sites["site_id"] = sites["site_id"].astype(str)
    skus["sku_id"] = skus["sku_id"].astype(str)
    skus["pack_size"] = skus["pack_size"].astype("int64")
    inventory = ids(typed["inventory"]).astype({"on_hand": "int64", "in_transit": "int64"})
    demand = ids(typed["demand"])
    empty_inbound = pd.DataFrame(
        {
            "site_id": pd.Series(dtype=site_type),
            "sku_id": pd.Series(dtype=sku_type),
            "qty": pd.Series(dtype="int64"),
            "eta": pd.Series(dtype="datetime64[ns]"),
        }
    )
    inbound = ids(typed["inbound"]).astype({"qty": "int64"}) if "inbound" in typed else empty_inbound
    empty_counts = pd.DataFrame(
        {
            "date": pd.Series(dtype="datetime64[ns]"),
            "site_id": pd.Series(dtype=site_type),
            "sku_id": pd.Series(dtype=sku_type),
            "counted_qty": pd.Series(dtype="int64"),
        }
    )
    counts = ids(typed["counts"]).astype({"counted_qty": "int64"}) if "counts" in typed else empty_counts
    forecast = ids(typed["forecast"]) if "forecast" in typed else None
    lanes = ids(typed["lanes"]) if "lanes" in typed else None
    return Bundle(sites, skus, inventory, demand, forecast, inbound, lanes, counts, as_of, rate_card, warnings)


# ----------------------------------------------------------------------------- the demand table, streamed

DAY_OFFSET = 1 << 17  # pandas' dates are within +-106,000 days of 1970: offset days are >= 0 and < 2^18
"""Keys of (date, site, sku) as one integer: dates as days + this offset."""


@dataclass
class _RuleRows:
    """Rows of a streamed table that break one rule: the first few, how many, the last line."""

    column: str
    say: Callable[[str], str]
    warn: bool = False
    examples: list[tuple[int, str]] = field(default_factory=list)
    count: int = 0
    last_line: int = 0

    def add(self, rows: np.ndarray, first_line: int, text_of: Callable[[int], str]) -> None:
        room = EXAMPLES_PER_RULE - len(self.examples)
        for i in rows[:room]:
            self.examples.append((first_line + int(i), text_of(int(i))))
        self.count += rows.size
        self.last_line = first_line + int(rows[-1])

    def report(self, table: str, found: _Collector) -> None:
        """The same findings :meth:`_Collector.rows` gives for a whole table."""
        say = found.warn if self.warn else found.error
        for line, text in self.examples:
            say(table, self.say(text), line, self.column)
        if self.count > EXAMPLES_PER_RULE:
            more = self.count - EXAMPLES_PER_RULE
            say(table, f"{more} more row(s) with the same problem (lines up to {self.last_line})", None, self.column)


def _distinct(cells: pa.Array) -> tuple[np.ndarray, pd.Series]:
    """A column of a batch as (index of each row's distinct cell, the distinct cells trimmed).

    Rules are evaluated once per distinct cell: a year of daily demand repeats a few hundred
    dates, quantities and sites, and a catalogue's skus, over a hundred million rows."""
    if not pa.types.is_dictionary(cells.type):
        cells = pc.dictionary_encode(cells)
    indices = cells.indices.to_numpy(zero_copy_only=False)
    return indices, pc.utf8_trim_whitespace(cells.dictionary).to_pandas().astype(object)


class _DemandCheck:
    """demand.csv checked batch by batch, with the rules and messages of every other table.

    A year of a national network's daily demand is over a hundred million rows: as text in
    pandas that is tens of gigabytes. Here each batch is dictionary-encoded by Arrow, every rule
    runs on the batch's distinct cells, and rows keep only their typed values (site and sku as
    codes of sites.csv and skus.csv, the day, the quantity). Findings are kept in the order a
    whole-table check gives them: the column rules now, unknown references and duplicate keys
    when :func:`_assemble` reaches those checks."""

    def __init__(self, sites: pd.Index | None, skus: pd.Index | None, room: int = 0) -> None:
        self.known = {"site": sites, "sku": skus}
        self.rows = 0
        self.column_rules: dict[tuple[str, int], _RuleRows] = {}
        self.reference_rules: dict[str, _RuleRows] = {}
        # Each row's typed values (``room``: rows expected, reserved up front).
        self.columns = {
            "site_id": _Column(_code_type(sites), room),
            "sku_id": _Column(_code_type(skus), room),
            "date": _Column(np.int64, room),  # nanoseconds of the day (NaT where the cell is no date)
            "qty": _Column(np.float64, room),
        }
        self.invalid: list[np.ndarray | None] = []  # per batch: rows failing a rule (None: none)
        self.batch_rows: list[int] = []
        self.increasing = [True, True]  # keys by position, by date
        self.last_key = [-1, -1]
        self.pairs = len(sites) * len(skus) if sites is not None and skus is not None else 0
        # Exports are sorted by the ids' text, not by the masters' row order: keys rank ids as text.
        self.rank = {
            name: np.argsort(np.argsort(index.astype(str).to_numpy(), kind="stable")).astype(np.int64)
            for name, index in (("site", sites), ("sku", skus))
            if index is not None
        }
        self.in_text_order = {name: bool((rank == np.arange(len(rank))).all()) for name, rank in self.rank.items()}
        self.too_many = False

    @property
    def can_type(self) -> bool:
        return self.known["site"] is not None and self.known["sku"] is not None

    def add(self, columns: dict[str, pa.Array]) -> None:
        """Check one batch (column name -> its text cells)."""
        first_line = self.rows + 2  # the header is line 1
        n = len(next(iter(columns.values())))
        self.rows += n
        if self.rows > MAX_ROWS:
            self.too_many = True
            return
        self.batch_rows.append(n)
        invalid = np.zeros(n, dtype=bool)
        any_invalid = False
        batch: dict[str, np.ndarray] = {}  # this batch's codes and days, for the order of its keys
        for col in DEMAND.columns:
            indices, text = _distinct(columns[col.name])
            values, rules = _column_rules(col, text)
            bad_cell = np.zeros(len(text), dtype=bool)
            for k, (mask, say) in enumerate(rules):
                slot = self.column_rules.setdefault((col.name, k), _RuleRows(col.name, say))
                bad_cell |= mask
                if mask.any():
                    rows = np.flatnonzero(mask[indices])
                    if rows.size:
                        slot.add(rows, first_line, lambda i, t=text, x=indices: str(t.iat[x[i]]))
            if col.references is not None:
                known = self.known[col.references]
                code = known.get_indexer(values) if known is not None else np.full(len(text), -1)
                unknown = (code < 0) & (text != "").to_numpy()
                master = "sites.csv" if col.references == "site" else "skus.csv"
                slot = self.reference_rules.setdefault(
                    col.name,
                    _RuleRows(
                        col.name,
                        lambda got, r=col.references, m=master: f"unknown {r} {_quote(got)} (not in {m})",
                    ),
                )
                if known is not None and unknown.any():
                    rows = np.flatnonzero(unknown[indices])
                    if rows.size:
                        slot.add(rows, first_line, lambda i, t=text, x=indices: str(t.iat[x[i]]))
                bad_cell |= code < 0
                batch[col.name] = code.astype(_code_type(known))[indices]
                self.columns[col.name].add(batch[col.name])
            elif col.kind == "date":
                day = values.to_numpy().astype("datetime64[D]").astype(np.int64)
                missing = values.isna().to_numpy()
                batch["day"] = np.where(missing, -DAY_OFFSET, day).astype(np.int32)[indices]
                self.columns["date"].add(np.where(missing, NAT, day * DAY_NS)[indices])
            else:
                self.columns["qty"].add(values.to_numpy(np.float64)[indices])
            if bad_cell.any():
                hit = bad_cell[indices]
                if hit.any():
                    invalid |= hit
                    any_invalid = True
        self.invalid.append(invalid if any_invalid else None)
        if self.can_type:
            self._follow_order(batch["day"], batch["site_id"], batch["sku_id"], invalid)

    def _follow_order(self, day: np.ndarray, site: np.ndarray, sku: np.ndarray, invalid: np.ndarray) -> None:
        """Whether the keys so far are strictly increasing by position or by date (batch by batch,
        while they are in cache): files in either order need no sort to prove no key repeats.
        Ids compare as text (as an export sorts them)."""
        if not any(self.increasing):
            return  # neither order holds: nothing left to follow
        if invalid.any():
            keep = ~invalid
            day, site, sku = day[keep], site[keep], sku[keep]
        site_rank, sku_rank = (self.rank[name] for name in ("site", "sku"))
        # Masters listed in text order (most exports) rank as their codes: no gather needed.
        pair = (site.astype(np.int64) if self.in_text_order["site"] else site_rank[site]) * len(self.known["sku"])
        pair += sku if self.in_text_order["sku"] else sku_rank[sku]
        offset_day = day.astype(np.int64) + DAY_OFFSET
        for order in (0, 1):
            if self.increasing[order] and pair.size:  # a key only for an order that still holds
                keys = pair << 18 | offset_day if order == 0 else offset_day * self.pairs + pair
                self.increasing[order] = bool(keys[0] > self.last_key[order]) and _increasing(keys)
                self.last_key[order] = int(keys[-1])

    def report_columns(self, found: _Collector) -> None:
        if self.too_many:
            found.error(
                DEMAND.file_name,
                f"has more than {MAX_ROWS:,} rows; at most {MAX_ROWS:,} are accepted (REBAL_MAX_ROWS raises the limit)",
            )
            return
        for slot in self.column_rules.values():
            slot.report(DEMAND.file_name, found)

    def report_references(self, found: _Collector) -> None:
        for slot in self.reference_rules.values():
            slot.report(DEMAND.file_name, found)

    def _day_site_sku(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row's day (-DAY_OFFSET where there is none), site code and sku code."""
        ns = self.columns["date"].all()
        day = np.where(ns == NAT, -DAY_OFFSET, ns // DAY_NS).astype(np.int32)
        return day, self.columns["site_id"].all(), self.columns["sku_id"].all()

    def report_duplicates(self, found: _Collector) -> None:
        """Rows repeating a (date, site, sku) of an earlier row, as :func:`_check_key` says them.

        Files from other systems are usually sorted by date or by position: when the keys are
        strictly increasing in either order there is nothing to find and nothing is sorted."""
        if self.too_many or not self.can_type or self.rows == 0:
            return
        if any(self.increasing):
            return
        every_day, every_site, every_sku = day, site, sku = self._day_site_sku()
        rows = None  # row numbers of the rows keyed, when some are left out
        if any(v is not None for v in self.invalid):
            rows = np.flatnonzero(~self._invalid_rows())
            day, site, sku = day[rows], site[rows], sku[rows]
        pair = site.astype(np.int64) * len(self.known["sku"]) + sku
        by_position = pair << 18 | (day.astype(np.int64) + DAY_OFFSET)
        del pair
        order = np.argsort(by_position, kind="stable")
        ordered = by_position[order]
        repeat = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
        if repeat.size == 0:
            return
        run_start = np.maximum.accumulate(
            np.where(np.r_[True, ordered[1:] != ordered[:-1]], np.arange(ordered.size), 0)
        )
        dup_row, first_row = order[repeat], order[run_start[repeat]]
        if rows is not None:
            dup_row, first_row = rows[dup_row], rows[first_row]
        by_line = np.argsort(dup_row, kind="stable")
        dup_row, first_row = dup_row[by_line], first_row[by_line]
        sites, skus = self.known["site"], self.known["sku"]
        examples = [
            (
                int(r) + 2,
                f"{np.datetime64(int(every_day[r]), 'D')}, {sites[every_site[r]]}, {skus[every_sku[r]]}",
                int(f) + 2,
            )
            for r, f in zip(dup_row[:EXAMPLES_PER_RULE], first_row[:EXAMPLES_PER_RULE])
        ]
        _report_duplicates(DEMAND, examples, dup_row.size, found)

    def _invalid_rows(self) -> np.ndarray:
        """Rows breaking a rule (unknown references included): left out of the key check."""
        return np.concatenate(
            [v if v is not None else np.zeros(n, bool) for v, n in zip(self.invalid, self.batch_rows)]
        )

    def typed(self) -> pd.DataFrame:
        """The demand table typed as :func:`_typed_bundle` gives every table (only when all is valid)."""
        site_type = pd.CategoricalDtype(self.known["site"].astype(str).tolist())
        sku_type = pd.CategoricalDtype(self.known["sku"].astype(str).tolist())
        # One call, no copies: four columns of four dtypes are four blocks that keep the arrays the
        # rows were written into (adding columns one by one copied each: 111 M rows, about 10 s).
        return pd.DataFrame(
            {
                "date": self.columns["date"].all().view("datetime64[ns]"),
                "site_id": pd.Categorical.from_codes(self.columns["site_id"].all(), dtype=site_type),
                "sku_id": pd.Categorical.from_codes(self.columns["sku_id"].all(), dtype=sku_type),
                "qty": self.columns["qty"].all(),
            },
            copy=False,
        )


NAT = np.iinfo(np.int64).min  # NaT as nanoseconds
DAY_NS = 86_400_000_000_000


class _Column:
    """One column of a streamed table written batch after batch into one array. Room for the rows
    expected is reserved up front (virtual memory: a page costs only when written) and doubled when
    short, so rows are never held twice (batches kept, then joined, held a year's 1.8 GB twice)."""

    def __init__(self, dtype: type, room: int) -> None:
        self.values = np.empty(max(0, int(room)), dtype=dtype)
        self.size = 0

    def add(self, part: np.ndarray) -> None:
        end = self.size + len(part)
        if end > len(self.values):
            grown = np.empty(max(end, 2 * len(self.values)), dtype=self.values.dtype)
            grown[: self.size] = self.values[: self.size]
            self.values = grown
        self.values[self.size : end] = part
        self.size = end

    def all(self) -> np.ndarray:
        return self.values[: self.size]


def _code_type(known: pd.Index | None) -> type:
    """The smallest integer holding a master's codes (and -1): 850,000 positions' year of demand
    is a hundred million rows, two bytes a code instead of four."""
    return np.int16 if known is not None and len(known) < 32_000 else np.int32


def _increasing(keys: np.ndarray) -> bool:
    """Strictly increasing (no key twice, in order): checked in slices to spare a second copy."""
    step = 1 << 22
    for start in range(0, max(0, keys.size - 1), step):
        part = keys[start : start + step + 1]
        if not bool((part[1:] > part[:-1]).all()):
            return False
    return True


def _demand_from_csv(path: Path, check: _DemandCheck, found: _Collector, progress: Progress) -> bool:
    """Stream demand.csv through ``check``; False (with errors) when the file cannot be used."""
    label = DEMAND.file_name
    size = max(1, path.stat().st_size)
    with _csv_file(path, label, found) as opened:
        if opened is None:
            return False
        path, names = opened
        if not _columns_present(DEMAND, [n for n in names if n], found):
            return False
        wanted = [c.name for c in DEMAND.columns]
        kept = [n for n in names if n in wanted]
        try:
            reader = pacsv.open_csv(path, **_csv_options(names, pa.dictionary(pa.int32(), pa.string()), wanted))
            for batch in reader:
                check.add(dict(zip(kept, batch.columns)))
                if check.too_many:
                    break
                progress(min(0.99, check.rows * 34 / size), f"checking demand.csv: {check.rows:,} rows")
        except PARSE_FAILURES as exc:
            _unparseable(exc, path, label, len(names), found)
            return False
    return True


def _demand_from_frame(frame: pd.DataFrame, check: _DemandCheck, found: _Collector) -> bool:
    """The demand sheet of a workbook (text cells) through the same check."""
    if not _columns_present(DEMAND, list(frame.columns), found):
        return False
    cells = {c.name: pa.array(frame[c.name].astype(str).to_numpy(), pa.string()) for c in DEMAND.columns}
    if len(frame):
        check.add(cells)
    return True
