"""Calibrators fix deliberately mis-calibrated scores, survive a save/load, and are chosen sensibly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit

from training.outcomes.calibration import (
    IsotonicCalibrator,
    TemperatureScaler,
    calibrator_from_dict,
    choose_calibrator,
    fit_calibrator,
    logit,
)
from training.outcomes.metrics import ece


def draw(n: int, seed: int, distort=lambda z: 3 * z) -> tuple[np.ndarray, np.ndarray]:
    """Labels from true logits z ~ N(-1, 1.5); the 'model' reports distort(z) (3z: over-confident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 1.5, n)
    y = (rng.random(n) < expit(z)).astype(int)
    return distort(z), y


@pytest.fixture(scope="module")
def val_test() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return draw(4000, seed=1), draw(20000, seed=2)


@pytest.mark.parametrize("kind", ["temperature", "isotonic"])
def test_reduces_ece_on_overconfident_scores(kind: str, val_test) -> None:
    (s_val, y_val), (s_test, y_test) = val_test
    before = ece(y_test, expit(s_test))
    cal = fit_calibrator(kind, s_val, y_val)
    after = ece(y_test, cal.transform(s_test))
    assert before > 0.08  # the distortion is real
    assert after < 0.3 * before and after < 0.03, (before, after)


def test_temperature_recovers_the_distortion(val_test) -> None:
    (s_val, y_val), _ = val_test
    cal = TemperatureScaler().fit(s_val, y_val)
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    assert cal.bias == pytest.approx(0.0, abs=0.1)
    no_bias = TemperatureScaler(fit_bias=False).fit(s_val, y_val)
    assert no_bias.bias == 0.0 and no_bias.temperature == pytest.approx(3.0, rel=0.1)


@pytest.mark.parametrize("kind", ["temperature", "isotonic", "none"])
def test_round_trip_gives_identical_outputs(kind: str, val_test) -> None:
    (s_val, y_val), (s_test, _) = val_test
    cal = fit_calibrator(kind, s_val, y_val)
    back = calibrator_from_dict(json.loads(json.dumps(cal.to_dict())))
    assert type(back) is type(cal)
    grid = np.r_[s_test, -50.0, 50.0, 0.0]  # includes values beyond the fitted range
    np.testing.assert_array_equal(back.transform(grid), cal.transform(grid))


def test_isotonic_is_monotone_and_bounded(val_test) -> None:
    (s_val, y_val), _ = val_test
    cal = IsotonicCalibrator().fit(s_val, y_val)
    out = cal.transform(np.linspace(-60, 60, 5001))
    assert np.all(np.diff(out) >= 0)
    assert out.min() >= 1e-6 and out.max() <= 1 - 1e-6


def test_choose_prefers_isotonic_when_temperature_cannot_fix_it() -> None:
    """A cubic distortion bends the curve: no single temperature fixes it, isotonic does."""
    s, y = draw(6000, seed=3, distort=lambda z: z**3 / 4)
    chosen = choose_calibrator(s, y)
    assert chosen.kind == "isotonic"
    assert chosen.cv_log_loss["isotonic"] < chosen.cv_log_loss["temperature"]


def test_choose_prefers_temperature_on_a_pure_scale_error() -> None:
    s, y = draw(1500, seed=4)
    chosen = choose_calibrator(s, y, kinds=("temperature", "isotonic", "none"))
    assert chosen.kind == "temperature"
    assert set(chosen.cv_log_loss) == {"temperature", "isotonic", "none"}
    assert chosen.cv_log_loss["none"] > chosen.cv_log_loss["temperature"]


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown calibrator kind"):
        fit_calibrator("platt", [0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="only one class"):
        fit_calibrator("temperature", [0.0, 1.0], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        fit_calibrator("isotonic", [0.0, np.inf], [0, 1])


def test_logit_inverts_sigmoid() -> None:
    z = np.linspace(-20, 20, 41)
    np.testing.assert_allclose(logit(expit(z)), z, atol=1e-6)
    assert np.isfinite(logit([0.0, 1.0])).all()
