"""BentoML's request timeout as patched by serving.traffic: still a 504 when slow, and no timer left per request."""

from __future__ import annotations

import asyncio

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from serving.traffic import _call, patch_timeout_middleware


async def _ok(scope: dict, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _slow(scope: dict, receive, send) -> None:
    await asyncio.sleep(5)
    await _ok(scope, receive, send)


async def _request(app) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "path": "/x", "method": "POST", "headers": []}, receive, send)
    return sent


def test_the_service_module_patches_the_middleware() -> None:
    import serving.service  # noqa: F401  (the import applies the patch)

    assert TimeoutMiddleware.__call__ is _call


def test_answered_requests_leave_no_armed_timer() -> None:
    patch_timeout_middleware()
    app = TimeoutMiddleware(_ok, timeout=120)

    async def main() -> int:
        for _ in range(300):
            assert (await _request(app))[0]["status"] == 200
        # BentoML's own version left one live 120 s timer (holding the request's context) per request
        return sum(not h.cancelled() for h in asyncio.get_running_loop()._scheduled)

    assert asyncio.run(main()) == 0


def test_a_request_past_the_timeout_gets_a_504() -> None:
    patch_timeout_middleware()
    sent = asyncio.run(_request(TimeoutMiddleware(_slow, timeout=0.05)))
    assert sent[0]["status"] == 504
    assert b"0.05 seconds" in sent[1]["body"]
