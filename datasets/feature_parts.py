"""Per-part member statistics for `datasets.features` (one member-hash part at a time).

A member lives in exactly one part, so everything here is per member and exact; only
quantile scores and category medians need all parts and are left to `features`.
Vectorized numpy/pandas throughout: members are integer codes, never a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from datasets.feature_settings import FeatureConfig
from datasets.membership import derive_tiers
from datasets.settings import TierRules

EVENT_COLUMNS = ["member_id", "ts", "event_type", "item_id", "quantity", "amount", "channel", "session_id", "discount"]
NAT = np.iinfo(np.int64).min  # "no timestamp" in int64 microsecond columns


@dataclass
class Context:
    """What every part needs: the cutoff, the config and the catalogue's categories."""

    cutoff: pd.Timestamp
    cfg: FeatureConfig
    timezone: str = "UTC"
    tier_rules: TierRules | None = None  # None: the members table carries tiers
    item_index: pd.Index = field(default_factory=lambda: pd.Index([], dtype=object))
    item_cat: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    categories: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    @classmethod
    def build(cls, cutoff: pd.Timestamp, cfg: FeatureConfig, items: pd.DataFrame, **kw: object) -> Context:
        """Context with category codes per item (categories sorted, so ties go to the first name)."""
        cats = items["category"].astype(object).where(items["category"].notna())
        names = np.array(sorted(cats.dropna().unique()), dtype=object)
        codes = pd.Index(names).get_indexer(cats).astype(np.int64)
        index = pd.Index(items["item_id"].astype(object))
        return cls(cutoff, cfg, item_index=index, item_cat=codes, categories=names, **kw)  # type: ignore[arg-type]


