"""One immutable load of everything heavy that serving answers from: models, indices, features, histories.

`ServingState` builds a new Snapshot on `reload` and swaps the reference, so readers always see
one consistent set (model versions, indices, features). Indices come from `tailor index` when they
were built for the same persona version, otherwise they are built here in memory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.features import features_at
from datasets.layout import Layout
from datasets.pseudonym import load_key
from datasets.split import dataset_end
from datasets.store import Dataset
from serving import index as ix
from serving.bundle import MemberVectors, PersonaBundle, champions, load_persona, load_scores, member_vectors
from serving.config import IndexConfig, ServingConfig
from serving.offers import Catalogue, load_catalogue

log = logging.getLogger(__name__)
TAGS = ("top_categories", "price_band", "time_of_day", "weekend_habit", "channel", "region")
SCORED = ("churn", "propensity", "uplift")  # the families whose batch scores the service reads
FEATURES = ["segment", "lifecycle", "recency_days", "frequency", "monetary", "tier", "points_balance", *TAGS]


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categoricals (a handful of values over a million members)."""
    text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) and c != "top_categories"]
    return frame.astype(dict.fromkeys(text, "category"))


def plain(v: object) -> object:
    """JSON-friendly value (None for missing, lists of strings for arrays)."""
    if isinstance(v, np.ndarray | list | tuple):
        return [str(x) for x in v]
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
        return None
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class Rows:
    """A frame's rows by id for the request path: a dict id -> position and plain column arrays (no pandas per call).

    Float columns are float64 arrays; integer columns too (NaN for missing), handed back as int or None;
    other columns are object arrays of shared values. At 1M members this is a few hundred MB less than
    a column of Python ints or strings per member.
    """

    pos: dict[str, int]  # may be shared with another table of the same ids in the same order
    ids: np.ndarray  # object
    cols: dict[str, np.ndarray]
    ints: frozenset[str] = frozenset()  # columns stored as float64 that hold integers

    @classmethod
    def of(
        cls, frame: pd.DataFrame | None, pos: dict[str, int] | None = None, ids: np.ndarray | None = None
    ) -> Rows | None:
        """From a frame indexed by id; `pos` is reused when it maps exactly the frame's ids in order.

        `ids`: the frame's index as an object array the caller already holds (its strings are shared; a pandas
        string index makes a new str object per row on every conversion).
        """
        if frame is None:
            return None
        if ids is None or len(ids) != len(frame):
            ids = frame.index.to_numpy(dtype=object)
        if pos is None or len(pos) != len(ids) or any(pos.get(x) != k for k, x in enumerate(ids)):
            pos = {str(x): k for k, x in enumerate(ids)}
        cols, ints = {}, set()
        for c in frame.columns:
            col = frame[c]
            if pd.api.types.is_integer_dtype(col):
                ints.add(c)
                cols[c] = col.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
            elif pd.api.types.is_float_dtype(col):
                cols[c] = col.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                cols[c] = col.astype(object).where(col.notna(), None).to_numpy(dtype=object)
        return cls(pos, ids, cols, frozenset(ints))

    def __contains__(self, key: str) -> bool:
        return key in self.pos

    def _at(self, column: str, k: int) -> object:
        v = self.cols[column][k]
        if column in self.ints:
            return None if v != v else int(v)
        return v

    def get(self, key: str) -> dict | None:
        k = self.pos.get(key)
        return None if k is None else {c: self._at(c, k) for c in self.cols}

    def value(self, key: str, column: str) -> object:
        k = self.pos.get(key)
        return None if k is None or column not in self.cols else self._at(column, k)


def interned(values: pd.Series) -> pd.Series:
    """Array cells (e.g. favourite categories) as tuples, one shared tuple per distinct value: a few hundred
    distinct lists over 1M members instead of 1M small arrays (~0.2 GB)."""
    seen: dict[tuple, tuple] = {}

    def one(v: object) -> object:
        if isinstance(v, np.ndarray | list | tuple):
            t = tuple(str(x) for x in v)
            return seen.setdefault(t, t)
        return v

    return values.astype(object).map(one)


