"""The protocol's split never leaks, and features at a cutoff never see what comes after it.

The models' own tasks and label frames on this split are checked in test_protocol.py.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.config import load
from datasets.feature_settings import FeatureConfig
from datasets.features import compute_features
from datasets.settings import PrepareConfig, TierRules
from datasets.split import (
    ProtocolSplit,
    TemporalSplit,
    before_mask,
    check_before,
    check_in_window,
    dataset_end,
    events_before,
    iter_event_parts,
    protocol_split,
    utc_cutoff,
)
from datasets.store import Dataset, write_parquet


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))


T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)


def _events(hours: list[int]) -> pd.DataFrame:
    ts = pd.Series([T0 + h * HOUR for h in hours], dtype="datetime64[us, UTC]")
    return pd.DataFrame({"member_id": [f"m{i % 3}" for i in range(len(hours))], "ts": ts})


@settings(max_examples=200, deadline=None)
@given(
    hours=st.lists(st.integers(-2000, 2000), max_size=60),
    cut_h=st.integers(-2100, 2100),
    window_h=st.integers(1, 1500),
)
def test_split_never_leaks(hours: list[int], cut_h: int, window_h: int) -> None:
    events = _events([*hours, cut_h, cut_h + window_h])  # always one event at the cutoff and one at the end
    split = TemporalSplit(T0 + cut_h * HOUR, T0 + (cut_h + window_h) * HOUR)
    train, window = events[before_mask(events, split.cutoff)], events[split.window_mask(events)]
    check_before(train, split.cutoff)
    check_in_window(window, split.cutoff, split.end)
    if len(train):
        assert train["ts"].max() < split.cutoff
    assert window["ts"].min() == split.cutoff  # an event exactly at the cutoff is in the window, not in train
    assert window["ts"].max() < split.end  # one exactly at the end is not
    # Nothing in a window is lost: the sides hold exactly the events of their windows.
    assert sorted(train["ts"]) == sorted(t for t in events["ts"] if t < split.cutoff)
    assert sorted(window["ts"]) == sorted(t for t in events["ts"] if split.cutoff <= t < split.end)


@pytest.mark.parametrize(
    "naive", [pd.Timestamp("2024-01-01 00:00"), datetime(2024, 1, 1), "2024-01-01 12:00", "2024-01-01T00:00:00"]
)
def test_naive_cutoff_rejected(naive: object) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        TemporalSplit(naive, T0)  # type: ignore[arg-type]


def test_cutoff_forms() -> None:
    assert utc_cutoff("2024-01-01") == T0  # a bare date is midnight UTC
    assert utc_cutoff("2024-01-01T01:00:00+01:00") == T0
    assert str(utc_cutoff(pd.Timestamp("2024-01-01", tz="Europe/Paris")).tz) == "UTC"
    with pytest.raises(ValueError):
        utc_cutoff("not a date")


def test_naive_event_times_rejected() -> None:
    events = pd.DataFrame({"member_id": ["a"], "ts": [pd.Timestamp("2024-01-01")]})
    with pytest.raises(ValueError, match="tz-aware"):
        before_mask(events, T0)


def test_bad_windows_rejected() -> None:
    with pytest.raises(ValueError, match="empty window"):
        TemporalSplit(T0, T0)
    with pytest.raises(ValueError, match="no timezone"):
        TemporalSplit(T0, "2024-01-02 00:00")
    with pytest.raises(ValueError, match="out of order"):
        ProtocolSplit(T0, T0 - HOUR, T0 + HOUR)
    with pytest.raises(ValueError, match="positive"):
        protocol_split(T0, test_days=0)
    with pytest.raises(AssertionError, match="leak"):  # the checks do not trust the masks
        check_before(_events([-1, 0]), T0)
    with pytest.raises(AssertionError, match="outside"):
        check_in_window(_events([0, 1]), T0, T0 + HOUR)


def test_events_before_reads_parts_without_the_future(tmp_path: Path) -> None:
    ds_dir = tmp_path / "ds"
    for i, hours in enumerate([[-30, -1, 0, 5], [-2, 3]]):
        write_parquet(_events(hours).assign(member_id=f"p{i}"), ds_dir / "events" / f"part-{i:05d}.parquet")
    (ds_dir / "manifest.json").write_text(json.dumps({"dataset": "ds", "ts_max": str(T0 + 5 * HOUR)}))
    ds = Dataset(ds_dir)
    parts = list(events_before(ds, T0, columns=["member_id"]))
    assert [len(p) for p in parts] == [2, 1]
    assert all(p["ts"].max() < T0 for p in parts)
    window = list(iter_event_parts(ds, start=T0, end=T0 + 4 * HOUR))
    assert [len(p) for p in window] == [1, 1]
    assert dataset_end(ds) == T0 + pd.Timedelta(days=1)
    with pytest.raises(ValueError, match="no timezone"):
        list(events_before(ds, "2024-01-01 10:00"))


def test_protocol_split_cutoffs() -> None:
    last = pd.Timestamp("2024-03-01 15:30", tz="UTC")
    split = protocol_split(last, test_days=14, val_days=7)  # the recommender's split
    assert split.end == last + pd.Timedelta(microseconds=1)  # the last event is in the test window
    assert split.test_cutoff == last - pd.Timedelta(days=14)
    assert split.val_cutoff == split.test_cutoff - pd.Timedelta(days=7)
    assert (split.val.cutoff, split.val.end) == (split.val_cutoff, split.test_cutoff)  # validation ends at the test
    assert (split.test.cutoff, split.test.end) == (split.test_cutoff, split.end)
    days = protocol_split(last, test_days=14, whole_days=True)  # the outcome models': whole days, labels observed
    assert days.test_cutoff == pd.Timestamp("2024-03-01", tz="UTC") - pd.Timedelta(days=14)
    assert days.val_cutoff == days.test_cutoff - pd.Timedelta(days=14)
    given_ = protocol_split(last, 14, test_cutoff="2024-02-01", val_cutoff="2024-01-10")
    assert (given_.val_cutoff, given_.test_cutoff) == (utc_cutoff("2024-01-10"), utc_cutoff("2024-02-01"))


def test_protocol_split_refuses_windows_it_cannot_fill() -> None:
    last = pd.Timestamp("2024-03-01", tz="UTC")
    with pytest.raises(ValueError, match="test cutoff 2024-02-20 needs 14 days of data after it"):
        protocol_split(last, 14, test_cutoff="2024-02-20")
    # validation labels may not run into the test window
    with pytest.raises(ValueError, match="train cutoff 2024-02-10 needs 14 days of data after it"):
        protocol_split(last, 14, test_cutoff="2024-02-15", val_cutoff="2024-02-10", val_name="train")


@settings(max_examples=300, deadline=None)
@given(
    last_s=st.integers(0, 400 * 86400),
    test_days=st.one_of(st.integers(1, 60), st.floats(0.01, 60)),
    val_days=st.one_of(st.none(), st.integers(1, 60), st.floats(0.01, 60)),
    whole_days=st.booleans(),
)
def test_protocol_split_windows_never_overlap(
    last_s: int, test_days: float, val_days: float | None, whole_days: bool
) -> None:
    last = T0 + pd.Timedelta(seconds=last_s)
    split = protocol_split(last, test_days, val_days, whole_days=whole_days)
    val, test = split.val, split.test
    assert val.end <= test.cutoff  # validation ends at or before the test cutoff...
    assert val.cutoff < val.end and test.cutoff < test.end  # ...both windows are non-empty half-open intervals...
    assert test.end == last + pd.Timedelta(microseconds=1)  # ...and the test window reaches the last event
    assert test.cutoff + pd.Timedelta(days=test_days) <= test.end  # the test window holds test_days
    assert val.cutoff + pd.Timedelta(days=test_days if val_days is None else val_days) <= test.cutoff
    if whole_days:
        assert test.cutoff + pd.Timedelta(days=test_days) == test.end.floor("D")


# --- features at a cutoff are blind to everything at or after it -----------------------

CUT = pd.Timestamp("2024-03-01", tz="UTC")
MEMBERS = pd.DataFrame(
    {
        "member_id": [f"m{i}" for i in range(6)],
        "joined_at": pd.to_datetime(["2023-01-01", None, "2024-02-01", None, "2024-05-01", None], utc=True),
        "tier": None,
        "points_balance": np.nan,
        "region": ["north", "south", "east", "west", "north", "south"],
        "age_band": None,
    }
)
ITEMS = pd.DataFrame({"item_id": ["i0", "i1", "i2", "i3"], "category": ["a", "a", "b", "c"], "price": 1.0})
_KINDS = ["purchase", "view", "coupon_redeem", "cart"]


def _event(member: int, hours: int, kind: int, item: int, qty: int, amount: float, sess: int, disc: float) -> dict:
    return {
        "member_id": f"m{member}",
        "ts": CUT + hours * HOUR,
        "event_type": _KINDS[kind],
        "item_id": f"i{item}",
        "quantity": float(qty),
        "amount": float(amount),
        "channel": ["web", "app", None][sess % 3],
        "session_id": None if sess == 0 else f"s{sess}",
        "discount": disc,
    }


def _rows(hours: st.SearchStrategy[int]) -> st.SearchStrategy[list[dict]]:
    row = st.builds(
        _event,
        st.integers(0, 7),  # m6, m7: members that only exist in events
        hours,
        st.integers(0, 3),
        st.integers(0, 3),
        st.integers(1, 5),
        st.floats(0.5, 500, allow_nan=False),
        st.integers(0, 4),
        st.sampled_from([0.0, 1.0, np.nan]),
    )
    return st.lists(row, max_size=25)


@functools.cache
def _configs() -> tuple[FeatureConfig, TierRules]:
    return load(FeatureConfig, "features"), load(PrepareConfig, "prepare").tiers


def _features(rows: list[dict]) -> pd.DataFrame:
    cols = ["member_id", "ts", "event_type", "item_id", "quantity", "amount", "channel", "session_id", "discount"]
    events = pd.DataFrame(rows, columns=cols).astype({"ts": "datetime64[us, UTC]"})
    cfg, rules = _configs()
    # Two parts, split by member, like a partitioned dataset.
    parts = [
        events[events["member_id"].isin(["m0", "m2", "m4", "m6"])],
        events[~events["member_id"].isin(["m0", "m2", "m4", "m6"])],
    ]
    return compute_features(parts, MEMBERS, ITEMS, CUT, cfg, timezone="Europe/London", tier_rules=rules)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(past=_rows(st.integers(-24 * 400, -1)), future=_rows(st.integers(0, 24 * 60)), data=st.data())
def test_features_ignore_the_future(past: list[dict], future: list[dict], data: st.DataObject) -> None:
    base = _features(past)
    pd.testing.assert_frame_equal(_features(past + future), base)  # future events added
    kept = data.draw(st.lists(st.sampled_from(future), max_size=len(future))) if future else []
    pd.testing.assert_frame_equal(_features(past + kept), base)  # some removed
    mutated = [
        {**r, "member_id": "m1", "amount": r["amount"] * 10, "event_type": "purchase", "session_id": "s1"}
        for r in future
    ]
    pd.testing.assert_frame_equal(_features(past + mutated), base)  # mutated, reusing past sessions
    edge = [{**r, "ts": CUT} for r in future]  # exactly at the cutoff is already the future
    pd.testing.assert_frame_equal(_features(past + edge), base)
