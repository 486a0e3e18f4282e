"""API keys (hashed, scoped, member-bound, revocable), the append-only audit log, and the request schemas."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError


def test_keys_are_stored_hashed_and_checked_by_scope(tailor_home: Path) -> None:
    from serving.auth import AuthError, check, create_key, revoke_key, store

    key = create_key("platform", ["read", "events"])
    assert key.startswith("tk_")
    blob = (tailor_home / "serving" / "keys.db").read_bytes()
    assert key.split("_", 2)[2].encode() not in blob  # the secret never reaches the file
    assert check(key, "read").name == "platform"
    with pytest.raises(AuthError) as e:
        check(key, "admin")
    assert e.value.status == 403
    for bad in (None, "", "tk_nope_x", key[:-1] + ("A" if key[-1] != "A" else "B"), "Bearer " + key):
        with pytest.raises(AuthError) as e:
            check(bad, "read")
        assert e.value.status == 401
    with pytest.raises(ValueError, match="scopes"):
        create_key("x", ["write"])
    with pytest.raises(ValueError, match="exists"):
        create_key("platform", ["read"])
    assert revoke_key("platform") and not revoke_key("platform")
    with pytest.raises(AuthError) as e:
        check(key, "read")
    assert e.value.status == 401
    assert [k["revoked_at"] is not None for k in store().list()] == [True]


def test_member_bound_key_reads_only_its_member(tailor_home: Path) -> None:
    from serving.auth import check, create_key

    principal = check(create_key("alice-app", ["report"], member="RAW-ALICE-17"), "report")
    assert principal.may_read_member("RAW-ALICE-17") and not principal.may_read_member("RAW-BOB-18")
    assert b"RAW-ALICE-17" not in (tailor_home / "serving" / "keys.db").read_bytes()
    assert not check(create_key("support", ["report"]), "report").may_read_member("anyone")  # bound to nobody
    assert check(create_key("ops", ["admin"]), "report").may_read_member("anyone")  # admin reads any report


def main_keys(argv: list[str]) -> int:
    from tailor.cli import main

    return main(["keys", *argv])


def main_audit(argv: list[str]) -> int:
    from tailor.cli import main

    return main(["audit", *argv])


def test_main_keys_create_list_revoke(tailor_home: Path, capsys) -> None:
    from serving.auth import check

    assert main_keys(["create", "ops", "--scopes", "admin,read"]) == 0
    key = capsys.readouterr().out.strip()
    assert check(key, "admin").scopes == {"admin", "read"}
    assert main_keys(["list"]) == 0
    listed = capsys.readouterr().out
    assert "ops" in listed and "admin,read" in listed and key not in listed
    assert main_keys(["revoke", "ops"]) == 0 and main_keys(["revoke", "ops"]) == 2


def test_audit_log_is_append_only(tailor_home: Path) -> None:
    from serving.audit import log, read_audit

    log().record("platform", "persona", "m_abc", cold_start=False)
    log().record_many("platform", "events", ["m_abc", "m_def"], accepted=3)
    rows = read_audit(10)
    assert [r["action"] for r in rows] == ["events", "events", "persona"]
    assert rows[-1]["detail"] == {"cold_start": False} and rows[0]["principal"] == "platform"
    assert [r["member"] for r in read_audit(10, member="m_abc")] == ["m_abc", "m_abc"]
    db = sqlite3.connect(tailor_home / "serving" / "audit.db")
    for stmt in ("UPDATE audit SET member = 'x'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(stmt)
    assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 3


def test_main_audit_prints_the_newest_rows(tailor_home: Path, capsys) -> None:
    from serving.audit import log

    log().record("ops", "erase", "m_0123", removed={"persona_rows": 1})
    log().record("ops", "reload", None)
    assert main_audit(["--limit", "5", "--pseudonym", "m_0123"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "erase" in out[0] and "persona_rows" in out[0]


def test_schemas_refuse_bad_input_without_echoing_it() -> None:
    from serving.schemas import Event, EventsRequest, LookalikeRequest, RankOffersRequest, RecommendRequest

    cases = [
        (RecommendRequest, {"member_id": "RAW-1", "k": 10**9}, ("k",)),
        (RecommendRequest, {"member_id": "RAW-1", "k": "many"}, ("k",)),
        (RecommendRequest, {"member_id": "RAW-1", "k": "5"}, ("k",)),  # strict: no coercion (issue 14, finding 13)
        (RecommendRequest, {"member_id": "RAW-1", "k": True}, ("k",)),
        (RecommendRequest, {"member_id": "RAW-1", "exclude_bought": "yes"}, ("exclude_bought",)),
        (RecommendRequest, {"member_id": "RAW-1" * 100}, ("member_id",)),
        (RecommendRequest, {"member_id": "RAW-1", "extra": 1}, ("extra",)),
        (RankOffersRequest, {"member_id": "RAW-1", "context": {"time": "1800-01-01T00:00:00Z"}}, ("context", "time")),
        (LookalikeRequest, {"seeds": ["RAW-1"] * 1001}, ("seeds",)),
        (EventsRequest, {"events": []}, ("events",)),
    ]
    event = {"member_id": "RAW-1", "ts": "2024-05-01T10:00:00Z", "event_type": "purchase", "amount": 5.0}
    for field, value in (("amount", float("nan")), ("quantity", 1e300), ("event_type", "steal")):
        cases.append((Event, {**event, field: value}, (field,)))  # the service rejects that one event only
    for model, body, loc in cases:
        with pytest.raises(ValidationError) as e:
            model.model_validate_json(json.dumps(body))
        assert e.value.errors()[0]["loc"] == loc, (body, e.value.errors())
        assert "RAW-1" not in str(e.value)
    ok = Event.model_validate({**event, "ts": "2024-05-01T10:00:00"})
    assert ok.ts.tzinfo is not None


def test_guard_checks_media_size_and_scope_before_the_app(tailor_home: Path) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from serving.auth import create_key
    from serving.http_guard import PRINCIPAL, Guard

    async def echo(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"who": request.scope[PRINCIPAL].name if PRINCIPAL in request.scope else None, **body})

    app = Starlette(routes=[Route("/persona", echo, methods=["POST"]), Route("/noop", echo, methods=["POST"])])
    client = TestClient(Guard(app, routes={"/persona": "read", "/noop": None}, max_body=1000))
    key = create_key("reader", ["read"])
    ok = client.post("/persona", json={"member_id": "a"}, headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200 and ok.json() == {"who": "reader", "member_id": "a"}
    assert client.post("/persona", json={"member_id": "a"}, headers={"X-API-Key": key}).status_code == 200
    assert client.post("/persona", json={}).status_code == 401
    assert client.post("/persona", json={}, headers={"X-API-Key": create_key("w", ["events"])}).status_code == 403
    big = client.post("/persona", content=b"x" * 1001, headers={"X-API-Key": key, "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["limit_bytes"] == 1000
    form = client.post("/persona", data={"member_id": "a"}, headers={"X-API-Key": key})
    assert form.status_code == 415
    assert client.post("/noop", json={"x": 1}).json() == {"who": None, "x": 1}
