"""The temporal split of the fixed evaluation protocol: train before a cutoff, test after it.

Leakage is impossible by construction: train rows are selected by `ts < cutoff`, test rows
by `cutoff <= ts < cutoff + test_days`, and both are checked again before they are returned.
Every time is compared tz-aware in UTC; a naive cutoff is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

import pandas as pd

from datasets.store import Dataset

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TimeLike = str | date | datetime | pd.Timestamp


def utc_cutoff(value: TimeLike, *, what: str = "cutoff") -> pd.Timestamp:
    """A tz-aware UTC timestamp; a bare 'YYYY-MM-DD' string is that day's midnight UTC.

    Any other value without a timezone is an error: its instant would depend on the
    machine's or the source's clock, which is exactly how a split silently shifts.
    """
    if isinstance(value, str) and _DATE_ONLY.match(value.strip()):
        return pd.Timestamp(value.strip(), tz="UTC")
    if isinstance(value, date) and not isinstance(value, datetime):
        return pd.Timestamp(value.isoformat(), tz="UTC")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} {value!r} is not a timestamp") from exc
    if ts is pd.NaT:
        raise ValueError(f"{what} is missing (NaT)")
    if ts.tzinfo is None:
        raise ValueError(
            f"{what} {value!r} has no timezone; give it in UTC (e.g. '{ts.isoformat()}Z') "
            "or as a bare date 'YYYY-MM-DD' (midnight UTC)"
        )
    return ts.tz_convert("UTC")


def _utc_ts(events: pd.DataFrame) -> pd.Series:
    ts = events["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"events.ts must be tz-aware (UTC), got dtype {ts.dtype}")
    return ts.dt.tz_convert("UTC")


@dataclass(frozen=True)
class SplitFrames:
    """The two sides of a split; `train` is strictly before `test` in time."""

    train: pd.DataFrame
    test: pd.DataFrame
    split: TemporalSplit


@dataclass(frozen=True)
class TemporalSplit:
    """Train = [cutoff - train_days, cutoff) or all before cutoff; test = [cutoff, cutoff + test_days)."""

    cutoff: pd.Timestamp
    train_days: int | None = None
    test_days: int = 28

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoff", utc_cutoff(self.cutoff))
        if self.train_days is not None and self.train_days <= 0:
            raise ValueError(f"train_days must be positive or None, got {self.train_days}")
        if self.test_days <= 0:
            raise ValueError(f"test_days must be positive, got {self.test_days}")

    @property
    def train_start(self) -> pd.Timestamp | None:
        return None if self.train_days is None else self.cutoff - pd.Timedelta(days=self.train_days)

    @property
    def test_end(self) -> pd.Timestamp:
        return self.cutoff + pd.Timedelta(days=self.test_days)

    def train_mask(self, events: pd.DataFrame) -> pd.Series:
        """Rows in the train window."""
        ts = _utc_ts(events)
        mask = ts < self.cutoff
        return mask if self.train_start is None else mask & (ts >= self.train_start)

    def test_mask(self, events: pd.DataFrame) -> pd.Series:
        """Rows in the test window."""
        ts = _utc_ts(events)
        return (ts >= self.cutoff) & (ts < self.test_end)

    def apply(self, events: pd.DataFrame) -> SplitFrames:
        """Split events into train and test frames (both reindexed from 0)."""
        train = events.loc[self.train_mask(events).to_numpy()].reset_index(drop=True)
        test = events.loc[self.test_mask(events).to_numpy()].reset_index(drop=True)
        self.check(train, test)
        return SplitFrames(train, test, self)

    def check(self, train: pd.DataFrame, test: pd.DataFrame) -> None:
        """Raise if any train row is at/after the cutoff or any test row is outside the window."""
        # Explicit raises, not `assert`: the guarantee must hold under `python -O` too.
        if len(train) and not _utc_ts(train).max() < self.cutoff:
            raise AssertionError(f"leak: train has events at or after the cutoff {self.cutoff}")
        if len(test):
            ts = _utc_ts(test)
            if not (ts.min() >= self.cutoff and ts.max() < self.test_end):
                raise AssertionError(f"test events outside [{self.cutoff}, {self.test_end})")

    def describe(self) -> dict[str, str | int | None]:
        """The split as plain values (for run parameters and data fingerprints)."""
        start = self.train_start
        return {
            "cutoff": self.cutoff.isoformat(),
            "train_start": None if start is None else start.isoformat(),
            "test_end": self.test_end.isoformat(),
            "train_days": self.train_days,
            "test_days": self.test_days,
        }


class ProtocolSplits(NamedTuple):
    """Validation split (its window ends where the test window starts) and test split."""

    val: TemporalSplit
    test: TemporalSplit


def protocol_splits(
    end: TimeLike, test_days: int, val_days: int | None = None, train_days: int | None = None
) -> ProtocolSplits:
    """The protocol's splits for data ending (exclusive) at `end`.

    test: cutoff = end - test_days, window [cutoff, end);
    val:  cutoff = end - test_days - val_days, window [val cutoff, test cutoff).
    Model selection on `val` sees nothing of the test window.
    """
    end_ts = utc_cutoff(end, what="end")
    val_days = test_days if val_days is None else val_days
    test_cutoff = end_ts - pd.Timedelta(days=test_days)
    val_cutoff = test_cutoff - pd.Timedelta(days=val_days)
    return ProtocolSplits(
        val=TemporalSplit(val_cutoff, train_days=train_days, test_days=val_days),
        test=TemporalSplit(test_cutoff, train_days=train_days, test_days=test_days),
    )


def dataset_end(dataset: Dataset) -> pd.Timestamp:
    """The day after the dataset's last event, at midnight UTC (an exclusive end)."""
    ts_max = dataset.manifest.get("ts_max")
    if not ts_max:
        raise ValueError(f"dataset {dataset.name} has no events")
    return pd.Timestamp(ts_max).tz_convert("UTC").normalize() + pd.Timedelta(days=1)


def iter_event_parts(
    dataset: Dataset,
    *,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    columns: list[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """Events of each member-hash part with start <= ts < end (bounded memory, one part at a time)."""
    lo = None if start is None else utc_cutoff(start, what="start")
    hi = None if end is None else utc_cutoff(end, what="end")
    filters = [("ts", ">=", lo)] if lo is not None else []
    filters += [("ts", "<", hi)] if hi is not None else []
    cols = None if columns is None else list(dict.fromkeys(["ts", *columns]))
    for path in dataset.event_parts():
        part = pd.read_parquet(path, columns=cols, filters=filters or None)
        # The pushdown filter is an optimisation; the mask below is the guarantee.
        ts = _utc_ts(part)
        keep = pd.Series(True, index=part.index)
        if lo is not None:
            keep &= ts >= lo
        if hi is not None:
            keep &= ts < hi
        yield part.loc[keep.to_numpy()].reset_index(drop=True)


def events_before(dataset: Dataset, cutoff: TimeLike, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """Each part's events strictly before `cutoff`: the only events a model trained at it may see."""
    return iter_event_parts(dataset, end=cutoff, columns=columns)
