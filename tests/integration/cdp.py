"""A minimal headless-Chromium driver over the DevTools protocol (aiohttp websocket; no extra packages).

`inspect_page(url, png)` loads a page at phone width, waits for `load`, and returns the console errors,
uncaught exceptions, network requests that left the machine, the size of every `svg.chart`, whether
the page overflows horizontally, and writes a full-page PNG screenshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from tests.components import chromium

CHART_JS = """JSON.stringify({
  charts: [...document.querySelectorAll('svg.chart')].map(e => {
    const r = e.getBoundingClientRect();
    return {label: e.getAttribute('aria-label'), title: !!e.querySelector('title'), width: r.width, height: r.height};
  }),
  overflow: document.documentElement.scrollWidth > window.innerWidth + 1,
  height: document.documentElement.scrollHeight,
  text: document.body.innerText
})"""


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.ids, self.events, self.pending = ws, itertools.count(1), [], {}

    async def pump(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        i = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        msg = {"id": i, "method": method, "params": params or {}} | ({"sessionId": session} if session else {})
        await self.ws.send_str(json.dumps(msg))
        out = await asyncio.wait_for(fut, 30)
        if "error" in out:
            raise RuntimeError(f"{method}: {out['error']}")
        return out.get("result", {})

    async def wait_for(self, method: str, timeout: float = 30) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in self.events:
                if e.get("method") == method:
                    return e
            await asyncio.sleep(0.05)
        raise TimeoutError(method)


async def _inspect(ws_url: str, url: str, png: Path, width: int) -> dict:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        s = _Session(ws)
        pump = asyncio.create_task(s.pump())
        target = (await s.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        sid = (await s.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await s.send(f"{domain}.enable", session=sid)
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": True}
        await s.send("Emulation.setDeviceMetricsOverride", metrics, session=sid)
        await s.send("Page.navigate", {"url": url}, session=sid)
        await s.wait_for("Page.loadEventFired")
        res = await s.send("Runtime.evaluate", {"expression": CHART_JS, "returnByValue": True}, session=sid)
        page = json.loads(res["result"]["value"])
        await s.send("Emulation.setDeviceMetricsOverride", metrics | {"height": page["height"]}, session=sid)
        shot = await s.send("Page.captureScreenshot", {"format": "png"}, session=sid)
        png.write_bytes(base64.b64decode(shot["data"]))
        pump.cancel()
    ev = s.events
    errors = [
        e["params"]["args"]
        for e in ev
        if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in {"error", "assert"}
    ]
    errors += [e["params"]["exceptionDetails"] for e in ev if e.get("method") == "Runtime.exceptionThrown"]
    errors += [
        e["params"]["entry"]
        for e in ev
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
    ]
    requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
    remote = [u for u in requests if not u.startswith(("file:", "data:", "about:"))]
    return page | {"errors": errors, "remote_requests": remote}


@contextmanager
def devtools() -> Iterator[str]:
    """Start headless Chromium with a throwaway profile; yield its DevTools websocket URL; stop it after."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found: apt-get install -y chromium")
    # Chromium's helper processes may still write to the profile for a moment after the browser exits
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"]  # fmt: skip
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                start_new_session=True)  # fmt: skip
        try:
            ws_url, end = None, time.monotonic() + 60
            while ws_url is None and time.monotonic() < end:
                line = proc.stderr.readline()
                if not line and proc.poll() is not None:
                    raise RuntimeError("chromium exited before DevTools started")
                if m := re.search(r"DevTools listening on (ws://\S+)", line):
                    ws_url = m.group(1)
            if ws_url is None:
                raise TimeoutError("chromium DevTools did not start")
            yield ws_url
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """Terminate Chromium and every helper process it started (its own session), killing what lingers."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def inspect_page(url: str, png: Path, width: int = 390) -> dict:
    """Load `url` in headless Chromium at `width` px and report on it (see the module docstring)."""
    with devtools() as ws_url:
        return asyncio.run(_inspect(ws_url, url, png, width))
