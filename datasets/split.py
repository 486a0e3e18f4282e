"""The temporal split of the fixed evaluation protocol: train before a cutoff, evaluate after it.

`protocol_split` is the one place the protocol's cutoffs are computed (test cutoff, validation
cutoff, their windows); the recommender tasks (`training.interactions.protocol`) and the outcome
models (`training.outcomes.job.build_frames`) both take theirs from it. Leakage is impossible by
construction: train rows are selected by `ts < cutoff` (`before_mask`), window rows by
`cutoff <= ts < end` (`window_mask`; an event exactly at a cutoff belongs to the window), and the
callers check both again (`check_before`, `check_in_window`) before using them. Every time is
compared tz-aware in UTC; a naive cutoff is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
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


MICROSECOND = pd.Timedelta(microseconds=1)


def before_mask(events: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    """Rows strictly before the cutoff: the only rows a model trained at it may see."""
    return (_utc_ts(events) < cutoff).to_numpy()


def window_mask(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """Rows in [start, end): an event exactly at `start` is in the window, one at `end` is not."""
    ts = _utc_ts(events)
    return ((ts >= start) & (ts < end)).to_numpy()


@dataclass(frozen=True)
class TemporalSplit:
    """One task of the protocol: train on events before `cutoff`, targets in the window [cutoff, end)."""

    cutoff: pd.Timestamp
    end: pd.Timestamp

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoff", utc_cutoff(self.cutoff))
        object.__setattr__(self, "end", utc_cutoff(self.end, what="end"))
        if not self.cutoff < self.end:
            raise ValueError(f"empty window: end {self.end} is not after the cutoff {self.cutoff}")

    def window_mask(self, events: pd.DataFrame) -> np.ndarray:
        """Rows in [cutoff, end); the training side is `before_mask(events, cutoff)`."""
        return window_mask(events, self.cutoff, self.end)


def check_before(rows: pd.DataFrame, cutoff: pd.Timestamp) -> None:
    """Raise if any row is at or after the cutoff (a training set that saw its own window)."""
    # Explicit raises, not `assert`: the guarantee must hold under `python -O` too.
    if len(rows) and not _utc_ts(rows).max() < cutoff:
        raise AssertionError(f"leak: train has events at or after the cutoff {cutoff}")


def check_in_window(rows: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Raise if any row is outside [start, end)."""
    if len(rows):
        ts = _utc_ts(rows)
        if not (ts.min() >= start and ts.max() < end):
            raise AssertionError(f"window events outside [{start}, {end})")


@dataclass(frozen=True)
class ProtocolSplit:
    """The protocol's cutoffs: validation window [val_cutoff, test_cutoff), test window [test_cutoff, end).

    Validation trains before `val_cutoff` and is judged on its window, which ends where the test
    window starts; the test task trains on everything before `test_cutoff`. The outcome models
    call `val_cutoff` their train cutoff (the latest one whose labels must end by the test cutoff).
    """

    val_cutoff: pd.Timestamp
    test_cutoff: pd.Timestamp
    end: pd.Timestamp

    def __post_init__(self) -> None:
        for name in ("val_cutoff", "test_cutoff", "end"):
            object.__setattr__(self, name, utc_cutoff(getattr(self, name), what=name))
        if not self.val_cutoff < self.test_cutoff < self.end:
            raise ValueError(f"cutoffs out of order: {self.val_cutoff} < {self.test_cutoff} < {self.end} is false")

    @property
    def val(self) -> TemporalSplit:
        return TemporalSplit(self.val_cutoff, self.test_cutoff)

    @property
    def test(self) -> TemporalSplit:
        return TemporalSplit(self.test_cutoff, self.end)


def protocol_split(
    last_event: TimeLike,
    test_days: float,
    val_days: float | None = None,
    *,
    whole_days: bool = False,
    test_cutoff: TimeLike | None = None,
    val_cutoff: TimeLike | None = None,
    val_name: str = "validation",
) -> ProtocolSplit:
    """The protocol's split of data whose last event is at `last_event`; every model family takes its cutoffs here.

    end = last_event + 1 µs (exclusive, so the last event is in the test window);
    test cutoff = last_event - test_days, or with `whole_days` the midnight UTC at or before `end`
    minus test_days (the outcome models' label windows are whole days, fully observed);
    validation cutoff = test cutoff - val_days (default: test_days).
    `test_cutoff` / `val_cutoff` (from a config) replace the defaults; either way a window shorter
    than its days is refused, never truncated: the test window must hold test_days of data and the
    validation window val_days (so validation labels never run into the test window).
    """
    last = utc_cutoff(last_event, what="last event")
    val_days = test_days if val_days is None else val_days
    if not (test_days > 0 and val_days > 0):
        raise ValueError(f"test_days and val_days must be positive, got {test_days} and {val_days}")
    end = last + MICROSECOND
    if test_cutoff is not None:
        test_cut = utc_cutoff(test_cutoff, what="test cutoff")
    else:
        test_cut = (end.floor("D") if whole_days else last) - pd.Timedelta(days=test_days)
    check_window(test_cut, test_days, end, "test")
    val_cut = test_cut - pd.Timedelta(days=val_days) if val_cutoff is None else utc_cutoff(val_cutoff)
    check_window(val_cut, val_days, test_cut, val_name)
    return ProtocolSplit(val_cut, test_cut, end)


def check_window(cutoff: pd.Timestamp, days: float, end: pd.Timestamp, what: str) -> None:
    """Refuse a cutoff whose window of `days` is not fully covered before `end`."""
    stop = cutoff + pd.Timedelta(days=days)
    if stop > end:
        raise ValueError(
            f"{what} cutoff {cutoff.date()} needs {days:g} days of data after it (to {stop.date()}), "
            f"but the data ends at {end}; use an earlier cutoff or a shorter horizon"
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
