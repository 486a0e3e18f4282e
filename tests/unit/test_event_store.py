"""The event store's budget ledger: running totals per offer, kept through erasure and reopening."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from serving.events import EventStore, store_path


def test_spend_is_a_running_total_that_erasure_does_not_refund(tmp_path: Path) -> None:
    store = EventStore(tmp_path)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    store.record_impressions("m_a", [("o1", 2.0), ("o2", 1.5)], at)
    store.record_impressions("m_b", [("o1", 2.0)], at)
    assert store.spent() == {"o1": 4.0, "o2": 1.5}
    assert store.erase("m_a") == {"events": 0, "impressions": 2}
    assert store.spent() == {"o1": 4.0, "o2": 1.5}  # committed money stays committed
    assert len(store.issued_since("m_b", at)) == 1 and store.issued_since("m_a", at) == []
    store.close()
    assert EventStore(tmp_path).spent() == {"o1": 4.0, "o2": 1.5}


def test_a_store_from_before_the_ledger_gets_its_totals_from_the_impressions(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE impressions (member_id TEXT NOT NULL, offer_id TEXT NOT NULL, ts TEXT NOT NULL, "
                "cost REAL NOT NULL DEFAULT 0)")  # fmt: skip
    con.executemany("INSERT INTO impressions VALUES (?, ?, ?, ?)", [("m", "o1", "2026-01-01", 3.0)] * 2)
    con.commit()
    con.close()
    assert EventStore(tmp_path).spent() == {"o1": 6.0}


def _search(query: str | None) -> dict:
    return {
        "member_id": "m_a",
        "ts": "2026-01-01T00:00:00.000000Z",
        "event_type": "search",
        "item_id": "",
        "query": query,
    }


def test_events_differing_in_any_field_are_distinct_and_exact_repeats_are_duplicates(tmp_path: Path) -> None:
    store = EventStore(tmp_path)  # issue 14, finding 11: identity is every field, not member/ts/item/type
    assert store.insert([_search("red shoes"), _search("blue hat"), _search(None)]) == [True, True, True]
    assert store.insert([_search("red shoes"), _search(None)]) == [False, False]


def test_a_store_with_the_narrow_identity_is_widened_keeping_its_events(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    path.parent.mkdir(parents=True)
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE events (member_id TEXT NOT NULL, ts TEXT NOT NULL, event_type TEXT NOT NULL, "
        "item_id TEXT NOT NULL DEFAULT '', quantity REAL, amount REAL, channel TEXT, session_id TEXT, "
        "query TEXT, discount REAL, received_at TEXT NOT NULL, "
        "UNIQUE (member_id, ts, item_id, event_type))"
    )
    con.execute(
        "INSERT INTO events (member_id, ts, event_type, item_id, query, received_at) "
        "VALUES ('m_a', '2026-01-01T00:00:00.000000Z', 'search', '', 'red shoes', 'x')"
    )
    con.commit()
    con.close()
    store = EventStore(tmp_path)
    assert len(store.history("m_a")) == 1
    assert store.insert([_search("red shoes"), _search("blue hat")]) == [False, True]
