"""Issue 14, finding 2, in process: events without purchases for made-up members must not make every later
lookalike re-read their histories (4 x 1,000 searches made each lookalike take 10-12 s)."""

from __future__ import annotations

import time

import pandas as pd

from tests.integration.test_serving_state import state  # noqa: F401  (this module's own home, same set-up)


def test_lookalike_after_searches_of_made_up_members_reads_no_history(state, monkeypatch) -> None:  # noqa: F811
    s, _, _ = state
    reads: list[str] = []
    history = s._store.history
    monkeypatch.setattr(s._store, "history", lambda p: reads.append(p) or history(p))
    seeds = ["M4", "M8"]
    s.lookalike(seeds=seeds, k=20)
    started = time.perf_counter()
    s.lookalike(seeds=seeds, k=20)
    baseline = time.perf_counter() - started

    ts = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)).isoformat()
    for batch in range(4):  # the hostile request: 4 POST /events of 1,000 searches for made-up members
        events = [{"member_id": f"made-up-{batch}-{i}", "ts": ts, "event_type": "search", "query": "shoes"}
                  for i in range(1000)]  # fmt: skip
        assert s.add_events(events)["accepted"] == 1000
    reads.clear()
    started = time.perf_counter()
    for _ in range(3):
        assert len(s.lookalike(seeds=seeds, k=20)["members"]) == 20
    took = (time.perf_counter() - started) / 3
    assert reads == []  # was up to fresh_max (10,000) history reads on every call
    assert took < max(10 * baseline, 0.5), (baseline, took)

    buy = {"member_id": "M21", "ts": ts, "event_type": "purchase", "item_id": "c0-1", "quantity": 1, "amount": 10.0}
    assert s.add_events([buy])["accepted"] == 1
    s.lookalike(seeds=seeds, k=20)
    s.lookalike(seeds=seeds, k=20)
    assert reads == [s.pseudonym("M21")]  # a new purchase is refolded once, then cached
