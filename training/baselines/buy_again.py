"""Buy again: the member's own purchases, frequency with recency decay, filled with recent popularity."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from training.baselines.popularity import RecentPopularity
from training.interactions import DAY, Interactions

FILL_SCALE = 0.5  # the most popular unbought item scores this fraction of the member's least-scored bought item


class BuyAgain:
    """Score of a bought item = sum over its purchase occasions of 0.5 ** (age / half_life).

    Items the member never bought follow, strictly below every bought item, in recent-popularity
    order. `half_life=None` is plain frequency (ties broken by recency).
    """

    grid: ClassVar[dict[str, list]] = {"half_life": [7, 14, 30, 60, 120, 365, None], "fill_days": [30]}

    def fit(self, inter: Interactions, half_life: float | None = 30, fill_days: float = 30) -> BuyAgain:
        """Build the decayed-frequency matrix and the fill vector."""
        ev = inter.events
        age = (inter.t_cutoff - ev["t"].to_numpy()) / DAY
        # half_life None: frequency, recency only breaks ties
        w = 1.0 + 1e-3 * np.exp(-age / 365.0) if half_life is None else np.exp2(-age / half_life)
        m, i = ev["m"].to_numpy(), ev["i"].to_numpy()
        self.ba = sp.csr_matrix((w.astype(np.float64), (m, i)), shape=(inter.n_members, inter.n_items))
        self.ba.sum_duplicates()
        fill = RecentPopularity().fit(inter, fill_days).pop
        self.fill = (fill / max(float(fill.max()), 1e-12)).astype(np.float64)
        return self

    def score(self, member_idx: np.ndarray) -> np.ndarray:
        """Dense scores: decayed frequency for bought items, a scaled-down popularity fill for the rest."""
        rows = self.ba[member_idx]
        dense = rows.toarray()
        lo = np.ones(len(member_idx))
        for r in range(len(member_idx)):
            d = rows.data[rows.indptr[r] : rows.indptr[r + 1]]
            if len(d):
                lo[r] = d.min()
        fill = FILL_SCALE * lo[:, None] * self.fill[None, :]
        return np.where(dense > 0, dense, fill).astype(np.float32)
