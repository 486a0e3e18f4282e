"""Prepared datasets on disk: Parquet tables, a manifest, and atomic replacement.

Layout of TAILOR_HOME/data/<dataset>/:
  members.parquet items.parquet offers.parquet exposures.parquet
  events/part-00000.parquet ...   (member-hash partitions: a member lives in one part)
  quarantine/<table>.parquet      (rows set aside, each with its reason)
  report.json manifest.json
A new version is built in a staging folder and swapped in whole, so a failed run leaves
the dataset exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from datasets.paths import data_dir
from datasets.schema import TABLE_NAMES, arrow_schema, empty

SMALL_TABLES = tuple(t for t in TABLE_NAMES if t != "events")


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

    def __init__(self, name_or_path: str | Path) -> None:
        p = Path(name_or_path)
        self.path = p if (p / "manifest.json").exists() else data_dir(str(name_or_path))
        if not (self.path / "manifest.json").exists():
            raise FileNotFoundError(
                f"no prepared dataset at {self.path}; run `tailor prepare SOURCE --path FILE --dataset NAME` first"
            )
        self.manifest: dict = json.loads((self.path / "manifest.json").read_text())

    @property
    def name(self) -> str:
        return self.manifest["dataset"]

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A small table, or all events (use `event_parts` to stream large ones)."""
        if name == "events":
            parts = [pd.read_parquet(p, columns=columns) for p in self.event_parts()]
            return pd.concat(parts, ignore_index=True) if parts else empty("events")
        path = self.path / f"{name}.parquet"
        return pd.read_parquet(path, columns=columns) if path.exists() else empty(name)

    def event_parts(self) -> list[Path]:
        return sorted((self.path / "events").glob("part-*.parquet"))

    def quarantine(self, table: str) -> pd.DataFrame:
        path = self.path / "quarantine" / f"{table}.parquet"
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()

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
