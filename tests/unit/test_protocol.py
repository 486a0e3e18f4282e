"""The split the models use: recommender tasks and outcome frames on `datasets.split.protocol_split`.

Expected sides are worked out from the raw events with plain comparisons, never with the code
under test: a training set holds exactly the events before its cutoff, a validation window ends
at or before the test cutoff, and evaluated members and targets come from their window only.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from datasets.split import TemporalSplit
from training import interactions
from training.interactions import Interactions, Task, make_task, protocol

T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
US = pd.Timedelta(microseconds=1)


def _purchases(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """(member, item, hour) rows as purchase events, in the dtype a prepared dataset has."""
    ts = pd.Series([T0 + h * HOUR for _, _, h in rows], dtype="datetime64[us, UTC]")
    members, items = [f"m{m}" for m, _, _ in rows], [f"i{i}" for _, i, _ in rows]
    return pd.DataFrame({"member_id": members, "item_id": items, "ts": ts})


def _tasks(ev: pd.DataFrame, test_days: float, val_days: float, monkeypatch: pytest.MonkeyPatch) -> tuple[Task, Task]:
    """The tasks exactly as the persona job, the baselines and the sweeps get them: `protocol(dataset, ...)`."""
    monkeypatch.setattr(interactions, "purchases", lambda dataset: ev)
    return protocol("any", test_days, val_days)


def _train_events(task: Task) -> set[tuple[str, str, pd.Timestamp]]:
    tr = task.train
    ts = pd.to_datetime(tr.events["t"], unit="s", utc=True).dt.round("s")
    return set(zip(tr.member_ids[tr.events["m"]], tr.item_ids[tr.events["i"]], ts, strict=True))


def _truth(task: Task) -> dict[str, set[str]]:
    """Evaluated member -> item names of its truth; items unseen in training are named `new<k>` by their code."""
    tr = task.train
    name = lambda i: str(tr.item_ids[i]) if i < tr.n_items else f"new{i - tr.n_items}"  # noqa: E731
    return {str(tr.member_ids[m]): {name(i) for i in t} for m, t in zip(task.members, task.truth, strict=True)}


def _check_task(task: Task, ev: pd.DataFrame, cutoff: pd.Timestamp, end: pd.Timestamp) -> None:
    """The task's train set is exactly the events before `cutoff`; members and truth come from [cutoff, end) only."""
    assert (task.start, task.end) == (cutoff, end)
    before = ev[[t < cutoff for t in ev["ts"]]]
    window = ev[[cutoff <= t < end for t in ev["ts"]]]
    assert _train_events(task) == set(zip(before["member_id"], before["item_id"], before["ts"], strict=True))
    if len(task.train.events):
        assert task.train.events["t"].max() < cutoff.timestamp()
    trained, items = set(before["member_id"]), set(before["item_id"])
    pairs = {(m, it) for m, it in zip(window["member_id"], window["item_id"], strict=True) if m in trained}
    new = {it: f"new{k}" for k, it in enumerate(sorted({it for _, it in pairs} - items))}  # unseen: sorted codes
    expected: dict[str, set[str]] = {}
    for m, it in pairs:
        expected.setdefault(m, set()).add(new.get(it, it))
    assert _truth(task) == expected


