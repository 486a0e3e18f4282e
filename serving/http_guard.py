"""ASGI middleware in front of the API routes: JSON only, a body-size limit (413), a body deadline (408), API-key
scopes (401/403) and a rate limit per key and scope (429 with `Retry-After`: `serving.ratelimit`).

It runs before BentoML parses anything, so a refused request is never parsed, and it stores the caller's
`Principal` in the ASGI scope (`tailor.principal`) for the endpoint's audit row and member-bound checks.
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio

from serving.auth import AuthError, check
from serving.traffic import restore_path

PRINCIPAL = "tailor.principal"
MAX_BODY = 1_000_000
BODY_TIMEOUT_S = 10.0  # a body that has not fully arrived this long after the headers is cut (408)


async def send_json(send: Any, status: int, payload: dict[str, Any], close: bool = False, extra: tuple = ()) -> None:
    """Write a whole JSON response to an ASGI `send` (`close`: and ask the server to close the connection;
    `extra`: more (name, value) header pairs, as bytes)."""
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def api_key(headers: dict[bytes, bytes]) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


class Guard:
    """Checks size, media type and key scope of POSTs to `routes` ({path: scope or None for no key})."""

    def __init__(
        self,
        app: Any,
        routes: dict[str, str | None],
        max_body: int = MAX_BODY,
        body_timeout_s: float = BODY_TIMEOUT_S,
        limiter: Any = None,
    ) -> None:
        self.app, self.routes, self.max_body, self.body_timeout_s = app, routes, max_body, body_timeout_s
        self.limiter = limiter  # serving.ratelimit.RateLimiter; None: TAILOR_HOME's, opened on the first keyed call

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        restore_path(scope)  # the metrics middleware saw unknown paths as one label; routing needs the real one
        if scope["type"] != "http" or scope["path"] not in self.routes or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        media = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media != b"application/json":
            return await send_json(send, 415, {"error": "unsupported media type: send application/json"})
        declared = headers.get(b"content-length", b"0") or b"0"
        if not declared.isdigit():
            return await send_json(send, 400, {"error": "malformed Content-Length", "field": "content-length"})
        if int(declared) > self.max_body:
            return await send_json(send, 413, self._too_large())
        needed = self.routes[scope["path"]]
        if needed:
            try:
                scope[PRINCIPAL] = check(api_key(headers), needed)
            except AuthError as exc:
                error = "unauthorized" if exc.status == 401 else "forbidden"
                return await send_json(send, exc.status, {"error": error, "detail": exc.message})
            if wait := self._limit(scope[PRINCIPAL].key_id, needed):
                retry = max(1, math.ceil(wait))
                detail = f"this key's '{needed}' requests exceed their rate limit; retry after {retry} s"
                payload = {"error": "too many requests", "detail": detail, "retry_after_s": retry}
                return await send_json(send, 429, payload, extra=((b"retry-after", str(retry).encode()),))
        body, more = b"", True
        with anyio.move_on_after(self.body_timeout_s) as deadline:  # slow clients hold a connection no longer
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body:
                    return await send_json(send, 413, self._too_large())
        if deadline.cancelled_caught:
            limit = {"error": "request body not received in time", "field": "body", "limit_s": self.body_timeout_s}
            return await send_json(send, 408, limit, close=True)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _limit(self, key_id: str, scope: str) -> float:
        """Seconds until the key may call `scope` again (0.0: a token was taken): the per-key token bucket."""
        if self.limiter is None:
            from serving.ratelimit import RateLimiter

            self.limiter = RateLimiter.of_home()
        return self.limiter.take(key_id, scope)

    def _too_large(self) -> dict[str, Any]:
        return {"error": "request body too large", "field": "body", "limit_bytes": self.max_body}
