"""The serving event store: SQLite (WAL) under TAILOR_HOME/serving/events.db.

Tables: `events` (ingested events, pseudonymous ids only, unique on every field: two searches that differ only
in their query are two events),
`impressions` (offers issued to a member: frequency caps), `offer_spend` (the cost committed per
offer, kept as a running total so a budget check reads one small table; erasing a member deletes
their impressions but not the money already committed), `tombstones` (erased members).
`tombstoned()` needs only sqlite3, so the data layer can honour erasure when it
prepares training data without importing serving's heavy modules.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from datasets import erasure
from datasets.schema import EVENT_TYPES, PERSONAL_FIELDS

FIELDS = ("member_id", "ts", "event_type", "item_id", "quantity", "amount", "channel", "session_id", "query",
          "discount")  # fmt: skip
NUMERIC = ("quantity", "amount", "discount")
NEEDS_ITEM = ("view", "click", "cart", "purchase", "return", "review")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (member_id TEXT NOT NULL, ts TEXT NOT NULL, event_type TEXT NOT NULL,
  item_id TEXT NOT NULL DEFAULT '', quantity REAL, amount REAL, channel TEXT, session_id TEXT, query TEXT,
  discount REAL, received_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_member ON events (member_id);
CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events (member_id, ts, event_type, item_id,
  IFNULL(quantity, ''), IFNULL(amount, ''), IFNULL(channel, ''), IFNULL(session_id, ''), IFNULL(query, ''),
  IFNULL(discount, ''));
CREATE TABLE IF NOT EXISTS impressions (member_id TEXT NOT NULL, offer_id TEXT NOT NULL, ts TEXT NOT NULL,
  cost REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS impressions_member ON impressions (member_id, offer_id);
CREATE TABLE IF NOT EXISTS tombstones (member_id TEXT PRIMARY KEY, erased_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offer_spend (offer_id TEXT PRIMARY KEY, spent REAL NOT NULL);
"""


def store_path(home: Path | None = None) -> Path:
    return erasure.store_path(home)


def tombstoned(home: Path | None = None) -> set[str]:
    """Pseudonyms of erased members; `datasets.erasure` reads the same table and prepare drops their rows."""
    return erasure.erased_members(home)