EVENTS = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 6), st.integers(0, 24 * 30)), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=EVENTS, test_days=st.integers(1, 10), val_days=st.integers(1, 10))
def test_recommender_tasks_never_see_their_window(
    rows: list[tuple[int, int, int]], test_days: int, val_days: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whole-day windows on an hourly grid: events land exactly on the cutoffs in most examples.
    ev = _purchases(rows)
    val, test = _tasks(ev, test_days, val_days, monkeypatch)
    last = ev["ts"].max()
    test_cut, val_cut = last - test_days * DAY, last - (test_days + val_days) * DAY
    assert val.end <= test.start  # the validation window ends at or before the test cutoff: no overlap
    _check_task(val, ev, val_cut, test_cut)
    _check_task(test, ev, test_cut, last + US)


def test_an_event_at_the_cutoff_is_a_target_not_history(monkeypatch: pytest.MonkeyPatch) -> None:
    # last event at hour 240 -> test cutoff at hour 216 (1 day before), validation cutoff at hour 192
    rows = [(0, 0, 100), (0, 1, 216), (1, 0, 150), (1, 1, 192), (1, 2, 216), (2, 0, 10), (2, 1, 20), (2, 2, 30)]
    ev = _purchases([*rows, (2, 4, 240)])
    val, test = _tasks(ev, 1, 1, monkeypatch)
    assert (val.start, val.end, test.start) == (T0 + 192 * HOUR, T0 + 216 * HOUR, T0 + 216 * HOUR)
    assert ("m1", "i1", T0 + 192 * HOUR) not in _train_events(val)  # at the validation cutoff: not history...
    assert _truth(val) == {"m1": {"i1"}}  # ...but a target; the events at the test cutoff are not validation targets
    assert ("m0", "i1", T0 + 216 * HOUR) not in _train_events(test)
    assert _truth(test) == {"m0": {"i1"}, "m1": {"i2"}, "m2": {"new0"}}  # the last event (i4) is in the test window
    exact = Interactions.from_events(ev, T0 + 216 * HOUR)  # from_events alone keeps strictly before, too
    assert exact.counts.sum() == 6 and exact.counts[exact.member_index["m0"], exact.item_index["i1"]] == 0


def test_make_task_keeps_to_its_window() -> None:
    ev = _purchases([(0, 0, 0), (0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 1, 24), (0, 2, 48), (0, 3, 72)])
    task = make_task("val", ev, TemporalSplit(T0 + 24 * HOUR, T0 + 48 * HOUR))
    assert _truth(task) == {"m0": {"i1"}}  # the event at the window's end (hour 48) is not a target


# --- churn / propensity frames ----------------------------------------------------------


def _orders(rows: list[tuple[int, int]]) -> pd.DataFrame:
    ts = pd.Series([T0 + h * HOUR for _, h in rows], dtype="datetime64[us, UTC]")
    return pd.DataFrame({"member_id": [f"m{m}" for m, _ in rows], "ts": ts, "value": 1.0, "lines": 1, "units": 1.0})


def _label(o: pd.DataFrame, member: str, cut: pd.Timestamp, days: float, end: pd.Timestamp) -> float:
    """Orders of a member in [cut, cut + days), NaN when that window runs past `end`."""
    stop = cut + pd.Timedelta(days=days)
    if stop > end:
        return np.nan
    return float(sum(m == member and cut <= t < stop for m, t in zip(o["member_id"], o["ts"], strict=True)))


def _same(a: np.ndarray, b: list[float]) -> bool:
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


def _frames(o: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, **cfg: object):
    """`build_frames` as the churn and propensity jobs call it, on these orders (member features stubbed out)."""
    from datasets.config import load
    from training.outcomes import job
    from training.outcomes.config import OutcomeConfig

    monkeypatch.setattr(job, "orders", lambda ds: o)
    monkeypatch.setattr(job, "member_frame", lambda ds, o_, cut, members, h: pd.DataFrame(index=pd.Index(members)))
    family = cfg.pop("family")
    config = load(OutcomeConfig, str(family), ["dataset=x", *(f"{k}={v}" for k, v in cfg.items())])
    return job.build_frames(SimpleNamespace(name="x"), config)


def _churned(n: float) -> float:
    return n if np.isnan(n) else float(n == 0)


def _bought(n: float) -> float:
    return n if np.isnan(n) else float(n > 0)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(
    # 6-hour steps: many orders fall exactly on a cutoff (cutoffs are midnights)
    rows=st.lists(st.tuples(st.integers(0, 19), st.integers(0, 4 * 60).map(lambda q: 6 * q)), min_size=30, max_size=80),
    churn=st.integers(2, 8),
    buy=st.integers(1, 8),
    stride=st.integers(1, 6),
    family=st.sampled_from(["churn", "propensity"]),
)
def test_outcome_frames_label_only_their_windows(
    rows: list[tuple[int, int]], churn: int, buy: int, stride: int, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    o = _orders(rows)
    horizons = {"churn": churn, "buy": buy}
    try:
        cfg = {"family": family, "horizons": horizons, "n_train_cutoffs": 3, "stride_days": stride, "val_share": 0.5}
        fr = _frames(o, monkeypatch, **cfg)
    except ValueError as exc:  # a single class, or no member before a cutoff: refused, as it should be
        if "single" in str(exc) or "no member" in str(exc):
            reject()
        raise
    h = horizons["churn" if family == "churn" else "buy"]
    end = o["ts"].max() + US
    test_cut = end.floor("D") - pd.Timedelta(days=h)
    assert fr.test_cutoff == test_cut and fr.cutoffs[0] == test_cut - pd.Timedelta(days=h)
    assert all(c <= test_cut - pd.Timedelta(days=h) for c in fr.cutoffs)  # every training window ends by the test
    rows_ = pd.concat([fr.train, fr.val])
    for k, cut in enumerate(fr.cutoffs):
        part = rows_[rows_["_cut"] == k].sort_index()
        members = sorted({m for m, t in zip(o["member_id"], o["ts"], strict=True) if t < cut})
        assert list(part.index) == members  # the population: orders strictly before the cutoff
        # training labels: their windows, cut at the test cutoff (a window running past it is unlabelled)
        assert _same(part["y_churn"], [_churned(_label(o, m, cut, churn, test_cut)) for m in members])
        assert _same(part["y_buy"], [_bought(_label(o, m, cut, buy, test_cut)) for m in members])
    members = sorted({m for m, t in zip(o["member_id"], o["ts"], strict=True) if t < test_cut})
    assert list(fr.test.index) == members
    assert _same(fr.y_test["churn"], [_churned(_label(o, m, test_cut, churn, end)) for m in members])
    assert _same(fr.y_test["buy"], [_bought(_label(o, m, test_cut, buy, end)) for m in members])


def test_outcome_orders_at_a_cutoff_belong_to_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.outcomes import job

    d = 24  # hours
    rows = [
        ("a", 1 * d),
        ("a", 13 * d),  # exactly at the train cutoff: a training label (not churned), not history
        ("b", 13 * d),  # a first order exactly at the train cutoff: not in the training population
        ("c", 2 * d),
        ("c", 17 * d),  # exactly at the test cutoff: a test label, not a training label
        ("d", 3 * d),
        ("d", 14 * d),
        ("e", 4 * d),
        ("z", 5 * d),
        ("z", 21 * d),  # the last order, exactly at the end of the test window [17, 21): not in it
    ]
    o = _orders([(0, h) for _, h in rows]).assign(member_id=[m for m, _ in rows])
    monkeypatch.setattr(job, "held_out", lambda members, share, seed: np.isin(members, ["a", "c"]))
    fr = _frames(o, monkeypatch, family="churn", horizons={"churn": 4, "buy": 2}, n_train_cutoffs=1)
    assert (fr.test_cutoff, fr.cutoffs) == (T0 + 17 * DAY, [T0 + 13 * DAY])  # day 21 (the midnight at the end) - 4
    train = pd.concat([fr.train, fr.val]).sort_index()
    assert list(train.index) == ["a", "c", "d", "e", "z"]
    assert dict(zip(train.index, train["y_churn"], strict=True)) == {"a": 0, "c": 1, "d": 0, "e": 1, "z": 1}
    assert dict(zip(train.index, train["y_buy"], strict=True)) == {"a": 1, "c": 0, "d": 1, "e": 0, "z": 0}
    assert list(fr.test.index) == ["a", "b", "c", "d", "e", "z"]
    assert fr.y_test["churn"].tolist() == [1, 1, 0, 1, 1, 1] and fr.y_test["buy"].tolist() == [0, 0, 1, 0, 0, 0]
