"""`tailor index`: the FAISS indices (items, members, offers) of a persona version, saved for the service."""

from __future__ import annotations

import json
import logging
import time

import numpy as np

from datasets.layout import Layout
from datasets.store import Dataset
from serving.bundle import load_persona, member_vectors
from serving.config import ServingConfig
from serving.events import tombstoned
from serving.index import IdIndex, IndexSettings, item_matrix, make_index, member_query, normalize, offer_matrix, save
from serving.index import recall_at_k as index_recall
from serving.offers import load_catalogue

log = logging.getLogger(__name__)


def build_indices(
    layout: Layout | None = None,
    persona_version: int | None = None,
    dataset: str | None = None,
    cfg: ServingConfig | None = None,
) -> dict:
    """`tailor index`: build and save the item, member and offer indices of a persona version; returns the manifest.

    Erased members (tombstones) are left out. Prints recall@10 of each index against exact search.
    """
    layout = Layout.of(layout)
    cfg = cfg or ServingConfig.load()
    t0 = time.perf_counter()
    bundle = load_persona(persona_version, layout)
    s = IndexSettings.of(cfg.index)
    ds = Dataset(dataset or cfg.dataset, layout)
    vec = member_vectors(bundle, ds.name, tombstoned(layout.home), layout)
    cats = ds.table("items", ["item_id", "category"]).set_index("item_id")["category"]
    catalogue = load_catalogue(cfg.offers)
    offer_ids = np.array([o.offer_id for o in catalogue.offers], dtype=object)
    mats = {
        "items": (item_matrix(bundle.items), bundle.items["item_id"].to_numpy(dtype=object)),
        "members": (normalize(vec.matrix), vec.ids),
        "offers": (offer_matrix(catalogue.offers, bundle.items, cats), offer_ids),
    }
    folder = layout.indices
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    queries = vec.matrix if len(vec.ids) else np.zeros((1, bundle.dim), dtype=np.float32)
    queries = queries[rng.permutation(len(queries))[: cfg.index.recall_queries]]
    manifest: dict = {
        "persona_version": bundle.version,
        "dataset": ds.name,
        "policy_version": catalogue.version,
        "member_vectors": vec.source,
        "indices": {},
    }
    for name, (mat, ids) in mats.items():
        idx = IdIndex(make_index(mat, s), ids)
        q = normalize(queries) if name == "members" else member_query(queries)
        rec = index_recall(idx.index, mat, q, 10) if len(mat) else 1.0
        kind = type(idx.index).__name__
        manifest["indices"][name] = {"size": len(ids), "type": kind, "dim": int(mat.shape[1]), "recall@10": rec}
        save(folder, name, idx)
        print(f"index {name}: {len(ids):,} vectors, {kind}, recall@10 vs exact {rec:.4f}")
        if rec < cfg.index.recall_target:
            log.warning("index %s recall@10 %.3f below target %.2f", name, rec, cfg.index.recall_target)
    manifest["build_s"] = round(time.perf_counter() - t0, 2)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"indices of persona v{bundle.version} -> {folder} in {manifest['build_s']} s")
    return manifest
