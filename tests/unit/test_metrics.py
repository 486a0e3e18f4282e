"""Ranking metrics: hand-computed Recall@K / NDCG@K / coverage, and the new-to-member view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.split import TemporalSplit
from training.interactions import make_task
from training.metrics import coverage, evaluate_ranking, ndcg_at_k, recall_at_k, top_k

L3 = 1 / np.log2(3)  # discount at rank 2


def test_recall_counts_unrankable_truth_in_the_denominator():
    topk = np.array([[0, 1, 2], [3, 4, 5]])
    truth = [np.array([1, 99]), np.array([7])]  # 99: an item unseen in training
    assert recall_at_k(topk, truth).tolist() == [0.5, 0.0]
    assert recall_at_k(topk[:1], [np.array([0, 1, 2, 3])], k=2).tolist() == [0.5]


def test_ndcg_hand_computed():
    topk = np.array([[0, 1, 2], [5, 6, 7], [9, 8, 7]])
    truth = [np.array([1, 5]), np.array([5, 6, 7, 8]), np.array([4])]
    got = ndcg_at_k(topk, truth)
    assert got[0] == pytest.approx(L3 / (1 + L3))  # hit at rank 2; ideal = 2 hits
    assert got[1] == pytest.approx(1.0)  # ideal over min(|truth|, k) = 3 hits
    assert got[2] == 0.0


def test_coverage_is_the_share_of_catalogue_recommended():
    assert coverage(np.array([[0, 1], [1, 2]]), n_items=10) == pytest.approx(0.3)


def test_top_k_best_first_ties_by_index():
    s = np.array([[0.1, 0.9, 0.5, 0.9, -1.0]], dtype=np.float32)
    assert top_k(s, 3).tolist() == [[1, 3, 2]]


def _task():
    t = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [("m1", "a", 0), ("m1", "b", 1), ("m2", "c", 2), ("m2", "a", 3), ("m3", "d", 3)]
    rows += [("m1", "a", 20), ("m1", "c", 21), ("m2", "a", 22), ("m3", "d", 22), ("m9", "a", 22), ("m2", "zz", 23)]
    ev = pd.DataFrame(rows, columns=["member_id", "item_id", "day"])
    ev["ts"] = t + pd.to_timedelta(ev.pop("day"), unit="D")
    return make_task("test", ev, TemporalSplit(t + pd.Timedelta(days=10), t + pd.Timedelta(days=40)))


def test_task_truth_and_new_view_exclude_history():
    task = _task()
    assert list(task.train.item_ids) == ["a", "b", "c", "d"]
    assert task.members.tolist() == [0, 1, 2]  # m9 has no training history: not evaluated
    assert [t.tolist() for t in task.truth] == [[0, 2], [0, 4], [3]]  # zz unseen in training: id 4
    assert [t.tolist() for t in task.new_truth()] == [[2], [4], []]

    def favour_history(idx: np.ndarray) -> np.ndarray:
        return task.history(idx).toarray() * 10 + np.arange(4)[None, :]

    res = evaluate_ranking(favour_history, task, k=2)
    assert res["all/members"] == 3 and res["new/members"] == 2  # m3 has nothing new
    # all: m1 ranks b, a -> hit a at 2 (ideal 2 hits); m2 c, a -> hit a at 2 (zz counts); m3 d -> 1
    assert res["all/recall@2"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert res["all/ndcg@2"] == pytest.approx((2 * L3 / (1 + L3) + 1.0) / 3)
    # new: history masked -> m1 ranks d, c (hit c at 2); m2 ranks d, b (truth zz unreachable)
    assert res["new/recall@2"] == pytest.approx(0.5)
    assert res["new/ndcg@2"] == pytest.approx(L3 / 2)
    assert res["new/coverage@2"] == pytest.approx(3 / 4)
