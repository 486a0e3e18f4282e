"""Popularity and recent popularity: the same ranking for every member."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from training.interactions import DAY, Interactions


def item_popularity(inter: Interactions, days: float | None = None) -> np.ndarray:
    """Distinct buyers per item, over the last `days` before the cutoff (all training if None)."""
    ev = inter.events
    if days is not None:
        ev = ev[ev["t"] >= inter.t_cutoff - days * DAY]
    pairs = ev[["m", "i"]].drop_duplicates()
    return np.bincount(pairs["i"].to_numpy(), minlength=inter.n_items).astype(np.float32)


class Popularity:
    """Items ranked by distinct buyers over all training data (ties: all-time popularity)."""

    grid: ClassVar[dict[str, list]] = {"days": [None]}

    def fit(self, inter: Interactions, days: float | None = None) -> Popularity:
        """Count distinct buyers per item; break ties by all-time buyers."""
        pop = item_popularity(inter, days)
        tie = item_popularity(inter) if days is not None else 0.0
        self.pop = (pop + tie / (tie.max() + 1.0) if days is not None else pop).astype(np.float32)
        return self

    def score(self, member_idx: np.ndarray) -> np.ndarray:
        """The popularity vector repeated for each member."""
        return np.tile(self.pop, (len(member_idx), 1))


class RecentPopularity(Popularity):
    """Items ranked by distinct buyers over the last `days` before the cutoff."""

    grid: ClassVar[dict[str, list]] = {"days": [30, 60, 90, 180]}

    def fit(self, inter: Interactions, days: float | None = 30) -> RecentPopularity:
        """Count distinct recent buyers per item."""
        super().fit(inter, days)
        return self
