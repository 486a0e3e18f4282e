"""Binary classifier metrics for churn / purchase-propensity models: ranking, proper scores, calibration.

Ranking: ROC AUC and PR AUC (average precision) from scikit-learn, behind the checks below.
Proper scores: Brier and log loss.
Calibration: ECE over equal-width probability bins and the reliability table behind it.
Inputs are validated loudly: a metric quietly computed on one class or on NaN is worse than none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn import metrics as skm

EPS = 1e-15  # log-loss clipping: p is taken in [EPS, 1 - EPS]


def _check(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(y, p) as float arrays after checking shape, labels in {0, 1} and probabilities in [0, 1]."""
    y_arr, p_arr = np.asarray(y), np.asarray(p, dtype=float)
    if y_arr.ndim != 1 or p_arr.ndim != 1:
        raise ValueError(f"y and p must be 1-d, got shapes {y_arr.shape} and {p_arr.shape}")
    if len(y_arr) != len(p_arr):
        raise ValueError(f"y and p differ in length: {len(y_arr)} vs {len(p_arr)}")
    if len(y_arr) == 0:
        raise ValueError("y and p are empty")
    y_f = y_arr.astype(float)
    if not np.isin(y_f, (0.0, 1.0)).all():
        raise ValueError(f"y must hold only 0/1 labels, got values {np.unique(y_arr)[:10]}")
    if np.isnan(p_arr).any():
        raise ValueError(f"p has {int(np.isnan(p_arr).sum())} NaN values")
    if (p_arr < 0).any() or (p_arr > 1).any():
        raise ValueError(f"p must be probabilities in [0, 1], got range [{p_arr.min()}, {p_arr.max()}]")
    return y_f, p_arr


def _require_both_classes(y: np.ndarray, what: str = "AUC") -> None:
    if y.min() == y.max():
        raise ValueError(f"only one class (all {int(y[0])}) in y: {what} is undefined")


def roc_curve(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), starting at (0, 0): every point of the ROC curve."""
    y_f, p_f = _check(y, p)
    _require_both_classes(y_f, "the ROC curve")
    fpr, tpr, _ = skm.roc_curve(y_f, p_f, drop_intermediate=False)
    return fpr, tpr


def roc_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties count half."""
    y_f, p_f = _check(y, p)
    _require_both_classes(y_f)
    return float(skm.roc_auc_score(y_f, p_f))


def pr_auc(y: ArrayLike, p: ArrayLike) -> float:
    """Average precision (no interpolation)."""
    y_f, p_f = _check(y, p)
    _require_both_classes(y_f)
    return float(skm.average_precision_score(y_f, p_f))


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Mean squared error of the probabilities."""
    y_f, p_f = _check(y, p)
    return float(np.mean((p_f - y_f) ** 2))


def log_loss(y: ArrayLike, p: ArrayLike) -> float:
    """Mean negative log-likelihood, with p clipped to [EPS, 1 - EPS] so a confident miss is finite."""
    y_f, p_f = _check(y, p)
    p_c = np.clip(p_f, EPS, 1 - EPS)
    return float(-np.mean(y_f * np.log(p_c) + (1 - y_f) * np.log1p(-p_c)))


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin k holds [k / n_bins, (k + 1) / n_bins); the last bin also holds 1.0."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.minimum((p * n_bins).astype(np.int64), n_bins - 1)


def reliability(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """One row per equal-width bin (empty ones too, with NaN means): bin, count, mean_pred, frac_pos."""
    y_f, p_f = _check(y, p)
    idx = _bin_index(p_f, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(idx, weights=p_f, minlength=n_bins) / count
        frac_pos = np.bincount(idx, weights=y_f, minlength=n_bins) / count
    return pd.DataFrame({"bin": np.arange(n_bins), "count": count, "mean_pred": mean_pred, "frac_pos": frac_pos})


def ece(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error: sum over non-empty bins of (count / n) * |mean p - positive rate|."""
    table = reliability(y, p, n_bins)
    full = table[table["count"] > 0]
    gap = (full["mean_pred"] - full["frac_pos"]).abs()
    return float((full["count"] * gap).sum() / full["count"].sum())


def classifier_report(y: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """All the metrics at once: auroc, auprc, brier, log_loss, ece, base_rate, n."""
    y_f, p_f = _check(y, p)
    _require_both_classes(y_f)
    return {
        "auroc": roc_auc(y_f, p_f),
        "auprc": pr_auc(y_f, p_f),
        "brier": brier(y_f, p_f),
        "log_loss": log_loss(y_f, p_f),
        "ece": ece(y_f, p_f),
        "base_rate": float(y_f.mean()),
        "n": float(len(y_f)),
    }
