"""Baseline uplift learners on LightGBM (n_jobs=1: two cores shared, threads only contend).

- S-learner: one classifier on features + treatment flag; uplift = p(x, t=1) - p(x, t=0).
- T-learner: one classifier per group; uplift = p1(x) - p0(x).
- Class transformation (Jaskowski & Jaroszewicz 2012): z = 1 when (treated and responded) or (control and
  did not); with a 50/50 assignment uplift = 2 P(z=1|x) - 1. Groups are reweighted to equal size first.
- x-learner (Kunzel et al. 2019): T-learner outcome models, imputed effects regressed per group and blended
  by the propensity; cheap and often the strongest meta-learner on small effects.
Each learner is fitted on the fit part of the train half; `n_estimators` is picked on the validation part
by the Qini coefficient (`tune`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.uplift.metrics import qini_auc

NAMES = ("s_learner", "t_learner", "class_transformation", "x_learner")


@dataclass
class GBMParams:
    """LightGBM settings shared by every baseline (small trees: the effects are small and noisy)."""

    n_estimators: int = 200
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_child_samples: int = 100
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    extra: dict = field(default_factory=dict)

    def kwargs(self, seed: int) -> dict:
        return dict(n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                    min_child_samples=self.min_child_samples, subsample=self.subsample, subsample_freq=1,
                    colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda, n_jobs=1,
                    random_state=seed, verbose=-1, **self.extra)  # fmt: skip


def _clf(p: GBMParams, seed: int) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(**p.kwargs(seed))


def _reg(p: GBMParams, seed: int) -> lgb.LGBMRegressor:
    return lgb.LGBMRegressor(**p.kwargs(seed))


class Learner:
    """fit(x, t, y) then uplift(x); `importance` gives split-gain importance per feature."""

    name = "learner"

    def __init__(self, params: GBMParams | None = None, seed: int = 0) -> None:
        self.params, self.seed = params or GBMParams(), seed
        self.models: list = []

    def fit(self, x: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> Learner:
        raise NotImplementedError

    def uplift(self, x: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def importance(self, columns: list[str]) -> pd.Series:
        """Mean gain importance over the learner's models, on the original feature names."""
        total = pd.Series(0.0, index=columns)
        for m in self.models:
            imp = pd.Series(m.booster_.feature_importance("gain"), index=m.booster_.feature_name())
            total = total.add(imp.rename(lambda c: columns[int(c[7:])] if c.startswith("Column_") else c), fill_value=0)
        return (total / max(total.sum(), 1e-12)).reindex(columns).fillna(0.0)


def _with_t(x: pd.DataFrame, t: np.ndarray | int) -> pd.DataFrame:
    return x.assign(treatment=np.broadcast_to(np.asarray(t, np.float32), len(x)))


class SLearner(Learner):
    name = "s_learner"

    def fit(self, x: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> SLearner:
        self.models = [_clf(self.params, self.seed).fit(_with_t(x, t), y)]
        return self

    def uplift(self, x: pd.DataFrame) -> np.ndarray:
        m = self.models[0]
        return m.predict_proba(_with_t(x, 1))[:, 1] - m.predict_proba(_with_t(x, 0))[:, 1]


class TLearner(Learner):
    name = "t_learner"

    def fit(self, x: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> TLearner:
        self.models = [_clf(self.params, self.seed).fit(x[t == g], y[t == g]) for g in (0, 1)]
        return self

    def uplift(self, x: pd.DataFrame) -> np.ndarray:
        return self.models[1].predict_proba(x)[:, 1] - self.models[0].predict_proba(x)[:, 1]


class ClassTransformation(Learner):
    name = "class_transformation"

    def fit(self, x: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> ClassTransformation:
        z = (y == t).astype(int)
        w = np.where(t == 1, 0.5 / t.mean(), 0.5 / (1 - t.mean()))  # as if assigned 50/50
        self.models = [_clf(self.params, self.seed).fit(x, z, sample_weight=w)]
        return self

    def uplift(self, x: pd.DataFrame) -> np.ndarray:
        return 2 * self.models[0].predict_proba(x)[:, 1] - 1


class XLearner(Learner):
    name = "x_learner"

    def fit(self, x: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> XLearner:
        m0, m1 = (_clf(self.params, self.seed).fit(x[t == g], y[t == g]) for g in (0, 1))
        d1 = y[t == 1] - m0.predict_proba(x[t == 1])[:, 1]
        d0 = m1.predict_proba(x[t == 0])[:, 1] - y[t == 0]
        self.tau = [_reg(self.params, self.seed).fit(x[t == 0], d0), _reg(self.params, self.seed).fit(x[t == 1], d1)]
        self.e = float(t.mean())
        self.models = [m0, m1, *self.tau]
        return self

    def uplift(self, x: pd.DataFrame) -> np.ndarray:
        return self.e * self.tau[0].predict(x) + (1 - self.e) * self.tau[1].predict(x)


LEARNERS: dict[str, type[Learner]] = {c.name: c for c in (SLearner, TLearner, ClassTransformation, XLearner)}


def tune(name: str, params: GBMParams, grid: list[int], seed: int, fit_data: tuple, val_data: tuple) -> tuple:
    """Pick n_estimators on validation Qini; returns (learner refitted on fit+val, chosen n, val Qini, fit seconds)."""
    (xf, tf, yf), (xv, tv, yv) = fit_data, val_data
    scores = {}
    for n in grid:
        p = GBMParams(**{**params.__dict__, "n_estimators": n})
        scores[n] = qini_auc(yv, LEARNERS[name](p, seed).fit(xf, tf, yf).uplift(xv), tv)
    best = max(scores, key=scores.get)
    t0 = time.perf_counter()
    x, t, y = pd.concat([xf, xv], ignore_index=True), np.r_[tf, tv], np.r_[yf, yv]
    learner = LEARNERS[name](GBMParams(**{**params.__dict__, "n_estimators": best}), seed).fit(x, t, y)
    return learner, best, scores[best], time.perf_counter() - t0
