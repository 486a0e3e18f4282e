"""Uplift metrics: Qini and uplift curves, their normalized areas, uplift at k and policy value.

The curves and areas are computed exactly as scikit-uplift 0.5.1 does (`qini_auc_score` with
`negative_effect=True`, `uplift_auc_score`, `uplift_at_k(strategy="overall")`), so our numbers are
comparable with published ones, but without its per-call input checks and with errors that say what is
wrong (a single outcome class, no treated or no control rows) instead of a bare assertion.
"""

from __future__ import annotations

import numpy as np

K = 0.3  # share of customers treated in the top-k figures


def check_inputs(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, ...]:
    """Arrays of equal length, binary outcome with both classes, both treated and control rows."""
    y, uplift, treatment = (np.asarray(a) for a in (y, uplift, treatment))
    if not len(y) == len(uplift) == len(treatment):
        raise ValueError(f"lengths differ: outcome {len(y)}, uplift {len(uplift)}, treatment {len(treatment)}")
    for name, a in (("outcome", y), ("treatment", treatment)):
        values = set(np.unique(a).tolist())
        if not values <= {0, 1}:
            raise ValueError(f"{name} must be binary 0/1, found values {sorted(values)[:5]}")
    if treatment.sum() == 0:
        raise ValueError("no treated rows: uplift needs both treated and control members")
    if treatment.sum() == len(treatment):
        raise ValueError("no control rows: uplift needs both treated and control members")
    if y.min() == y.max():
        raise ValueError(f"outcome has a single class ({int(y[0])} for every row): nothing to rank")
    if not np.isfinite(uplift.astype(float)).all():
        raise ValueError("uplift scores contain NaN or infinite values")
    return y.astype(float), uplift.astype(float), treatment.astype(float)


def _cumulative(y: np.ndarray, uplift: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Counts at each distinct score threshold, best score first (ties form one step)."""
    order = np.argsort(uplift, kind="mergesort")[::-1]
    y, uplift, t = y[order], uplift[order], t[order]
    cut = np.r_[np.where(np.diff(uplift))[0], uplift.size - 1]
    n_t = np.cumsum(t)[cut]
    y_t = np.cumsum(y * t)[cut]
    y_c = np.cumsum(y * (1 - t))[cut]
    n = cut + 1.0
    return n, n_t, n - n_t, y_t, y_c


def _from_origin(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size == 0 or v[0] != 0 or x[0] != 0:
        return np.r_[0, x], np.r_[0, v]
    return x, v


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def qini_curve(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(members targeted, incremental responders): treated responders minus scaled control responders."""
    n, n_t, n_c, y_t, y_c = _cumulative(*check_inputs(y, uplift, treatment))
    return _from_origin(n, y_t - y_c * _div(n_t, n_c))


def uplift_curve(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(members targeted, (response rate treated - control) x members targeted)."""
    n, n_t, n_c, y_t, y_c = _cumulative(*check_inputs(y, uplift, treatment))
    return _from_origin(n, (_div(y_t, n_t) - _div(y_c, n_c)) * n)


def _normalized_area(curve, y: np.ndarray, uplift: np.ndarray, t: np.ndarray, perfect: np.ndarray) -> float:
    x_a, v_a = curve(y, uplift, t)
    x_p, v_p = curve(y, perfect, t)
    base = np.trapezoid([0, v_p[-1]], [0, x_p[-1]])
    return float((np.trapezoid(v_a, x_a) - base) / (np.trapezoid(v_p, x_p) - base))


def qini_auc(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> float:
    """Qini coefficient: area between the Qini curve and random, over that of the perfect curve
    (the one that also puts control responders last), as sklift's `qini_auc_score`."""
    y, uplift, t = check_inputs(y, uplift, treatment)
    return _normalized_area(qini_curve, y, uplift, t, y * t - y * (1 - t))


def uplift_auc(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray) -> float:
    """AUUC: normalized area under the uplift curve, as sklift's `uplift_auc_score`."""
    y, uplift, t = check_inputs(y, uplift, treatment)
    cr = np.sum((y == 1) & (t == 0))
    tn = np.sum((y == 0) & (t == 1))
    perfect = 2 * (y == t) + (y if cr > tn else t)
    return _normalized_area(uplift_curve, y, uplift, t, perfect.astype(float))


def uplift_at_k(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray, k: float = K) -> float:
    """Response rate treated - control among the top share k of all members by score (sklift 'overall')."""
    y, uplift, t = check_inputs(y, uplift, treatment)
    if not 0 < k < 1:
        raise ValueError(f"k={k} must be a share in (0, 1)")
    top = np.argsort(uplift, kind="mergesort")[::-1][: int(len(y) * k)]
    yt, tt = y[top], t[top]
    if tt.sum() == 0 or tt.sum() == len(tt):
        raise ValueError(f"the top {k:.0%} holds only one group: uplift at k is undefined")
    return float(yt[tt == 1].mean() - yt[tt == 0].mean())


def incremental_per_1000(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray, k: float = K) -> dict[str, float]:
    """Incremental outcomes per 1,000 customers when the top share k is treated: by score, and at random."""
    y, uplift, t = check_inputs(y, uplift, treatment)
    ate = y[t == 1].mean() - y[t == 0].mean()
    return {"model": 1000 * k * uplift_at_k(y, uplift, t, k), "random": 1000 * k * float(ate)}


def evaluate(y: np.ndarray, uplift: np.ndarray, treatment: np.ndarray, k: float = K) -> dict[str, float]:
    """All uplift figures of one scored test set (binary outcome)."""
    pct = round(k * 100)
    inc = incremental_per_1000(y, uplift, treatment, k)
    return {
        "qini_auc": qini_auc(y, uplift, treatment),
        "auuc": uplift_auc(y, uplift, treatment),
        f"uplift@{pct}": uplift_at_k(y, uplift, treatment, k),
        f"incr_per_1000@{pct}": inc["model"],
        f"random_per_1000@{pct}": inc["random"],
    }


def value_at_k(value: np.ndarray, uplift: np.ndarray, treatment: np.ndarray, k: float = K) -> float:
    """Mean outcome value (e.g. spend) treated - control among the top share k: uplift at k for a real outcome."""
    value, t = np.asarray(value, float), np.asarray(treatment, float)
    top = np.argsort(np.asarray(uplift, float), kind="mergesort")[::-1][: int(len(value) * k)]
    vt, tt = value[top], t[top]
    if tt.sum() == 0 or tt.sum() == len(tt):
        raise ValueError(f"the top {k:.0%} holds only one group: value at k is undefined")
    return float(vt[tt == 1].mean() - vt[tt == 0].mean())
