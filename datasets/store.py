"""Prepared datasets on disk: Parquet tables, a manifest, and atomic replacement.

Layout of TAILOR_HOME/data/<dataset>/:
  members.parquet items.parquet offers.parquet exposures.parquet
  events/part-00000.parquet ...   (member-hash partitions: a member lives in one part)
  quarantine/<table>.parquet      (rows set aside, each with its reason)
  report.json manifest.json
A new version is built in a staging folder and swapped in whole, so a failed run leaves
the dataset exactly as it was.

Erased members never reach a reader: when tombstones exist that the dataset's files were not
cleaned against yet (a member erased after the last `prepare` or `tailor erase --apply`),
`Dataset` leaves their rows out of every table, event part and quarantine it returns, and logs
how many rows it left out (datasets/erasure.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from datasets import erasure
from datasets.layout import Layout
from datasets.schema import TABLE_NAMES, arrow_schema, empty

log = logging.getLogger(__name__)
SMALL_TABLES = tuple(t for t in TABLE_NAMES if t != "events")
_CLEAN_PARTS: dict[tuple[str, int, str], Path] = {}  # (part, mtime, tombstones digest) -> its copy without them
_CLEAN_DIR: list[tempfile.TemporaryDirectory] = []  # one per process, removed at exit
_LEFT_OUT = "%s/%s: left out %d rows of erased members (in the files until `tailor erase --apply --dataset %s`)"


def write_parquet(frame: pd.DataFrame, path: Path, schema: pa.Schema | None = None) -> None:
    """Write deterministically (same frame -> same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def write_table(folder: Path, table: str, frame: pd.DataFrame) -> None:
    """Write one canonical table with its exact schema."""
    write_parquet(frame, folder / f"{table}.parquet", arrow_schema(table, frame))


def partition_of(member_ids: pd.Series, n_partitions: int) -> pd.Series:
    """Stable partition of each pseudonymized id (hex digits after the prefix)."""
    if n_partitions == 1:
        return pd.Series(0, index=member_ids.index, dtype="int64")
    codes, uniques = pd.factorize(member_ids)  # convert each distinct id once
    parts = np.array([int(u[2:9], 16) % n_partitions for u in uniques] + [0], dtype=np.int64)
    return pd.Series(parts[codes], index=member_ids.index)


class Dataset:
    """Read access to a prepared dataset."""

    def __init__(self, name_or_path: str | Path, layout: Layout | None = None) -> None:
        p = Path(name_or_path)
        self.path = p if (p / "manifest.json").exists() else Layout.of(layout).data(str(name_or_path))
        if not (self.path / "manifest.json").exists():
            raise FileNotFoundError(
                f"no prepared dataset at {self.path}; run `tailor prepare SOURCE --path FILE --dataset NAME` first"
            )
        self.manifest: dict = json.loads((self.path / "manifest.json").read_text())

    @property
    def name(self) -> str:
        return self.manifest["dataset"]

    @cached_property
    def erased(self) -> frozenset[str]:
        """Erased members whose rows the files may still hold (empty once cleaned against every tombstone)."""
        tombstones = erasure.tombstones_of(self.path)
        return frozenset(tombstones) if erasure.pending(self.manifest, tombstones) else frozenset()

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A small table, or all events (use `event_parts` to stream large ones); never an erased member's row."""
        if name == "events":
            parts = [pd.read_parquet(p, columns=columns) for p in self.event_parts()]
            return pd.concat(parts, ignore_index=True) if parts else empty("events")
        path = self.path / f"{name}.parquet"
        return self._read(path, name, columns) if path.exists() else empty(name)

    def event_parts(self) -> list[Path]:
        """The event parts; a part holding an erased member's rows is replaced by a temporary copy without them."""
        parts = sorted((self.path / "events").glob("part-*.parquet"))
        if not self.erased:
            return parts
        n = int(self.manifest.get("n_partitions") or 0)
        ids = pd.Series(sorted(self.erased))
        suspects = set(partition_of(ids, n)) if n and ids.str.fullmatch(r"m_[0-9a-f]{7,}").all() else None
        return [p if suspects is not None and int(p.stem[5:]) not in suspects else self._clean_part(p) for p in parts]

    def quarantine(self, table: str) -> pd.DataFrame:
        path = self.path / "quarantine" / f"{table}.parquet"
        return self._read(path, f"quarantine/{table}") if path.exists() else pd.DataFrame()

    def _read(self, path: Path, what: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read a Parquet table, leaving out erased members' rows (logged)."""
        if not self.erased or "member_id" not in pq.read_schema(path).names:
            return pd.read_parquet(path, columns=columns)
        wanted = None if columns is None else list(dict.fromkeys([*columns, "member_id"]))
        frame = pd.read_parquet(path, columns=wanted)
        hit = erasure.mask(frame, self.erased)
        if hit.any():
            log.warning(_LEFT_OUT, self.name, what, hit.sum(), self.name)
            frame = frame.loc[~hit].reset_index(drop=True)
        return frame if columns is None else frame[columns]

    def _clean_part(self, part: Path) -> Path:
        """`part`, or when it holds erased members' rows, a copy without them (made once per process)."""
        key = (str(part.resolve()), part.stat().st_mtime_ns, erasure.digest(self.erased))
        if key not in _CLEAN_PARTS:
            n = erasure.rows_of(part, self.erased)
            if n == 0:
                _CLEAN_PARTS[key] = part
            else:
                if not _CLEAN_DIR:
                    _CLEAN_DIR.append(tempfile.TemporaryDirectory(prefix="tailor-erased-"))
                copy = Path(_CLEAN_DIR[0].name) / f"{len(_CLEAN_PARTS):06d}-{part.name}"
                erasure.write_without(part, copy, self.erased)
                log.warning(_LEFT_OUT, self.name, f"events/{part.name}", n, self.name)
                _CLEAN_PARTS[key] = copy
        return _CLEAN_PARTS[key]

    def report(self) -> dict:
        return json.loads((self.path / "report.json").read_text())


def fingerprint(folder: Path) -> str:
    """sha256 over every data file of a dataset folder (not the manifest itself)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.parquet")):
        h.update(str(p.relative_to(folder)).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """Yield a staging folder; on success it replaces `target` whole, on error it vanishes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{target.name}.staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    stage.rename(target)
    shutil.rmtree(old, ignore_errors=True)
