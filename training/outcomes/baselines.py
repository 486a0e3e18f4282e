"""Churn / propensity baselines run beside the net on the same rows: recency, BG/NBD, logistic, LightGBM.

Each baseline returns logit scores for the training-side validation members and the test
members; the job calibrates every one of them the same way on validation, so the comparison
of calibration is between models, not between calibration choices.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.outcomes.calibration import logit
from training.outcomes.config import LightGBMSection
from training.outcomes.frame import CATEGORICAL, NUMERIC
from training.outcomes.metrics import log_loss
from training.outcomes.tabular import TabularData

log = logging.getLogger(__name__)


@dataclass
class BaselineScores:
    """Logit scores on validation and test, fit time, and (where the model has them) feature importances."""

    name: str
    val: np.ndarray
    test: np.ndarray
    fit_s: float = 0.0
    params: dict = field(default_factory=dict)
    importance: pd.Series | None = None


def recency(val: pd.DataFrame, test: pd.DataFrame, primary: str) -> BaselineScores:
    """Days since the last order: more days, more churn (and less buying). A monotone score, calibrated later."""
    sign = 1.0 if primary == "churn" else -1.0

    def score(f: pd.DataFrame) -> np.ndarray:
        return sign * np.log1p(f["recency_days"].to_numpy(float))

    return BaselineScores("recency", score(val), score(test))


def bgnbd(val: pd.DataFrame, test: pd.DataFrame, primary: str) -> BaselineScores:
    """BG/NBD fitted at each frame's own cutoff: P(no order in the horizon) for churn, 1 - P(no order in 30 d) for buy.

    Its output is already a probability, so it is used as it is (its logit is passed on, and the
    job's calibration step can still fix its scale on validation).
    """
    col = "bg_p_none_h" if primary == "churn" else "bg_p_none_30"

    def score(f: pd.DataFrame) -> np.ndarray:
        p = f[col].to_numpy(float)
        return logit(p if primary == "churn" else 1.0 - p)

    return BaselineScores("bgnbd", score(val), score(test))


def _dense(d: TabularData) -> np.ndarray:
    """Standardized numerics plus one-hot categorical codes (for the linear model)."""
    hots = [np.eye(card, dtype=np.float32)[d.categorical[:, j]] for j, card in enumerate(d.cardinalities)]
    return np.hstack([d.numeric, *hots]) if hots else d.numeric


def logistic(
    train: TabularData, y: np.ndarray, val: TabularData, y_val: np.ndarray, test: TabularData, seed: int = 0
) -> BaselineScores:
    """L2 logistic regression on the same preprocessed inputs as the net; C chosen by validation log loss."""
    from sklearn.linear_model import LogisticRegression

    xt, xv, xs = _dense(train), _dense(val), _dense(test)
    best, t0 = None, time.perf_counter()
    for c in (0.01, 0.1, 1.0):
        m = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(xt, y)
        loss = log_loss(y_val, m.predict_proba(xv)[:, 1])
        if best is None or loss < best[0]:
            best = (loss, c, m)
    _, c, m = best
    return BaselineScores("logistic", m.decision_function(xv), m.decision_function(xs), time.perf_counter() - t0,
                          {"C": c})  # fmt: skip


def _lgb_frame(f: pd.DataFrame, categories: dict[str, list]) -> pd.DataFrame:
    out = f[NUMERIC].astype(float).copy()
    for c in CATEGORICAL:
        out[c] = pd.Categorical(f[c].astype(object), categories=categories[c])
    return out


def lightgbm(
    train: pd.DataFrame,
    y: np.ndarray,
    val: pd.DataFrame,
    y_val: np.ndarray,
    test: pd.DataFrame,
    cfg: LightGBMSection,
    seed: int = 0,
) -> BaselineScores:
    """Gradient-boosted trees on RFM, behaviour and BG/NBD columns; grid + early stopping on validation log loss."""
    import lightgbm as lgb

    cats = {c: sorted({v for v in train[c].dropna().astype(str)}) for c in CATEGORICAL}
    xt, xv, xs = (
        _lgb_frame(f.assign(**{c: f[c].astype(object) for c in CATEGORICAL}), cats) for f in (train, val, test)
    )
    best, t0 = None, time.perf_counter()
    for leaves in cfg.num_leaves:
        for mcs in cfg.min_child_samples:
            m = lgb.LGBMClassifier(
                n_estimators=cfg.n_estimators, learning_rate=cfg.learning_rate, num_leaves=leaves,
                min_child_samples=mcs, subsample=cfg.subsample, subsample_freq=1, colsample_bytree=cfg.colsample_bytree,
                n_jobs=1, random_state=seed, verbose=-1,
            )  # fmt: skip
            m.fit(xt, y, eval_set=[(xv, y_val)], callbacks=[lgb.early_stopping(50, verbose=False)])
            loss = log_loss(y_val, m.predict_proba(xv)[:, 1])
            if best is None or loss < best[0]:
                best = (loss, {"num_leaves": leaves, "min_child_samples": mcs, "trees": m.best_iteration_}, m)
    _, params, m = best
    log.info("lightgbm best %s (validation log loss %.4f)", params, best[0])
    imp = pd.Series(m.booster_.feature_importance("gain"), index=xt.columns).sort_values(ascending=False)
    return BaselineScores("lightgbm", m.predict(xv, raw_score=True), m.predict(xs, raw_score=True),
                          time.perf_counter() - t0, params, imp)  # fmt: skip
