"""A platform's own data already in the canonical schema (DESIGN.md): CSV or Parquet files.

The folder holds any of members, items, events, offers, exposures, each as `<table>.csv`,
`<table>.csv.gz`, `<table>.parquet`, or a folder `<table>/` of `*.parquet` / `*.csv[.gz]` parts.
Events are streamed in chunks of `cfg.chunk_rows`. Timestamps must carry an offset; naive
ones are read as UTC. List columns in CSV are written "a|b|c". Columns of MUST are required;
other canonical columns may be absent (filled with nulls, with a warning). Unknown columns
are ignored, and columns that look personal (e-mail, phone, ...) are dropped and logged:
they never enter Tailor. Missing member ids and out-of-range values are left to prepare's
quarantine; values that cannot be read as their type are errors naming file, column, rows.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from datasets import quarantine as q
from datasets.errors import DataValidationError
from datasets.schema import PERSONAL_FIELDS, TABLE_NAMES, TABLES
from datasets.settings import PrepareConfig
from datasets.sources.base import RawTables, require_file

log = logging.getLogger(__name__)
TIMEZONE = "UTC"
# Columns a file of each table must have; the other canonical columns are optional here.
MUST = {
    "members": ("member_id",),
    "items": ("item_id", "category", "price"),
    "events": ("member_id", "ts", "event_type", "item_id"),
    "offers": ("offer_id", "kind"),
    "exposures": ("member_id", "offer_id", "treated"),
}
# Nulls that prepare quarantines (missing_<key>, missing_ts); other non-nullable nulls are errors.
_QUARANTINED_NULLS = {"member_id", "item_id", "offer_id", "ts"}
_SUFFIXES = (".parquet", ".csv", ".csv.gz")
_BOOL = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False, "1.0": True, "0.0": False}
_PERSONAL_WORDS = ("email", "e_mail", "phone", "address")  # personal wherever they appear in a name


def read(path: Path, cfg: PrepareConfig) -> RawTables:
    """Map a folder of canonical tables to RawTables (events streamed lazily)."""
    path = Path(path)
    if not path.is_dir():
        raise DataValidationError("the canonical source expects a folder of table files", file=str(path))
    found = {t: _files(path, t) for t in TABLE_NAMES}
    if not found["events"] and not found["members"]:
        raise DataValidationError(
            f"no events or members files found; expected e.g. events.parquet, events.csv(.gz) or events/*.parquet "
            f"(tables: {', '.join(TABLE_NAMES)})",
            file=str(path),
        )
    files: dict[str, int] = {}
    small = {}
    for table in ("members", "items", "offers", "exposures"):
        frames = [_read_small(f, table, path, files) for f in found[table]]
        small[table] = pd.concat(frames, ignore_index=True) if frames else None
    hint = 0
    for f in found["events"]:
        _check_header(_rel(f, path), "events", _columns(f))
        files[_rel(f, path)] = rows = _count_rows(f)
        hint += rows
    members = small["members"]
    return RawTables(
        source="canonical",
        events=lambda: _stream_events(found["events"], path, cfg.chunk_rows, files),
        members=members,
        items=small["items"],
        offers=small["offers"],
        exposures=small["exposures"],
        paths=[f for t in TABLE_NAMES for f in found[t]],
        files=files,
        timezone=TIMEZONE,
        events_rows_hint=hint,
        has_tiers=members is not None and "tier" in members.columns and bool(members["tier"].notna().any()),
        id_namespace="canonical",
    )


def _files(root: Path, table: str) -> list[Path]:
    """The input files of one table: a single file or the sorted parts of a folder."""
    single = [root / f"{table}{s}" for s in _SUFFIXES if (root / f"{table}{s}").is_file()]
    folder = root / table
    parts = sorted(p for s in _SUFFIXES for p in folder.glob(f"*{s}")) if folder.is_dir() else []
    if len(single) + bool(parts) > 1:
        shown = [p.name for p in single] + ([f"{table}/"] if parts else [])
        raise DataValidationError(f"table '{table}' is given more than once: {shown}; keep one", file=str(root))
    if folder.is_dir() and not parts:
        raise DataValidationError(f"folder '{table}/' holds no *.parquet or *.csv parts", file=str(folder))
    return [require_file(p) for p in single + parts]


def _rel(f: Path, root: Path) -> str:
    return f.relative_to(root).as_posix()


def _columns(f: Path) -> list[str]:
    if f.name.endswith(".parquet"):
        return list(pq.ParquetFile(f).schema_arrow.names)
    try:
        return list(pd.read_csv(f, nrows=0).columns)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError("input file has no header", file=str(f)) from exc


def _normalize(name: object) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def is_personal(column: str) -> bool:
    """Whether a column name looks like personal data (matched by word, e.g. `customer_email`)."""
    name = _normalize(column)
    words = set(name.split("_"))
    return bool(words & set(PERSONAL_FIELDS)) or any(w in name for w in (*_PERSONAL_WORDS, "first_name", "last_name"))


def _check_header(file: str, table: str, columns: list[str]) -> None:
    names = [_normalize(c) for c in columns]
    missing = [c for c in MUST[table] if c not in names]
    if missing:
        raise DataValidationError(
            f"table '{table}' is missing required column(s) {missing}; found {list(columns)}",
            file=file,
            column=missing[0],
        )


def _count_rows(f: Path) -> int:
    """Data rows of a file: Parquet metadata, or a line count (a hint: quoted newlines overcount)."""
    if f.name.endswith(".parquet"):
        return pq.ParquetFile(f).metadata.num_rows
    opener = gzip.open if f.name.endswith(".gz") else open
    with opener(f, "rb") as fh:
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 22), b""))
    return max(0, lines - 1)


def _read_small(f: Path, table: str, root: Path, files: dict[str, int]) -> pd.DataFrame:
    raw = pd.read_parquet(f) if f.name.endswith(".parquet") else _read_csv(f)
    files[_rel(f, root)] = len(raw)
    return parse(raw, table, _rel(f, root), 0)


def _read_csv(f: Path, chunksize: int | None = None):
    try:
        return pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunksize)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError("input file has no header or rows", file=str(f)) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"input file is not readable as CSV: {exc}", file=str(f)) from exc


def _stream_events(paths: list[Path], root: Path, chunk_rows: int, files: dict[str, int]) -> Iterator[pd.DataFrame]:
    """Parsed event chunks, file by file; `files` gets each file's true row count once read."""
    for f in paths:
        rel, row0 = _rel(f, root), 0
        if f.name.endswith(".parquet"):
            pf = pq.ParquetFile(f)
            chunks = (b.to_pandas() for b in pf.iter_batches(batch_size=chunk_rows))
        else:
            chunks = _read_csv(f, chunksize=chunk_rows)
        try:
            for raw in chunks:
                yield parse(raw, "events", rel, row0)
                row0 += len(raw)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataValidationError(f"input file is not readable: {exc}", file=rel) from exc
        files[rel] = row0


