"""Blend: buy-again plus w x a collaborative model, each normalized by its per-member maximum."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from training.interactions import Interactions


def row_max_normalized(s: np.ndarray) -> np.ndarray:
    """Divide each row by its maximum (rows whose maximum is not positive are left as they are)."""
    top = s.max(1, keepdims=True)
    return s / np.where(top > 0, top, 1.0)


class Blend:
    """score = base / max(base) + w x other / max(other); components are fitted models."""

    grid: ClassVar[dict[str, list]] = {"w": [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0]}

    def __init__(self, base: Any, other: Any) -> None:
        self.base, self.other = base, other

    def fit(self, inter: Interactions, w: float = 0.3) -> Blend:
        """Set the weight (the components must already be fitted on `inter`)."""
        self.w = w
        return self

    def score(self, member_idx: np.ndarray) -> np.ndarray:
        """Dense blended scores for a batch of members."""
        b = row_max_normalized(self.base.score(member_idx))
        o = row_max_normalized(self.other.score(member_idx))
        return (b + self.w * o).astype(np.float32)
