"""`tailor score --dataset D`: persona, scores and top offers of every member, in chunks, to Parquet.

One file per dataset, `TAILOR_HOME/scores/members/<dataset>.parquet`, one row per member of the
members table: the persona vector (refolded at the data's end from all the member's purchases,
so it is fresh after an append), RFM segment, lifecycle, tier, points, churn and purchase
probabilities, and the top-k offers with their expected incremental value and basis. The model
versions, policy version and cutoff sit in the file's metadata and in a JSON manifest beside it.

Offers are ranked by `rank_offers_batch`, the vectorized form of `serving.offers.rank_offers`
(a test holds them equal): eligibility by tier, segment, validity, remaining budget and the
member's frequency caps as recorded in the event store, then expected incremental value and
diversity. A batch run is a plan, not an issue: it commits no budget and counts no impression.
Churn and propensity scores are also written per family (`scores/<family>/<dataset>.parquet`),
which is where the service reads them.

The persona refold reads only the purchases (filtered in Parquet) and works through the members
in sorted blocks, so memory grows with the purchases, never with all events.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from datasets.features import features_at
from datasets.layout import Layout
from datasets.split import dataset_end
from datasets.store import Dataset
from serving import index as ix
from serving.bundle import champion_version, load_persona, load_scores
from serving.config import ServingConfig
from serving.events import EventStore, tombstoned
from serving.offers import Catalogue, as_utc, load_catalogue
from serving.offers_batch import BASES, rank_offers_batch, shown_counts
from serving.snapshot import SCORED, purchases_of

log = logging.getLogger(__name__)


def _vector_table(vectors: np.ndarray) -> pa.Array:
    dim = vectors.shape[1]
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float32).ravel()), dim)


class _Writer:
    """Appends chunks to one Parquet file (written to a temporary name, renamed when complete)."""

    def __init__(self, path: Path, metadata: dict) -> None:
        self.path, self.tmp, self.metadata, self.writer = path, path.with_suffix(".parquet.tmp"), metadata, None
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            schema = table.schema.with_metadata({"tailor": json.dumps(self.metadata)})
            self.writer = pq.ParquetWriter(self.tmp, schema)
        self.writer.write_table(table.replace_schema_metadata(self.writer.schema.metadata))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.tmp.replace(self.path)


def score_members(
    dataset: str,
    k: int = 5,
    at: datetime | None = None,
    chunk_members: int = 100_000,
    outcomes: bool = True,
    cfg: ServingConfig | None = None,
    layout: Layout | None = None,
) -> Path:
    """Persona, scores and top-k offers of every member of a prepared dataset -> Parquet (see module docstring).

    The persona refold runs in a second process while this one computes features and outcome
    scores (the two halves take about as long, and the machine has at least two cores).
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    layout = Layout.of(layout)
    t0 = time.perf_counter()
    ds = Dataset(dataset, layout)
    cfg = cfg or ServingConfig.load()
    end = dataset_end(ds)
    at = at or datetime.now(UTC)
    versions = {f: champion_version(f, layout) for f in ("persona", *SCORED)}
    bundle = load_persona(versions["persona"], layout)
    path = layout.member_scores(ds.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    vec_path = path.with_suffix(".vectors.tmp")
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        encoding = pool.submit(persona_vectors, ds.name, bundle.version, str(vec_path), chunk_members)
        feats = features_at(ds, end)
        feats = feats.assign(member_id=feats["member_id"].astype(str)).set_index("member_id")
        if outcomes:
            _score_outcomes(ds, end, feats, versions)
        scores = {f: load_scores(f, ds.name, versions[f], layout) for f in SCORED}
        t_scores = time.perf_counter() - t0
        t_encode = encoding.result()
    catalogue = load_catalogue(cfg.offers)
    items = ds.table("items", ["item_id", "category"])
    category = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["category"].astype(object)
    offer_mat = ix.offer_matrix(catalogue.offers, bundle.items, category)
    store = EventStore(layout.home)
    horizon = max((o.cap or catalogue.default_cap).days for o in catalogue.offers) if catalogue.offers else 0
    with store.lock:
        imp = pd.read_sql_query("SELECT member_id, offer_id, ts FROM impressions WHERE ts >= ?", store.con,
                                params=[(as_utc(at) - pd.Timedelta(days=horizon)).isoformat()])  # fmt: skip
    imp = imp.assign(ts=pd.to_datetime(imp["ts"], utc=True, format="ISO8601"))
    spent = store.spent()
    meta = {"dataset": ds.name, "cutoff": str(end), "at": str(as_utc(at)), "k": k,
            "versions": versions, "policy_version": catalogue.version, "dim": bundle.dim}  # fmt: skip
    writer = _Writer(path, meta)
    vectors = pq.ParquetFile(vec_path)
    n_out, t1 = 0, time.perf_counter()
    bar = tqdm(total=vectors.metadata.num_rows, desc="offers", unit="member", unit_scale=True, mininterval=1.0)
    for b in vectors.iter_batches(batch_size=chunk_members):
        ids = b.column("member_id").to_numpy(zero_copy_only=False).astype(str)
        cold = b.column("cold_start").to_numpy(zero_copy_only=False)
        vec = b.column("vector").flatten().to_numpy().reshape(len(ids), bundle.dim)
        f = feats.reindex(ids)
        p_buy = _column(scores["propensity"], ids, "p_buy")
        uplift = _uplift(scores["uplift"], ids, catalogue)
        off, eiv, basis = rank_offers_batch(
            catalogue, tiers=_objects(f["tier"]), segments=_objects(f["segment"]),
            affinity=ix.member_query(vec) @ offer_mat.T, p_buy=np.where(cold, np.nan, p_buy),
            uplift=None if uplift is None else np.where(cold[:, None], np.nan, uplift), spent=spent,
            shown=shown_counts(catalogue, imp, ids, at), at=at, k=k,
            drop_negative=True,  # as the service issues them (batch scoring explores nothing)
        )  # fmt: skip
        writer.write(_table(ids, cold, vec, f, scores, off, eiv, basis, catalogue))
        n_out += len(ids)
        bar.update(len(ids))
    bar.close()
    writer.close()
    vec_path.unlink()
    (path.with_suffix(".json")).write_text(json.dumps({**meta, "members": n_out}, indent=1))
    took = time.perf_counter() - t0
    print(f"scored {n_out:,} members of {ds.name} (persona v{versions['persona']}, churn v{versions['churn']}, "
          f"propensity v{versions['propensity']}, policy {catalogue.version}) in {took:.1f} s: features and "
          f"outcome scores {t_scores:.1f} s beside the persona refold {t_encode:.1f} s (second process), "
          f"offers and writing {time.perf_counter() - t1:.1f} s -> {path}")  # fmt: skip
    return path


def persona_vectors(dataset: str, version: int, out: str, chunk_members: int = 100_000) -> float:
    """Every member's vector refolded at the data's end -> Parquet (member_id, cold_start, vector); returns seconds.

    Erased members are left out; members with no purchase get a vector from their attributes alone
    (`cold_start`). Runs in `score_members`' second process, so it loads what it needs itself.
    """
    import torch

    torch.set_num_threads(1)  # the other process has the other core
    layout = Layout.from_env()
    t0 = time.perf_counter()
    ds = Dataset(dataset, layout)
    end = dataset_end(ds)
    bundle = load_persona(version, layout)
    gone = tombstoned(layout.home)
    attrs = ds.table("members", ["member_id", "region", "age_band"]).astype({"member_id": str})
    attrs = attrs.loc[~attrs["member_id"].isin(gone)]
    writer = None
    buys = purchases_of(ds, gone).sort_values("member_id", kind="stable", ignore_index=True)
    everyone = np.union1d(attrs["member_id"].to_numpy(dtype=str), buys["member_id"].unique().astype(str))
    bar = tqdm(total=len(everyone), desc="persona", unit="member", unit_scale=True, mininterval=1.0)
    for members, rows in _chunks(buys, everyone, chunk_members):
        # one attribute row per member first (the encoder takes a member's attributes from its first row; the
        # row's empty item is skipped), so members with no purchase get a vector from their attributes alone
        empty = attrs.loc[attrs["member_id"].isin(members)].assign(item_id=None, ts=end)
        enc = bundle.encode(pd.concat([empty, rows]), end + pd.Timedelta(microseconds=1))
        ids = enc["member_id"].to_numpy(dtype=str)
        cold = ~np.isin(ids, rows["member_id"].to_numpy(dtype=str)) if len(rows) else np.ones(len(ids), bool)
        vec = np.stack(enc["vector"].to_numpy()).astype(np.float32)
        table = pa.table({"member_id": pa.array(ids, pa.string()), "cold_start": pa.array(cold),
                          "vector": _vector_table(vec)})  # fmt: skip
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
        bar.update(len(ids))
    bar.close()
    if writer is None:
        raise ValueError(f"dataset {dataset} has no members to score")
    writer.close()
    return time.perf_counter() - t0


def _chunks(buys: pd.DataFrame, members: np.ndarray, size: int):
    """(members, their purchases) in blocks of `size` members; `buys` and `members` sorted by member id."""
    keys = buys["member_id"].to_numpy(dtype=str)
    for lo in range(0, len(members), size):
        ms = members[lo : lo + size]
        a, b = np.searchsorted(keys, ms[0], "left"), np.searchsorted(keys, ms[-1], "right")
        yield ms, buys.iloc[a:b]


def _objects(values: pd.Series) -> np.ndarray:
    """Values as Python objects, missing ones (NA, NaN) as None."""
    return values.astype(object).where(values.notna(), None).to_numpy(dtype=object)


def _column(frame: pd.DataFrame | None, ids: np.ndarray, column: str) -> np.ndarray:
    if frame is None or column not in frame.columns:
        return np.full(len(ids), np.nan)
    return frame[column].reindex(ids).to_numpy(dtype=np.float64, na_value=np.nan)


def _uplift(frame: pd.DataFrame | None, ids: np.ndarray, cat: Catalogue) -> np.ndarray | None:
    keys = [o.uplift_key for o in cat.offers]
    if frame is None or not any(k in frame.columns for k in keys if k):
        return None
    sub = frame.reindex(ids)
    return np.stack([_column(sub, ids, k) if k in sub.columns else np.full(len(ids), np.nan) for k in keys], 1)


def _table(ids, cold, vec, f, scores, off, eiv, basis, cat: Catalogue) -> pa.Table:
    offer_ids = np.array([o.offer_id for o in cat.offers], dtype=object)
    valid = off >= 0
    lengths = valid.sum(1)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = pa.array(offer_ids[off[valid]].tolist(), pa.string())
    return pa.table({
        "member_id": pa.array(ids, pa.string()),
        "cold_start": pa.array(cold),
        "segment": pa.array(_objects(f["segment"]), pa.string()),
        "lifecycle": pa.array(_objects(f["lifecycle"]), pa.string()),
        "tier": pa.array(_objects(f["tier"]), pa.string()),
        "points": pa.array(f["points_balance"].to_numpy(dtype=np.float64, na_value=np.nan), pa.float64()),
        "p_churn": pa.array(np.where(cold, np.nan, _column(scores["churn"], ids, "p_churn")), pa.float64()),
        "p_buy": pa.array(np.where(cold, np.nan, _column(scores["propensity"], ids, "p_buy")), pa.float64()),
        "vector": _vector_table(vec),
        "offers": pa.ListArray.from_arrays(pa.array(offsets), flat),
        "offer_eiv": pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.round(eiv[valid], 6))),
        "offer_basis": pa.ListArray.from_arrays(pa.array(offsets), pa.array(BASES[basis[valid]].tolist(), pa.string())),
    })  # fmt: skip


def _score_outcomes(ds: Dataset, end: pd.Timestamp, feats: pd.DataFrame, versions: dict) -> None:
    """Churn and propensity champions on one shared member frame -> scores/<family>/<dataset>.parquet."""
    from training.outcomes.pyfunc import score_dataset

    families = [f for f in ("churn", "propensity") if versions[f] is not None]
    if not families:
        log.warning("no churn or propensity champion: members are written without those scores")
        return
    score_dataset(families, ds.name, feats=feats.reset_index())