def _iso(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate(row: object, now: pd.Timestamp, tolerance_s: float, max_abs: float) -> tuple[dict | None, tuple | None]:
    """(clean row, None) or (None, (field, reason)) for one incoming event (raw member id kept)."""
    if not isinstance(row, dict):
        return None, ("event", "must be an object")
    for f in row:
        if f in PERSONAL_FIELDS or any(w in f.lower() for w in ("email", "phone", "address")):
            return None, (f, "personal fields are not accepted")
        if f not in FIELDS:
            return None, (f, f"unknown field (allowed: {', '.join(FIELDS)})")
    member = row.get("member_id")
    if not isinstance(member, str | int) or isinstance(member, bool) or not str(member).strip():
        return None, ("member_id", "required non-empty string")
    etype = row.get("event_type")
    if etype not in EVENT_TYPES:
        return None, ("event_type", f"unknown event type (allowed: {', '.join(EVENT_TYPES)})")
    try:
        ts = pd.Timestamp(row.get("ts"))
    except (TypeError, ValueError):
        return None, ("ts", "unparseable timestamp")
    if pd.isna(ts):
        return None, ("ts", "required ISO timestamp")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if (ts - now).total_seconds() > tolerance_s:
        return None, ("ts", f"more than {tolerance_s:g} s in the future")
    item = row.get("item_id")
    if item is not None and (not isinstance(item, str | int) or isinstance(item, bool)):
        return None, ("item_id", "must be a string")
    if etype in NEEDS_ITEM and (item is None or not str(item).strip()):
        return None, ("item_id", f"required for {etype} events")
    out = {"member_id": str(member).strip(), "ts": _iso(ts), "event_type": etype,
           "item_id": "" if item is None else str(item)}  # fmt: skip
    for f in NUMERIC:
        v = row.get(f)
        if v is None:
            out[f] = None
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or abs(v) > max_abs:
            return None, (f, f"must be a finite number with |x| <= {max_abs:g}")
        out[f] = float(v)
    for f in ("channel", "session_id", "query"):
        v = row.get(f)
        if v is not None and not isinstance(v, str):
            return None, (f, "must be a string")
        out[f] = v
    return out, None


def _widen_identity(con: sqlite3.Connection) -> None:
    """A store from when an event's identity was (member, ts, item, type): rebuild its table without that constraint
    (`_SCHEMA` then adds the identity over every field)."""
    row = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone()
    if not row or "UNIQUE (member_id, ts, item_id, event_type)" not in row[0]:
        return
    cols = ", ".join((*FIELDS, "received_at"))
    con.execute("BEGIN")
    con.execute("ALTER TABLE events RENAME TO events_narrow")
    con.execute("DROP INDEX IF EXISTS events_member")
    con.execute(_SCHEMA.split(";")[0])
    con.execute(f"INSERT OR IGNORE INTO events ({cols}) SELECT {cols} FROM events_narrow")
    con.execute("DROP TABLE events_narrow")
    con.execute("COMMIT")


class EventStore:
    """Thread-safe access to the event store (one connection, serialized by a lock)."""

    def __init__(self, home: Path | None = None) -> None:
        path = store_path(home)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        _widen_identity(self.con)
        self.con.executescript(_SCHEMA)
        # Impressions on a second connection that does not sync every commit (WAL, synchronous=NORMAL): a crash of
        # the process loses nothing; a power cut may lose the last issues (a frequency cap counts one short), which
        # `rank_offers` trades for not waiting on the disk. Ingested events stay fully synced on `con`.
        self.fast = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.fast.execute("PRAGMA synchronous=NORMAL")
        with self.lock:  # a store from before offer_spend existed: its totals come from the impressions once
            if not self.con.execute("SELECT 1 FROM offer_spend LIMIT 1").fetchone():
                self.con.execute(
                    "INSERT INTO offer_spend SELECT offer_id, SUM(cost) FROM impressions GROUP BY offer_id"
                )

    def insert(self, rows: list[dict]) -> list[bool]:
        """Insert clean rows (pseudonymous ids); False where the row duplicates a stored one."""
        now = _iso(pd.Timestamp.now(tz="UTC"))
        cols = ", ".join(FIELDS)
        sql = f"INSERT OR IGNORE INTO events ({cols}, received_at) VALUES ({', '.join('?' * (len(FIELDS) + 1))})"
        out = []
        with self.lock:
            self.con.execute("BEGIN")
            for r in rows:
                cur = self.con.execute(sql, [r.get(f) for f in FIELDS] + [now])
                out.append(cur.rowcount == 1)
            self.con.execute("COMMIT")
        return out

    def history(self, member: str) -> pd.DataFrame:
        """The member's stored events, oldest first (ts as UTC timestamps)."""
        with self.lock:
            frame = pd.read_sql_query("SELECT * FROM events WHERE member_id = ? ORDER BY ts", self.con, params=[member])
        return frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))

    def members(self) -> set[str]:
        with self.lock:
            return {r[0] for r in self.con.execute("SELECT DISTINCT member_id FROM events")}

    def record_impressions(self, member: str, offers: list[tuple[str, float]], at: datetime) -> None:
        """Offers (id, cost) issued to a member at `at`."""
        ts = _iso(pd.Timestamp(at).tz_convert("UTC") if pd.Timestamp(at).tzinfo else pd.Timestamp(at, tz="UTC"))
        with self.lock:
            self.fast.execute("BEGIN")
            self.fast.executemany(
                "INSERT INTO impressions VALUES (?, ?, ?, ?)", [(member, o, ts, c) for o, c in offers]
            )
            self.fast.executemany(
                "INSERT INTO offer_spend VALUES (?, ?) "
                "ON CONFLICT (offer_id) DO UPDATE SET spent = spent + excluded.spent",
                [(o, c) for o, c in offers],
            )
            self.fast.execute("COMMIT")

    def issued_since(self, member: str, since: datetime) -> list[tuple[str, str]]:
        """(offer_id, ISO time) issued to a member from `since` on (`offers.issued` reads them)."""
        with self.lock:
            return self.fast.execute("SELECT offer_id, ts FROM impressions WHERE member_id = ? AND ts >= ?",
                                     [member, _iso(pd.Timestamp(since))]).fetchall()  # fmt: skip

    def spent(self) -> dict[str, float]:
        """Cost committed per offer so far."""
        with self.lock:
            return dict(self.con.execute("SELECT offer_id, spent FROM offer_spend").fetchall())

    def ledger(self) -> pd.DataFrame:
        """The live budget ledger per offer: `issued` (impressions held; an erased member's are gone) and
        `committed` (cost committed, kept through erasure), indexed by offer_id."""
        with self.lock:
            issued = dict(self.fast.execute("SELECT offer_id, COUNT(*) FROM impressions GROUP BY offer_id").fetchall())
            spent = dict(self.con.execute("SELECT offer_id, spent FROM offer_spend").fetchall())
        ids = sorted(set(issued) | set(spent))
        frame = pd.DataFrame(
            {"issued": [int(issued.get(o, 0)) for o in ids], "committed": [float(spent.get(o, 0.0)) for o in ids]},
            index=ids,
        )
        return frame.rename_axis("offer_id")

    def erase(self, member: str) -> dict[str, int]:
        """Delete the member's events and impressions and record the tombstone."""
        with self.lock:
            self.con.execute("BEGIN")
            ev = self.con.execute("DELETE FROM events WHERE member_id = ?", [member]).rowcount
            imp = self.con.execute("DELETE FROM impressions WHERE member_id = ?", [member]).rowcount
            self.con.execute("INSERT OR REPLACE INTO tombstones VALUES (?, ?)", [member, datetime.now(UTC).isoformat()])
            self.con.execute("COMMIT")
        return {"events": ev, "impressions": imp}

    def tombstoned(self) -> set[str]:
        with self.lock:
            return {r[0] for r in self.con.execute("SELECT member_id FROM tombstones")}

    def close(self) -> None:
        self.fast.close()
        self.con.close()
