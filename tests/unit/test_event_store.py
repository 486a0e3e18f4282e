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
