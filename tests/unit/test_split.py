"""The temporal split never leaks, and features at a cutoff never see what comes after it."""

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
from datasets.split import TemporalSplit, dataset_end, events_before, iter_event_parts, protocol_splits, utc_cutoff
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
    train_days=st.one_of(st.none(), st.integers(1, 60)),
    test_days=st.integers(1, 60),
)
def test_split_never_leaks(hours: list[int], cut_h: int, train_days: int | None, test_days: int) -> None:
    events = _events(hours)
    split = TemporalSplit(T0 + cut_h * HOUR, train_days=train_days, test_days=test_days)
    out = split.apply(events)
    if len(out.train):
        assert out.train["ts"].max() < split.cutoff
    if len(out.test):
        assert split.cutoff <= out.test["ts"].min()
        assert out.test["ts"].max() < split.cutoff + pd.Timedelta(days=test_days)
    # Nothing in a window is lost: the sides hold exactly the events of their windows.
    ts = events["ts"]
    lo = -np.inf if train_days is None else (split.cutoff - pd.Timedelta(days=train_days))
    in_train = (ts < split.cutoff) & ((ts >= lo) if train_days else True)
    assert len(out.train) == int(in_train.sum())
    assert len(out.test) == int(((ts >= split.cutoff) & (ts < split.test_end)).sum())


@pytest.mark.parametrize(
    "naive", [pd.Timestamp("2024-01-01 00:00"), datetime(2024, 1, 1), "2024-01-01 12:00", "2024-01-01T00:00:00"]
)
def test_naive_cutoff_rejected(naive: object) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        TemporalSplit(naive)  # type: ignore[arg-type]


def test_cutoff_forms() -> None:
    assert utc_cutoff("2024-01-01") == T0  # a bare date is midnight UTC
    assert utc_cutoff("2024-01-01T01:00:00+01:00") == T0
    assert str(utc_cutoff(pd.Timestamp("2024-01-01", tz="Europe/Paris")).tz) == "UTC"
    with pytest.raises(ValueError):
        utc_cutoff("not a date")


def test_naive_event_times_rejected() -> None:
    events = pd.DataFrame({"member_id": ["a"], "ts": [pd.Timestamp("2024-01-01")]})
    with pytest.raises(ValueError, match="tz-aware"):
        TemporalSplit(T0).apply(events)


def test_bad_windows_rejected() -> None:
    with pytest.raises(ValueError):
        TemporalSplit(T0, test_days=0)
    with pytest.raises(ValueError):
        TemporalSplit(T0, train_days=-1)


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


def test_protocol_splits() -> None:
    end = pd.Timestamp("2024-03-01", tz="UTC")
    val, test = protocol_splits(end, test_days=14, val_days=7)
    assert test.cutoff == end - pd.Timedelta(days=14) and test.test_end == end
    assert val.cutoff == test.cutoff - pd.Timedelta(days=7)
    assert val.test_end == test.cutoff  # validation ends where the test window starts
    assert protocol_splits(end, test_days=14).val.test_days == 14


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
