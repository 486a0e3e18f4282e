"""Rate limits per API key (issue 14, finding 6): a token bucket per key and scope in the state store, 429 from the
guard with `Retry-After`, refilled with time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path


def _limits(rate: float, burst: float) -> dict:
    from serving.auth import SCOPES
    from serving.config import RateLimit

    return {s: RateLimit(rate=rate, burst=burst) for s in SCOPES}


class _Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _post(guard, key: str, path: str = "/rank_offers") -> tuple[int, dict, dict]:
    """One POST through the guard as a client sends it: (status, headers, JSON body)."""
    body = json.dumps({"member_id": "M1"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": path, "headers": [*headers, (b"x-api-key", key.encode())]}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"]), json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


async def _served(scope: dict, receive, send) -> None:
    from serving.http_guard import send_json

    await receive()
    await send_json(send, 200, {"offers": []})


def test_a_burst_of_500_rank_offers_gets_429_with_retry_after_and_the_limit_refills(tailor_home: Path) -> None:
    """The request that showed it: 500 `rank_offers` in 1.2 s with one read key, all served."""
    from datasets.layout import Layout
    from serving.auth import create_key
    from serving.http_guard import Guard
    from serving.ratelimit import RateLimiter

    clock = _Clock()
    limiter = RateLimiter(Layout(tailor_home).rate_db, _limits(rate=50, burst=100), clock=clock)
    guard = Guard(_served, {"/rank_offers": "read", "/events": "events"}, limiter=limiter)
    hostile, other = create_key("hostile-read", ["read", "events"]), create_key("platform", ["read"])
    answers = []
    for _ in range(500):
        clock.t += 1.2 / 500
        answers.append(_post(guard, hostile))
    codes = [a[0] for a in answers]
    assert 100 <= codes.count(200) <= 100 + 50 * 1.2 + 1 and codes.count(429) == 500 - codes.count(200)
    _, headers, body = next(a for a in answers if a[0] == 429)
    assert headers[b"content-type"] == b"application/json" and int(headers[b"retry-after"]) >= 1
    assert body["error"] == "too many requests" and body["retry_after_s"] == int(headers[b"retry-after"])
    assert "hostile" not in json.dumps(body)  # names the scope, not the key
    assert _post(guard, other)[0] == 200  # per key: another key is not limited by this one
    assert _post(guard, hostile, "/events")[0] == 200  # per scope
    clock.t += int(headers[b"retry-after"])
    assert _post(guard, hostile)[0] == 200  # refilled after Retry-After
    clock.t += 10
    assert [_post(guard, hostile)[0] for _ in range(100)] == [200] * 100  # a full burst again
    assert limiter.refused()[(hostile.split("_")[1], "read")] >= 300


def test_buckets_are_shared_through_the_state_store(tailor_home: Path) -> None:
    """Two limiters on one store (two workers) share one bucket: one transaction per take."""
    from datasets.layout import Layout
    from serving.ratelimit import RateLimiter

    clock = _Clock()
    a, b = (RateLimiter(Layout(tailor_home).rate_db, _limits(rate=1, burst=3), clock=clock) for _ in range(2))
    assert [a.take("k1", "read"), b.take("k1", "read"), a.take("k1", "read")] == [0.0, 0.0, 0.0]
    assert b.take("k1", "read") == 1.0 and a.take("k1", "read") == 1.0
    clock.t += 0.5
    assert b.take("k1", "read") == 0.5
    clock.t += 0.5
    assert a.take("k1", "read") == 0.0 and b.take("k2", "read") == 0.0
