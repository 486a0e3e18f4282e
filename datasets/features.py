"""Member features at a cutoff: RFM, segments, lifecycle, tags, tier (only events before it).

Per-member statistics come from `feature_parts`, one member-hash part at a time; here the
parts are joined and everything that needs all members is computed: quantile scores,
segments, category medians for the price band, the population of members at the cutoff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from datasets.config import load
from datasets.feature_parts import EVENT_COLUMNS, NAT, Context, part_stats, to_us
from datasets.feature_settings import FeatureConfig
from datasets.settings import PrepareConfig, TierRules
from datasets.split import TimeLike, dataset_end, events_before, utc_cutoff
from datasets.store import Dataset, write_parquet

log = logging.getLogger(__name__)
_DAY_US = 86_400 * 1_000_000
COLUMNS = [
    "member_id", "lifecycle", "segment", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score",
    "days_since_first_purchase", "tenure_days", "top_categories", "price_index", "price_band", "discount_affinity",
    "weekend_share", "weekend_habit", "time_of_day", "channel", "region", "tier", "points_balance",
]  # fmt: skip

_TYPES = {"recency_days": "int", "frequency": "int", "r_score": "int", "f_score": "int", "m_score": "int"}
_TYPES |= {"days_since_first_purchase": "int", "tenure_days": "int", "top_categories": "list"}
_TYPES |= dict.fromkeys(["monetary", "price_index", "discount_affinity", "weekend_share", "points_balance"], "float")
_ARROW = {"int": pa.int64(), "float": pa.float64(), "list": pa.list_(pa.string()), "str": pa.string()}
SCHEMA = pa.schema([pa.field(c, _ARROW[_TYPES.get(c, "str")]) for c in COLUMNS])  # fixed: same frame, same bytes


def quantile_scores(values: np.ndarray, n_scores: int, higher_is_better: bool = True) -> np.ndarray:
    """1..n_scores: 1 + floor(n_scores * share of the others strictly worse); ties share a score."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    ranked = np.sort(values)
    worse = (
        np.searchsorted(ranked, values, "left")
        if higher_is_better
        else len(values) - np.searchsorted(ranked, values, "right")
    )
    return 1 + (n_scores * worse) // len(values)


