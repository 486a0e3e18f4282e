"""BentoML's request timeout, without its timer leak.

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