def parse(raw: pd.DataFrame, table: str, file: str, row0: int) -> pd.DataFrame:
    """Canonical columns typed, personal and unknown columns dropped; `row0` numbers the rows."""
    spec = TABLES[table]
    raw = raw.rename(columns=_normalize)
    _check_header(file, table, list(raw.columns))
    personal = [c for c in raw.columns if is_personal(c)]
    if personal and row0 == 0:  # once per file, not per chunk
        log.warning("%s: dropped personal column(s) %s; personal data never enters Tailor", file, personal)
    prefixes = spec.extra_prefixes
    extras = sorted(c for c in raw.columns if prefixes and c.startswith(prefixes) and c not in personal)
    unknown = [c for c in raw.columns if c not in spec.names and c not in extras and c not in personal]
    if unknown and row0 == 0:
        log.info("%s: ignored column(s) not in table '%s': %s", file, table, unknown)
    absent = [c.name for c in spec.columns if c.required and c.name not in raw.columns]
    if absent and row0 == 0:
        log.warning("%s: optional column(s) %s absent; filled with nulls", file, absent)
    out = pd.DataFrame(index=raw.index)
    for col in spec.columns:
        if col.name in raw.columns:
            out[col.name] = _cast(raw[col.name], col.kind, table, col.name, file, row0)
        elif col.required:
            out[col.name] = pd.Series(None, index=raw.index, dtype=object)
    for name, allowed in spec.enums.items():
        out[name] = out[name].str.strip().str.lower()
        _fail_if(~out[name].isin(allowed), raw[name], f"table '{table}' expects one of {list(allowed)}", file, row0)
    for col in spec.columns:
        if not col.nullable and col.name not in _QUARANTINED_NULLS and col.name in out.columns:
            _fail_if(out[col.name].isna(), raw[col.name], f"table '{table}' has empty values", file, row0)
    for name in extras:
        num = pd.to_numeric(raw[name], errors="coerce")
        out[name] = num if (num.notna() | raw[name].isna()).all() else raw[name]
    out[q.SOURCE_FILE] = file
    out[q.SOURCE_ROW] = np.arange(row0, row0 + len(raw), dtype=np.int64)
    return out.reset_index(drop=True)


