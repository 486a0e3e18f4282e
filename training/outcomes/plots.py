"""Figures for outcome-model runs (ROC, reliability diagram, feature importance), to log as MLflow artifacts.

Built on `matplotlib.figure.Figure` without pyplot, like `training.tracking.recall_at_k_plot`:
no global figure state to leak between runs, no GUI backend needed on a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from training.outcomes.metrics import reliability, roc_auc, roc_curve

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

Curves = Mapping[str, tuple[ArrayLike, ArrayLike]]  # model name -> (labels y, probabilities p)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure  # imported here: matplotlib only costs when a plot is drawn

    return Figure(figsize=(width, height), dpi=100)


def roc_plot(curves: Curves, title: str = "ROC") -> Figure:
    """One ROC line per model (AUC in the legend) and the chance diagonal."""
    fig = _figure(5, 5)
    ax = fig.add_subplot()
    for name, (y, p) in curves.items():
        fpr, tpr = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def calibration_plot(curves: Curves, n_bins: int = 10, title: str = "Calibration") -> Figure:
    """Reliability diagram (observed positive rate against mean predicted p per bin, one line per
    model, and the diagonal) above the number of examples per bin (grouped bars, log scale)."""
    fig = _figure(6, 6)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = 1 / n_bins / max(len(curves), 1)
    left_edges = np.arange(n_bins) / n_bins
    for i, (name, (y, p)) in enumerate(curves.items()):
        table = reliability(y, p, n_bins)
        full = table[table["count"] > 0]
        top.plot(full["mean_pred"], full["frac_pos"], marker="o", label=name)
        bottom.bar(left_edges + i * width, table["count"], width=width, align="edge", label=name)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    top.set(ylabel="observed positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    top.grid(alpha=0.3)
    top.legend(loc="upper left")
    bottom.set(xlabel="predicted probability", ylabel="count", yscale="log")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def importance_plot(importances: pd.Series, top: int = 20, title: str = "Feature importance") -> Figure:
    """Horizontal bars for the `top` features by absolute importance, the largest at the top."""
    chosen = importances.reindex(importances.abs().sort_values(ascending=False).index[:top])[::-1]
    fig = _figure(6, 1.0 + 0.3 * max(len(chosen), 1))
    ax = fig.add_subplot()
    ax.barh([str(k) for k in chosen.index], chosen.to_numpy(dtype=float))
    ax.set(xlabel=str(importances.name or "importance"), title=title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
