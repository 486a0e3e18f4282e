"""Post-hoc probability calibration, fitted on a validation window and saved next to the model.

Every calibrator takes raw scores as logits (log-odds: a network's output, LightGBM's
`raw_score=True`, or `logit(p)` of a probability) and returns probabilities, so a model can
switch calibrators without changing what it feeds them:
- `TemperatureScaler`: sigmoid(logit / T + bias), one temperature (and a bias) by minimum NLL;
  keeps the ranking, fixes over/under-confidence (and with the bias, a shifted base rate).
- `IsotonicCalibrator`: a monotone step-wise map fitted on sigmoid(logit), i.e. on probabilities;
  more flexible, needs more validation data, can create ties in the ranking.
- `Identity` ("none"): just sigmoid.
`choose_calibrator` picks by cross-validated log loss on the validation window (see there).
`to_dict` holds plain numbers only; `calibrator_from_dict` rebuilds any of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from training.outcomes.metrics import log_loss

log = logging.getLogger(__name__)

P_MIN, P_MAX = 1e-6, 1 - 1e-6  # isotonic output range: never a certain 0 or 1


def logit(p: ArrayLike, eps: float = 1e-15) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [eps, 1 - eps]: probabilities -> the scores calibrators take."""
    q = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(q) - np.log1p(-q)


