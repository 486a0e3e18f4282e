"""Uplift metrics agree with scikit-uplift 0.5.1, on random data and on a case worked by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklift.metrics import qini_auc_score, uplift_at_k, uplift_auc_score

from training.uplift import metrics as m


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_sklift_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 2000))
    y, t = rng.integers(0, 2, n), (rng.random(n) < rng.uniform(0.2, 0.8)).astype(int)
    u = rng.normal(size=n) + 0.5 * y * t
    if seed % 2:
        u = np.round(u, 1)  # ties: one threshold per distinct score
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklift calls a deprecated sklearn helper
        assert m.qini_auc(y, u, t) == pytest.approx(qini_auc_score(y, u, t), abs=1e-12)
        assert m.uplift_auc(y, u, t) == pytest.approx(uplift_auc_score(y, u, t), abs=1e-12)
        assert m.uplift_at_k(y, u, t, 0.3) == pytest.approx(uplift_at_k(y, u, t, strategy="overall", k=0.3), abs=1e-12)


def test_hand_case():
    y, t, u = np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0]), np.array([4.0, 3.0, 2.0, 1.0])
    x, v = m.qini_curve(y, u, t)
    assert x.tolist() == [0, 1, 2, 3, 4] and v.tolist() == [0, 1, 1, -1, 0]
    # area 1 over the perfect curve's 3 (it puts the control responder last): 1/3
    assert m.qini_auc(y, u, t) == pytest.approx(1 / 3)
    assert m.uplift_at_k(y, u, t, 0.75) == pytest.approx(0.5 - 1.0)  # top 3: treated 1/2, control 1/1
    inc = m.incremental_per_1000(y, u, t, 0.75)
    assert inc["model"] == pytest.approx(1000 * 0.75 * -0.5) and inc["random"] == pytest.approx(0.0)


def test_a_perfect_ranking_scores_one_and_a_reversed_one_less_than_zero():
    rng = np.random.default_rng(0)
    y, t = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    perfect = (y * t - y * (1 - t)).astype(float)
    assert m.qini_auc(y, perfect, t) == pytest.approx(1.0)
    assert m.qini_auc(y, -perfect, t) < 0


@pytest.mark.parametrize(
    ("y", "t", "message"),
    [
        ([0, 0, 0, 0], [1, 0, 1, 0], "single class"),
        ([1, 0, 1, 0], [0, 0, 0, 0], "no treated rows"),
        ([1, 0, 1, 0], [1, 1, 1, 1], "no control rows"),
        ([1, 0, 2, 0], [1, 0, 1, 0], "binary"),
    ],
)
def test_bad_inputs_give_clear_errors(y, t, message):
    with pytest.raises(ValueError, match=message):
        m.qini_auc(np.array(y), np.arange(4.0), np.array(t))


def test_lengths_must_match():
    with pytest.raises(ValueError, match="lengths differ"):
        m.uplift_auc(np.array([0, 1]), np.array([0.1]), np.array([0, 1]))