def compute_features(
    parts: Iterable[pd.DataFrame],
    members: pd.DataFrame,
    items: pd.DataFrame,
    cutoff: TimeLike,
    cfg: FeatureConfig,
    *,
    timezone: str = "UTC",
    tier_rules: TierRules | None = None,
) -> pd.DataFrame:
    """Features of every member known at `cutoff`, from event parts (only rows before it are used)."""
    cut = utc_cutoff(cutoff)
    ctx = Context.build(cut, cfg, items, timezone=timezone, tier_rules=tier_rules)
    stats, pairs, has_info = [], [], False
    for part in parts:
        s, p, info = part_stats(part, ctx)
        stats.append(s)
        pairs.append(p)
        has_info |= info
    empty_stats, empty_pairs, _ = part_stats(
        pd.DataFrame({c: [] for c in EVENT_COLUMNS}).astype({"ts": "datetime64[us, UTC]"}), ctx
    )
    st = pd.concat([empty_stats, *stats], ignore_index=True)
    frame = _population(st, members, cut, cfg, tier_rules)
    _rfm(frame, cut, cfg)
    _tags(frame, pd.concat([empty_pairs, *pairs], ignore_index=True), ctx.categories, cfg, has_info)
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The output columns in fixed dtypes, whatever the input (so equal inputs give equal frames)."""
    dtypes = {"int": "Int64", "float": "float64", "list": object, "str": "string"}
    return pd.DataFrame({c: frame[c].astype(dtypes[_TYPES.get(c, "str")]) for c in COLUMNS}).reset_index(drop=True)


def _population(
    st: pd.DataFrame, members: pd.DataFrame, cut: pd.Timestamp, cfg: FeatureConfig, tier_rules: TierRules | None
) -> pd.DataFrame:
    """Members with an event before the cutoff, plus those the members table says had joined."""
    joined = members["joined_at"]
    known = joined.notna() & (joined < cut)
    if cfg.include_undated_members:
        known |= joined.isna()
    keep = members.loc[known.to_numpy() | members["member_id"].isin(st["member_id"]).to_numpy()]
    attrs = keep[["member_id", "joined_at", "region"] + (["tier", "points_balance"] if tier_rules is None else [])]
    frame = st.merge(attrs.astype({"member_id": object}), on="member_id", how="outer", suffixes=("", "_m"))
    frame = frame.sort_values("member_id", kind="stable").reset_index(drop=True)
    for col, default in (("frequency", 0), ("monetary", 0.0), ("n_deal", 0.0), ("n_deal_base", 0.0)):
        frame[col] = frame[col].fillna(default)
    for col in ("first_event", "first_buy", "last_buy"):
        frame[col] = frame[col].fillna(NAT).astype(np.int64)
    if tier_rules is not None:  # derived: a member without purchases sits at the entry level
        frame["tier"] = frame["tier"].fillna(tier_rules.levels[0].name)
        frame["points_balance"] = frame["points_balance"].fillna(0.0)
    joined_us = to_us(frame["joined_at"])
    joined_us = np.where(joined_us == NAT, np.iinfo(np.int64).max, joined_us)
    first = np.where(frame["first_event"].to_numpy() == NAT, np.iinfo(np.int64).max, frame["first_event"].to_numpy())
    start = np.minimum(joined_us, first)
    cut_us = cut.value // 1000
    frame["tenure_days"] = _int_na(np.maximum(cut_us - start, 0) // _DAY_US, start == np.iinfo(np.int64).max)
    return frame


def _int_na(values: np.ndarray, missing: np.ndarray) -> pd.arrays.IntegerArray:
    """A nullable Int64 array: `values` where not `missing`."""
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), np.asarray(missing, dtype=bool))


def _days_since(us: np.ndarray, cut: pd.Timestamp) -> pd.arrays.IntegerArray:
    """Whole days from each timestamp to the cutoff (floored); NA where there is none."""
    return _int_na((cut.value // 1000 - us) // _DAY_US, us == NAT)


def _rfm(frame: pd.DataFrame, cut: pd.Timestamp, cfg: FeatureConfig) -> None:
    """Recency/frequency/monetary, their scores among purchasers, segment and lifecycle (in place)."""
    buyer = frame["frequency"].to_numpy() > 0
    frame["recency_days"] = _days_since(frame["last_buy"].to_numpy(), cut)
    frame["days_since_first_purchase"] = _days_since(frame["first_buy"].to_numpy(), cut)
    frame["frequency"] = frame["frequency"].astype("int64")
    frame["monetary"] = frame["monetary"].round(2)
    rec = frame.loc[buyer, "recency_days"].to_numpy(dtype=np.int64)
    scores = {
        "r_score": quantile_scores(rec, cfg.scores, higher_is_better=False),
        "f_score": quantile_scores(frame.loc[buyer, "frequency"].to_numpy(), cfg.scores),
        "m_score": quantile_scores(frame.loc[buyer, "monetary"].to_numpy(), cfg.scores),
    }
    for col, vals in scores.items():
        full = np.zeros(len(frame), dtype=np.int64)
        full[buyer] = vals
        frame[col] = _int_na(full, ~buyer)
    r, f = scores["r_score"], scores["f_score"]
    seg = np.full(len(r), None, dtype=object)
    for rule in cfg.segments:  # first matching rule wins
        hit = (seg == None) & (r >= rule.r[0]) & (r <= rule.r[1]) & (f >= rule.f[0]) & (f <= rule.f[1])  # noqa: E711
        seg[hit] = rule.name
    frame["segment"] = None
    frame.loc[buyer, "segment"] = seg
    lc = cfg.lifecycle
    first_d = frame["days_since_first_purchase"].fillna(-1).to_numpy(dtype=np.int64)
    rec_d = frame["recency_days"].fillna(-1).to_numpy(dtype=np.int64)
    conds = [~buyer, first_d <= lc.new_days, rec_d <= lc.active_days, rec_d <= lc.at_risk_days]
    frame["lifecycle"] = np.select(conds, ["prospect", "new", "active", "at_risk"], "lapsed").astype(object)


def _tags(frame: pd.DataFrame, pairs: pd.DataFrame, cats: np.ndarray, cfg: FeatureConfig, has_info: bool) -> None:
    """Top categories, price index and band, discount affinity (in place)."""
    pos = pd.Index(frame["member_id"]).get_indexer(pairs["member_id"])
    frame["top_categories"] = _top_lists(pos, pairs, len(frame), cfg.top_categories, cats)
    valid = pairs["unit"].notna().to_numpy() & (pairs["unit"].to_numpy() > 0)
    median = pairs.loc[valid].groupby("cat")["unit"].median()
    ratio = pairs["unit"].to_numpy() / median.reindex(pairs["cat"]).to_numpy()
    # Weighted by purchase lines, not spend: spend weights would favour the pricier categories.
    w = np.where(valid & np.isfinite(ratio), pairs["lines"].to_numpy(), 0).astype(np.float64)
    # A geometric mean: price ratios are skewed, and an arithmetic mean would read most members as premium.
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where(w > 0, np.log(ratio), 0.0)
    num = np.bincount(pos, weights=w * log_ratio, minlength=len(frame))
    den = np.bincount(pos, weights=w, minlength=len(frame))
    index = np.full(len(frame), np.nan)
    np.divide(num, den, out=index, where=den > 0)
    index = np.exp(index)
    frame["price_index"] = np.round(index, 4)
    b = cfg.price_band
    band = np.select([index < b.budget_below, index > b.premium_above], ["budget", "premium"], "mid").astype(object)
    frame["price_band"] = np.where(np.isnan(index), None, band)
    base = frame["n_deal_base"].to_numpy()
    aff = np.full(len(frame), np.nan)
    if has_info:  # no discount column values and no coupon events at all: unknown, not zero
        np.divide(frame["n_deal"].to_numpy(), base, out=aff, where=base > 0)
    frame["discount_affinity"] = np.round(aff, 4)


def _top_lists(pos: np.ndarray, pairs: pd.DataFrame, n: int, top: int, cats: np.ndarray) -> pd.Series:
    """Per member the `top` categories by spend (ties: category name) as a list column."""
    cat = pairs["cat"].to_numpy()
    order = np.lexsort((cat, -pairs["spend"].to_numpy(), pos))
    pos_s, cat_s = pos[order], cat[order]
    start = np.r_[True, pos_s[1:] != pos_s[:-1]]
    rank = np.arange(len(pos_s)) - np.maximum.accumulate(np.where(start, np.arange(len(pos_s)), 0))
    keep = rank < top
    counts = np.bincount(pos_s[keep], minlength=n)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
    arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(cats[cat_s[keep]].tolist(), type=pa.string()))
    # Plain object lists: an Arrow-typed list column does not survive pandas' Parquet metadata.
    return pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object)


def segment_table(features: pd.DataFrame) -> pd.DataFrame:
    """Members, share and median recency/frequency/monetary per segment (members with no purchase yet grouped apart)."""
    seg = features["segment"].astype(object).where(features["segment"].notna(), "(no purchase yet)")
    g = features.assign(segment=seg).groupby("segment", sort=True)
    out = pd.DataFrame(
        {
            "members": g.size(),
            "median_recency_days": g["recency_days"].median(),
            "median_frequency": g["frequency"].median(),
            "median_monetary": g["monetary"].median().round(2),
        }
    )
    out.insert(1, "share", (out["members"] / max(len(features), 1)).round(4))
    out = out.reset_index().sort_values(["members", "segment"], ascending=[False, True], kind="stable")
    return out.reset_index(drop=True)


def features_path(dataset: Dataset, cutoff: pd.Timestamp) -> Path:
    """TAILOR_HOME/data/<dataset>/features/cutoff=<YYYY-MM-DD>.parquet (time added when not midnight)."""
    stamp = f"{cutoff:%Y-%m-%d}" if cutoff == cutoff.normalize() else f"{cutoff:%Y-%m-%dT%H%M%S}"
    return dataset.path / "features" / f"cutoff={stamp}.parquet"


def features_at(ds: Dataset, cutoff: TimeLike, cfg: FeatureConfig | None = None) -> pd.DataFrame:
    """The features of a prepared dataset's members at a cutoff (computed, not written)."""
    cfg = cfg or load(FeatureConfig, "features")
    # Sources without tiers get them derived with the same rules prepare uses (configs/prepare.yaml).
    recorded = ds.manifest.get("tier_rules")
    rules = (
        None
        if ds.manifest.get("has_tiers")
        else (TierRules.model_validate(recorded) if recorded else load(PrepareConfig, "prepare").tiers)
    )
    cut = utc_cutoff(cutoff)
    return compute_features(
        events_before(ds, cut, EVENT_COLUMNS),
        ds.table("members"),
        ds.table("items"),
        cut,
        cfg,
        timezone=ds.manifest.get("timezone") or "UTC",
        tier_rules=rules,
    )


def run_features(
    dataset: str | Path, cutoff: TimeLike | None = None, config: str = "features", overrides: Sequence[str] = ()
) -> pd.DataFrame:
    """Compute, write and summarize the features of a prepared dataset at a cutoff."""
    cfg = load(FeatureConfig, config, overrides)
    ds = Dataset(dataset)
    cut = dataset_end(ds) if cutoff is None else utc_cutoff(cutoff)
    feats = features_at(ds, cut, cfg)
    path = features_path(ds, cut)
    write_parquet(feats, path, SCHEMA)
    log.debug("wrote %s (%d members)", path, len(feats))
    print(f"features of {ds.name} at cutoff {cut.isoformat()}: {len(feats):,} members -> {path}")
    print(segment_table(feats).to_string(index=False))
    counts = feats["lifecycle"].value_counts().reindex(["prospect", "new", "active", "at_risk", "lapsed"], fill_value=0)
    print("lifecycle: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return feats
