"""The contract between a source adapter and `prepare`.

An adapter reads raw files and returns frames already in canonical column names, with RAW
member ids (prepare pseudonymizes them), `_source_file`/`_source_row` for tracing, and
`_reason` set on rows that are dirty for source-specific reasons (e.g. a cancellation).
Generic checks (missing member id, timestamps out of range, non-positive values,
duplicates) are applied by prepare to every source alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.errors import DataValidationError, check_rows
from datasets.quarantine import SOURCE_FILE, SOURCE_ROW


@dataclass
class RawTables:
    """Canonical-shaped frames from one source, before cleaning and pseudonymization."""

    source: str
    events: Callable[[], Iterator[pd.DataFrame]]  # yields chunks; called once
    members: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    offers: pd.DataFrame | None = None
    exposures: pd.DataFrame | None = None
    paths: list[Path] = field(default_factory=list)  # input files (their bytes identify the batch)
    files: dict[str, int] = field(default_factory=dict)  # raw file name -> data rows read
    timezone: str = "UTC"  # local zone of the source's clock (for time-of-day habits)
    events_rows_hint: int = 0  # expected event rows, for choosing partitions
    has_tiers: bool = False  # the source carries its own tier and points
    id_namespace: str = ""  # keeps pseudonyms of different sources apart


def content_hash(paths: list[Path]) -> str:
    """sha256 over the bytes of the input files (identifies a batch by content)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def require_file(path: Path) -> Path:
    """The path if it is a non-empty file, else a clear error."""
    if not path.exists():
        raise DataValidationError("input file not found", file=str(path))
    if path.is_file() and path.stat().st_size == 0:
        raise DataValidationError("input file is empty", file=str(path))
    return path


def read_csv(path: Path, required: list[str], **kwargs) -> pd.DataFrame:
    """Read a raw CSV as strings, checking it is non-empty and has the required columns."""
    require_file(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError("input file has no header or rows", file=str(path)) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"input file is not readable as CSV: {exc}", file=str(path)) from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {missing}; found {list(df.columns)}", file=str(path), column=missing[0]
        )
    if df.empty:
        raise DataValidationError("input file has a header but no rows", file=str(path))
    df[SOURCE_FILE] = path.name
    df[SOURCE_ROW] = np.arange(len(df), dtype=np.int64)
    return df


def numeric(df: pd.DataFrame, column: str, file: str) -> pd.Series:
    """A raw string column as float; a non-numeric value is an error naming the rows."""
    raw = df[column]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna()
    check_rows(bad, "expects numbers", file=file, column=column, values=raw)
    return num.astype("float64")
