"""CSV output that is safe to open in a spreadsheet."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from rebal_core.planning import Plan

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with a quote (OWASP CSV injection).

    Only text columns are touched: numbers such as -3 stay numbers.
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or isinstance(out[col].dtype, pd.StringDtype | pd.CategoricalDtype):
            text = out[col].astype(object)
            risky = text.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
            out[col] = text.where(~risky, "'" + text.astype(str))
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 with a byte-order mark, so Excel reads accents right; formulas neutralised."""
    return neutralize_formulas(frame).to_csv(index=False).encode("utf-8-sig")


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
    return json.dumps(jsonable(plan.summary()), indent=2, default=str)


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
