"""Open-loop HTTP load at a fixed rate, in its own process: p50/p90/p99 latency and throughput of one endpoint.

Requests are sent on a fixed schedule (request i at t0 + i / rps) whatever the server's pace,
and each latency is measured from the request's scheduled time, so a stalled server shows up
in the tail instead of silently slowing the load down (no coordinated omission). A warm-up
at the same rate comes first and is not counted.

    python experiments/serving_load/load.py --url http://127.0.0.1:3000 --endpoint rank_offers \\
        --rps 200 --seconds 30 --key tk_... --members members.txt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

BODIES = {
    "noop": lambda m: {},
    "persona": lambda m: {"member_id": m},
    "recommend": lambda m: {"member_id": m, "k": 10},
    "rank_offers": lambda m: {"member_id": m, "k": 5, "context": {"channel": "app"}},
}


async def _one(session: aiohttp.ClientSession, url: str, body: dict, due: float, out: list) -> None:
    start = time.perf_counter()
    try:
        async with session.post(url, json=body) as r:
            await r.read()
            status = r.status
    except aiohttp.ClientError as exc:
        status = f"{type(exc).__name__}"
    end = time.perf_counter()
    out.append((end - due, end - start, status))


async def _phase(session: aiohttp.ClientSession, url: str, bodies: list[dict], rps: float, seconds: float) -> tuple:
    out: list = []
    n = int(rps * seconds)
    t0 = time.perf_counter() + 0.05
    tasks = []
    for i in range(n):
        due = t0 + i / rps
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(_one(session, url, bodies[i % len(bodies)], due, out)))
    await asyncio.gather(*tasks)
    return out, time.perf_counter() - t0


async def run(url: str, endpoint: str, rps: float, seconds: float, warmup: float, key: str | None,
              members: list[str]) -> dict:  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    bodies = [BODIES[endpoint](m) for m in members] or [BODIES[endpoint]("unknown")]
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(f"{url}", headers=headers, connector=conn, timeout=timeout) as session:
        if warmup:
            await _phase(session, f"/{endpoint}", bodies[::-1], rps, warmup)
        out, took = await _phase(session, f"/{endpoint}", bodies, rps, seconds)
    lat = np.array([o[0] for o in out]) * 1e3
    svc = np.array([o[1] for o in out]) * 1e3
    errors: dict[str, int] = {}
    for o in out:
        if o[2] != 200:
            errors[str(o[2])] = errors.get(str(o[2]), 0) + 1
    return {
        "endpoint": endpoint, "target_rps": rps, "requests": len(out), "achieved_rps": round(len(out) / took, 1),
        "errors": errors, "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p90_ms": round(float(np.percentile(lat, 90)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2), "service_p50_ms": round(float(np.percentile(svc, 50)), 2),
        "service_p99_ms": round(float(np.percentile(svc, 99)), 2),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--endpoint", required=True, choices=sorted(BODIES))
    ap.add_argument("--rps", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--key", help="API key (Bearer)")
    ap.add_argument("--members", help="file of raw member ids, one per line (shuffled)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    members = Path(a.members).read_text().split() if a.members else []
    random.Random(a.seed).shuffle(members)
    result = asyncio.run(run(a.url, a.endpoint, a.rps, a.seconds, a.warmup, a.key, members))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
