"""BentoML's request timeout, without its timer leak; its request metrics, without a label per client path.

BentoML 1.4's `TimeoutMiddleware` arms `loop.call_later(timeout, ...)` for every request and never
cancels it, so each request's waiter future, timer handle and context (which holds the request's
tracing span) stay alive for the whole timeout after the answer went out: at 200 requests/s and a
120 s timeout, ~24,000 requests' worth of objects. Every full garbage collection walks them (pauses
of 100-250 ms at 1M members, experiments/serving_load) and memory grows with the rate.
`patch_timeout_middleware` swaps in the same behaviour (504 when no response started within the
timeout) that cancels the timer as soon as the request is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse


async def _call(self: Any, scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: dict) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        try:
            await waiter
        except TimeoutError:  # what _set_timer_out sets (asyncio.TimeoutError is TimeoutError)
            if fut.cancel():
                body = {"error": f"Not able to process the request in {self.timeout} seconds"}
                await JSONResponse(body, status_code=504)(scope, receive, send)
            return None
        timer.cancel()  # a response started: the timeout no longer applies
        await fut
    finally:
        timer.cancel()


def patch_timeout_middleware() -> None:
    """Make BentoML's TimeoutMiddleware cancel its per-request timer (idempotent)."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    TimeoutMiddleware.__call__ = _call  # type: ignore[method-assign]


# ---- metrics labels: one label for every path the service does not serve
UNKNOWN_ROUTE = "/<unknown>"
REAL_PATH = "tailor.path"  # the client's path while the metrics and access-log middlewares see UNKNOWN_ROUTE
BENTO_ROUTES = ("/", "/docs.json", "/schema.json", "/metrics", "/healthz", "/livez", "/readyz")
BENTO_PREFIXES = ("/static_content/",)


def restore_path(scope: dict) -> None:
    """Give the request its own path back (called by the first middleware of ours, before routing)."""
    real = scope.pop(REAL_PATH, None)
    if real is not None:
        scope["path"] = real


def patch_metrics_labels(routes: Iterable[str]) -> None:
    """Label BentoML's request metrics (and access log) of paths outside `routes` as one `UNKNOWN_ROUTE`
    (`/static_content/...` as its prefix).

    BentoML 1.4's `RunnerTrafficMetricsMiddleware` labels every metric with the request's path: 20,000
    `GET /nope-<uuid>` made 20,000 label sets (the `/metrics` body grew from 269 KB to 84 MB and one
    scrape took 30 s). The patched middleware sees `UNKNOWN_ROUTE` for such paths; the real path rides in
    the scope under `REAL_PATH` and `restore_path` puts it back before routing, so a 404 stays a 404.
    """
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    known = frozenset((*BENTO_ROUTES, *routes))
    current = RunnerTrafficMetricsMiddleware.__call__
    original = getattr(current, "tailor_original", current)

    async def _labelled(self: Any, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and path not in known:
            label = next((p for p in BENTO_PREFIXES if str(path).startswith(p)), UNKNOWN_ROUTE)
            scope = {**scope, "path": label, REAL_PATH: path}
        return await original(self, scope, receive, send)

    _labelled.tailor_original = original  # type: ignore[attr-defined]
    RunnerTrafficMetricsMiddleware.__call__ = _labelled  # type: ignore[method-assign]
