"""API keys with scopes, stored hashed in SQLite under TAILOR_HOME/serving/keys.db.

A key reads `tk_<key id>_<secret>`; only the id, a per-key salt and sha256(salt + secret) are stored, so the
raw key is shown once, at creation. Scopes: `read` (scoring reads), `events` (event writes), `report`
(member reports), `admin` (erase, reload, audit). A key may be bound to one member: the member id is kept as
sha256(salt + id), never raw, and such a key reads only that member's report.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from datasets.layout import Layout

SCOPES = ("read", "events", "report", "admin")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, salt BLOB NOT NULL, hash TEXT NOT NULL,
    scopes TEXT NOT NULL, member_hash TEXT, created_at TEXT NOT NULL, revoked_at TEXT
)"""


class AuthError(Exception):
    """A refused key: status 401 (missing or unknown key) or 403 (the key lacks the scope)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (never the key itself), its scopes and, optionally, its bound member."""

    name: str
    key_id: str
    scopes: frozenset[str]
    salt: bytes = b""
    member_hash: str | None = None

    def may_read_member(self, raw_member_id: str) -> bool:
        """A member's own data: an admin key, or a key bound to exactly this member."""
        if "admin" in self.scopes:
            return True
        return self.member_hash is not None and hmac.compare_digest(self.member_hash, _digest(self.salt, raw_member_id))


def _digest(salt: bytes, value: str) -> str:
    return hashlib.sha256(salt + value.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """The key table of one SQLite file; safe to share between threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else Layout.from_env().keys_db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def create(self, name: str, scopes: Sequence[str], member: str | None = None) -> str:
        """Store a new key and return it raw (the only time it is shown)."""
        bad = sorted(set(scopes) - set(SCOPES))
        if not name.strip() or bad or not scopes:
            raise ValueError(f"scopes: need a name and scopes among {', '.join(SCOPES)} (got {bad or 'none'})")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        member_hash = _digest(salt, member) if member else None
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (key_id, name, salt, _digest(salt, secret), ",".join(sorted(set(scopes))), member_hash, _now()),
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"name: a key named '{name}' exists already") from exc
        return f"tk_{key_id}_{secret}"

    def revoke(self, name: str) -> bool:
        """Revoke a key by name; False when no live key has that name."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (_now(), name)
            )
        return cur.rowcount > 0

    def list(self) -> list[dict]:
        """Every key's name, scopes, binding and dates (no secrets, no hashes)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, key_id, scopes, member_hash IS NOT NULL, created_at, revoked_at FROM api_keys "
                "ORDER BY created_at, name"
            ).fetchall()
        cols = ("name", "key_id", "scopes", "member_bound", "created_at", "revoked_at")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def check(self, raw_key: str | None, scope: str) -> Principal:
        """The principal of a live key holding `scope`; AuthError 401 or 403 otherwise."""
        parts = (raw_key or "").split("_", 2)
        if len(parts) != 3 or parts[0] != "tk" or not parts[1] or not parts[2]:
            raise AuthError(401, "missing or malformed API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
        with self._lock:
            row = self._db.execute(
                "SELECT name, salt, hash, scopes, member_hash FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
                (parts[1],),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[2], _digest(row[1], parts[2])):
            raise AuthError(401, "unknown or revoked API key")
        principal = Principal(row[0], parts[1], frozenset(row[3].split(",")), row[1], row[4])
        if scope not in principal.scopes and not (scope == "report" and "admin" in principal.scopes):
            raise AuthError(403, f"this key lacks scope '{scope}'")  # never the key's name: callers see this
        return principal


_default: KeyStore | None = None


def store() -> KeyStore:
    """The key store of the current TAILOR_HOME (opened once per process)."""
    global _default
    path = Layout.from_env().keys_db
    if _default is None or _default.path != path:
        _default = KeyStore(path)
    return _default


def create_key(name: str, scopes: Sequence[str], member: str | None = None) -> str:
    """Create a key; the raw key is returned once and never stored."""
    return store().create(name, scopes, member)


def revoke_key(name: str) -> bool:
    """Revoke the live key called `name`."""
    return store().revoke(name)


def check(raw_key: str | None, scope: str) -> Principal:
    """Authenticate a raw key for a scope (AuthError with status 401/403 when refused)."""
    return store().check(raw_key, scope)
