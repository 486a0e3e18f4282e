"""One immutable load of everything heavy that serving answers from: models, indices, features, histories.

`ServingState` builds a new Snapshot on `reload` and swaps the reference, so readers always see
one consistent set (model versions, indices, features). Indices come from `tailor index` when they
were built for the same persona version, otherwise they are built here in memory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from datasets.features import features_at
from datasets.pseudonym import load_key
from datasets.split import dataset_end
from datasets.store import Dataset
from serving import index as ix
from serving.bundle import FAMILIES, PersonaBundle, champion_version, load_persona, load_scores
from serving.offers import Catalogue, load_catalogue

log = logging.getLogger(__name__)
TAGS = ("top_categories", "price_band", "time_of_day", "weekend_habit", "channel", "region")


def plain(v: object) -> object:
    """JSON-friendly value (None for missing, lists of strings for arrays)."""
    if isinstance(v, np.ndarray | list | tuple):
        return [str(x) for x in v]
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class Snapshot:
    ds: Dataset
    key: bytes
    namespace: str
    end: pd.Timestamp
    persona: PersonaBundle
    item_index: dict[str, int]
    item_mat: np.ndarray  # [v_i, b_i] rows
    vec_rows: dict[str, int]  # member -> row of persona.vectors
    items: ix.IdIndex
    members: ix.IdIndex
    member_pos: dict[str, int]
    offers: ix.IdIndex
    catalogue: Catalogue
    category: pd.Series  # item_id -> category
    feats: pd.DataFrame  # index member_id
    attrs: pd.DataFrame  # index member_id: region, age_band
    purchases: pd.DataFrame  # member_id, item_id, ts
    by_member: dict[str, np.ndarray]  # member -> row positions in purchases
    popular: pd.Series  # item_id -> share of recent purchases, descending
    scores: dict[str, pd.DataFrame | None]
    versions: dict[str, int | None]


def _indices(bundle: PersonaBundle, catalogue: Catalogue, category: pd.Series, erased: set[str], settings: dict):
    """(items, members, offers) indices: the saved ones when built for this persona version and catalogue."""
    folder = ix.index_dir()
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        man = json.loads(manifest_path.read_text())
        if man.get("persona_version") == bundle.version and man.get("policy_version") == catalogue.version:
            members = ix.load(folder, "members")
            # same version number, other registry (a copied TAILOR_HOME): the rows must be this bundle's members
            if np.isin(members.ids.astype(str), bundle.vectors["member_id"].to_numpy(dtype=str)).all():
                return ix.load(folder, "items"), members, ix.load(folder, "offers")
        log.warning("saved indices do not match persona v%s and this catalogue: built in memory (run tailor index)",
                    bundle.version)  # fmt: skip
    s = ix.IndexSettings(**{k: settings[k] for k in ("exact_below", "hnsw_m", "ef_construction", "ef_search")})
    vec = bundle.vectors.loc[~bundle.vectors["member_id"].isin(erased)]
    mem = ix.normalize(np.stack(vec["vector"].to_numpy())) if len(vec) else np.zeros((0, bundle.dim), np.float32)
    items = ix.IdIndex(ix.make_index(ix.item_matrix(bundle.items), s), bundle.items["item_id"].to_numpy(dtype=object))
    members = ix.IdIndex(ix.make_index(mem, s), vec["member_id"].to_numpy(dtype=object))
    offers = ix.IdIndex(ix.make_index(ix.offer_matrix(catalogue.offers, bundle.items, category), s),
                        np.array([o.offer_id for o in catalogue.offers], dtype=object))  # fmt: skip
    return items, members, offers


def load_snapshot(dataset: str, cfg: dict, erased: set[str]) -> Snapshot:
    """Load the champions, the dataset's features and histories, and the indices."""
    ds = Dataset(dataset)
    end = dataset_end(ds)
    versions = {f: champion_version(f) for f in FAMILIES}
    bundle = load_persona(versions["persona"])
    catalogue = load_catalogue(cfg["offers"])
    items = ds.table("items", ["item_id", "category"])
    category = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["category"].astype(object)
    it, mem, off = _indices(bundle, catalogue, category, erased, cfg["index"])
    feats = features_at(ds, end)
    feats = feats.assign(member_id=feats["member_id"].astype(str)).set_index("member_id")
    attrs = ds.table("members", ["member_id", "region", "age_band"]).astype(object)
    attrs = attrs.assign(member_id=attrs["member_id"].astype(str)).set_index("member_id")
    ev = ds.table("events", ["member_id", "ts", "event_type", "item_id", "quantity"])
    ok = (ev["event_type"] == "purchase") & ev["item_id"].notna() & ~(ev["quantity"] <= 0)
    buys = ev.loc[ok, ["member_id", "item_id", "ts"]].astype({"member_id": str, "item_id": str}).reset_index(drop=True)
    buys = buys.loc[~buys["member_id"].isin(erased)].reset_index(drop=True)
    recent = buys.loc[buys["ts"] >= end - pd.Timedelta(days=cfg["popular_days"]), "item_id"]
    popular = (recent if len(recent) else buys["item_id"]).value_counts(normalize=True)
    popular = popular[popular.index.isin(bundle.items["item_id"].astype(str))] if len(popular) else popular
    scores = {f: load_scores(f, ds.name, versions[f]) for f in ("churn", "propensity", "uplift")}
    return Snapshot(
        ds=ds, key=load_key(), namespace=ds.manifest.get("id_namespace", ""), end=end, persona=bundle,
        item_index={str(i): k for k, i in enumerate(bundle.items["item_id"])},
        item_mat=ix.item_matrix(bundle.items), vec_rows={m: k for k, m in enumerate(bundle.vectors["member_id"])},
        items=it, members=mem,
        member_pos=mem.position(), offers=off, catalogue=catalogue, category=category,
        feats=feats.loc[~feats.index.isin(erased)], attrs=attrs, purchases=buys,
        by_member={str(k): v for k, v in buys.groupby("member_id").indices.items()}, popular=popular,
        scores=scores, versions=versions,
    )  # fmt: skip


def item_reasons(s: Snapshot, item: str, own: list[str], favs: set[str]) -> list[str]:
    """Readable reasons for a recommended item: favourite category, bought before, nearest bought item."""
    out = []
    cat = s.category.get(item)
    if cat in favs:
        out.append(f"in your favourite category: {cat}")
    if item in own:
        out.append("you bought this before")
    elif own:
        v = ix.normalize(s.item_mat[[s.item_index[i] for i in own]])
        sims = v @ ix.normalize(s.item_mat[[s.item_index[item]]])[0]
        out.append(f"similar to items you bought: {own[int(np.argmax(sims))]}")
    return out or ["matches your persona"]
