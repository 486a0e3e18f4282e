"""The MLflow UI (as `make ui` starts it) compares two runs this test logged, in headless Chromium.

Logs two runs with distinct names, params and metrics to a SQLite store, starts `mlflow ui` on it
(one worker, loopback, a free port), opens the UI's run comparison for both and waits until the
React app shows both runs with their values; the screenshot is saved (pytest's tmp_path, and
TAILOR_SCREENSHOTS when set). Needs the distribution's `chromium`, like test_report_browser.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tailor.serve import free_port
from tests.components import need
from tests.integration.cdp import _Session, devtools

need("browser", module=True)  # skips without Chromium; fails instead under TAILOR_REQUIRE_BROWSER=1 (make test)

RUNS = [  # name, params, metrics: every value must show on the comparison page
    ("ember-fox", {"variant": "ember", "lr": "0.003"}, {"ndcg_at_20": 0.625}),
    ("glacier-owl", {"variant": "glacier", "lr": "0.0007"}, {"ndcg_at_20": 0.375}),
]
WAIT_S = 90  # the React app loads slowly on a busy 2-core machine


def _log_runs(uri: str, artifacts: Path) -> tuple[str, list[str]]:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.create_experiment("ui-compare", artifact_location=artifacts.as_uri())
    ids = []
    for name, params, metrics in RUNS:
        run = c.create_run(exp, run_name=name)
        for k, v in params.items():
            c.log_param(run.info.run_id, k, v)
        for k, v in metrics.items():
            c.log_metric(run.info.run_id, k, v)
        c.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return exp, ids


@pytest.fixture
def mlflow_ui(tmp_path: Path):
    """(base URL, experiment id, run ids) of a running `mlflow ui` on a fresh SQLite store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp, ids = _log_runs(uri, tmp_path / "mlartifacts")
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    artifacts = (tmp_path / "mlartifacts").as_uri()
    cmd = [str(mlflow_bin), "ui", "--backend-store-uri", uri, "--default-artifact-root", artifacts,
           "--workers", "1", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (tmp_path / "mlflow_ui.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + WAIT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow ui exited: {(tmp_path / 'mlflow_ui.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise TimeoutError("mlflow ui did not answer")
            time.sleep(0.5)
        yield base, exp, ids
    finally:
        os.killpg(proc.pid, 15)  # the ui's own process group: its server worker too
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


async def _open_until(ws_url: str, url: str, patterns: list[str], png: Path) -> str:
    """Open `url`, poll the page text until every regex in `patterns` matches, screenshot it; return the text."""
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        s = _Session(ws)
        pump = asyncio.create_task(s.pump())
        target = (await s.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        sid = (await s.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        await s.send("Page.enable", session=sid)
        metrics = {"width": 1400, "height": 1500, "deviceScaleFactor": 1, "mobile": False}
        await s.send("Emulation.setDeviceMetricsOverride", metrics, session=sid)
        await s.send("Page.navigate", {"url": url}, session=sid)
        text, end = "", time.monotonic() + WAIT_S
        while time.monotonic() < end:
            expr = "document.body ? document.body.innerText : ''"
            res = await s.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=sid)
            text = res["result"].get("value", "")
            if all(re.search(p, text) for p in patterns):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)  # let the last rows paint before the screenshot
        shot = await s.send("Page.captureScreenshot", {"format": "png"}, session=sid)
        png.write_bytes(base64.b64decode(shot["data"]))
        pump.cancel()
    return text


def _in_chromium(url: str, patterns: list[str], png: Path) -> str:
    with devtools() as ws_url:
        return asyncio.run(_open_until(ws_url, url, patterns, png))


def test_mlflow_ui_compares_two_logged_runs(mlflow_ui, tmp_path: Path) -> None:
    base, exp, ids = mlflow_ui
    # the UI's own route (MLflow 3.17 Routes.getCompareRunPageRoute): #/compare-runs?runs=[..]&experiments=[..]
    query = f"runs={urllib.parse.quote(json.dumps(ids))}&experiments={urllib.parse.quote(json.dumps([exp]))}"
    url = f"{base}/#/compare-runs?{query}"
    (a, pa, ma), (b, pb, mb) = RUNS
    expected = [  # the page's "Run details" table: one column per run, in the order given
        r"Comparing 2 Runs",
        rf"Run ID:\s+{ids[0]}\s+{ids[1]}",
        rf"Run Name:\s+{a}\s+{b}",
        *(rf"{k}\s+{re.escape(pa[k])}\s+{re.escape(pb[k])}" for k in pa),
        *(rf"{k}\s+{re.escape(str(ma[k]))}\s+{re.escape(str(mb[k]))}" for k in ma),
    ]
    png = tmp_path / "mlflow_compare_runs.png"
    text = _in_chromium(url, expected, png)
    missing = [p for p in expected if not re.search(p, text)]
    assert not missing, f"not on the comparison page: {missing}\n{text[:3000]}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000  # a real render
    if shots := os.environ.get("TAILOR_SCREENSHOTS"):
        shutil.copy(png, Path(shots) / png.name)
