"""FAISS indices for serving: items, members (lookalikes) and offers (built by `tailor index`, `tailor/index.py`).

All three are inner-product indices. Items hold [v_i, b_i] and are queried with [u, 1], so the
score is the persona model's discovery logit u . v_i + b_i (PersonaNet.explore). Members hold
L2-normalized persona vectors (cosine similarity for lookalikes). An offer's vector is the
mean of [v_i, b_i] over the items in its scope (its categories and items; the whole catalogue
when the scope is empty), so u . offer = the member's mean discovery logit over the offer's
items: a plain, explainable affinity that needs no offer-specific training.
Below `exact_below` vectors the index is exact (IndexFlatIP); above, IndexHNSWFlat with
METRIC_INNER_PRODUCT, whose recall@10 against the exact index is measured on held-out
member vectors and written to the manifest.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class IndexSettings:
    exact_below: int = 50_000
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 256

    @classmethod
    def of(cls, cfg: Any) -> IndexSettings:
        """The index settings of the serving config's `index` section."""
        return cls(cfg.exact_below, cfg.hnsw_m, cfg.ef_construction, cfg.ef_search)


@dataclass
class IdIndex:
    """A FAISS index and the id of each of its rows."""

    index: faiss.Index
    ids: np.ndarray  # (n,) object: row -> id

    def position(self) -> dict[str, int]:
        return {str(x): k for k, x in enumerate(self.ids)}

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the top k per query; rows of -1 mean fewer than k exist."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        return self.index.search(q, min(k, self.index.ntotal))


@dataclass
class ScaledRows:
    """Member vectors read from a member index's own storage: its unit rows times each vector's norm.

    The member index stores every served vector L2-normalized; keeping the raw matrix as well would hold
    the same numbers twice (244 MB at 1M members x 64 dims). Row k is `unit[k] * norms[k]`, the raw
    vector to float32 rounding.
    """

    unit: np.ndarray  # (n, dim) view of the index's storage (no copy)
    norms: np.ndarray  # (n,) float32
    owner: faiss.Index  # keeps the storage the view points into alive

    @classmethod
    def over(cls, index: faiss.Index, matrix: np.ndarray) -> ScaledRows | np.ndarray:
        """A view over `index` when it stores exactly `matrix`'s normalized rows as float32; else `matrix`."""
        flat = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSW) else index
        if not isinstance(flat, faiss.IndexFlat) or flat.ntotal != len(matrix) or flat.d != matrix.shape[1]:
            return matrix
        unit = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)
        norms = np.linalg.norm(matrix, axis=1).astype(np.float32)
        sample = np.arange(0, len(matrix), max(1, len(matrix) // 1000))
        if not np.allclose(unit[sample] * norms[sample, None], matrix[sample], rtol=1e-4, atol=1e-6):
            return matrix  # another index (built from other vectors): keep the matrix
        return cls(unit, norms, index)

    def __getitem__(self, k: int) -> np.ndarray:
        return self.unit[k] * self.norms[k]

    def __len__(self) -> int:
        return len(self.norms)

    @property
    def shape(self) -> tuple[int, int]:
        return self.unit.shape


def make_index(vectors: np.ndarray, s: IndexSettings | None = None) -> faiss.Index:
    """Exact inner-product index below `exact_below` rows, HNSW (inner product) above."""
    s = s or IndexSettings()
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    d = x.shape[1]
    if len(x) < s.exact_below:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, s.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = s.ef_construction
        index.hnsw.efSearch = s.ef_search
    index.add(x)
    return index


def recall_at_k(index: faiss.Index, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top k (brute force over `vectors`) that `index` returns, averaged over queries.

    Ties count: a returned row scoring at least the exact k-th score is as good as the one it displaced
    (members with no purchases share one attribute-only vector, so thousands tie exactly).
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, len(x))  # fewer vectors than k: the whole set is the top k
    top, _ = exact.search(q, k)
    _, got = index.search(q, k)
    kth = top[:, -1:] - 1e-5 * np.maximum(1.0, np.abs(top[:, -1:]))
    score = np.where(got >= 0, np.einsum("qd,qkd->qk", q, x[np.maximum(got, 0)]), -np.inf)
    return float(np.mean(np.minimum((score >= kth).sum(1), k) / k))


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def item_matrix(items: pd.DataFrame) -> np.ndarray:
    """[v_i, b_i] rows of the persona item table."""
    return np.hstack([np.stack(items["vector"].to_numpy()), items["bias"].to_numpy()[:, None]]).astype(np.float32)


def member_query(vectors: np.ndarray) -> np.ndarray:
    """[u, 1]: the query that scores items (and offers) by u . v + b."""
    u = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    return np.hstack([u, np.ones((len(u), 1), dtype=np.float32)])


def offer_matrix(offers: list, items: pd.DataFrame, categories: pd.Series) -> np.ndarray:
    """Mean item row over each offer's scope (see module docstring); `categories` is item_id -> category."""
    mat = item_matrix(items)
    cat = categories.reindex(items["item_id"]).astype(object).fillna("").to_numpy(dtype=str)  # NA: no category
    ids = items["item_id"].astype(str).to_numpy(dtype=str)
    out = []
    for o in offers:
        mask = np.isin(cat, o.scope.categories) | np.isin(ids, o.scope.items)
        if not (o.scope.categories or o.scope.items) or not mask.any():
            mask = np.ones(len(ids), dtype=bool)
        out.append(mat[mask].mean(0))
    return np.stack(out).astype(np.float32) if out else np.zeros((0, mat.shape[1]), dtype=np.float32)


def save(folder: Path, name: str, idx: IdIndex) -> None:
    faiss.write_index(idx.index, str(folder / f"{name}.faiss"))
    (folder / f"{name}_ids.json").write_text(json.dumps([str(x) for x in idx.ids]))


def load(folder: Path, name: str) -> IdIndex:
    ids = np.array(json.loads((folder / f"{name}_ids.json").read_text()), dtype=object)
    return IdIndex(faiss.read_index(str(folder / f"{name}.faiss")), ids)
