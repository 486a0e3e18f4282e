"""Erased members: the tombstones the serving `erase` endpoint writes, honoured by `prepare`.

The list lives in the serving event store (TAILOR_HOME/serving/events.db, table `tombstones`,
one pseudonym per row); it is read here with the standard library only, so the data layer
does not depend on the serving package. `prepare` drops every row of an erased member, from
the new batch, the stored tables and the quarantine, and counts them as `erased` (their
content is not kept anywhere, unlike quarantined rows).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.paths import tailor_home

REASON = "erased"


def store_path(home: Path | None = None) -> Path:
    """The serving event store holding the tombstones."""
    return (home or tailor_home()) / "serving" / "events.db"


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


def mask(frame: pd.DataFrame, erased: set[str]) -> np.ndarray:
    """Rows of `frame` that belong to an erased member."""
    if not erased or "member_id" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame["member_id"].isin(erased).to_numpy()


def drop(frame: pd.DataFrame, erased: set[str]) -> pd.DataFrame:
    """`frame` without the rows of erased members."""
    m = mask(frame, erased)
    return frame.loc[~m] if m.any() else frame
