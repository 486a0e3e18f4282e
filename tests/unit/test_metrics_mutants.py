"""Ranking metrics: the cases the hand-computed tests leave open (each kills a mutant that survived them, issue 19).

Truth given as sets, rankings and truth of different lengths, top_k against a full sort (k = 1
included), the defaults (top 20, both views) and the views that have no member to evaluate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.interactions import Interactions, Task
from training.metrics import evaluate_ranking, ndcg_at_k, rankings, recall_at_k, top_k

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _task(n_items: int, truth: list[list[int]], history: list[list[int]]) -> Task:
    """Members m0.. with the given purchase history (item indices) before the cutoff and truth after it."""
    rows = [(f"m{m}", f"i{i:03d}", T0) for m, items in enumerate(history) for i in items]
    rows += [("filler", f"i{i:03d}", T0) for i in range(n_items)]  # every item is in the catalogue
    train = Interactions.from_events(
        pd.DataFrame(rows, columns=["member_id", "item_id", "ts"]), T0 + pd.Timedelta(1, "D")
    )
    members = np.array([train.member_index[f"m{m}"] for m in range(len(truth))], dtype=np.int64)
    return Task("t", train, None, members, [np.array(t, dtype=np.int64) for t in truth])


def test_truth_given_as_sets_counts_like_arrays() -> None:
    topk = np.array([[0, 1, 2], [3, 4, 5]])
    arrays = [np.array([1, 99]), np.array([5, 3])]
    sets = [{1, 99}, {5, 3}]
    assert recall_at_k(topk, sets).tolist() == recall_at_k(topk, arrays).tolist() == [0.5, 1.0]
    assert ndcg_at_k(topk, sets) == pytest.approx(ndcg_at_k(topk, arrays))


def test_rankings_and_truth_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        recall_at_k(np.array([[0, 1]]), [np.array([0]), np.array([1])])


@pytest.mark.parametrize("k", [1, 2, 7, 40, 60])
def test_top_k_equals_a_full_sort(k: int) -> None:
    scores = np.random.default_rng(k).normal(size=(30, 40)).astype(np.float32)
    assert top_k(scores, k).tolist() == np.argsort(-scores, axis=1)[:, :k].tolist()


@pytest.mark.xfail(
    strict=True,
    reason="top_k breaks a tie at the k-th place by argpartition's choice, not by the lower index its docstring "
    "promises (ties inside the top k are ordered by index); found by this test, left to the module's owner",
)
def test_top_k_ties_at_the_kth_place_go_to_the_lower_index() -> None:
    scores = np.random.default_rng(0).integers(0, 4, (30, 40)).astype(np.float32)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :1]
    assert top_k(scores, 1).tolist() == expected.tolist()


def test_defaults_rank_the_top_20_in_both_views() -> None:
    task = _task(30, truth=[[0, 25], [3]], history=[[0, 1], [2]])

    def by_index(idx: np.ndarray) -> np.ndarray:  # item 29 first, ..., item 0 last
        return np.tile(np.arange(30, dtype=np.float32), (len(idx), 1))

    ranked = rankings(by_index, task)
    assert set(ranked) == {"all", "new"}
    assert ranked["all"].tolist() == [list(range(29, 9, -1))] * 2
    assert ranked["new"][0].tolist() == list(range(29, 9, -1))  # m0's history (0, 1) is ranked last anyway
    res = evaluate_ranking(by_index, task)
    assert set(res) == {f"{v}/{m}" for v in ("all", "new") for m in ("ndcg@20", "recall@20", "coverage@20", "members")}
    assert res["all/recall@20"] == pytest.approx((0.5 + 0.0) / 2)  # m0 gets 25 in the top 20, not 0
    assert res["new/members"] == 2 and res["new/recall@20"] == pytest.approx((1.0 + 0.0) / 2)


def test_a_view_without_members_to_evaluate_is_nan() -> None:
    task = _task(5, truth=[[0], [1]], history=[[0], [1]])  # everything bought again: nothing new

    res = evaluate_ranking(lambda idx: np.zeros((len(idx), 5), np.float32), task, k=3)
    assert res["all/members"] == 2 and res["all/recall@3"] == pytest.approx(1.0)
    assert res["new/members"] == 0
    assert all(np.isnan(res[f"new/{m}@3"]) for m in ("ndcg", "recall", "coverage"))


def test_a_task_without_members_gives_empty_rankings_and_nan() -> None:
    task = _task(5, truth=[], history=[])

    ranked = rankings(lambda idx: np.zeros((len(idx), 5), np.float32), task, k=3)
    assert ranked["all"].shape == ranked["new"].shape == (0, 3)
    res = evaluate_ranking(lambda idx: np.zeros((len(idx), 5), np.float32), task, k=3)
    assert res["all/members"] == res["new/members"] == 0
    assert np.isnan(res["all/ndcg@3"]) and np.isnan(res["new/recall@3"])
