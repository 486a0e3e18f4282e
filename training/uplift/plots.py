"""Plots logged with every uplift run: Qini and uplift curves of each model, feature importance."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.uplift.metrics import qini_curve, uplift_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from training.uplift.model import Ensemble


def curves(y: np.ndarray, t: np.ndarray, scores: dict[str, np.ndarray], title: str) -> Figure:
    """Qini curve (left) and uplift curve (right) of each model, with the random-targeting diagonal."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100)
    for ax, curve, name in zip(fig.subplots(1, 2), (qini_curve, uplift_curve), ("Qini", "uplift"), strict=True):
        for label, s in scores.items():
            x, v = curve(y, s, t)
            ax.plot(x / x[-1], v, label=label, lw=2 if label.startswith("uplift") else 1)
        ax.plot([0, 1], [0, v[-1]], "k--", lw=1, label="random")
        ax.set(xlabel="share of members targeted (by score)", ylabel="incremental responders", title=f"{name}: {title}")
        ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sensitivity(
    ens: Ensemble, x: np.ndarray, arms: list[str], outcome: str, names: list[str], seed: int = 0
) -> pd.Series:
    """Share of the model's uplift variation due to each feature: mean |change of uplift| when it is shuffled."""
    rng = np.random.default_rng(seed)
    base = ens.uplift(x, arms, outcome)
    out = {}
    for j, name in enumerate(names):
        xp = x.copy()
        xp[:, j] = rng.permutation(xp[:, j])
        out[name] = float(np.abs(ens.uplift(xp, arms, outcome) - base).mean())
    s = pd.Series(out)
    return s / max(s.sum(), 1e-12)


def importance(table: pd.DataFrame, top: int = 15) -> Figure:
    """Normalized importance per feature (rows) and model (columns), the features the models lean on most."""
    from matplotlib.figure import Figure

    t = table.fillna(0.0)
    t = t.loc[t.mean(axis=1).sort_values().index[-top:]]
    fig = Figure(figsize=(8, 0.35 * len(t) + 1.5), dpi=100)
    ax = fig.add_subplot()
    h = 0.8 / max(len(t.columns), 1)
    for k, col in enumerate(t.columns):
        ax.barh(np.arange(len(t)) + k * h, t[col], height=h, label=col)
    ax.set_yticks(np.arange(len(t)) + 0.4 - h / 2, t.index)
    ax.set(
        xlabel="share of importance (gain for trees, uplift sensitivity for the network)", title="feature importance"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