def to_us(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 microseconds; missing values become NAT."""
    naive = ts.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    return naive.to_numpy().view(np.int64)  # NaT is int64 min, which is NAT


def mode_code(member: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    """Per member 0..n-1 the most frequent code of `value` (codes >= 0; ties: smallest); -1 if none."""
    ok = value >= 0
    member, value = member[ok].astype(np.int64), value[ok].astype(np.int64)
    out = np.full(n, -1, dtype=np.int64)
    if not len(value):
        return out
    k = int(value.max()) + 1
    uk, cnt = np.unique(member * k + value, return_counts=True)
    um, uv = np.divmod(uk, k)
    order = np.lexsort((uv, -cnt, um))
    first = order[np.r_[True, um[order][1:] != um[order][:-1]]]
    out[um[first]] = uv[first]
    return out


def _group_ts(codes: np.ndarray, ts: np.ndarray, n: int, how: str) -> np.ndarray:
    """Per member min or max of int64 timestamps; NAT where a member has none."""
    out = np.full(n, NAT, dtype=np.int64)
    if len(ts):
        agg = pd.Series(ts).groupby(codes).agg(how)
        out[agg.index.to_numpy()] = agg.to_numpy()
    return out


def _orders(buys: pd.DataFrame, bm: np.ndarray, ts: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """(member code, first ts) of each distinct order: a session, or a local day when it has none."""
    if not len(buys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    key = pd.factorize(buys["session_id"])[0].astype(np.int64)
    if (miss := key < 0).any():
        local = pd.DatetimeIndex(buys["ts"].to_numpy()[miss]).tz_convert(tz).tz_localize(None)
        day = local.to_numpy().astype("datetime64[D]").astype(np.int64)
        key[miss] = key.max() + 1 + day - day.min()  # day codes sit above every session code
    k = int(key.max()) + 1
    first = pd.Series(ts).groupby(bm.astype(np.int64) * k + key, sort=True).min()
    return first.index.to_numpy() // k, first.to_numpy()


def _habits(om: np.ndarray, ots: np.ndarray, freq: np.ndarray, ctx: Context) -> pd.DataFrame:
    """Weekend share and habit, and the most frequent time of day, over a member's orders."""
    h, n = ctx.cfg.habits, len(freq)
    local = pd.DatetimeIndex(pd.to_datetime(ots, unit="us", utc=True)).tz_convert(ctx.timezone)
    weekend = np.isin(local.dayofweek.to_numpy(), h.weekend_days).astype(np.float64)
    has = freq > 0
    share = np.full(n, np.nan)
    share[has] = np.bincount(om, weights=weekend, minlength=n)[has] / freq[has]
    habit = np.select([share >= h.weekend_min_share, share <= h.weekday_max_share], ["weekend", "weekday"], "mixed")
    starts = np.array([p.start for p in h.time_of_day])
    tod = mode_code(om, np.searchsorted(starts, local.hour.to_numpy(), side="right") - 1, n)
    return pd.DataFrame(
        {
            "weekend_share": share,
            "weekend_habit": np.where(has, habit.astype(object), None),
            "time_of_day": _names(tod, [p.name for p in h.time_of_day]),
        }
    )


def _names(codes: np.ndarray, names: list | np.ndarray) -> np.ndarray:
    """Codes to names (object array), None where the code is -1."""
    lookup = np.asarray([*list(names), None], dtype=object)
    return lookup[np.where(codes >= 0, codes, len(lookup) - 1)]


def category_pairs(buys: pd.DataFrame, bm: np.ndarray, ids: np.ndarray, ctx: Context) -> pd.DataFrame:
    """Spend, purchase lines and quantity-weighted mean paid unit price per (member, category)."""
    codes, uniq = pd.factorize(buys["item_id"])  # look up each distinct item once, not each line
    pos_u = ctx.item_index.get_indexer(np.asarray(uniq, dtype=object))
    cat_u = np.where(pos_u >= 0, ctx.item_cat[np.clip(pos_u, 0, None)] if len(ctx.item_cat) else -1, -1)
    cat = np.where(codes >= 0, np.r_[cat_u, -1][codes], -1)
    ok = cat >= 0
    k = max(len(ctx.categories), 1)
    uk, inv = np.unique(bm[ok].astype(np.int64) * k + cat[ok], return_inverse=True)
    spend = np.bincount(inv, weights=buys["amount"].fillna(0.0).to_numpy()[ok], minlength=len(uk))
    qty = np.bincount(inv, weights=buys["quantity"].fillna(1.0).to_numpy()[ok], minlength=len(uk))
    unit = np.full(len(uk), np.nan)
    np.divide(spend, qty, out=unit, where=qty > 0)
    lines = np.bincount(inv, minlength=len(uk))
    return pd.DataFrame({"member_id": ids[uk // k], "cat": uk % k, "spend": spend, "lines": lines, "unit": unit})


def part_stats(events: pd.DataFrame, ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """One part's per-member statistics before the cutoff: (members, category pairs, has discount info)."""
    events = events.loc[(events["ts"] < ctx.cutoff).to_numpy()]  # the guarantee; readers may also filter
    events = events.assign(**{c: np.nan for c in EVENT_COLUMNS if c not in events.columns})
    codes, uniq = pd.factorize(events["member_id"])
    ids, n = np.asarray(uniq, dtype=object), len(uniq)
    ts = to_us(events["ts"])
    is_buy = (events["event_type"] == "purchase").to_numpy(dtype=bool, na_value=False)
    is_coupon = (events["event_type"] == "coupon_redeem").to_numpy(dtype=bool, na_value=False)
    coupon = np.bincount(codes[is_coupon], minlength=n)
    buys, bm = events.loc[is_buy], codes[is_buy]
    om, ots = _orders(buys, bm, ts[is_buy], ctx.timezone)
    freq = np.bincount(om, minlength=n)
    chan_codes, chan_names = pd.factorize(events["channel"], sort=True)
    discounted = (buys["discount"].fillna(0.0).to_numpy() > 0).astype(np.float64)
    stats = pd.DataFrame(
        {
            "member_id": ids,
            "first_event": _group_ts(codes, ts, n, "min"),
            "first_buy": _group_ts(bm, ts[is_buy], n, "min"),
            "last_buy": _group_ts(bm, ts[is_buy], n, "max"),
            "frequency": freq,
            "monetary": np.bincount(bm, weights=buys["amount"].fillna(0.0).to_numpy(), minlength=n),
            # discount affinity = (discounted lines + coupon redemptions) / (lines + coupon redemptions)
            "n_deal": np.bincount(bm, weights=discounted, minlength=n) + coupon,
            "n_deal_base": np.bincount(bm, minlength=n) + coupon,
            "channel": _names(mode_code(codes, chan_codes, n), np.asarray(chan_names, dtype=object)),
        }
    )
    stats = pd.concat([stats, _habits(om, ots, freq, ctx)], axis=1)
    if ctx.tier_rules is not None:
        tiers = derive_tiers(buys[["member_id", "ts", "event_type", "amount"]], ctx.tier_rules, ctx.cutoff)
        stats = stats.merge(tiers[["member_id", "tier", "points_balance"]], on="member_id", how="left")
    has_info = bool(events["discount"].notna().any() or coupon.any())
    return stats, category_pairs(buys, bm, ids, ctx), has_info
