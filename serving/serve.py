"""`tailor serve`: run `bentoml serve serving.service:Tailor` with TAILOR_HOME and the served dataset in its env."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from datasets.paths import repo_root, tailor_home


def serve_command(port: int = 3000, host: str = "127.0.0.1") -> list[str]:
    """The command line that serves the service (one worker: the state lives in-process)."""
    bentoml = Path(sys.executable).parent / "bentoml"
    return [str(bentoml), "serve", "serving.service:Tailor", "--host", host, "--port", str(port)]


def main_serve(argv: Sequence[str] | None = None) -> int:
    """`tailor serve [--dataset NAME] [--port 3000] [--host 127.0.0.1] [--max-body BYTES]`; replaces this process."""
    p = argparse.ArgumentParser(prog="tailor serve", description="serve the HTTP endpoints (BentoML)")
    p.add_argument("--dataset", help="prepared dataset to serve (default: configs/serving.yaml)")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--max-body", type=int, help="request body limit in bytes (default 1,000,000)")
    a = p.parse_args(argv)
    env = {**os.environ, "TAILOR_HOME": str(tailor_home())}
    if a.dataset:
        env["TAILOR_DATASET"] = a.dataset
    if a.max_body:
        env["TAILOR_MAX_BODY"] = str(a.max_body)
    env.setdefault("BENTOML_HOME", str(tailor_home() / "bentoml"))
    cmd = serve_command(a.port, a.host)
    os.chdir(repo_root())
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


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

    port = free_port()
    key = create_key(f"demo-{int(time.time())}", ["read"])
    env = {**os.environ, "TAILOR_HOME": str(tailor_home()), "TAILOR_DATASET": dataset}
    env.setdefault("BENTOML_HOME", str(tailor_home() / "bentoml"))
    log = tailor_home() / "serving" / "demo_server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"

    def post(path: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        req = urllib.request.Request(url + path, json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    with open(log, "wb") as out:
        proc = subprocess.Popen(serve_command(port), cwd=repo_root(), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(proc, url, log, timeout_s)
        for raw in raw_ids:
            if not post("/persona", {"member_id": raw})["cold_start"]:
                return post("/rank_offers", {"member_id": raw, "k": k})
        return post("/rank_offers", {"member_id": raw_ids[0], "k": k})
    finally:
        stop(proc)
