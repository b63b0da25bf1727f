"""The input contract (``shared/spec/data-contract.md``) written down as data.

Each table is a tuple of :class:`Column` rules; the loader in
:mod:`rebal_core.signals.bundle` applies them column by column, vectorized, so that a
bundle of millions of rows validates in seconds and every error can name its
table, line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal["id", "text", "number", "whole", "date", "choice"]


@dataclass(frozen=True)
class Column:
    """One column of a bundle table and what its values must be."""

    name: str
    kind: Kind
    required: bool = True
    """Required columns must be present and non-blank; optional ones may be
    missing or blank and then take :attr:`default`."""
    default: float | str | None = None
    minimum: float | None = None
    minimum_inclusive: bool = True
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    references: Literal["site", "sku"] | None = None

    def expectation(self) -> str:
        """The planner-readable phrase used in error messages ("a whole number >= 0")."""
        if self.kind == "id":
            text = "a non-empty identifier"
        elif self.kind == "text":
            text = "non-empty text"
        elif self.kind == "date":
            text = "a date as YYYY-MM-DD"
        elif self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        else:
            text = "a whole number" if self.kind == "whole" else "a number"
            if self.minimum is not None:
                text += f" {'>=' if self.minimum_inclusive else '>'} {_fmt(self.minimum)}"
            if self.maximum is not None:
                text += f" and <= {_fmt(self.maximum)}" if self.minimum is not None else f" <= {_fmt(self.maximum)}"
        if not self.required:
            text += " or blank"
        return text


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    required: bool
    key: tuple[str, ...] = ()
    """Columns whose combination must be unique."""

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


SITE_KINDS = ("dc", "store", "fc", "warehouse")

SITES = Table(
    "sites",
    (
        Column("site_id", "id"),
        Column("name", "text"),
        Column("kind", "choice", choices=SITE_KINDS),
        Column("region", "text"),
        Column("lat", "number", minimum=-90, maximum=90),
        Column("lon", "number", minimum=-180, maximum=180),
        Column("receive_capacity_units", "whole", required=False, minimum=0),
    ),
    required=True,
    key=("site_id",),
)

SKUS = Table(
    "skus",
    (
        Column("sku_id", "id"),
        Column("name", "text"),
        Column("category", "text"),
        Column("unit_cost", "number", minimum=0, minimum_inclusive=False),
        Column("unit_price", "number", required=False, minimum=0),
        Column("unit_volume", "number", required=False, default=1.0, minimum=0, minimum_inclusive=False),
        Column("pack_size", "whole", required=False, default=1, minimum=1),
        Column("criticality", "number", required=False, default=1.0, minimum=0, minimum_inclusive=False),
        Column("shelf_life_days", "whole", required=False, minimum=0, minimum_inclusive=False),
        Column("replenishment_days", "number", required=False, minimum=0),
    ),
    required=True,
    key=("sku_id",),
)

_PAIR = (Column("site_id", "id", references="site"), Column("sku_id", "id", references="sku"))

INVENTORY = Table(
    "inventory",
    (
        *_PAIR,
        Column("on_hand", "whole", minimum=0),
        Column("in_transit", "whole", required=False, default=0, minimum=0),
        Column("replenishment_days", "number", required=False, minimum=0),
    ),
    required=True,
    key=("site_id", "sku_id"),
)

DEMAND = Table(
    "demand",
    (Column("date", "date"), *_PAIR, Column("qty", "number", minimum=0)),
    required=True,
    key=("date", "site_id", "sku_id"),
)

FORECAST = Table(
    "forecast",
    (*_PAIR, Column("mean_daily", "number", minimum=0), Column("std_daily", "number", minimum=0)),
    required=False,
    key=("site_id", "sku_id"),
)

INBOUND = Table(
    "inbound",
    (*_PAIR, Column("qty", "whole", minimum=0, minimum_inclusive=False), Column("eta", "date")),
    required=False,
)

LANES = Table(
    "lanes",
    (
        Column("from_site_id", "id", references="site"),
        Column("to_site_id", "id", references="site"),
        Column("lead_time_days", "number", minimum=0),
        Column("cost_per_unit", "number", minimum=0),
        Column("cost_per_truck", "number", required=False, default=0.0, minimum=0),
        Column("truck_capacity", "number", required=False, minimum=0, minimum_inclusive=False),
        Column("max_units", "whole", required=False, minimum=0, minimum_inclusive=False),
    ),
    required=False,
    key=("from_site_id", "to_site_id"),
)

COUNTS = Table(
    "counts",
    (Column("date", "date"), *_PAIR, Column("counted_qty", "whole", minimum=0)),
    required=False,
)

TABLES: tuple[Table, ...] = (SITES, SKUS, INVENTORY, DEMAND, FORECAST, INBOUND, LANES, COUNTS)
TABLES_BY_NAME = {t.name: t for t in TABLES}


def datetimes(values: pd.Series) -> np.ndarray:
    """A date column as datetime64 values: a typed column as it is (``pd.to_datetime`` would still
    look at every one of a hundred million rows), anything else parsed."""
    return (values if pd.api.types.is_datetime64_dtype(values) else pd.to_datetime(values)).to_numpy()


def id_codes(ids: pd.Series) -> pd.Series:
    """An id column as a categorical (a bundle's already is: its codes are the masters' rows);
    text ids get one. Large tables are grouped and joined on these codes, never on the text."""
    return ids if isinstance(ids.dtype, pd.CategoricalDtype) else ids.astype(str).astype("category")
