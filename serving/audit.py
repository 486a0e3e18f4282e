"""Append-only audit log (SQLite, TAILOR_HOME/serving/audit.db): who read or changed which member's data.

Rows hold the key's name (never the key), the action, the member's pseudonym (never the raw id) and a small
JSON detail. The API only inserts and reads; triggers make UPDATE and DELETE fail inside SQLite too.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datasets.layout import Layout

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, "
    "principal TEXT NOT NULL, action TEXT NOT NULL, member TEXT, detail TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS audit_member ON audit (member)",
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit "
    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
)


class AuditLog:
    """Insert-only access to one audit database; safe to share between threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else Layout.from_env().audit_db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for stmt in _SCHEMA:
            self._db.execute(stmt)

    def record(self, principal: str, action: str, member: str | None = None, **detail: Any) -> None:
        """Append one row; `member` must be a pseudonym."""
        self.record_many(principal, action, [member], **detail)

    def record_many(self, principal: str, action: str, members: Iterable[str | None], **detail: Any) -> None:
        """Append one row per member pseudonym, all with the same detail, in one transaction."""
        ts, blob = datetime.now(UTC).isoformat(timespec="milliseconds"), json.dumps(detail, default=str)
        rows = [(ts, principal, action, m, blob) for m in members]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO audit (ts, principal, action, member, detail) VALUES (?,?,?,?,?)", rows)
            self._db.execute("COMMIT")

    def read(self, limit: int = 100, member: str | None = None) -> list[dict[str, Any]]:
        """The newest `limit` rows, newest first, optionally of one member pseudonym."""
        sql = "SELECT id, ts, principal, action, member, detail FROM audit"
        args: tuple = ()
        if member:
            sql, args = sql + " WHERE member = ?", (member,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit))).fetchall()
        return [
            {"id": i, "ts": ts, "principal": p, "action": a, "member": m, "detail": json.loads(d)}
            for i, ts, p, a, m, d in rows
        ]


_default: AuditLog | None = None


def log() -> AuditLog:
    """The audit log of the current TAILOR_HOME (opened once per process)."""
    global _default
    path = Layout.from_env().audit_db
    if _default is None or _default.path != path:
        _default = AuditLog(path)
    return _default


def read_audit(limit: int = 100, member: str | None = None) -> list[dict[str, Any]]:
    """Newest audit rows; `member` is a pseudonym (see `tailor audit --member`, which pseudonymizes a raw id)."""
    return log().read(limit, member)
