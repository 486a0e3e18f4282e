"""Offers of many members at once: the vectorized form of `serving.offers.rank_offers` (a test holds them equal).

`tailor score` ranks every member's offers with it: eligibility by tier, segment, validity,
remaining budget and the member's frequency caps, then expected incremental value and diversity.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from serving.offers import Catalogue, as_utc

BASES = np.array(["uplift", "propensity", "prior"], dtype=object)


def shown_counts(cat: Catalogue, impressions: pd.DataFrame, members: np.ndarray, at: datetime) -> np.ndarray:
    """[n members, n offers] issues of each offer to each member inside that offer's cap window before `at`."""
    out = np.zeros((len(members), len(cat.offers)), dtype=np.int64)
    if impressions.empty or not len(members):
        return out
    t = as_utc(at)
    pos = pd.Index(members).get_indexer(impressions["member_id"])
    for j, o in enumerate(cat.offers):
        hit = (pos >= 0) & (impressions["offer_id"].to_numpy() == o.offer_id)
        hit &= (impressions["ts"] >= t - pd.Timedelta(days=cat.cap(o).days)).to_numpy()
        np.add.at(out[:, j], pos[hit], 1)
    return out


def rank_offers_batch(
    cat: Catalogue,
    *,
    tiers: np.ndarray,
    segments: np.ndarray,
    affinity: np.ndarray,
    p_buy: np.ndarray,
    uplift: np.ndarray | None = None,
    spent: dict[str, float] | None = None,
    shown: np.ndarray | None = None,
    at: datetime,
    k: int = 5,
    channel: str | None = None,
    drop_negative: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k offers of n members at once: (offer positions [n, k] with -1 padding, EIV [n, k], basis [n, k]).

    `affinity` [n, m] is u . offer for the catalogue's m offers; `p_buy` [n] (NaN: unknown, prior
    used); `uplift` [n, m] (NaN where none applies); `shown` [n, m] issues inside each cap window.
    Same score, rules and tie-breaking as `serving.offers.rank_offers`.
    """
    n, m = affinity.shape
    spent = spent or {}
    t = as_utc(at)
    elig = np.ones((n, m), dtype=bool)
    for j, o in enumerate(cat.offers):
        if o.eligible_tiers:
            elig[:, j] &= np.isin(tiers, o.eligible_tiers)
        if o.eligible_segments:
            elig[:, j] &= np.isin(segments, o.eligible_segments)
        closed = (o.valid_from and t < as_utc(o.valid_from)) or (o.valid_to and t >= as_utc(o.valid_to))
        broke = o.budget is not None and o.budget - spent.get(o.offer_id, 0.0) < o.cost
        if (channel and o.channels and channel not in o.channels) or closed or broke:
            elig[:, j] = False
        if shown is not None:
            elig[:, j] &= shown[:, j] < cat.cap(o).max
    a = affinity.astype(np.float64)
    mean_a = np.where(elig, a, 0.0).sum(1) / np.maximum(elig.sum(1), 1)
    known = np.isfinite(p_buy)
    base = np.where(known, p_buy, cat.prior_response)
    p = np.minimum(1.0, base[:, None] * np.exp(np.clip(a - mean_a[:, None], -5.0, 5.0)))
    value = np.array([o.value for o in cat.offers], dtype=np.float64)
    cost = np.array([o.cost for o in cat.offers], dtype=np.float64)
    eiv = p * value - cost
    basis = np.where(known, 1, 2)[:, None].repeat(m, 1)
    if uplift is not None:
        keyed = np.array([o.uplift_key is not None for o in cat.offers])
        use = keyed[None, :] & np.isfinite(uplift)
        eiv = np.where(use, np.nan_to_num(uplift) * value - cost, eiv)
        basis = np.where(use, 0, basis)
    if drop_negative:  # an offer of negative expected value is issued only by an exploration arm
        elig &= ~(eiv < 0)
    # sort by (-eiv, offer_id): offers in id order, then a stable sort on -eiv; ineligible last
    by_id = np.argsort([o.offer_id for o in cat.offers], kind="stable")
    key = np.where(elig, -eiv, np.inf)[:, by_id]
    order = by_id[np.argsort(key, axis=1, kind="stable")]
    rows = np.arange(n)[:, None]
    ok = elig[rows, order]
    # diversity: the first `diversity_top` picks share no category; the rest follow in score order
    cats = sorted({c for o in cat.offers for c in o.scope.categories})
    catmat = np.array([[c in o.scope.categories for c in cats] for o in cat.offers], dtype=bool).reshape(m, len(cats))
    used = np.zeros((n, len(cats)), dtype=bool)
    picked = np.zeros(n, dtype=np.int64)
    first = np.zeros((n, m), dtype=bool)
    for j in range(m):
        c = catmat[order[:, j]]
        take = ok[:, j] & (picked < cat.diversity_top) & ~(used & c).any(1)
        used |= c & take[:, None]
        picked += take
        first[:, j] = take
    pos = np.arange(m)[None, :]
    final = np.argsort(np.where(first, pos, np.where(ok, pos + m, pos + 2 * m)), axis=1, kind="stable")[:, :k]
    chosen = order[rows, final]
    valid = ok[rows, final]
    return (
        np.where(valid, chosen, -1),
        np.where(valid, eiv[rows, chosen], np.nan),
        np.where(valid, basis[rows, chosen], -1),
    )
