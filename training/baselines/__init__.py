"""Recommendation baselines, always run beside a model on the same temporal split, each tuned on validation."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from datasets.store import Dataset
from training.baselines.als import ALS
from training.baselines.blend import Blend, row_max_normalized
from training.baselines.buy_again import BuyAgain
from training.baselines.ease import EASE
from training.baselines.item_knn import ItemKNN
from training.baselines.popularity import Popularity, RecentPopularity
from training.interactions import Task, protocol
from training.metrics import evaluate_ranking

log = logging.getLogger(__name__)

BASELINES: dict[str, type] = {
    "popularity": Popularity,
    "recent_popularity": RecentPopularity,
    "buy_again": BuyAgain,
    "item_knn": ItemKNN,
    "ease": EASE,
    "als": ALS,
}
BLENDS: dict[str, str] = {"buy_again+ease": "ease", "buy_again+als": "als"}

__all__ = ["ALS", "BASELINES", "EASE", "Blend", "BuyAgain", "ItemKNN", "Popularity", "RecentPopularity", "tune"]


def param_grid(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of a declared grid."""
    keys = list(grid)
    return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(grid[k] for k in keys))]


def tune(
    make: Any, task: Task, grid: dict[str, list], k: int = 20, views: Sequence[str] = ("all", "new"), keep: bool = False
) -> tuple[dict[str, dict], list[dict]]:
    """Fit every grid point on the task's training data; best params per view by NDCG@k on its window."""
    trials = []
    for params in param_grid(grid):
        t0 = time.perf_counter()
        model = make().fit(task.train, **params)
        fit_s = time.perf_counter() - t0
        res = evaluate_ranking(model, task, k, views)
        trials.append({"params": params, "fit_s": fit_s, **res, **({"model": model} if keep else {})})
        log.debug("tune %s %s: %s", getattr(make, "__name__", make), params, {v: res[f"{v}/ndcg@{k}"] for v in views})
    top = {v: max(trials, key=lambda r: r[f"{v}/ndcg@{k}"]) for v in views}
    chosen = "; ".join(f"{v} {top[v]['params']} ndcg@{k} {top[v][f'{v}/ndcg@{k}']:.4f}" for v in views)
    n = f"{len(trials)} setting{'s' if len(trials) > 1 else ''}"
    log.info("tuned %s on validation (%s): %s", getattr(make, "__name__", make), n, chosen)
    return {v: top[v]["params"] for v in views}, trials


def _row(name: str, view: str, res: dict, val: dict, params: dict, fit_s: float, k: int) -> dict:
    return {
        "model": name,
        "view": view,
        f"ndcg@{k}": res[f"{view}/ndcg@{k}"],
        f"recall@{k}": res[f"{view}/recall@{k}"],
        f"coverage@{k}": res[f"{view}/coverage@{k}"],
        "members": res[f"{view}/members"],
        f"val_ndcg@{k}": val[f"{view}/ndcg@{k}"],
        "params": params,
        "fit_s": round(fit_s, 2),
    }


class _Precomputed:
    """Scores computed once for a task's evaluated members."""

    def __init__(self, task: Task, scorer: Any) -> None:
        self.members = task.members
        self.scores = np.concatenate([row_max_normalized(scorer.score(task.members[s : s + 512]))
                                      for s in range(0, len(task.members), 512)])  # fmt: skip

    def rows(self, member_idx: np.ndarray) -> np.ndarray:
        return self.scores[np.searchsorted(self.members, member_idx)]


def tune_blend(
    base: Any, others: list[dict], task: Task, grid: dict[str, list], k: int, view: str
) -> tuple[dict, dict]:
    """Best (component params, w) for one view: component scores computed once, every w evaluated on them."""
    b = _Precomputed(task, base)
    best: tuple[float, dict, dict] = (-1.0, {}, {})
    for trial in others:
        o = _Precomputed(task, trial["model"])
        for params in param_grid(grid):
            res = evaluate_ranking(lambda idx, o=o, w=params["w"]: b.rows(idx) + w * o.rows(idx), task, k, [view])
            if res[f"{view}/ndcg@{k}"] > best[0]:
                best = (res[f"{view}/ndcg@{k}"], {**params, "other": trial["params"]}, res)
    log.info("blend %s best %s: %.4f", view, best[1], best[0])
    return best[1], best[2]


def _fit(cls: type, task: Task, params: dict) -> tuple[Any, float]:
    t0 = time.perf_counter()
    model = cls().fit(task.train, **params)
    return model, time.perf_counter() - t0


def tune_and_evaluate(
    dataset: str | Dataset,
    test_days: float,
    val_days: float,
    k: int = 20,
    views: Sequence[str] = ("all", "new"),
    models: Sequence[str] | None = None,
    grids: dict[str, dict[str, list]] | None = None,
    joint_blends: bool = True,
) -> pd.DataFrame:
    """Tune each baseline (and the blends) on validation per view, refit the best before the test cutoff, evaluate.

    `joint_blends`: tune a blend's component params together with w (else the component's own best per view).
    """
    val, test = protocol(dataset, test_days, val_days)
    log.info("val: %d x %d, %d members; test: %d x %d, %d members", val.train.n_members, val.train.n_items,
             len(val.members), test.train.n_members, test.train.n_items, len(test.members))  # fmt: skip
    names = list(models or [*BASELINES, *BLENDS])
    grids = grids or {}
    rows, best_of, val_of, kept = [], {}, {}, {}
    blends = [n for n in names if n in BLENDS]
    needed = [
        n for n in BASELINES if n in names or (blends and n == "buy_again") or any(BLENDS[b] == n for b in blends)
    ]
    for name in needed:
        cls = BASELINES[name]
        keep = any(BLENDS[b] == name for b in blends)
        best, trials = tune(cls, val, grids.get(name, cls.grid), k, views, keep=keep)
        best_of[name] = best
        kept[name] = [{"params": t["params"], "model": t.pop("model")} for t in trials] if keep else []
        val_of[name] = {v: next(t for t in trials if t["params"] == best[v]) for v in views}
        fitted: dict[str, tuple[Any, float]] = {}
        for view in views:
            key = repr(best[view])
            if key not in fitted:
                fitted[key] = _fit(cls, test, best[view])
            model, fit_s = fitted[key]
            res = evaluate_ranking(model, test, k, [view])
            if name in names:
                rows.append(_row(name, view, res, val_of[name][view], best[view], fit_s, k))
    for name in blends:
        other, ba_best = BASELINES[BLENDS[name]], best_of["buy_again"]
        for view in views:
            ba, _ = _fit(BuyAgain, val, ba_best[view])
            cands = [c for c in kept[BLENDS[name]] if joint_blends or c["params"] == best_of[BLENDS[name]][view]]
            params, valres = tune_blend(ba, cands, val, grids.get(name, Blend.grid), k, view)
            (ba_t, s1), (oth_t, s2) = _fit(BuyAgain, test, ba_best[view]), _fit(other, test, params["other"])
            model = Blend(ba_t, oth_t).fit(test.train, w=params["w"])
            res = evaluate_ranking(model, test, k, [view])
            shown = {"w": params["w"], "buy_again": ba_best[view], BLENDS[name]: params["other"]}
            rows.append(_row(name, view, res, valres, shown, s1 + s2, k))
    return pd.DataFrame(rows)
