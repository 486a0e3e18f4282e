"""Starting the service: `tailor serve` (replaces the process with `bentoml serve serving.service:Tailor`) and a
managed child process for `tailor demo` and the end-to-end tests (start, wait until ready, stop).

The service reads TAILOR_HOME, TAILOR_DATASET and TAILOR_MAX_BODY from its environment: that is
how a separate server process is configured, set here once for the child.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from datasets.layout import Layout
from datasets.paths import repo_root


def serve_command(port: int = 3000, host: str = "127.0.0.1") -> list[str]:
    """The command line that serves the service (one worker: the state lives in-process)."""
    bentoml = Path(sys.executable).parent / "bentoml"
    idle = ["--timeout-keep-alive", "5"]  # an idle keep-alive connection is closed after 5 s (bodies: the guard's 408)
    return [str(bentoml), "serve", "serving.service:Tailor", "--host", host, "--port", str(port), *idle]


def service_env(
    layout: Layout, dataset: str | None = None, max_body: int | None = None, base: dict | None = None
) -> dict[str, str]:
    """The environment of a service process serving `layout` (and `dataset`, default configs/serving.yaml)."""
    env = {**(os.environ if base is None else base), "TAILOR_HOME": str(layout.home)}
    if dataset:
        env["TAILOR_DATASET"] = dataset
    if max_body:
        env["TAILOR_MAX_BODY"] = str(max_body)
    env.setdefault("BENTOML_HOME", str(layout.bentoml))
    return env


def exec_service(dataset: str | None, port: int = 3000, host: str = "127.0.0.1", max_body: int | None = None) -> int:
    """`tailor serve`: replace this process with the BentoML server."""
    env = service_env(Layout.from_env(), dataset, max_body)
    cmd = serve_command(port, host)
    os.chdir(repo_root())
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


def start_service(
    layout: Layout, port: int, log: Path, dataset: str | None = None, env: dict | None = None
) -> subprocess.Popen:
    """The service as a child process on `port`, its output to `log` (wait for it with `wait_ready`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        env = service_env(layout, dataset, base=env)
        return subprocess.Popen(serve_command(port), cwd=repo_root(), env=env, stdout=out, stderr=subprocess.STDOUT)


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout_s: float = 180) -> None:
    """Return once the service at `url` answers /readyz; RuntimeError with the log's tail if it exits or times out."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited; {log}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            urllib.request.urlopen(url + "/readyz", timeout=5)
            return
        except OSError:
            if time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the service did not start in {timeout_s:.0f} s; {log}:\n{tail}") from None
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    """Terminate the service, killing it if it has not exited after 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def ask_running_service(dataset: str, raw_ids: Sequence[str], k: int = 3, timeout_s: float = 180) -> dict:
    """Start the real service on a free port, find the first known member of `raw_ids`, ask `rank_offers`, stop.

    Used by `tailor demo` to end on an HTTP answer; the key it creates is named `demo-<time>` (read scope).
    """
    import json
    import time
    import urllib.request

    from serving.auth import create_key

    layout = Layout.from_env()
    port = free_port()
    key = create_key(f"demo-{int(time.time())}", ["read"])
    log = layout.home / "serving" / "demo_server.log"
    url = f"http://127.0.0.1:{port}"

    def post(path: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        req = urllib.request.Request(url + path, json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    proc = start_service(layout, port, log, dataset)
    try:
        wait_ready(proc, url, log, timeout_s)
        for raw in raw_ids:
            if not post("/persona", {"member_id": raw})["cold_start"]:
                return post("/rank_offers", {"member_id": raw, "k": k})
        return post("/rank_offers", {"member_id": raw_ids[0], "k": k})
    finally:
        stop(proc)
