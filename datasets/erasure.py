"""Erased members: the tombstones the serving `erase` endpoint writes, honoured by the data layer.

The list lives in the serving event store (TAILOR_HOME/serving/events.db, table `tombstones`,
one pseudonym per row); it is read here with the standard library only, so the data layer
does not depend on the serving package. Erasure reaches the prepared data three ways:
- `prepare` (a new dataset, an appended batch, or a batch already loaded) drops every row of an
  erased member, from the new batch, the stored tables and the quarantine, and counts them as
  `erased` (their content is not kept anywhere, unlike quarantined rows);
- `apply_erasure` (`tailor erase --apply --dataset D`) rewrites a prepared dataset's files
  without them, atomically, with no new batch;
- until one of those runs, `datasets.store.Dataset` leaves their rows out of everything it
  reads (logged with a count), so no training job sees them.
A dataset's manifest records a digest of the tombstones it was cleaned against (never the
pseudonyms themselves), so reads skip the check until someone else is erased.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datasets.layout import Layout

log = logging.getLogger(__name__)
REASON = "erased"


def store_path(home: Path | None = None) -> Path:
    """The serving event store holding the tombstones."""
    return Layout.of(home).events_db


def erased_members(home: Path | None = None) -> set[str]:
    """Pseudonyms of erased members (empty when nothing was ever erased)."""
    path = store_path(home)
    if not path.exists():
        return set()
    with sqlite3.connect(path) as con:
        try:
            return {r[0] for r in con.execute("SELECT member_id FROM tombstones")}
        except sqlite3.OperationalError:  # a store without the table: nothing erased
            return set()


def home_of(dataset_path: Path) -> Path | None:
    """The TAILOR_HOME a prepared dataset belongs to (its `data/<name>` parent), or None (then TAILOR_HOME)."""
    parent = Path(dataset_path).resolve().parent
    return parent.parent if parent.name == "data" else None


def tombstones_of(dataset_path: Path) -> set[str]:
    """Erased members of the home that holds the dataset."""
    return erased_members(home_of(dataset_path))


def digest(erased: set[str] | frozenset[str]) -> str:
    """A digest of a set of tombstones, recorded in a manifest (the pseudonyms themselves are not)."""
    return hashlib.sha256("\n".join(sorted(erased)).encode()).hexdigest()


def stamp(erased: set[str] | frozenset[str]) -> dict:
    """The manifest's `erasure` entry: the tombstones the dataset's files were cleaned against."""
    return {"tombstones": len(erased), "digest": digest(erased)}


def pending(manifest: dict, erased: set[str] | frozenset[str]) -> bool:
    """Whether tombstones exist that the dataset's files were not yet cleaned against."""
    return bool(erased) and manifest.get("erasure", {}).get("digest") != digest(erased)


def mask(frame: pd.DataFrame, erased: set[str] | frozenset[str]) -> np.ndarray:
    """Rows of `frame` that belong to an erased member."""
    if not erased or "member_id" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame["member_id"].isin(erased).to_numpy()


def drop(frame: pd.DataFrame, erased: set[str] | frozenset[str]) -> pd.DataFrame:
    """`frame` without the rows of erased members."""
    m = mask(frame, erased)
    return frame.loc[~m] if m.any() else frame


def arrow_mask(table: pa.Table, erased: set[str] | frozenset[str]) -> pa.ChunkedArray | None:
    """Rows of an Arrow table that belong to an erased member (None: no `member_id` column)."""
    if "member_id" not in table.column_names:
        return None
    ids = table.column("member_id").cast(pa.string())
    return pc.fill_null(pc.is_in(ids, value_set=pa.array(sorted(erased), pa.string())), False)


def write_without(src: Path, dest: Path, erased: set[str] | frozenset[str]) -> int:
    """Copy a Parquet file without erased members' rows (same schema, same writer settings as the store)."""
    table = pq.read_table(src)
    hit = arrow_mask(table, erased)
    n = 0 if hit is None else int(pc.sum(hit).as_py() or 0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.filter(pc.invert(hit)) if n else table, dest, compression="zstd", write_statistics=True)
    return n


def rows_of(path: Path, erased: set[str] | frozenset[str]) -> int:
    """How many rows of a Parquet file belong to erased members (reads the `member_id` column only)."""
    if not erased or "member_id" not in pq.read_schema(path).names:
        return 0
    hit = arrow_mask(pq.read_table(path, columns=["member_id"]), erased)
    return int(pc.sum(hit).as_py() or 0)


def apply_erasure(dataset: str | Path, dry_run: bool = False) -> dict:
    """Remove every row of erased members from a prepared dataset's files, atomically: `tailor erase --apply`.

    `dataset` is a prepared dataset's name (under TAILOR_HOME/data) or folder; the tombstones are those of the
    home holding it. Every Parquet file with a `member_id` column (members, event parts, exposures, quarantine,
    features) that holds an erased member is rewritten without their rows; the other files are linked unchanged
    into a staging folder that replaces the dataset whole (as `prepare` does), with the manifest's row counts,
    fingerprint and erasure stamp updated. `dry_run` only counts. Returns a report: dataset, status
    (`erased`, `nothing_to_erase` or `dry_run`), tombstones, rows removed per file (relative path).
    """
    from datasets.store import Dataset, fingerprint, staged, write_json  # store reads through this module

    ds = Dataset(dataset)
    erased = tombstones_of(ds.path)
    rows = {}
    for path in sorted(ds.path.rglob("*.parquet")):
        if n := rows_of(path, erased):
            rows[str(path.relative_to(ds.path))] = n
    report = {"dataset": ds.name, "tombstones": len(erased), "rows": rows}
    if dry_run:
        return report | {"status": "dry_run"}
    if not rows:
        if pending(ds.manifest, erased):  # nothing here to remove: record that it was checked against them
            _write_manifest(ds.path, ds.manifest | {"erasure": stamp(erased)})
        return report | {"status": "nothing_to_erase"}
    files = sorted(p.relative_to(ds.path) for p in ds.path.rglob("*") if p.is_file() and p.name != "manifest.json")
    later = [f for f in files if f.parts[0] == "features"]  # derived after prepare: outside its fingerprint

    def put(rel: Path, stage: Path) -> None:
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        if str(rel) in rows:
            write_without(ds.path / rel, stage / rel, erased)
        else:
            _link_or_copy(ds.path / rel, stage / rel)

    with staged(ds.path) as stage:
        for rel in files:
            if rel not in later:
                put(rel, stage)
        fp = fingerprint(stage)  # over what prepare writes, as prepare computes it
        for rel in later:
            put(rel, stage)
        parts = sorted((stage / "events").glob("part-*.parquet"))
        events = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
        manifest = ds.manifest | {"erasure": stamp(erased), "fingerprint": fp}
        manifest["rows"] = ds.manifest.get("rows", {}) | {"events": events}
        write_json(stage / "manifest.json", manifest)
    log.info("erased %d rows of erased members from %s (%d files rewritten)", sum(rows.values()), ds.name, len(rows))
    return report | {"status": "erased"}


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)  # unchanged files: no copy (the old folder is removed after the swap)
    except OSError:
        shutil.copy2(src, dest)


def _write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / f".manifest.json.{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, folder / "manifest.json")
