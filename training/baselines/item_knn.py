"""Item-kNN: cosine similarity between items' buyer vectors; each item is scored from its k nearest neighbours."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from training.interactions import Interactions

MAX_CACHED = 400  # neighbours computed once per training set; smaller k are pruned from them


def _normalized(inter: Interactions) -> sp.csr_matrix:
    """The binary member x item matrix with unit-norm item columns."""
    x = inter.binary().astype(np.float32)
    norms = np.sqrt(np.asarray(x.sum(0)).ravel())
    return sp.csr_matrix(x @ sp.diags(1.0 / np.maximum(norms, 1e-12)))


def top_neighbours(inter: Interactions, k: int, block: int = 1024) -> sp.csr_matrix:
    """Item x item cosine similarities keeping each row's k largest (self excluded)."""
    n = _normalized(inter)
    nt = sp.csr_matrix(n.T)
    rows, cols, vals = [], [], []
    for s in range(0, inter.n_items, block):
        sim = (nt[s : s + block] @ n).toarray()
        r = np.arange(sim.shape[0])
        sim[r, s + r] = 0.0
        kk = min(k, sim.shape[1])
        idx = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
        v = np.take_along_axis(sim, idx, 1)
        keep = v > 0
        rows.append(np.repeat(s + r, kk)[keep.ravel()])
        cols.append(idx[keep])
        vals.append(v[keep])
    shape = (inter.n_items, inter.n_items)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)


def prune(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep each row's k largest entries."""
    keep = np.zeros(sim.nnz, dtype=bool)
    for r in range(sim.shape[0]):
        a, b = sim.indptr[r], sim.indptr[r + 1]
        if b - a > k:
            keep[a + np.argpartition(-sim.data[a:b], k - 1)[:k]] = True
        else:
            keep[a:b] = True
    out = sim.tocoo()
    return sp.csr_matrix((out.data[keep], (out.row[keep], out.col[keep])), shape=sim.shape)


class ItemKNN:
    """score(u, i) = sum over bought items j of w(u, j) x sim(j, i), w = 1 or log(1 + count).

    `side="item"`: sim kept for the k items most similar to the scored item i (classic item-based CF);
    `side="history"`: for the k items most similar to each bought item j (candidates = their neighbours).
    """

    grid: ClassVar[dict[str, list]] = {
        "neighbours": [5, 10, 20, 50, 100, 200, 400],
        "weighting": ["binary", "log"],
        "side": ["item", "history"],
    }

    def fit(self, inter: Interactions, neighbours: int = 100, weighting: str = "binary", side: str = "item") -> ItemKNN:
        """Compute (or reuse) each item's neighbour list and keep the top `neighbours`."""
        self.x = inter.counts.astype(np.float32)
        self.x.data = np.log1p(self.x.data) if weighting == "log" else np.ones_like(self.x.data)
        kmax = max(int(neighbours), MAX_CACHED)
        if ("item_knn", kmax) not in inter.cache:
            inter.cache[("item_knn", kmax)] = top_neighbours(inter, kmax)
        sim = prune(inter.cache[("item_knn", kmax)], int(neighbours))  # row j: j's neighbours
        if side not in ("item", "history"):
            raise ValueError(f"unknown side {side!r}: item or history")
        self.sim_t = sp.csr_matrix(sim.T) if side == "item" else sim
        return self

    def score(self, member_idx: np.ndarray) -> np.ndarray:
        """Dense scores for a batch of members."""
        return (self.x[member_idx] @ self.sim_t).toarray().astype(np.float32)
