"""`tailor serve`: run `bentoml serve serving.service:Tailor` with TAILOR_HOME and the served dataset in its env."""

from __future__ import annotations

import argparse
import os
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