def _fail_if(bad: pd.Series, values: pd.Series, message: str, file: str, row0: int, column: str = "") -> None:
    """Raise naming the file, column and first bad rows (numbered within the file) if any row is bad."""
    mask = bad.fillna(True).to_numpy(dtype=bool)
    if mask.any():
        rows = np.flatnonzero(mask)
        raise DataValidationError(
            message,
            file=file,
            column=column or str(values.name),
            rows=rows + row0,
            values=values.iloc[rows[:5]].tolist(),
        )


def _cast(values: pd.Series, kind: str, table: str, column: str, file: str, row0: int) -> pd.Series:
    if kind == "string":
        if not isinstance(values.dtype, pd.StringDtype):  # ids may come as numbers in Parquet
            values = values.astype("string")
        return values.str.strip().replace("", None)
    if kind == "float":
        num = pd.to_numeric(values, errors="coerce")
        _fail_if(num.isna() & values.notna(), values, f"table '{table}' expects numbers", file, row0)
        return num.astype("float64")
    if kind == "bool":
        if pd.api.types.is_bool_dtype(values.dtype):
            return values.astype("boolean")
        mapped = values.astype("string").str.strip().str.lower().map(_BOOL)
        _fail_if(mapped.isna() & values.notna(), values, f"table '{table}' expects true/false/1/0", file, row0)
        return mapped.astype("boolean")
    if kind == "timestamp":
        return _timestamps(values, table, file, row0)
    if kind == "list":
        return values.map(_as_list, na_action="ignore")
    raise AssertionError(kind)


def _timestamps(values: pd.Series, table: str, file: str, row0: int) -> pd.Series:
    """Timestamps to UTC: offsets are honoured, naive values are UTC; unparseable ones are errors."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    msg = f"table '{table}' expects ISO timestamps (e.g. 2025-03-01T10:00:00+01:00)"
    _fail_if(pd.Series(pd.api.types.is_numeric_dtype(values.dtype), index=values.index), values, msg, file, row0)
    text = values.astype("string").str.strip().replace("", None)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    retry = parsed.isna() & text.notna()
    if retry.any():  # the fast ISO parser failed on some rows: try other layouts there only
        parsed[retry] = pd.to_datetime(text[retry], utc=True, format="mixed", errors="coerce")
    _fail_if(parsed.isna() & text.notna(), values, msg + ", got unparseable values", file, row0)
    return parsed.astype("datetime64[us, UTC]")


def _as_list(v: object) -> list[str]:
    if isinstance(v, str):
        return [s.strip() for s in v.split("|") if s.strip()]
    return [str(s) for s in v]  # type: ignore[union-attr]
