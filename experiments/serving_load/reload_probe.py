"""`/reload` under load (issue 14, finding 4): persona at 100 req/s, open loop, with and without four reloads.

Runs against the end-to-end test's server (tests/e2e/test_service_http.py's `svc`: a tiny trained home and the
real `bentoml serve`), so it needs no prepared benchmark home:

    .venv/bin/python -m pytest -p no:xdist -s experiments/serving_load/reload_probe.py

The load is experiments/serving_load/load.py (latency from each request's scheduled time), two processes at
50 req/s with a read key each (each key stays under the read scope's rate limit). Prints p50/p99/max of both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_service_http import svc  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def _load(url: str, key: str, members: Path, seconds: float) -> subprocess.Popen:
    cmd = [sys.executable, "experiments/serving_load/load.py", "--url", url, "--endpoint", "persona", "--rps", "50"]
    cmd += ["--seconds", str(seconds), "--warmup", "3", "--key", key, "--members", str(members)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)


def _phase(url: str, keys: list[str], members: Path, seconds: float, reloads: int = 0, admin=None) -> dict:
    loads = [_load(url, k, members, seconds) for k in keys]
    took = []
    if reloads:
        time.sleep(5)
        for _ in range(reloads):
            started = time.perf_counter()
            assert admin("/reload", {}, key="admin").status_code == 200
            took.append(round(time.perf_counter() - started, 2))
            time.sleep(2)
    rows = [json.loads(p.communicate()[0]) for p in loads]
    return {
        "p50_ms": max(r["p50_ms"] for r in rows),
        "p99_ms": max(r["p99_ms"] for r in rows),
        "max_ms": max(r["max_ms"] for r in rows),
        "errors": [r["errors"] for r in rows],
        "reload_s": took,
    }


def test_reload_under_load(svc, tmp_path, monkeypatch) -> None:  # noqa: F811
    from serving.auth import create_key

    c = svc["client"]
    members = tmp_path / "members.txt"
    members.write_text("\n".join(svc["raw_ids"][:500]))
    monkeypatch.setenv("TAILOR_HOME", str(svc["home"]))
    keys = [create_key(f"bench-read-{i}-{time.time_ns()}", ["read"]) for i in range(2)]
    print("\nno reload:", json.dumps(_phase(c.url, keys, members, 15)))
    print("4 reloads:", json.dumps(_phase(c.url, keys, members, 24, reloads=4, admin=c.post)))
