"""The batch ranker (`tailor score`) gives the service's ranking, member by member."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from serving.offers import Catalogue, MemberView, rank_offers
from serving.offers_batch import BASES, rank_offers_batch, shown_counts

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
TIERS = np.array(["base", "silver", "gold", None], dtype=object)
SEGMENTS = np.array(["champions", "at_risk", "new", "lost", None], dtype=object)


def catalogue() -> Catalogue:
    o = [
        {"offer_id": "c10", "kind": "coupon", "value": 10, "cost": 4, "scope": {"categories": ["home"]}},
        {"offer_id": "home_price", "kind": "member_price", "value": 8, "cost": 3, "scope": {"categories": ["home"]}},
        {"offer_id": "ship", "kind": "free_shipping", "value": 5, "cost": 2.5, "uplift_key": "u_ship"},
        {"offer_id": "pts", "kind": "points_multiplier", "value": 6, "cost": 2, "eligible_tiers": ["silver", "gold"]},
        {"offer_id": "day", "kind": "member_day", "value": 12, "cost": 6, "eligible_segments": ["champions", "new"],
         "scope": {"categories": ["fashion", "home"]}},
        {"offer_id": "early", "kind": "exclusive_item", "value": 7, "cost": 1, "eligible_tiers": ["gold"],
         "scope": {"categories": ["fashion"]}, "uplift_key": "u_early"},
        {"offer_id": "old", "kind": "coupon", "value": 20, "cost": 1, "valid_to": "2026-01-01T00:00:00Z"},
        {"offer_id": "broke", "kind": "coupon", "value": 30, "cost": 5, "budget": 100},
        {"offer_id": "app_only", "kind": "coupon", "value": 9, "cost": 2, "channels": ["app"],
         "scope": {"categories": ["toys"]}, "cap": {"max": 1, "days": 30}},
        {"offer_id": "a_tie", "kind": "coupon", "value": 10, "cost": 4, "scope": {"categories": ["books"]}},
    ]  # fmt: skip
    policy = {"policy": "expected_incremental_value", "default_cap": {"max": 3, "days": 7}, "prior_response": 0.05}
    return Catalogue.model_validate({**policy, "offers": o, "diversity_top": 3})


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("channel", [None, "app", "web"])
def test_batch_ranking_equals_the_service_ranking(seed: int, channel: str | None) -> None:
    cat = catalogue()
    rng = np.random.default_rng(seed)
    n, m = 300, len(cat.offers)
    tiers, segments = rng.choice(TIERS, n), rng.choice(SEGMENTS, n)
    affinity = rng.normal(0, 1, (n, m)).round(1)  # rounded: ties between offers happen and must break alike
    p_buy = np.where(rng.random(n) < 0.2, np.nan, rng.random(n))
    keys = [o.uplift_key for o in cat.offers]
    uplift = np.where((rng.random((n, m)) < 0.6) & np.array([k is not None for k in keys]), rng.random((n, m)), np.nan)
    members = np.array([f"m{i}" for i in range(n)], dtype=object)
    imp = pd.DataFrame({"member_id": rng.choice(members, 400), "offer_id": rng.choice([o.offer_id for o in cat.offers],
                        400), "ts": pd.Timestamp(AT) - pd.to_timedelta(rng.uniform(0, 40, 400), unit="D")})  # fmt: skip
    spent = {"broke": 96.0, "c10": 10.0}
    shown = shown_counts(cat, imp, members, AT)
    kw = {"uplift": uplift, "spent": spent, "shown": shown, "at": AT, "k": 6, "channel": channel}
    off, eiv, basis = rank_offers_batch(cat, tiers=tiers, segments=segments, affinity=affinity, p_buy=p_buy, **kw)
    for i in range(n):
        view = MemberView(members[i], tiers[i], segments[i])
        up = {k: float(uplift[i, j]) for j, k in enumerate(keys) if k and np.isfinite(uplift[i, j])}
        want = rank_offers(cat, view, affinity={o.offer_id: float(affinity[i, j]) for j, o in enumerate(cat.offers)},
                           p_buy=None if np.isnan(p_buy[i]) else float(p_buy[i]), uplift=up, spent=spent,
                           shown=imp.loc[imp["member_id"] == members[i]], at=AT, k=6, channel=channel)  # fmt: skip
        got = [cat.offers[j].offer_id for j in off[i] if j >= 0]
        assert got == [o["offer_id"] for o in want], f"member {i}"
        assert np.allclose(eiv[i, : len(got)], [o["expected_incremental_value"] for o in want], atol=1e-6)
        assert list(BASES[basis[i, : len(got)]]) == [o["basis"] for o in want]
        assert (off[i, len(got) :] == -1).all() and np.isnan(eiv[i, len(got) :]).all()


def test_rules_hold_in_the_batch() -> None:
    cat = catalogue()
    n, m = 5, len(cat.offers)
    tiers = np.array(["base", "gold", "gold", None, None], dtype=object)
    segments = np.array(["lost", "champions", "champions", None, "new"], dtype=object)
    members = np.array(["a", "b", "c", "d", "e"], dtype=object)
    col = {o.offer_id: j for j, o in enumerate(cat.offers)}
    affinity = np.zeros((n, m))
    affinity[4, [col["c10"], col["home_price"], col["day"]]] = 2.0  # e: the three "home" offers score highest
    old = pd.Timestamp(AT) - timedelta(days=40)  # outside app_only's 30-day cap window: does not count
    imp = pd.DataFrame({"member_id": ["c", "b"], "offer_id": ["app_only", "app_only"],
                        "ts": [pd.Timestamp(AT) - timedelta(days=1), old]})  # fmt: skip
    off, _, _ = rank_offers_batch(cat, tiers=tiers, segments=segments, affinity=affinity,
                                  p_buy=np.full(n, 0.5), spent={"broke": 96.0},
                                  shown=shown_counts(cat, imp, members, AT), at=AT, k=m)  # fmt: skip
    ids = [[cat.offers[j].offer_id for j in row if j >= 0] for row in off]
    assert all("old" not in r and "broke" not in r for r in ids)  # expired; budget left 4 < cost 5
    assert "pts" not in ids[0] and "early" not in ids[0] and "day" not in ids[0]  # tier / segment rules
    assert {"pts", "early", "day"} <= set(ids[1])
    assert "app_only" in ids[1] and "app_only" not in ids[2]  # cap 1 per 30 days: c was shown it yesterday
    for r in ids:  # diversity: no two of the top 3 share a category
        cats = [c for o in r[:3] for c in next(x for x in cat.offers if x.offer_id == o).scope.categories]
        assert len(cats) == len(set(cats)), r
    # e: p = 0.5 x exp(affinity - mean 1), capped at 1, so EIV c10 6, day 6, home_price 5 (all "home"), app_only -0.34,
    # ship -1.58, a_tie -2.16; diversity keeps c10 (first by id) and moves day and home_price below the top 3
    assert ids[4] == ["c10", "app_only", "ship", "day", "home_price", "a_tie"]
