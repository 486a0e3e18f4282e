"""ALS for implicit feedback (Hu, Koren, Volinsky 2008) with the `implicit` package on CPU."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from training.interactions import Interactions


def weighted(inter: Interactions, weighting: str) -> sp.csr_matrix:
    """The member x item matrix as ALS input: 0/1, purchase counts, or BM25-weighted counts."""
    x = inter.counts.astype(np.float32)
    if weighting == "count":
        return x
    if weighting == "binary":
        x.data[:] = 1.0
        return x
    if weighting == "bm25":
        from implicit.nearest_neighbours import bm25_weight

        return sp.csr_matrix(bm25_weight(x, K1=100, B=0.8), dtype=np.float32)
    raise ValueError(f"unknown weighting {weighting!r}: binary, count or bm25")


class ALS:
    """Confidence = alpha x weighted interactions; scores = member factors . item factors."""

    grid: ClassVar[dict[str, list]] = {
        "factors": [64, 128],
        "regularization": [0.01, 0.1],
        "alpha": [1.0],
        "weighting": ["binary", "count", "bm25"],
    }

    def fit(
        self,
        inter: Interactions,
        factors: int = 128,
        regularization: float = 0.1,
        alpha: float = 1.0,
        weighting: str = "binary",
        iterations: int = 15,
        seed: int = 0,
        threads: int = 1,
    ) -> ALS:
        """Fit implicit's CPU ALS on the member x item matrix."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's own threads do the work
            model = AlternatingLeastSquares(
                factors=factors,
                regularization=regularization,
                alpha=alpha,
                iterations=iterations,
                random_state=seed,
                num_threads=threads,
            )
            model.fit(weighted(inter, weighting), show_progress=False)
        self.users = np.asarray(model.user_factors)
        self.items = np.asarray(model.item_factors)
        return self

    def score(self, member_idx: np.ndarray) -> np.ndarray:
        """Dense scores for a batch of members."""
        return (self.users[member_idx] @ self.items.T).astype(np.float32)
