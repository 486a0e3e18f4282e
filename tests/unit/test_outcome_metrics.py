"""Classifier metrics: hand-computed cases, agreement with sklearn, and loud input errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from training.outcomes.metrics import (
    brier,
    classifier_report,
    ece,
    log_loss,
    pr_auc,
    reliability,
    roc_auc,
    roc_curve,
)


def test_ece_hand_computed() -> None:
    # 10 bins of width 0.1:
    #   bin 0: p=.05 (y=0)          -> 1 x |0.05  - 0  | = 0.05
    #   bin 1: p=.15 (y=1)          -> 1 x |0.15  - 1  | = 0.85
    #   bin 3: p=.35, .38 (y=0, 1)  -> 2 x |0.365 - 0.5| = 0.27
    #   bin 9: p=.92, .97 (y=1, 0)  -> 2 x |0.945 - 0.5| = 0.89
    # ECE = (0.05 + 0.85 + 0.27 + 0.89) / 6 = 2.06 / 6
    y = [0, 1, 0, 1, 1, 0]
    p = [0.05, 0.15, 0.35, 0.38, 0.92, 0.97]
    assert ece(y, p) == pytest.approx(2.06 / 6)
    table = reliability(y, p)
    assert table["count"].tolist() == [1, 1, 0, 2, 0, 0, 0, 0, 0, 2]
    assert table.loc[3, "mean_pred"] == pytest.approx(0.365)
    assert table.loc[9, "frac_pos"] == 0.5
    assert np.isnan(table.loc[2, "mean_pred"])


def test_bin_edges() -> None:
    table = reliability([0, 1, 1, 0], [0.0, 0.1, 1.0, 0.999], n_bins=10)
    assert table["count"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]  # 0.1 opens bin 1; 1.0 closes bin 9
    assert ece([1, 1], [1.0, 1.0]) == 0.0


def test_auc_hand_computed() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # ties: the positive at 0.5 beats no negative and ties two (2 x 0.5); the one at 0.9 beats both
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.9]) == pytest.approx(0.75)
    # ranking positives at 0.8 and 0.35 among negatives 0.4, 0.1: precision 1 at recall 0.5, 2/3 at recall 1
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    fpr, tpr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2000
    y = rng.random(n) < 0.2
    p = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.15, n), 0, 1)
    if seed == 2:
        p = p.round(2)  # many tied scores
    assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), rel=1e-12)
    assert pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p), rel=1e-12)
    assert brier(y, p) == pytest.approx(skm.brier_score_loss(y, p), rel=1e-12)
    q = np.clip(p, 0.01, 0.99)
    assert log_loss(y, q) == pytest.approx(skm.log_loss(y, q), rel=1e-12)
    fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
    ours = roc_curve(y, p)
    np.testing.assert_allclose(ours[0], fpr)
    np.testing.assert_allclose(ours[1], tpr)
    report = classifier_report(y, p)
    assert set(report) == {"auroc", "auprc", "brier", "log_loss", "ece", "base_rate", "n"}
    assert report["n"] == n and report["base_rate"] == pytest.approx(y.mean())


def test_log_loss_is_finite_on_confident_misses() -> None:
    assert np.isfinite(log_loss([1, 0], [0.0, 1.0]))


def test_single_class_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"only one class \(all 0\) in y: AUC is undefined"):
        roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"only one class \(all 1\)"):
        pr_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="only one class"):
        classifier_report([1, 1], [0.1, 0.2])
    assert brier([1, 1], [1.0, 0.5]) == pytest.approx(0.125)  # defined without negatives


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([0, 1], [0.1, 1.2], r"in \[0, 1\]"),
        ([0, 1], [-0.1, 0.5], r"in \[0, 1\]"),
        ([0, 2], [0.1, 0.5], "0/1 labels"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs(y: list, p: list, message: str) -> None:
    for fn in (roc_auc, brier, ece, log_loss):
        with pytest.raises(ValueError, match=message):
            fn(y, p)