def _scores_labels(scores: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s, t = np.asarray(scores, dtype=float), np.asarray(y, dtype=float)
    if s.ndim != 1 or s.shape != t.shape:
        raise ValueError(f"scores and y must be 1-d of the same length, got {s.shape} and {t.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores (logits) must be finite")
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0/1 labels")
    if t.min() == t.max():
        raise ValueError(f"only one class (all {int(t[0])}) in y: cannot fit a calibrator")
    return s, t


@dataclass
class TemperatureScaler:
    """p = sigmoid(logit / temperature + bias); the bias is fitted only when `fit_bias`."""

    temperature: float = 1.0
    bias: float = 0.0
    fit_bias: bool = True
    cv_log_loss: dict[str, float] | None = field(default=None, compare=False)
    kind: ClassVar[str] = "temperature"

    def fit(self, logits: ArrayLike, y: ArrayLike) -> TemperatureScaler:
        """Minimize the mean NLL over (log T, bias) with L-BFGS-B; T > 0 by construction."""
        s, t = _scores_labels(logits, y)

        def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
            inv_t = np.exp(-theta[0])
            b = theta[1] if self.fit_bias else 0.0
            z = s * inv_t + b
            resid = expit(z) - t  # d NLL / d z
            grad = np.array([np.mean(resid * -s * inv_t), np.mean(resid) if self.fit_bias else 0.0])
            return float(np.mean(np.logaddexp(0.0, z) - t * z)), grad

        res = minimize(nll, x0=np.zeros(2), jac=True, method="L-BFGS-B", bounds=[(-10, 10), (-50, 50)])
        if not res.success:
            log.warning("temperature scaling did not converge: %s", res.message)
        self.temperature = float(np.exp(res.x[0]))
        self.bias = float(res.x[1]) if self.fit_bias else 0.0
        return self

    def transform(self, logits: ArrayLike) -> np.ndarray:
        """Calibrated probabilities."""
        return expit(np.asarray(logits, dtype=float) / self.temperature + self.bias)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able numbers."""
        return {"kind": self.kind, "temperature": self.temperature, "bias": self.bias, "fit_bias": self.fit_bias}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemperatureScaler:
        """Inverse of `to_dict`."""
        return cls(float(data["temperature"]), float(data["bias"]), bool(data.get("fit_bias", True)))


@dataclass
class IsotonicCalibrator:
    """Isotonic regression of y on sigmoid(logit), kept as its (x, y) thresholds and applied by np.interp.

    Outputs lie in [1e-6, 1 - 1e-6]; inputs beyond the fitted range are clipped to its ends
    (sklearn's out_of_bounds="clip"). Interpolating the stored thresholds is what sklearn does,
    and it makes a loaded calibrator give exactly the fitted one's outputs.
    """

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    cv_log_loss: dict[str, float] | None = field(default=None, compare=False)
    kind: ClassVar[str] = "isotonic"

    def fit(self, logits: ArrayLike, y: ArrayLike) -> IsotonicCalibrator:
        """Fit on the validation probabilities sigmoid(logits)."""
        s, t = _scores_labels(logits, y)
        iso = IsotonicRegression(y_min=P_MIN, y_max=P_MAX, increasing=True, out_of_bounds="clip")
        iso.fit(expit(s), t)
        self.x = [float(v) for v in iso.X_thresholds_]
        self.y = [float(v) for v in iso.y_thresholds_]
        return self

    def transform(self, logits: ArrayLike) -> np.ndarray:
        """Calibrated probabilities (monotone non-decreasing in the logits)."""
        if not self.x:
            raise ValueError("IsotonicCalibrator is not fitted")
        return np.interp(expit(np.asarray(logits, dtype=float)), self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able numbers: the thresholds."""
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IsotonicCalibrator:
        """Inverse of `to_dict`."""
        return cls([float(v) for v in data["x"]], [float(v) for v in data["y"]])


@dataclass
class Identity:
    """No calibration: sigmoid of the logits."""

    cv_log_loss: dict[str, float] | None = field(default=None, compare=False)
    kind: ClassVar[str] = "none"

    def fit(self, logits: ArrayLike, y: ArrayLike) -> Identity:
        """Nothing to fit (inputs are still checked)."""
        _scores_labels(logits, y)
        return self

    def transform(self, logits: ArrayLike) -> np.ndarray:
        """sigmoid(logits)."""
        return expit(np.asarray(logits, dtype=float))

    def to_dict(self) -> dict[str, Any]:
        """Just the kind."""
        return {"kind": self.kind}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        """Inverse of `to_dict`."""
        return cls()


Calibrator = TemperatureScaler | IsotonicCalibrator | Identity
KINDS: dict[str, type[Calibrator]] = {c.kind: c for c in (TemperatureScaler, IsotonicCalibrator, Identity)}


def fit_calibrator(kind: str, scores: ArrayLike, y: ArrayLike) -> Calibrator:
    """A calibrator of `kind` ("temperature", "isotonic" or "none") fitted on (logit scores, labels)."""
    if kind not in KINDS:
        raise ValueError(f"unknown calibrator kind {kind!r}; expected one of {sorted(KINDS)}")
    return KINDS[kind]().fit(scores, y)


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """Rebuild whichever calibrator `to_dict` saved."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown calibrator kind {kind!r}; expected one of {sorted(KINDS)}")
    return KINDS[kind].from_dict(data)


def choose_calibrator(
    scores_val: ArrayLike,
    y_val: ArrayLike,
    kinds: tuple[str, ...] = ("temperature", "isotonic"),
    folds: int = 5,
    seed: int = 0,
) -> Calibrator:
    """The kind with the lowest cross-validated log loss on the validation window, refitted on all of it.

    Log loss, not ECE: it is a proper scoring rule (minimized only by the true probabilities, and
    sensitive to both calibration and the ranking isotonic can blur with ties), while ECE depends
    on the binning, is noisy on small windows and is perfect for a constant base-rate predictor.
    Folds are stratified; out-of-fold predictions are pooled before scoring. Ties go to the
    earlier kind in `kinds` (list the simpler one first). The scores per kind are kept in
    `cv_log_loss` on the returned calibrator (not saved by `to_dict`).
    """
    s, t = _scores_labels(scores_val, y_val)
    n_splits = min(folds, int(min(t.sum(), len(t) - t.sum())))
    if n_splits < 2:
        raise ValueError("need at least 2 examples of each class to cross-validate calibrators")
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    losses: dict[str, float] = {}
    for kind in kinds:
        oof = np.empty_like(s)
        for train, test in splitter.split(s, t):
            oof[test] = fit_calibrator(kind, s[train], t[train]).transform(s[test])
        losses[kind] = log_loss(t, oof)
    best = min(kinds, key=lambda k: losses[k])
    log.debug("calibrator cross-validated log loss %s -> %s", {k: round(v, 5) for k, v in losses.items()}, best)
    chosen = fit_calibrator(best, s, t)
    chosen.cv_log_loss = losses
    return chosen
