"""The canonical tables of DESIGN.md as explicit schemas, and the checks that enforce them.

Every adapter produces frames in these shapes; `conform` casts a frame to its table's
exact Arrow schema (column order, dtypes) so that written Parquet is stable byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa

from datasets.errors import DataValidationError, check_rows

EVENT_TYPES = (
    "view",
    "search",
    "click",
    "cart",
    "purchase",
    "return",
    "review",
    "share",
    "coupon_redeem",
)
# The membership kinds of DESIGN.md, plus "email": a marketing contact (Hillstrom's arms).
OfferKind = Literal[
    "coupon",
    "member_price",
    "exclusive_item",
    "free_shipping",
    "points_multiplier",
    "member_day",
    "priority_service",
    "email",
]
OFFER_KINDS: tuple[str, ...] = get_args(OfferKind)
PERSONAL_FIELDS = (
    "name",
    "first_name",
    "last_name",
    "email",
    "e_mail",
    "phone",
    "mobile",
    "address",
    "street",
    "postcode",
    "zip",
)

_TS = pa.timestamp("us", tz="UTC")
_ARROW = {
    "string": pa.string(),
    "timestamp": _TS,
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "list": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of _ARROW's keys
    required: bool = True
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    extra_prefixes: tuple[str, ...] = ()  # adapter-specific columns allowed by prefix
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _c(name: str, kind: str, required: bool = True, nullable: bool = True) -> Column:
    return Column(name, kind, required, nullable)


TABLES: dict[str, Table] = {
    "members": Table(
        "members",
        (
            _c("member_id", "string", nullable=False),
            _c("joined_at", "timestamp"),
            _c("tier", "string"),
            _c("points_balance", "float"),
            _c("region", "string"),
            _c("age_band", "string"),
        ),
        key=("member_id",),
        extra_prefixes=("attr_", "label_"),
    ),
    "items": Table(
        "items",
        (
            _c("item_id", "string", nullable=False),
            _c("category", "string"),
            _c("subcategory", "string"),
            _c("brand", "string"),
            _c("price", "float"),
            _c("title", "string", required=False),
        ),
        key=("item_id",),
    ),
    "events": Table(
        "events",
        (
            _c("member_id", "string", nullable=False),
            _c("ts", "timestamp", nullable=False),
            _c("event_type", "string", nullable=False),
            _c("item_id", "string"),
            _c("quantity", "float"),
            _c("amount", "float"),
            _c("channel", "string"),
            _c("session_id", "string"),
            _c("query", "string"),
            _c("discount", "float", required=False),
        ),
        enums={"event_type": EVENT_TYPES},
    ),
    "offers": Table(
        "offers",
        (
            _c("offer_id", "string", nullable=False),
            _c("kind", "string", nullable=False),
            _c("scope", "list"),
            _c("value", "float"),
            _c("cost", "float"),
            _c("eligible_tiers", "list"),
            _c("eligible_segments", "list"),
            _c("valid_from", "timestamp"),
            _c("valid_to", "timestamp"),
            _c("budget", "float"),
            _c("title", "string", required=False),
        ),
        key=("offer_id",),
        enums={"kind": OFFER_KINDS},
    ),
    "exposures": Table(
        "exposures",
        (
            _c("member_id", "string", nullable=False),
            _c("offer_id", "string", nullable=False),
            _c("ts", "timestamp"),
            _c("treated", "bool", nullable=False),
            _c("outcome", "float"),
            _c("outcome_value", "float"),
            _c("randomized", "bool", required=False),
            _c("visit", "float", required=False),
        ),
    ),
}
TABLE_NAMES = tuple(TABLES)


def arrow_schema(table: str, frame: pd.DataFrame | None = None) -> pa.Schema:
    """Exact Arrow schema of a table; extra prefixed columns are typed from the frame."""
    spec = TABLES[table]
    fields = [pa.field(c.name, _ARROW[c.kind], c.nullable) for c in spec.columns]
    if frame is not None:
        for name in extra_columns(table, frame):
            dtype = frame[name].dtype
            inferred = pd.api.types.infer_dtype(frame[name], skipna=True)
            if pd.api.types.is_bool_dtype(dtype) or inferred == "boolean":
                typ = pa.bool_()
            elif pd.api.types.is_numeric_dtype(dtype):
                typ = pa.float64()
            else:
                typ = pa.string()
            fields.append(pa.field(name, typ))
    return pa.schema(fields)


def extra_columns(table: str, frame: pd.DataFrame) -> list[str]:
    """Adapter-specific columns a table allows by prefix, sorted for a stable layout."""
    prefixes = TABLES[table].extra_prefixes
    return sorted(c for c in frame.columns if prefixes and c.startswith(prefixes))


def empty(table: str) -> pd.DataFrame:
    """An empty frame of a table (a source without that table gets this, not inventions)."""
    return arrow_schema(table).empty_table().to_pandas()


def conform(table: str, frame: pd.DataFrame, *, file: str = "<frame>") -> pd.DataFrame:
    """Cast to the table's schema: add optional columns, order them, check types and enums.

    Raises DataValidationError naming the file, the column and the first bad rows.
    """
    spec = TABLES[table]
    missing = [c.name for c in spec.columns if c.required and c.name not in frame.columns]
    if missing:
        raise DataValidationError(f"table '{table}' is missing required column(s) {missing}", file=file)
    out = pd.DataFrame(index=frame.index)
    for col in spec.columns:
        values = frame[col.name] if col.name in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        out[col.name] = _cast(values, col, table, file)
        if not col.nullable:
            bad = out[col.name].isna().to_numpy()
            if bad.any():
                rows = np.flatnonzero(bad)
                raise DataValidationError(
                    f"table '{table}' has empty values in non-nullable column", file=file, column=col.name, rows=rows
                )
    for name, allowed in spec.enums.items():
        bad = ~out[name].isin(allowed) & out[name].notna()
        check_rows(bad, f"table '{table}' has values outside {list(allowed)}", file=file, column=name, values=out[name])
    for name in extra_columns(table, frame):
        out[name] = frame[name]
    return out.reset_index(drop=True)


def _cast(values: pd.Series, col: Column, table: str, file: str) -> pd.Series:
    kind = col.kind
    if kind == "string":
        return values.astype("string[pyarrow]").astype(pd.ArrowDtype(pa.string()))
    if kind in ("float", "int"):
        num = pd.to_numeric(values, errors="coerce")
        bad = num.isna() & values.notna()
        check_rows(bad, f"table '{table}' expects numbers", file=file, column=col.name, values=values)
        return num.astype("float64") if kind == "float" else num.astype("Int64")
    if kind == "bool":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype("boolean")
        mapped = values.astype("string").str.strip().str.lower().map(_BOOL, na_action="ignore")
        bad = mapped.isna() & values.notna()
        check_rows(bad, f"table '{table}' expects booleans (true/false/1/0)", file=file, column=col.name, values=values)
        return mapped.astype("boolean")
    if kind == "timestamp":
        return to_utc(values, table=table, column=col.name, file=file)
    if kind == "list":
        return values.map(_as_list, na_action="ignore")
    raise AssertionError(kind)


_BOOL = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False, "yes": True, "no": False}


def _as_list(v: object) -> list[str]:
    if isinstance(v, str):
        return [s.strip() for s in v.split("|") if s.strip()]
    return [str(s) for s in v]  # type: ignore[union-attr]


def to_utc(
    values: pd.Series, *, table: str = "", column: str = "ts", file: str = "<frame>", tz: str | None = None
) -> pd.Series:
    """Parse timestamps to UTC; naive values are read in `tz` (UTC when None).

    An unparseable value is an error naming the file, column and first bad rows; a missing
    value stays missing (the caller decides whether that is allowed).
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_numeric_dtype(values.dtype):
        raise DataValidationError(
            f"table '{table}' expects ISO timestamps, got numbers",
            file=file,
            column=column,
            rows=[0],
            values=values.iloc[:1].tolist(),
        )
    if pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values
    else:
        parsed = _parse_mixed(values, tz)
        bad = parsed.isna() & values.notna() & (values.astype("string").str.strip() != "")
        check_rows(bad, f"table '{table}' has unparseable timestamps", file=file, column=column, values=values)
    if getattr(parsed.dt, "tz", None) is None:
        # DST fall-back hours are read as standard time; spring-forward gaps shift forward.
        ambiguous = np.zeros(len(parsed), dtype=bool)
        parsed = parsed.dt.tz_localize(tz or "UTC", ambiguous=ambiguous, nonexistent="shift_forward")
    return parsed.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def _parse_mixed(values: pd.Series, tz: str | None) -> pd.Series:
    """Parse strings that may mix UTC offsets (across a DST change) with naive values.

    Values with an offset become UTC; naive ones are localized to `tz` by the caller.
    """
    text = values.astype("string").str.strip()
    has_offset = text.str.contains(r"(?:[+-]\d{2}:?\d{2}|Z)$", regex=True).fillna(False).to_numpy()
    if not has_offset.any():
        return pd.to_datetime(text, errors="coerce", format="mixed")
    aware = pd.to_datetime(text.where(has_offset), errors="coerce", format="mixed", utc=True)
    if has_offset.all():
        return aware
    naive = pd.to_datetime(text.where(~has_offset), errors="coerce", format="mixed")
    ambiguous = np.zeros(len(naive), dtype=bool)
    local = naive.dt.tz_localize(tz or "UTC", ambiguous=ambiguous, nonexistent="shift_forward").dt.tz_convert("UTC")
    return aware.where(has_offset, local)
