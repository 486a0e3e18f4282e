"""Ranking metrics on full-catalogue rankings: Recall@K, NDCG@K (binary relevance), coverage."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from training.interactions import Task

Scorer = Callable[[np.ndarray], np.ndarray]


def _hits(topk: np.ndarray, truth: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean (n, k): is the item at each rank in the member's truth set."""
    return np.stack(
        [np.isin(row, np.asarray(list(t) if isinstance(t, set) else t)) for row, t in zip(topk, truth, strict=True)]
    )


def recall_at_k(topk: np.ndarray, truth: Sequence[np.ndarray], k: int | None = None) -> np.ndarray:
    """Per member: hits in the top k / |truth| (items that cannot be ranked still count)."""
    topk = np.asarray(topk)[:, :k]
    sizes = np.array([len(t) for t in truth], dtype=np.float64)
    return _hits(topk, truth).sum(1) / np.maximum(sizes, 1)


def ndcg_at_k(topk: np.ndarray, truth: Sequence[np.ndarray], k: int | None = None) -> np.ndarray:
    """Per member: DCG of the top k with binary gains / ideal DCG over min(|truth|, k) hits."""
    topk = np.asarray(topk)[:, :k]
    k = topk.shape[1]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = _hits(topk, truth) @ disc
    ideal = np.concatenate([[0.0], np.cumsum(disc)])
    sizes = np.minimum([len(t) for t in truth], k)
    return dcg / np.maximum(ideal[sizes], 1e-12)


def coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalogue recommended to at least one member."""
    return len(np.unique(np.asarray(topk).ravel())) / n_items


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (ties by lower index)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, 1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, 1)


def mask_history(scores: np.ndarray, task: Task, member_idx: np.ndarray) -> np.ndarray:
    """Set the scores of items each member already bought (before the cutoff) to -inf, in place."""
    hist = task.history(member_idx).tocoo()
    scores[hist.row, hist.col] = -np.inf
    return scores


def rankings(scorer: Any, task: Task, k: int = 20, views: Sequence[str] = ("all", "new"), batch: int = 512) -> dict:
    """Top-k item indices of every evaluated member, per view, by full ranking in member batches."""
    fn: Scorer = scorer.score if hasattr(scorer, "score") else scorer
    out = {v: [] for v in views}
    for s in range(0, len(task.members), batch):
        idx = task.members[s : s + batch]
        scores = np.asarray(fn(idx), dtype=np.float32)
        if "all" in views:
            out["all"].append(top_k(scores, k))
        if "new" in views:
            out["new"].append(top_k(mask_history(scores, task, idx), k))
    return {v: np.concatenate(r) if r else np.zeros((0, k), np.int64) for v, r in out.items()}


def evaluate_ranking(
    scorer: Any, task: Task, k: int = 20, views: Sequence[str] = ("all", "new"), batch: int = 512
) -> dict[str, float]:
    """Recall, NDCG, coverage at k and member count per view ("new": history masked, no new truth -> dropped)."""
    ranked = rankings(scorer, task, k, views, batch)
    res: dict[str, float] = {}
    for view, topk in ranked.items():
        truth = task.truth if view == "all" else task.new_truth()
        keep = np.array([len(t) > 0 for t in truth], dtype=bool)
        topk, truth = topk[keep], [t for t, ok in zip(truth, keep, strict=True) if ok]
        res[f"{view}/ndcg@{k}"] = float(ndcg_at_k(topk, truth).mean()) if len(truth) else float("nan")
        res[f"{view}/recall@{k}"] = float(recall_at_k(topk, truth).mean()) if len(truth) else float("nan")
        res[f"{view}/coverage@{k}"] = coverage(topk, task.train.n_items) if len(truth) else float("nan")
        res[f"{view}/members"] = int(keep.sum())
    return res
