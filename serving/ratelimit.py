"""Rate limits per API key: a token bucket per (key, scope) in the serving state store.

The buckets live in the state store beside the events and the budget ledger, in a SQLite file of their own
(TAILOR_HOME/serving/ratelimit.db, table `rate_buckets`: the guard takes a token on the event loop, and must not wait
behind an ingestion batch's write transaction on events.db), so every worker of one machine shares them
(PostgreSQL, later, across replicas). A take is one
`BEGIN IMMEDIATE` transaction: read the bucket, refill it by the time passed (`rate` tokens a second, at most
`burst`), take a token or say how long until one is there. Refusals are counted per bucket (`refused`) for the
operator's abuse signals. Limits per scope come from configs/serving.yaml (`rate_limits`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from serving.config import RateLimit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_buckets (key_id TEXT NOT NULL, scope TEXT NOT NULL, tokens REAL NOT NULL,
  at REAL NOT NULL, refused INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key_id, scope))
"""


class RateLimiter:
    """Token buckets of one state store; safe to share between threads (and processes, through SQLite)."""

    def __init__(self, path: Path, limits: Mapping[str, RateLimit], clock: Callable[[], float] = time.time) -> None:
        self.path, self.limits, self.clock = Path(path), dict(limits), clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost refill after a power cut is harmless
        self._db.execute(_SCHEMA)

    @classmethod
    def of_home(cls, home: Path | None = None) -> RateLimiter:
        """The limiter of TAILOR_HOME's state store with configs/serving.yaml's limits."""
        from datasets.layout import Layout
        from serving.config import ServingConfig

        return cls(Layout.of(home).rate_db, ServingConfig.load().rate_limits)

    def take(self, key_id: str, scope: str) -> float:
        """Take one token of the key's `scope` bucket: 0.0 when granted, else the seconds until one is there."""
        limit = self.limits.get(scope)
        if limit is None:
            return 0.0
        now = self.clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT tokens, at FROM rate_buckets WHERE key_id = ? AND scope = ?", (key_id, scope)
                ).fetchone()
                tokens, at = (limit.burst, now) if row is None else row
                tokens = min(limit.burst, tokens + max(0.0, now - at) * limit.rate)  # a clock stepping back: none
                wait = 0.0 if tokens >= 1 else (1 - tokens) / limit.rate
                tokens -= 1 if wait == 0 else 0
                self._db.execute(
                    "INSERT INTO rate_buckets VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, scope) DO UPDATE SET "
                    "tokens = excluded.tokens, at = excluded.at, refused = refused + excluded.refused",
                    (key_id, scope, tokens, max(now, at), int(wait > 0)),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return wait

    def refused(self) -> dict[tuple[str, str], int]:
        """Requests refused so far per (key id, scope)."""
        with self._lock:
            rows = self._db.execute("SELECT key_id, scope, refused FROM rate_buckets WHERE refused > 0").fetchall()
        return {(k, s): n for k, s, n in rows}

    def close(self) -> None:
        self._db.close()
