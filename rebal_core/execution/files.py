"""CSV output that is safe to open in a spreadsheet."""

from __future__ import annotations

import io
import json
import math
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from rebal_core.decisions.planning import Plan

FORMULA_STARTS = ("=", "+", "-", "@", "|", "%")  # after NFKC and leading blanks; "|" and "%" for DDE and LibreOffice
CONTROL_STARTS = ("\t", "\r", "\n")


def is_formula_like(value: object) -> bool:
    """Would a spreadsheet run this cell (OWASP CSV injection)? Text that starts with ``= + - @``
    (also ``|``, ``%``), with tab, CR or LF, or with such a character after blanks, in any
    Unicode form (full-width ``＝``, ideographic space...)."""
    if not isinstance(value, str) or not value:
        return False
    if value.startswith(CONTROL_STARTS):
        return True
    return unicodedata.normalize("NFKC", value).lstrip(" \t\r\n\u00a0\u3000\ufeff").startswith(FORMULA_STARTS)


def neutralize_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with a quote: the one
    spreadsheet-safety rule of every export (CSV, xlsx, the pages' download buttons).

    Only text columns are touched: numbers such as -3 stay numbers.
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or isinstance(out[col].dtype, pd.StringDtype | pd.CategoricalDtype):
            text = out[col].astype(object)
            risky = text.map(is_formula_like).astype(bool)
            out[col] = text.where(~risky, "'" + text.astype(str))
    out.columns = ["'" + c if is_formula_like(c) else c for c in map(str, out.columns)]
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 with a byte-order mark, so Excel reads accents right; formulas neutralised."""
    # CRLF rows (what Excel writes) also make the csv module quote any cell holding a bare CR
    return neutralize_formulas(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


def jsonable(value):
    """JSON has no NaN or infinity: such figures become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def summary_json(plan: Plan) -> str:
    return json.dumps(jsonable(plan.summary().as_dict()), indent=2, default=str)


def write_plan(plan: Plan, out: str | Path, summary: str | Path | None = None) -> None:
    """PLAN.csv (one row per transfer line, spreadsheet-safe) and optionally SUMMARY.json."""
    Path(out).write_bytes(to_csv_bytes(plan.table))
    if summary:
        Path(summary).write_text(summary_json(plan), encoding="utf-8")


def to_xlsx_bytes(frame: pd.DataFrame, sheet: str = "transfer orders") -> bytes:
    """An Excel workbook of ``frame``; text cells that would run as formulas are neutralised here too."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        neutralize_formulas(frame).to_excel(writer, index=False, sheet_name=sheet[:31])
    return buffer.getvalue()
