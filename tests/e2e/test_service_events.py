"""Events that must not corrupt features (issue 14, findings 10-12), each written as the request that showed it.

Runs against the real `bentoml serve` of tests/e2e/test_service_http.py (its `svc` fixture).
"""

from __future__ import annotations

import pandas as pd

from tests.e2e.test_service_http import svc  # noqa: F401 (the served home, shared fixture)


def _at(days_ago: float = 0, minutes_ago: float = 5) -> str:
    return (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=days_ago, minutes=minutes_ago)).isoformat()


def _item(c) -> str:
    """An item of the served catalogue (the popular list of a cold-start member)."""
    return c.post("/recommend", {"member_id": "catalogue-probe", "k": 1}).json()["items"][0]["item_id"]


def _known(c, ids: list[str]) -> tuple[str, dict]:
    """A member with purchases some days ago, and their persona."""
    for member in ids:
        p = c.post("/persona", {"member_id": member}).json()
        if not p["cold_start"] and (p["recency_days"] or 0) > 0:
            return member, p
    raise AssertionError("no member with purchases among the ids")


def test_finding_10_bad_purchases_are_rejected_and_late_ones_count_at_their_own_time(svc) -> None:  # noqa: F811
    c = svc["client"]
    member, before = _known(c, svc["raw_ids"][20:60])
    item = _item(c)
    buy = {"member_id": member, "event_type": "purchase", "item_id": item, "quantity": 1, "amount": 10.0}
    bad = [
        {**buy, "ts": "2000-01-01T00:00:00Z"},
        {**buy, "ts": _at(), "amount": -1_000_000},
        {**buy, "ts": _at(minutes_ago=6), "quantity": -3},
    ]
    r = c.post("/events", {"events": bad}, key="events")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 0, body
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [(0, "ts"), (1, "amount"), (2, "quantity")], body
    after = c.post("/persona", {"member_id": member}).json()
    assert after["recency_days"] == before["recency_days"], "rejected purchases must not move recency"

    cold = "cold-member-finding-10"
    unknown = {**buy, "member_id": cold, "ts": _at(), "item_id": "NO-SUCH-ITEM-../../x"}
    r = c.post("/events", {"events": [unknown]}, key="events").json()
    assert r["accepted"] == 0 and r["rejected"][0]["field"] == "item_id", r
    assert c.post("/persona", {"member_id": cold}).json()["cold_start"] is True

    late = "late-member-finding-10"  # inside the late window: accepted, placed at its own time
    r = c.post("/events", {"events": [{**buy, "member_id": late, "ts": _at(days_ago=10)}]}, key="events").json()
    assert r == {"accepted": 1, "rejected": []}, r
    persona = c.post("/persona", {"member_id": late}).json()
    assert persona["cold_start"] is False and persona["recency_days"] == 10, persona


def test_finding_11_searches_that_differ_in_their_query_are_two_events(svc) -> None:  # noqa: F811
    c, member, ts = svc["client"], svc["raw_ids"][21], _at()
    search = {"member_id": member, "ts": ts, "event_type": "search", "query": "red shoes"}
    r = c.post("/events", {"events": [search, {**search, "query": "blue hat"}]}, key="events").json()
    assert r == {"accepted": 2, "rejected": []}, r
    again = c.post("/events", {"events": [search]}, key="events").json()  # the same event again is a duplicate
    assert again["accepted"] == 0 and again["rejected"][0]["reason"].startswith("duplicate"), again


def test_finding_12_a_schema_error_rejects_only_its_event(svc) -> None:  # noqa: F811
    c, member = svc["client"], svc["raw_ids"][22]
    item = _item(c)
    good = {"member_id": member, "ts": _at(), "event_type": "view", "item_id": item}
    batch = [
        good,
        {**good, "event_type": "steal"},
        {**good, "ts": "yesterday", "item_id": item},
        {**good, "quantity": "three"},
        {**good, "ts": _at(minutes_ago=7)},
    ]
    r = c.post("/events", {"events": batch}, key="events")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2, body
    rejected = [(x["index"], x["field"]) for x in body["rejected"]]
    assert rejected == [(1, "event_type"), (2, "ts"), (3, "quantity")], body
    assert all(x["reason"] for x in body["rejected"])
    for envelope in ({}, {"events": "nope"}, {"events": []}, {"events": [good], "extra": 1}):
        bad = c.post("/events", envelope, key="events")
        assert 400 <= bad.status_code < 500, (envelope, bad.text)