@dataclass
class History:
    """Purchases per member in one block each (CSR layout): far smaller than a frame plus a dict of row arrays."""

    rows: dict[str, int]  # member -> block, numbered in key order (may be shared with the vectors' rows)
    offsets: np.ndarray  # (n blocks + 1,) start of each block in items / ts
    codes: np.ndarray  # int32 per purchase: the item, as a position in `names`
    names: np.ndarray  # object: item ids
    ts: np.ndarray  # datetime64[us] (UTC) per purchase

    @classmethod
    def build(cls, buys: pd.DataFrame, rows: dict[str, int]) -> History:
        ids = buys["member_id"].to_numpy(dtype=object)
        block = pd.Index(list(rows)).get_indexer(ids) if rows else np.full(len(ids), -1)  # rows[key k] == k
        new = pd.unique(ids[block < 0])
        if len(new):  # purchasers without a vector row: blocks after the shared ones, in a dict of their own
            rows = {**rows, **{m: len(rows) + k for k, m in enumerate(new)}}
            block = np.where(block >= 0, block, pd.Index(new).get_indexer(ids) + len(rows) - len(new))
        ts = buys["ts"].to_numpy(dtype="datetime64[us]")  # UTC; a tz-aware column's plain to_numpy is Timestamp objects
        order = np.lexsort((ts, block))  # (sorting those objects took 17 s of the start-up at 2.5M purchases)
        counts = np.bincount(block, minlength=len(rows)) if len(block) else np.zeros(len(rows), dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        codes, names = pd.factorize(buys["item_id"].to_numpy(dtype=object)[order])
        return cls(rows, offsets, codes.astype(np.int32), np.asarray(names, dtype=object), ts[order])

    def of(self, member: str) -> pd.DataFrame:
        """The member's purchases (item_id, ts), oldest first."""
        b = self.rows.get(member)
        lo, hi = (0, 0) if b is None else (self.offsets[b], self.offsets[b + 1])
        return pd.DataFrame({"item_id": self.names[self.codes[lo:hi]], "ts": pd.to_datetime(self.ts[lo:hi], utc=True)})

    def items_of(self, member: str) -> np.ndarray:
        """The member's purchased item ids, oldest first (object array): the request path's cheap read."""
        b = self.rows.get(member)
        if b is None:
            return np.empty(0, dtype=object)
        return self.names[self.codes[self.offsets[b] : self.offsets[b + 1]]]

    def count(self, member: str) -> int:
        b = self.rows.get(member)
        return 0 if b is None else int(self.offsets[b + 1] - self.offsets[b])


def purchases_of(ds: Dataset, erased: set[str]) -> pd.DataFrame:
    """member_id, item_id, ts of every purchase, read one event part at a time with the filter pushed down."""
    cols = ["member_id", "ts", "event_type", "item_id", "quantity"]
    out = []
    for path in ds.event_parts():
        ev = pd.read_parquet(path, columns=cols, filters=[("event_type", "==", "purchase")])
        ok = ev["item_id"].notna() & ~(ev["quantity"] <= 0) & ~ev["member_id"].isin(erased)
        out.append(ev.loc[ok, ["member_id", "item_id", "ts"]])
    if not out:
        return pd.DataFrame({"member_id": [], "item_id": [], "ts": pd.to_datetime([], utc=True)})
    return pd.concat(out, ignore_index=True).astype({"member_id": str, "item_id": str})


@dataclass
class Snapshot:
    ds: Dataset
    key: bytes
    namespace: str
    end: pd.Timestamp
    persona: PersonaBundle
    item_index: dict[str, int]
    item_mat: np.ndarray  # [v_i, b_i] rows
    vectors: MemberVectors  # the served members' persona vectors
    vec_rows: dict[str, int]  # member -> row of vectors.matrix
    items: ix.IdIndex
    members: ix.IdIndex
    member_pos: dict[str, int]
    offers: ix.IdIndex
    catalogue: Catalogue
    category_of: dict[str, str]  # item_id -> category
    feats: Rows  # the data layer's features by member
    attrs: Rows  # region, age_band by member
    history: History  # every member's purchases (item_id, ts)
    popular_top: list[tuple[str, float]]  # (item_id, share of recent purchases), the 2,000 most popular, descending
    scores: dict[str, Rows | None]  # batch scores by member (None: no champion or no current score file)
    versions: dict[str, int | None]


def _indices(
    bundle: PersonaBundle,
    vectors: MemberVectors,
    catalogue: Catalogue,
    category: pd.Series,
    settings: IndexConfig,
    folder: Path,
) -> tuple[ix.IdIndex, ix.IdIndex, ix.IdIndex]:
    """(items, members, offers) indices: the saved ones when built for this persona version and catalogue."""
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        man = json.loads(manifest_path.read_text())
        if man.get("persona_version") == bundle.version and man.get("policy_version") == catalogue.version:
            members = ix.load(folder, "members")
            # same version number, other registry (a copied TAILOR_HOME): the rows must be this bundle's members
            if np.isin(members.ids.astype(str), vectors.ids.astype(str)).all():
                return ix.load(folder, "items"), members, ix.load(folder, "offers")
        log.warning("saved indices do not match persona v%s and this catalogue: built in memory (run tailor index)",
                    bundle.version)  # fmt: skip
    s = ix.IndexSettings.of(settings)
    items = ix.IdIndex(ix.make_index(ix.item_matrix(bundle.items), s), bundle.items["item_id"].to_numpy(dtype=object))
    members = ix.IdIndex(ix.make_index(ix.normalize(vectors.matrix), s), vectors.ids)
    offers = ix.IdIndex(ix.make_index(ix.offer_matrix(catalogue.offers, bundle.items, category), s),
                        np.array([o.offer_id for o in catalogue.offers], dtype=object))  # fmt: skip
    return items, members, offers


def load_snapshot(dataset: str, cfg: ServingConfig, erased: set[str], layout: Layout) -> Snapshot:
    """Load the champions, the dataset's features and histories, and the indices."""
    ds = Dataset(dataset, layout)
    end = dataset_end(ds)
    versions: dict[str, int | None] = {f: None for f in ("persona", *SCORED)}
    versions.update({mv.name: int(mv.version) for mv in champions(layout)})
    bundle = load_persona(versions["persona"], layout)
    catalogue = load_catalogue(cfg.offers)
    items = ds.table("items", ["item_id", "category"])
    category = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["category"].astype(object)
    vectors = member_vectors(bundle, ds.name, erased, layout)
    it, mem, off = _indices(bundle, vectors, catalogue, category, cfg.index, layout.indices)
    feats = features_at(ds, end)[["member_id", *FEATURES]]
    feats = _compact(feats.assign(member_id=feats["member_id"].astype(str)).set_index("member_id"))
    attrs = ds.table("members", ["member_id", "region", "age_band"])
    attrs = _compact(attrs.assign(member_id=attrs["member_id"].astype(str)).set_index("member_id"))
    buys = purchases_of(ds, erased)
    recent = buys.loc[buys["ts"] >= end - pd.Timedelta(days=cfg.popular_days), "item_id"]
    popular = (recent if len(recent) else buys["item_id"]).value_counts(normalize=True)
    popular = popular[popular.index.isin(bundle.items["item_id"].astype(str))] if len(popular) else popular
    rows = vectors.rows()  # shared with the member index's positions when both hold the same members in order
    feats = feats.loc[~feats.index.isin(erased)].assign(top_categories=lambda f: interned(f["top_categories"]))
    if feats.index.isin(vectors.ids).all():  # the usual case: one position dict (and id array) for all tables
        feats = Rows.of(feats.reindex(vectors.ids), rows, vectors.ids)
    else:
        feats = Rows.of(feats, rows)
    attrs = attrs.loc[~attrs.index.duplicated()]
    if attrs.index.isin(vectors.ids).all():
        attrs = Rows.of(attrs.reindex(vectors.ids), rows, vectors.ids)
    else:
        attrs = Rows.of(attrs, rows)
    if vectors.source != "model":  # served from the batch file: the model's own copy of the vectors is not needed
        bundle.vectors = bundle.vectors.iloc[:0]
    scores: dict[str, Rows | None] = {}
    for f in SCORED:
        frame = load_scores(f, ds.name, versions[f], layout)
        if frame is not None:
            frame = frame.drop(columns=["model", "cutoff"], errors="ignore")
        if (
            frame is not None
            and len(frame) == len(vectors.ids)
            and not frame.index.duplicated().any()
            and frame.index.isin(vectors.ids).all()
        ):  # every served member, in another order: shares the positions
            scores[f] = Rows.of(frame.reindex(vectors.ids), rows, vectors.ids)
            continue
        shared = next((r.pos for r in scores.values() if r is not None and frame is not None and len(r.ids) ==
                       len(frame) and (r.ids == frame.index.to_numpy(dtype=object)).all()), None)  # fmt: skip
        scores[f] = Rows.of(frame, shared)
    history = History.build(buys, rows)
    del buys
    item_mat = ix.item_matrix(bundle.items)
    bundle.items = bundle.items.drop(columns=["vector"])  # its rows live on in item_mat and the items index
    if _same(mem.ids, vectors.ids):  # one id array and position dict for vectors, index and tables
        mem.ids = vectors.ids
        vectors.matrix = ix.ScaledRows.over(mem.index, vectors.matrix)
    return Snapshot(
        ds=ds, key=load_key(), namespace=ds.manifest.get("id_namespace", ""), end=end, persona=bundle,
        item_index={str(i): k for k, i in enumerate(bundle.items["item_id"])},
        item_mat=item_mat, vectors=vectors, vec_rows=rows,
        items=it, members=mem,
        member_pos=rows if mem.ids is vectors.ids else mem.position(), offers=off, catalogue=catalogue,
        category_of={str(k): str(v) for k, v in category.items()},
        feats=feats, attrs=attrs, history=history,
        popular_top=[(str(i), float(v)) for i, v in popular.head(2000).items()],
        scores=scores, versions=versions,
    )  # fmt: skip


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and bool((a.astype(str) == b.astype(str)).all())


def item_reasons(
    s: Snapshot, item: str, own: list[str], favs: set[str], own_mat: np.ndarray | None = None
) -> list[str]:
    """Readable reasons for a recommended item: favourite category, bought before, nearest bought item.

    `own_mat`: the normalized item rows of `own`, when the caller explains several items at once.
    """
    out = []
    cat = s.category_of.get(item)
    if cat in favs:
        out.append(f"in your favourite category: {cat}")
    if item in own:
        out.append("you bought this before")
    elif own:
        v = own_mat if own_mat is not None else ix.normalize(s.item_mat[[s.item_index[i] for i in own]])
        sims = v @ ix.normalize(s.item_mat[[s.item_index[item]]])[0]
        out.append(f"similar to items you bought: {own[int(np.argmax(sims))]}")
    return out or ["matches your persona"]
