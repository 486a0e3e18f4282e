"""DIGINETICA (CIKM Cup 2016, SR-GNN sample): item views, mostly from anonymous sessions.

Semicolon-separated; `path` is the file or a folder holding `*item-views*.csv`. A session
row belongs to its user_id, else to its session's user_id where any row of the session has one, else to the guest member
"guest:<session_id>" (attr_guest marks which). ts = eventdate (read as a UTC day; the source
gives no zone) + timeframe milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from datasets.errors import DataValidationError
from datasets.schema import to_utc
from datasets.settings import PrepareConfig
from datasets.sources.base import RawTables, numeric, read_csv
from datasets.sources.yoochoose import guest_members, web_events

COLUMNS = ["session_id", "user_id", "item_id", "timeframe", "eventdate"]
MISSING = ("", "NA", "NaN", "nan", "null")


def read(path: Path, cfg: PrepareConfig) -> RawTables:
    """Map the item-views file to view events of users and guest sessions."""
    if path.is_dir():
        found = sorted(path.glob("*item-views*.csv"))
        if not found:
            raise DataValidationError("folder holds no *item-views*.csv file", file=str(path))
        path = found[0]
    df = read_csv(path, COLUMNS, sep=";")
    name = path.name
    offset = numeric(df, "timeframe", name)
    day = to_utc(df["eventdate"], table="events", column="eventdate", file=name)
    session = df["session_id"].str.strip()
    user = df["user_id"].str.strip().str.replace(r"\.0$", "", regex=True)
    user = user.where(~user.isin(MISSING) & user.notna())
    # Rows lacking a user id take their session's (first) one; never across sessions.
    user = user.fillna(user.groupby(session.to_numpy()).transform("first"))
    ts = day + pd.to_timedelta(offset, unit="ms")
    events = web_events(df, user.fillna("guest:" + session), ts, "view", df["item_id"], session)
    return RawTables(
        source="diginetica",
        events=lambda: iter([events]),
        members=guest_members(events),
        paths=[path],
        files={name: len(df)},
        events_rows_hint=len(events),
        id_namespace="diginetica",
    )
