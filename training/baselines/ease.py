"""EASE (Steck 2019): closed-form item-item weights; the dual member x member form when items outnumber members."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from training.interactions import Interactions


def _eigh(inter: Interactions, dual: bool) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of the Gram matrix (X'X primal, XX' dual), cached per training set."""
    key = ("ease_eigh", dual)
    if key not in inter.cache:
        x = inter.binary().astype(np.float64)
        gram = (x @ x.T if dual else x.T @ x).toarray()
        inter.cache[key] = np.linalg.eigh(gram)
    return inter.cache[key]


def _inverse(evals: np.ndarray, evecs: np.ndarray, lam: float) -> np.ndarray:
    """(Gram + lam I)^-1 from the eigendecomposition."""
    return (evecs / (evals + lam)) @ evecs.T


class EASE:
    """B = I - P diag(1/diag P), P = (X'X + lam I)^-1, diag(B) = 0; scores = X B.

    Dual form (items > members): with A = (XX' + lam I)^-1, X P = A X and
    diag(P)_j = (1 - x_j' A x_j) / lam, so scores = X - (A X) diag(1/diag P) without any item x item matrix.
    """

    grid: ClassVar[dict[str, list]] = {"lam": [10, 30, 100, 300, 1000, 3000]}

    def fit(self, inter: Interactions, lam: float = 300, dual: bool | None = None) -> EASE:
        """Solve for the weights (primal) or the member x member inverse (dual)."""
        self.dual = inter.n_items > inter.n_members if dual is None else dual
        self.x = inter.binary().astype(np.float32)
        evals, evecs = _eigh(inter, self.dual)
        inv = _inverse(evals, evecs, lam)
        if not self.dual:
            self.b = (-inv / np.diag(inv)[None, :]).astype(np.float32)
            np.fill_diagonal(self.b, 0.0)
            return self
        self.a = inv.astype(np.float32)
        xt = sp.csr_matrix(self.x.T)
        quad = np.empty(inter.n_items)
        for s in range(0, inter.n_items, 4096):
            blk = xt[s : s + 4096]
            quad[s : s + 4096] = np.asarray(blk.multiply(blk @ inv).sum(1)).ravel()
        self.diag_p = ((1.0 - quad) / lam).astype(np.float32)
        return self

    def score(self, member_idx: np.ndarray) -> np.ndarray:
        """Dense scores for a batch of members."""
        xb = self.x[member_idx]
        if not self.dual:
            return np.asarray(xb @ self.b, dtype=np.float32)
        ax = np.asarray((self.x.T @ self.a[member_idx].T).T)  # rows of A X
        return (xb.toarray() - ax / self.diag_p[None, :]).astype(np.float32)
