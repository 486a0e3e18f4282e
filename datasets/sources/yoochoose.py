"""YooChoose clicks (RecSys Challenge 2015, session-rec 100k sample): anonymous click sessions.

`path` is one tab-separated file or a folder holding `*_train_full.txt` and `*_test.txt`
(both required; read and concatenated; every row is traced to its file). There is no persistent user id:
each session is a guest member "guest:<SessionId>" (attr_guest=True, joined at its first
click). Time is Unix seconds (UTC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from datasets import quarantine as q
from datasets.errors import DataValidationError
from datasets.settings import PrepareConfig
from datasets.sources.base import RawTables, numeric, read_csv

COLUMNS = ["SessionId", "ItemId", "Time"]
PATTERNS = ("*_train_full.txt", "*_test.txt")


def read(path: Path, cfg: PrepareConfig) -> RawTables:
    """Map one click file, or the train+test files of a folder, to click events."""
    paths = _files(path)
    frames = [_read_one(p) for p in paths]
    files = {p.name: len(f) for p, f in zip(paths, frames, strict=True)}
    df = pd.concat(frames, ignore_index=True)
    session = df["SessionId"].str.strip()
    events = web_events(df, "guest:" + session, df["ts"], "click", df["ItemId"], session)
    return RawTables(
        source="yoochoose",
        events=lambda: iter([events]),
        members=guest_members(events),
        paths=paths,
        files=files,
        events_rows_hint=len(events),
        id_namespace="yoochoose",
    )


def _files(path: Path) -> list[Path]:
    """The input files: the path itself, or the train_full and test files of a folder."""
    if not path.is_dir():
        return [path]
    found = []
    for pattern in PATTERNS:
        matches = sorted(path.glob(pattern))
        if not matches:
            raise DataValidationError(f"folder holds no {pattern} file (a folder needs train and test)", file=str(path))
        found += matches
    return found


def _read_one(path: Path) -> pd.DataFrame:
    """One tab-separated click file, checked and with UTC timestamps."""
    df = read_csv(path, COLUMNS, sep="\t")
    seconds = numeric(df, "Time", path.name)
    try:
        df["ts"] = pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[us, UTC]")
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        bad = ~seconds.between(-1e10, 1e10) & seconds.notna()
        rows = np.flatnonzero(bad.to_numpy())
        raise DataValidationError(
            "Unix seconds out of range",
            file=path.name,
            column="Time",
            rows=rows,
            values=df["Time"].iloc[rows[:5]].tolist(),
        ) from None
    return df


def web_events(
    df: pd.DataFrame, member: pd.Series, ts: pd.Series, event_type: str, item: pd.Series, session: pd.Series
) -> pd.DataFrame:
    """Canonical events of a click/view log: no quantity or amount, channel web, rows traced to the source."""
    return pd.DataFrame(
        {
            "member_id": member,
            "ts": ts,
            "event_type": event_type,
            "item_id": item.str.strip(),
            "quantity": np.nan,
            "amount": np.nan,
            "channel": "web",
            "session_id": session,
            "query": None,
            q.SOURCE_FILE: df[q.SOURCE_FILE],
            q.SOURCE_ROW: df[q.SOURCE_ROW],
        }
    )


def guest_members(events: pd.DataFrame) -> pd.DataFrame:
    """One member per member_id of the events: joined at the first event; guests flagged."""
    g = events.groupby("member_id", sort=True)
    first = g.agg(joined_at=("ts", "min"), file=(q.SOURCE_FILE, "first"), row=(q.SOURCE_ROW, "first"))
    ids = first.index.to_series()
    return pd.DataFrame(
        {
            "member_id": ids.to_numpy(),
            "joined_at": first["joined_at"].to_numpy(),
            "tier": None,
            "points_balance": np.nan,
            "region": None,
            "age_band": None,
            "attr_guest": ids.str.startswith("guest:").to_numpy(dtype=bool),
            q.SOURCE_FILE: first["file"].to_numpy(),
            q.SOURCE_ROW: first["row"].to_numpy(),
        }
    )
