"""Recommendation baselines on a tiny hand-made purchase history."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.split import TemporalSplit
from training.baselines import (
    ALS,
    EASE,
    Blend,
    BuyAgain,
    ItemKNN,
    Popularity,
    RecentPopularity,
    tune,
    tune_and_evaluate,
)
from training.interactions import Interactions, make_task

T0 = pd.Timestamp("2011-01-03", tz="UTC")
# (member, item, day): a and b are bought together; z and y form an unrelated pair; everyone buys "pop"
HISTORY = [
    ("u0", "a", 90), ("u0", "a", 95), ("u0", "a", 99), ("u0", "b", 90), ("u0", "pop", 10),
    ("u1", "a", 50), ("u1", "b", 50), ("u1", "pop", 60),
    ("u2", "a", 40), ("u2", "b", 40), ("u2", "pop", 70),
    ("u3", "a", 30), ("u3", "b", 30), ("u3", "pop", 80),
    ("u4", "a", 85), ("u4", "pop", 85),
    ("u5", "z", 20), ("u5", "y", 20), ("u5", "pop", 90),
]  # fmt: skip
FUTURE = [("u4", "b", 103), ("u0", "a", 104), ("u1", "a", 105), ("u5", "z", 106), ("u2", "b", 107)]


def events(rows: list[tuple]) -> pd.DataFrame:
    ev = pd.DataFrame(rows, columns=["member_id", "item_id", "day"])
    ev["ts"] = T0 + pd.to_timedelta(ev.pop("day"), unit="D")
    return ev


@pytest.fixture(scope="module")
def inter() -> Interactions:
    return Interactions.from_events(events(HISTORY), T0 + pd.Timedelta(days=100))


def col(inter: Interactions, item: str) -> int:
    return inter.item_index[item]


def test_interactions_counts_and_last_purchase(inter):
    assert inter.counts.shape == (6, 5)
    u0, a = inter.member_index["u0"], col(inter, "a")
    assert inter.counts[u0, a] == 3
    assert inter.last_ts[u0, a] == (T0 + pd.Timedelta(days=99)).timestamp()


def test_popularity_ranks_the_most_bought_item_first(inter):
    s = Popularity().fit(inter).score(np.arange(inter.n_members))
    assert s.shape == (6, 5)
    assert (s.argmax(1) == col(inter, "pop")).all()
    recent = RecentPopularity().fit(inter, days=30).score(np.array([0]))
    assert recent[0, col(inter, "a")] > recent[0, col(inter, "z")]


def test_buy_again_ranks_the_members_frequent_recent_item_first(inter):
    u0 = inter.member_index["u0"]
    s = BuyAgain().fit(inter, half_life=30).score(np.array([u0]))[0]
    assert s.argmax() == col(inter, "a")
    bought = {col(inter, i) for i in ("a", "b", "pop")}
    assert min(s[list(bought)]) > max(s[j] for j in range(inter.n_items) if j not in bought)  # fill stays below


@pytest.mark.parametrize(
    ("make", "params"),
    [
        (ItemKNN, {"neighbours": 2}),
        (ItemKNN, {"neighbours": 2, "side": "history", "weighting": "log"}),
        (EASE, {"lam": 1.0}),
        (EASE, {"lam": 1.0, "dual": True}),
        (ALS, {"factors": 4, "regularization": 0.01, "alpha": 10.0, "iterations": 20}),
    ],
)
def test_co_purchased_item_scores_above_unrelated(inter, make, params):
    u4 = inter.member_index["u4"]
    s = make().fit(inter, **params).score(np.array([u4, 0]))
    assert s.shape == (2, 5) and s.dtype == np.float32
    assert s[0, col(inter, "b")] > s[0, col(inter, "z")]


def test_ease_dual_equals_primal(inter):
    idx = np.arange(inter.n_members)
    primal = EASE().fit(inter, lam=2.0, dual=False).score(idx)
    dual = EASE().fit(inter, lam=2.0, dual=True).score(idx)
    np.testing.assert_allclose(dual, primal, atol=1e-4)


def test_blend_adds_normalized_scores(inter):
    ba, other = BuyAgain().fit(inter), EASE().fit(inter, lam=1.0)
    idx = np.array([0, 4])
    s = Blend(ba, other).fit(inter, w=0.5).score(idx)
    b, o = ba.score(idx), other.score(idx)
    np.testing.assert_allclose(s, b / b.max(1, keepdims=True) + 0.5 * o / o.max(1, keepdims=True), rtol=1e-5)


def test_tuning_picks_from_the_grid():
    split = TemporalSplit(T0 + pd.Timedelta(days=100), T0 + pd.Timedelta(days=120))
    task = make_task("val", events(HISTORY + FUTURE), split)
    best, trials = tune(ItemKNN, task, {"neighbours": [1, 3], "weighting": ["binary"]})
    assert len(trials) == 2
    assert set(best) == {"all", "new"}
    assert all(b["neighbours"] in (1, 3) for b in best.values())


def write_retail(path: Path, rows: list[tuple]) -> Path:
    """The events as an Online Retail CSV (one invoice per member and day)."""
    code = {"a": "10001", "b": "10002", "pop": "10003", "z": "10004", "y": "10005"}
    with gzip.open(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
        )
        for m, item, day in rows:
            ts = (T0.tz_localize(None) + pd.Timedelta(days=day, hours=10)).strftime("%Y-%m-%d %H:%M:%S")
            w.writerow(
                [f"5{int(m[1:]):02d}{day:03d}", code[item], item, 1, ts, 1.5, 12000 + int(m[1:]), "United Kingdom"]
            )
    return path


def test_tune_and_evaluate_on_a_prepared_dataset(tailor_home, prepare_cfg, tmp_path):
    from datasets.prepare import prepare

    prepare("online_retail", write_retail(tmp_path / "r.csv.gz", HISTORY + FUTURE), prepare_cfg, dataset="tiny")
    grids = {"recent_popularity": {"days": [7, 60]}, "buy_again": {"half_life": [30], "fill_days": [30]}}
    grids |= {"ease": {"lam": [1.0, 10.0]}, "buy_again+ease": {"w": [0.5]}}
    models = ["recent_popularity", "buy_again", "buy_again+ease"]
    table = tune_and_evaluate("tiny", test_days=10, val_days=10, models=models, grids=grids)
    assert set(table["model"]) == set(models)  # ease is tuned for the blend but not reported
    assert set(table["view"]) == {"all", "new"}
    assert {"ndcg@20", "recall@20", "coverage@20", "params", "fit_s"} <= set(table.columns)
    assert table["ndcg@20"].between(0, 1).all()
    assert table.loc[table["model"] == "recent_popularity", "params"].map(lambda p: p["days"] in (7, 60)).all()
