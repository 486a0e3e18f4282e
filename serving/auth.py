"""API keys with scopes, stored hashed in SQLite under TAILOR_HOME/serving/keys.db.

A key reads `tk_<key id>_<secret>`; only the id, a per-key salt and sha256(salt + secret) are stored, so the
raw key is shown once, at creation. Scopes: `read` (scoring reads), `events` (event writes), `report`
(member reports), `admin` (erase, reload, audit). A key may be bound to one member: the member id is kept as
sha256(salt + id), never raw, and such a key reads only that member's report.

Lifecycle: a key may expire (`expires_at`; an expired key gets 401 like an unknown one); `rotate` issues a new key
under the same name (same scopes, binding and lifetime) and keeps the old one valid for an overlap, renamed
`<name>@<old key id>`, after which it is refused; `last_used_at` is written at most once a minute per key
(`LAST_USED_EVERY_S`), so a busy key costs one write a minute, not one per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datasets.layout import Layout

SCOPES = ("read", "events", "report", "admin")
LAST_USED_EVERY_S = 60.0
_COLUMNS = {"expires_at": "TEXT", "last_used_at": "TEXT", "rotated_to": "TEXT"}  # added after the first release
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


def _clock() -> datetime:
    """The present time (UTC); tests move it."""
    return datetime.now(UTC)


def _now() -> str:
    return _clock().isoformat(timespec="seconds")


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class KeyStore:
    """The key table of one SQLite file; safe to share between threads."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else Layout.from_env().keys_db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        have = {r[1] for r in self._db.execute("PRAGMA table_info(api_keys)")}
        for col, kind in _COLUMNS.items():
            if col not in have:
                self._db.execute(f"ALTER TABLE api_keys ADD COLUMN {col} {kind}")

    def create(
        self, name: str, scopes: Sequence[str], member: str | None = None, expires_at: datetime | None = None
    ) -> str:
        """Store a new key and return it raw (the only time it is shown); `expires_at`: refused from then on."""
        bad = sorted(set(scopes) - set(SCOPES))
        if not name.strip() or "@" in name or bad or not scopes:
            raise ValueError(f"scopes: need a name (no '@') and scopes among {', '.join(SCOPES)} (got {bad or 'none'})")
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= _clock()):
            raise ValueError("expires: must be a time zone aware time in the future")
        salt = secrets.token_bytes(16)
        member_hash = _digest(salt, member) if member else None
        ends = expires_at.astimezone(UTC).isoformat(timespec="seconds") if expires_at else None
        with self._lock:
            try:
                return self._insert(name, salt, ",".join(sorted(set(scopes))), member_hash, ends)
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"name: a key named '{name}' exists already") from exc

    def _insert(self, name: str, salt: bytes, scopes: str, member_hash: str | None, expires_at: str | None) -> str:
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        self._db.execute(
            "INSERT INTO api_keys (key_id, name, salt, hash, scopes, member_hash, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key_id, name, salt, _digest(salt, secret), scopes, member_hash, _now(), expires_at),
        )
        return f"tk_{key_id}_{secret}"

    def rotate(self, name: str, overlap_s: float) -> str:
        """A new key for `name` (same scopes, member binding and lifetime), returned raw; the old key stays valid
        for `overlap_s` seconds under the name `<name>@<old key id>`, then is refused."""
        now = _clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT key_id, salt, scopes, member_hash, created_at, expires_at FROM api_keys "
                    "WHERE name = ? AND revoked_at IS NULL",
                    (name,),
                ).fetchone()
                old_end = _when(row[5]) if row else None
                if row is None or (old_end is not None and old_end <= now):
                    raise ValueError(f"name: no live key named '{name}'")
                overlap_end = min(now + timedelta(seconds=overlap_s), old_end or now + timedelta(seconds=overlap_s))
                new_end = now + (old_end - _when(row[4])) if old_end else None
                self._db.execute(
                    "UPDATE api_keys SET name = ?, expires_at = ? WHERE key_id = ?",
                    (f"{name}@{row[0]}", overlap_end.isoformat(timespec="seconds"), row[0]),
                )
                raw = self._insert(
                    name, row[1], row[2], row[3], new_end.isoformat(timespec="seconds") if new_end else None
                )
                self._db.execute("UPDATE api_keys SET rotated_to = ? WHERE key_id = ?", (raw.split("_")[1], row[0]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return raw

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
                "SELECT name, key_id, scopes, member_hash IS NOT NULL, created_at, revoked_at, expires_at, "
                "last_used_at, rotated_to FROM api_keys ORDER BY created_at, name"
            ).fetchall()
        cols = (
            "name",
            "key_id",
            "scopes",
            "member_bound",
            "created_at",
            "revoked_at",
            "expires_at",
            "last_used_at",
            "rotated_to",
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def check(self, raw_key: str | None, scope: str) -> Principal:
        """The principal of a live key holding `scope`; AuthError 401 or 403 otherwise."""
        parts = (raw_key or "").split("_", 2)
        if len(parts) != 3 or parts[0] != "tk" or not parts[1] or not parts[2]:
            raise AuthError(401, "missing or malformed API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
        with self._lock:
            row = self._db.execute(
                "SELECT name, salt, hash, scopes, member_hash, expires_at, last_used_at FROM api_keys "
                "WHERE key_id = ? AND revoked_at IS NULL",
                (parts[1],),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[2], _digest(row[1], parts[2])):
            raise AuthError(401, "unknown or revoked API key")
        now = _clock()
        if row[5] and _when(row[5]) <= now:
            raise AuthError(401, "expired API key")
        if not row[6] or (now - _when(row[6])).total_seconds() >= LAST_USED_EVERY_S:
            with self._lock:
                self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (_now(), parts[1]))
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


def create_key(name: str, scopes: Sequence[str], member: str | None = None, expires_at: datetime | None = None) -> str:
    """Create a key; the raw key is returned once and never stored."""
    return store().create(name, scopes, member, expires_at)


def revoke_key(name: str) -> bool:
    """Revoke the live key called `name`."""
    return store().revoke(name)


def check(raw_key: str | None, scope: str) -> Principal:
    """Authenticate a raw key for a scope (AuthError with status 401/403 when refused)."""
    return store().check(raw_key, scope)
