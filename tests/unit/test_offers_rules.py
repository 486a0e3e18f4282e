"""The offer policy rule by rule, at its boundaries, and the answer it gives (found by the mutation check, issue 19).

tests/unit/test_offers_batch.py holds the batch ranker equal to `rank_offers` on random members; these pin
`rank_offers` itself: why an offer is excluded (each rule and its edge: validity from/to, budget left equal to the
cost, an issue exactly `days` ago), the expected incremental value with the affinity clamp and mean, the reasons,
every field of an answer, the catalogue's bounds and `load_catalogue`.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pydantic
import pytest

from datasets.paths import config_path
from serving.offers import Catalogue, MemberView, as_utc, eligible, issued, load_catalogue, rank_offers, reasons

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
POLICY = {"policy": "eiv", "default_cap": {"max": 2, "days": 7}, "diversity_top": 3, "prior_response": 0.05}


def cat(*offers: dict, **policy) -> Catalogue:
    return Catalogue.model_validate({**POLICY, **policy, "offers": list(offers)})


def offer(offer_id: str = "o", **kw) -> dict:
    return {"offer_id": offer_id, "kind": "coupon", "value": 10, "cost": 2, **kw}


MEMBER = MemberView("m", "silver", "champions")


def why(o: dict, m: MemberView = MEMBER, at: datetime = AT, channel=None, spent=None, shown=None, **policy):
    c = cat(o, **policy)
    return eligible(c, c.offers[0], m, at, channel, spent or {}, issued(shown))


def test_each_rule_names_itself() -> None:
    assert why(offer()) is None
    assert why(offer(eligible_tiers=["gold"])) == "tier"
    assert why(offer(eligible_tiers=["gold", "silver"])) is None
    assert why(offer(eligible_segments=["lost"])) == "segment"
    assert why(offer(eligible_segments=["champions"])) is None
    assert why(offer(channels=["app"]), channel="web") == "channel"
    assert why(offer(channels=["app"]), channel="app") is None
    assert why(offer(channels=["app"])) is None  # no channel asked: every channel
    assert why(offer(valid_to="2026-01-01T00:00:00Z")) == "validity"
    assert why(offer(budget=5), spent={"o": 4}) == "budget"
    assert why(offer(), shown=[("o", AT - timedelta(days=1))] * 2) == "frequency_cap"


def test_validity_is_from_inclusive_to_exclusive() -> None:
    window = {"valid_from": "2026-06-01T12:00:00Z", "valid_to": "2026-06-02T12:00:00Z"}
    assert why(offer(**window)) is None  # at == valid_from
    assert why(offer(**window), at=AT - timedelta(seconds=1)) == "validity"
    assert why(offer(**window), at=AT + timedelta(days=1) - timedelta(seconds=1)) is None
    assert why(offer(**window), at=AT + timedelta(days=1)) == "validity"  # at == valid_to
    assert why(offer(valid_from="2026-01-01T00:00:00Z")) is None  # started, no end
    assert why(offer(valid_to="2027-01-01T00:00:00Z")) is None  # no start, not ended


def test_budget_left_equal_to_the_cost_still_pays_for_one_issue() -> None:
    assert why(offer(budget=2)) is None  # nothing spent yet: 2 left, cost 2
    assert why(offer(budget=6), spent={"o": 4}) is None
    assert why(offer(budget=6), spent={"o": 4.5}) == "budget"
    assert why(offer(budget=6), spent={"other": 5}) is None  # spent on another offer
    assert why(offer(budget=1)) == "budget"


def test_frequency_cap_counts_issues_in_the_last_days_edges_included() -> None:
    capped = offer(cap={"max": 1, "days": 30})
    assert why(capped, shown=[("o", AT - timedelta(days=30))]) == "frequency_cap"  # exactly 30 days ago counts
    assert why(capped, shown=[("o", AT - timedelta(days=30, seconds=1))]) is None
    assert why(capped, shown=[("other", AT)]) is None
    two = [("o", AT - timedelta(days=6)), ("o", AT - timedelta(days=1))]
    assert why(offer(), shown=two[:1]) is None  # default cap: 2 in 7 days
    assert why(offer(), shown=two) == "frequency_cap"


def test_issue_times_from_pairs_frames_or_nothing() -> None:
    assert issued(None) == {} and issued([]) == {}
    got = issued([("a", "2026-06-01T10:00:00+02:00"), ("a", datetime(2026, 6, 1, 9)), ("b", AT)])
    assert got == {"a": [as_utc(AT - timedelta(hours=4)), as_utc(AT - timedelta(hours=3))], "b": [as_utc(AT)]}
    assert all(t.tzinfo is not None for ts in got.values() for t in ts)
    assert as_utc(datetime(2026, 6, 1, 12)) == as_utc(AT)  # a naive time is UTC
    frame = pd.DataFrame({"offer_id": ["a", "b"], "ts": ["2026-06-01T10:00:00+02:00", "2026-06-01T09:00:00Z"]})
    assert issued(frame) == {"a": [as_utc(AT - timedelta(hours=4))], "b": [as_utc(AT - timedelta(hours=3))]}


def test_eiv_is_prior_or_propensity_times_value_less_cost() -> None:
    c = cat(offer("a", value=10, cost=2), offer("b", value=4, cost=1))
    by_id = {o["offer_id"]: o for o in rank_offers(c, MEMBER, affinity={}, p_buy=None, at=AT)}
    assert by_id["a"]["expected_incremental_value"] == pytest.approx(0.05 * 10 - 2)  # no affinity: exp(0)
    assert by_id["b"]["basis"] == "prior" and by_id["b"]["score"] == pytest.approx(0.05 * 4 - 1)
    got = rank_offers(c, MEMBER, affinity={"a": 1.0}, p_buy=0.2, at=AT)  # mean affinity 0.5 over a and b
    by_id = {o["offer_id"]: o for o in got}
    assert by_id["a"]["expected_incremental_value"] == pytest.approx(0.2 * math.exp(0.5) * 10 - 2)
    assert by_id["b"]["expected_incremental_value"] == pytest.approx(0.2 * math.exp(-0.5) * 4 - 1)
    assert {o["basis"] for o in got} == {"propensity"}
    alone = rank_offers(cat(offer("a")), MEMBER, affinity={"a": 3.0}, p_buy=0.2, at=AT)
    assert alone[0]["expected_incremental_value"] == pytest.approx(0.2 * 10 - 2)  # its own mean: exp(0)


def test_affinity_is_clamped_to_five_and_the_response_to_one() -> None:
    c = cat(offer("hi", value=100, cost=0), offer("lo", value=100, cost=0))
    by_id = {o["offer_id"]: o for o in rank_offers(c, MEMBER, affinity={"hi": 20, "lo": -20}, p_buy=1e-3, at=AT)}
    assert by_id["hi"]["expected_incremental_value"] == pytest.approx(1e-3 * math.exp(5) * 100)
    assert by_id["lo"]["expected_incremental_value"] == pytest.approx(
        1e-3 * math.exp(-5) * 100, abs=1e-6
    )  # rounded to 6 places
    capped = rank_offers(c, MEMBER, affinity={"hi": 20, "lo": -20}, p_buy=0.5, at=AT)
    assert capped[0]["offer_id"] == "hi" and capped[0]["expected_incremental_value"] == pytest.approx(100)


def test_uplift_replaces_the_response_only_where_finite() -> None:
    c = cat(offer("u", uplift_key="col", value=10, cost=2), offer("p", value=10, cost=2))
    got = {o["offer_id"]: o for o in rank_offers(c, MEMBER, affinity={}, p_buy=0.1, uplift={"col": 0.4}, at=AT)}
    assert got["u"]["basis"] == "uplift" and got["u"]["expected_incremental_value"] == pytest.approx(0.4 * 10 - 2)
    assert got["p"]["basis"] == "propensity"
    nan = rank_offers(c, MEMBER, affinity={}, p_buy=0.1, uplift={"col": float("nan")}, at=AT)
    assert {o["basis"] for o in nan} == {"propensity"}


def test_an_answer_has_every_field_rounded_to_six_places() -> None:
    c = cat(offer("a", kind="free_shipping", value=1, cost=1 / 3))
    (got,) = rank_offers(c, MemberView("m", None, None), affinity={}, p_buy=None, at=AT)
    eiv = round(0.05 * 1 - 1 / 3, 6)
    assert got == {
        "offer_id": "a",
        "kind": "free_shipping",
        "score": eiv,
        "expected_incremental_value": eiv,
        "basis": "prior",
        "reasons": ["free shipping for members"],
        "cost": 1 / 3,
    }


def test_k_defaults_to_five_and_ties_break_by_offer_id() -> None:
    c = cat(*[offer(f"o{i}") for i in (6, 2, 4, 1, 5, 3, 0)])
    got = rank_offers(c, MEMBER, affinity={}, p_buy=None, at=AT)
    assert [o["offer_id"] for o in got] == ["o0", "o1", "o2", "o3", "o4"]


def test_diversity_keeps_one_offer_per_category_in_the_top() -> None:
    home = {"scope": {"categories": ["home"]}}
    c = cat(offer("h1", value=30, **home), offer("h2", value=20, **home), offer("x", value=10), diversity_top=2)
    got = [o["offer_id"] for o in rank_offers(c, MEMBER, affinity={}, p_buy=0.5, at=AT)]
    assert got == ["h1", "x", "h2"]
    c1 = cat(offer("h1", value=30, **home), offer("h2", value=20, **home), offer("x", value=10), diversity_top=1)
    assert [o["offer_id"] for o in rank_offers(c1, MEMBER, affinity={}, p_buy=0.5, at=AT)] == ["h1", "h2", "x"]


def test_reasons_name_what_the_member_has_in_common_with_the_offer() -> None:
    c = cat(offer("a", scope={"categories": ["home", "toys"], "items": ["i9"]}, eligible_tiers=["silver"]))
    o = c.offers[0]
    m = MemberView("m", "silver", "champions", ["garden", "toys"], {"i1": "home", "i9": "books", "i2": "books"})
    assert reasons(o, m, "uplift", None) == [
        "matches your favourite category: toys",
        "similar to items you bought: i1, i9",
        "a benefit of your tier: silver",
        "you are likely to respond to this offer",
    ]
    plain = cat(offer("b", kind="member_day")).offers[0]

    def plain_reasons(tier, segment, basis, p):
        return reasons(plain, MemberView("m", tier, segment), basis, p)

    assert plain_reasons("gold", "champions", "propensity", 0.3) == ["high expected response (segment: champions)"]
    assert plain_reasons(None, None, "propensity", 0.3) == ["high expected response (segment: new member)"]
    assert plain_reasons("gold", "lost", "propensity", 0.29) == ["member day for members in segment lost"]
    assert plain_reasons("gold", None, "prior", None) == ["member day for members"]
    many = MemberView("m", None, None, [], {f"i{k}": "home" for k in range(5)})
    assert reasons(o, many, "prior", None)[0] == "similar to items you bought: i0, i1, i2"  # three at most


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({"diversity_top": 1}, True),
        ({"diversity_top": 0}, False),
        ({"prior_response": 1.0}, True),
        ({"prior_response": 1.5}, False),
        ({"prior_response": 0.0}, False),
        ({"default_cap": {"max": 1, "days": 0.5}}, True),
        ({"default_cap": {"max": 1, "days": 0}}, False),
        ({"default_cap": {"max": 0, "days": 1}}, False),
        ({"offers": [offer(value=0, cost=0, budget=0)]}, True),
        ({"offers": [offer(value=-1)]}, False),
        ({"offers": [offer(cost=-1)]}, False),
        ({"offers": [offer(budget=-1)]}, False),
        ({"offers": [offer(), offer()]}, False),
    ],
)
def test_catalogue_bounds(change: dict, ok: bool) -> None:
    raw = {**POLICY, "offers": [offer()], **change}
    if ok:
        c = Catalogue.model_validate(raw)
        assert c.version == "" and c.offers[0].scope.categories == [] and c.offers[0].scope.items == []
    else:
        with pytest.raises(pydantic.ValidationError):
            Catalogue.model_validate(raw)


def test_load_catalogue_versions_the_file(tmp_path) -> None:
    c = load_catalogue()
    assert c.offers and c.version == hashlib.sha256(config_path("offers").read_bytes()).hexdigest()[:12]
    path = tmp_path / "mine.yaml"
    path.write_text("policy: p\ndefault_cap: {max: 1, days: 2}\ndiversity_top: 2\nprior_response: 0.1\noffers: []\n")
    mine = load_catalogue(str(path))
    assert mine.policy == "p" and mine.offers == []
    assert mine.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12] and len(mine.version) == 12
    path.write_text("")
    with pytest.raises(pydantic.ValidationError, match="policy"):  # an empty file: every required field missing
        load_catalogue(str(path))
