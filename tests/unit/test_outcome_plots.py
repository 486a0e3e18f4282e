"""Outcome plots: each builds a pyplot-free Figure with one line / bar per model or feature."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from training.outcomes.plots import calibration_plot, importance_plot, roc_plot


def _curves() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(int)
    good = np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(0, 0.15, 500), 0, 1)
    return {"model": (y, good), "random": (y, rng.random(500))}


def _renders(fig: Figure) -> None:
    fig.savefig(io.BytesIO(), format="png")


def test_roc_plot() -> None:
    fig = roc_plot(_curves())
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert len(ax.lines) == 3  # two models + chance
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("model (AUC 0.") and labels[2] == "chance"
    _renders(fig)


def test_calibration_plot() -> None:
    fig = calibration_plot(_curves(), n_bins=8)
    top, bottom = fig.axes
    assert len(top.lines) == 3  # two models + diagonal
    assert len(bottom.containers) == 2 and all(len(c) == 8 for c in bottom.containers)
    _renders(fig)


def test_importance_plot() -> None:
    imp = pd.Series({f"f{i}": float(i) for i in range(30)}, name="gain")
    fig = importance_plot(imp, top=20)
    (ax,) = fig.axes
    assert len(ax.patches) == 20
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[-1] == "f29" and "f9" not in ticks  # largest at the top, the small ones left out
    assert len(importance_plot(imp.head(5)).axes[0].patches) == 5
    _renders(fig)
