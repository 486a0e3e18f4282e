"""FAISS indices: HNSW reaches recall@10 >= 0.95 against exact search; id maps round-trip through disk."""

from __future__ import annotations

import faiss
import numpy as np

from serving import index as ix


def test_hnsw_recall_on_20k_random_vectors() -> None:
    rng = np.random.default_rng(0)
    x = ix.normalize(rng.standard_normal((20_000, 32)).astype(np.float32))
    q = ix.normalize(rng.standard_normal((200, 32)).astype(np.float32))
    hnsw = ix.make_index(x, ix.IndexSettings(exact_below=10_000))
    assert isinstance(hnsw, faiss.IndexHNSWFlat) and hnsw.metric_type == faiss.METRIC_INNER_PRODUCT
    assert ix.recall_at_k(hnsw, x, q, 10) >= 0.95
    exact = ix.make_index(x[:500])
    assert isinstance(exact, faiss.IndexFlatIP) and ix.recall_at_k(exact, x[:500], q, 10) == 1.0


def test_id_maps_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(1)
    x = ix.normalize(rng.standard_normal((50, 8)).astype(np.float32))
    ids = np.array([f"m_{k:04x}" for k in range(50)], dtype=object)
    ix.save(tmp_path, "members", ix.IdIndex(ix.make_index(x), ids))
    back = ix.load(tmp_path, "members")
    assert list(back.ids) == list(ids) and back.position()["m_0007"] == 7
    _, rows = back.search(x[7], 1)
    assert back.ids[rows[0][0]] == "m_0007"


def test_member_query_scores_items_by_the_discovery_logit() -> None:
    import pandas as pd

    items = pd.DataFrame(
        {"item_id": ["a", "b"], "bias": [0.5, -1.0], "vector": [np.ones(3, np.float32), np.zeros(3, np.float32)]}
    )
    u = np.array([1.0, 2.0, 0.0], np.float32)
    scores = ix.item_matrix(items) @ ix.member_query(u)[0]
    assert np.allclose(scores, [3.5, -1.0])


def test_recall_counts_ties_as_hits_and_misses_as_misses() -> None:
    """50 identical vectors tie for the top 10: an index returning other tied rows loses nothing."""
    import faiss
    import numpy as np

    from serving.index import normalize, recall_at_k

    rng = np.random.default_rng(0)
    x = normalize(np.vstack([np.tile(rng.normal(size=(1, 8)), (50, 1)), rng.normal(size=(200, 8))]).astype("float32"))
    reversed_rows = faiss.IndexIDMap(faiss.IndexFlatIP(8))
    order = np.arange(len(x))[::-1].copy()
    reversed_rows.add_with_ids(x[order], order.astype("int64"))  # ties come back in another order: other rows
    q = x[:5]
    assert recall_at_k(reversed_rows, x, q, 10) == 1.0
    worse = faiss.IndexIDMap(faiss.IndexFlatIP(8))
    worse.add_with_ids(x[60:], np.arange(60, len(x), dtype="int64"))  # the tied best rows are missing
    assert recall_at_k(worse, x, q, 10) == 0.0


def test_member_vectors_are_read_back_from_the_index_storage() -> None:
    rng = np.random.default_rng(2)
    raw = (rng.standard_normal((3000, 16)) * rng.uniform(0.1, 5, (3000, 1))).astype(np.float32)
    raw[5] = 0  # a zero vector stays zero
    for settings in (ix.IndexSettings(), ix.IndexSettings(exact_below=1000)):  # flat and HNSW storage
        idx = ix.make_index(ix.normalize(raw), settings)
        rows = ix.ScaledRows.over(idx, raw)
        assert isinstance(rows, ix.ScaledRows) and rows.shape == raw.shape and len(rows) == 3000
        assert np.allclose(np.stack([rows[k] for k in range(3000)]), raw, rtol=1e-5, atol=1e-6)
    other = ix.make_index(ix.normalize(rng.standard_normal((3000, 16)).astype(np.float32)))
    assert ix.ScaledRows.over(other, raw) is raw  # an index of other vectors: the matrix is kept
