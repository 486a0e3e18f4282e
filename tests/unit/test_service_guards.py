"""Issue 14 in process: the guard's body deadline (408), one metrics label for unknown paths, log lines a client
cannot forge, and a 403 that names the scope, not the key."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest


async def _app(scope: dict, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def _run(app, scope: dict, receive) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _post(path: str = "/noop") -> dict:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


def test_a_body_that_trickles_in_is_cut_with_408() -> None:
    from serving.http_guard import Guard

    async def trickle() -> dict:  # one byte at a time, slower than the deadline allows
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b" ", "more_body": True}

    sent = _run(Guard(_app, routes={"/noop": None}, body_timeout_s=0.3), _post(), trickle)
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]

    async def whole() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    assert _run(Guard(_app, routes={"/noop": None}, body_timeout_s=0.3), _post(), whole)[0]["status"] == 200


def test_unknown_paths_share_one_metrics_label_and_still_route() -> None:
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    from serving.http_guard import Guard
    from serving.traffic import UNKNOWN_ROUTE, patch_metrics_labels

    patch_metrics_labels(["/noop"])
    seen: list[str] = []
    mw = RunnerTrafficMetricsMiddleware(Guard(_app, routes={"/noop": None}), namespace="t")
    mw._is_setup = True
    mw.skip_paths = []

    class Label:
        def __init__(self, endpoint: str | None = None, **_: object) -> None:
            if endpoint is not None:
                seen.append(endpoint)

        def __getattr__(self, name: str):
            return lambda *a, **k: None

        def track_inprogress(self):
            import contextlib

            return contextlib.nullcontext()

    for name in (
        "metrics_last_request_timestamp",
        "metrics_request_total",
        "metrics_request_duration",
        "metrics_request_in_progress",
    ):
        setattr(mw, name, type("M", (), {"labels": staticmethod(lambda **kw: Label(**kw))})())

    async def empty() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    bodies = []
    for path in ("/nope-1", "/nope-2", "/static_content/x.js", "/noop"):
        sent = _run(mw, {"type": "http", "method": "GET", "path": path, "headers": []}, empty)
        bodies.append(sent[1]["body"].decode())
    assert bodies == ["/nope-1", "/nope-2", "/static_content/x.js", "/noop"]  # the app sees the real path
    assert set(seen) == {UNKNOWN_ROUTE, "/static_content/", "/noop"}


def test_a_client_string_with_a_newline_stays_on_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from serving.logsafe import escape, install

    install()
    forged = "x\n2026-12-08T00:00:00+0000 [INFO] FORGED\r\x1b[2J\u2028"
    with caplog.at_level(logging.INFO):
        logging.getLogger("tailor.test").info("field %s", forged)
        logging.getLogger("tailor.test").info(f"path={forged}")
    lines = caplog.text.splitlines()
    assert len(lines) == 2 and all("FORGED" in line for line in lines)
    assert escape("a\nb\tc") == "a\\nb\tc"


def test_403_names_the_scope_not_the_key(tailor_home: Path) -> None:
    from serving.auth import AuthError, check, create_key

    key = create_key("hostile-read", ["read"])
    with pytest.raises(AuthError) as e:
        check(key, "admin")
    assert e.value.status == 403 and "hostile-read" not in e.value.message and "'admin'" in e.value.message
