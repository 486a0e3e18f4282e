"""API key lifecycle (issue 14, What to add): expiry, rotation with an overlap, last use; `tailor keys` shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The key store's present time, moved by the test (`clock[0] += ...`)."""
    from serving import auth

    now = [datetime(2026, 12, 8, 12, 0, tzinfo=UTC)]
    monkeypatch.setattr(auth, "_clock", lambda: now[0])
    return now


def test_an_expired_key_gets_401(tailor_home: Path, clock: list[datetime]) -> None:
    from serving.auth import AuthError, KeyStore

    keys = KeyStore(tailor_home / "keys.db")
    raw = keys.create("partner", ["read"], expires_at=clock[0] + timedelta(days=30))
    assert keys.check(raw, "read").name == "partner"
    clock[0] += timedelta(days=30)
    with pytest.raises(AuthError) as e:
        keys.check(raw, "read")
    assert e.value.status == 401 and e.value.message == "expired API key"
    with pytest.raises(ValueError, match="expires"):
        keys.create("late", ["read"], expires_at=clock[0] - timedelta(seconds=1))


def test_rotation_gives_a_new_key_and_the_old_one_works_for_the_overlap(tailor_home: Path, clock) -> None:
    from serving.auth import AuthError, KeyStore

    keys = KeyStore(tailor_home / "keys.db")
    old = keys.create("alice-app", ["report"], member="RAW-ALICE", expires_at=clock[0] + timedelta(days=90))
    clock[0] += timedelta(days=10)
    new = keys.rotate("alice-app", overlap_s=3600)
    assert new != old
    p = keys.check(new, "report")
    assert p.name == "alice-app" and p.may_read_member("RAW-ALICE") and not p.may_read_member("RAW-BOB")
    assert keys.check(old, "report").name.startswith("alice-app@")  # still valid during the overlap
    rows = {k["name"]: k for k in keys.list()}
    assert rows["alice-app"]["expires_at"] == (clock[0] + timedelta(days=90)).isoformat(timespec="seconds")
    clock[0] += timedelta(seconds=3600)
    with pytest.raises(AuthError) as e:
        keys.check(old, "report")
    assert e.value.status == 401
    assert keys.check(new, "report").name == "alice-app"
    with pytest.raises(ValueError, match="no live key"):
        keys.rotate("nobody", overlap_s=60)


def test_last_used_is_written_at_most_once_a_minute(tailor_home: Path, clock) -> None:
    from serving.auth import KeyStore

    keys = KeyStore(tailor_home / "keys.db")
    raw = keys.create("platform", ["read"])
    assert keys.list()[0]["last_used_at"] is None
    writes: list[str] = []
    keys._db.set_trace_callback(lambda sql: writes.append(sql) if sql.startswith("UPDATE") else None)
    first = clock[0]
    for _ in range(100):
        keys.check(raw, "read")
        clock[0] += timedelta(seconds=1)
    assert len(writes) == 2  # at 0 s and at 60 s, not 100
    assert keys.list()[0]["last_used_at"] == (first + timedelta(seconds=60)).isoformat(timespec="seconds")


def test_keys_cli_creates_with_expiry_rotates_and_lists(tailor_home: Path, capsys: pytest.CaptureFixture) -> None:
    from serving.auth import AuthError, check
    from tailor.cli import main

    assert main(["keys", "create", "partner", "--scopes", "read", "--expires-in", "30d"]) == 0
    raw = capsys.readouterr().out.strip()
    assert check(raw, "read").name == "partner"
    assert main(["keys", "create", "ops", "--scopes", "admin", "--expires", "2100-01-01"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["keys", "rotate", "partner", "--overlap", "soon"])
    assert e.value.code == 2 and "not a duration" in capsys.readouterr().err
    assert main(["keys", "rotate", "partner", "--overlap", "1h"]) == 0
    new = capsys.readouterr().out.strip()
    assert check(new, "read").name == "partner" and check(raw, "read").name.startswith("partner@")
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "live, expires 2100-01-01T00:00:00+00:00" in lines["ops"] and "never used" in lines["ops"]
    assert "rotated, valid until" in next(v for k, v in lines.items() if k.startswith("partner@"))
    assert "last used" in lines["partner"] and "live, expires" in lines["partner"]
    with pytest.raises(AuthError):
        check("tk_nope_x", "read")
