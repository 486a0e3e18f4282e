"""Serving load benchmark: the real `bentoml serve` on 1M synthetic members and 100k items, loaded by another process.

Stages (each skipped when its output exists, so a rerun only measures):
1. data: `tailor generate` 1M members with 100k items (the "large" dataset served) and 30k members
   with the same catalogue (the "small" one the models train on); `tailor prepare` both.
2. models (short settings: the benchmark measures serving, not quality), promoted: the persona on
   large, so its catalogue is the ~100k items the served members bought (trained on small it would
   know only the ~19k items 30k members bought); churn and propensity on small. Then
   `tailor score --dataset large` refolds every member of large (persona vectors, scores, top offers)
   and `tailor index --dataset large` builds the indices.
3. load: the service starts on large; for each rate, `load.py` (a separate process, open loop) sends
   `noop` (the framework's floor, same server, same run), then `persona`, `recommend` and
   `rank_offers` for random known members; the server's memory (RSS of its whole process tree)
   is read before and after.

    python experiments/serving_load/run.py                     # everything (~25 min on 2 cores)
    python experiments/serving_load/run.py --home /tmp/sl --rates 50 200 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
TAILOR = [sys.executable, "-m", "tailor", "--log-level", "WARNING"]
ENDPOINTS = ("noop", "persona", "recommend", "rank_offers")


def sh(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, env=env, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def setup(home: Path, cfg: dict, env: dict) -> dict[str, float]:
    took = {}
    for name, n in (("large", cfg["members"]), ("small", cfg["train_members"])):
        raw = home / "raw" / name
        if not raw.exists():
            took[f"generate {name}"] = sh(
                [*TAILOR, "generate", "--members", str(n), "--out", str(raw),
                 "--set", f"catalog.items_per_category={cfg['items_per_category']}"], env)  # fmt: skip
        if not (home / "data" / name).exists():
            took[f"prepare {name}"] = sh([*TAILOR, "prepare", "canonical", "--path", str(raw), "--dataset", name], env)
    if not (home / "mlflow.db").exists():
        for family, data in (("persona", "large"), ("churn", "small"), ("propensity", "small")):
            took[f"train {family}"] = sh([*TAILOR, "train", family, "--dataset", data, "--set", *cfg[family]], env)
            sh([*TAILOR, "promote", family, "--force", "--reason", "serving load benchmark"], env)
    if not (home / "scores" / "members" / "large.parquet").exists():
        took["score large"] = sh([*TAILOR, "score", "--dataset", "large"], env)
    if not (home / "serving" / "indices" / "manifest.json").exists():
        took["index large"] = sh([*TAILOR, "index", "--dataset", "large"], env)
    return took


def tree_rss_gib(pid: int) -> float:
    """RSS of a process and all its descendants (GiB), from /proc."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024**2


def member_sample(home: Path, n: int) -> Path:
    """Raw ids of `n` random members of the served dataset (what the platform would send)."""
    raw = pd.read_parquet(home / "raw" / "large" / "members.parquet", columns=["member_id"])
    path = home / "load_members.txt"
    path.write_text("\n".join(raw["member_id"].sample(n, random_state=0).astype(str)))
    return path


def measure(home: Path, cfg: dict, env: dict, rates: list[float], seconds: float) -> tuple[list[dict], dict]:
    from tailor.serve import free_port, serve_command, stop, wait_ready

    key = subprocess.run([*TAILOR, "keys", "create", f"load-{int(time.time())}", "--scopes", "read"], env=env,
                         check=True, capture_output=True, text=True).stdout.split()[-1]  # fmt: skip
    members = member_sample(home, cfg["sample_members"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "serving" / "load_server.log"
    senv = {**env, "TAILOR_DATASET": "large", "BENTOML_HOME": str(home / "bentoml")}
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(serve_command(port), cwd=ROOT, env=senv, stdout=out, stderr=subprocess.STDOUT)
    rows, mem = [], {}
    try:
        wait_ready(proc, url, log, timeout_s=900)
        mem["startup_s"] = round(time.perf_counter() - t0, 1)
        mem["rss_idle_gib"] = round(tree_rss_gib(proc.pid), 2)
        for rps in rates:
            for ep in ENDPOINTS:
                cmd = [sys.executable, str(HERE / "load.py"), "--url", url, "--endpoint", ep, "--rps", str(rps),
                       "--seconds", str(seconds), "--key", key, "--members", str(members)]  # fmt: skip
                res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                print(json.dumps(res), flush=True)
                rows.append(res)
        mem["rss_after_gib"] = round(tree_rss_gib(proc.pid), 2)
    finally:
        stop(proc)
    return rows, mem


def table(rows: list[dict], mem: dict) -> str:
    noop = {r["target_rps"]: r["p50_ms"] for r in rows if r["endpoint"] == "noop"}
    head = "| rate (req/s) | endpoint | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | p50 / no-op p50 | errors |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = r["p50_ms"] / noop[r["target_rps"]] if noop.get(r["target_rps"]) else float("nan")
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        cells = [f"{r['target_rps']:g}", r["endpoint"], f"{r['achieved_rps']:g}", f"{r['p50_ms']:.2f}",
                 f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['max_ms']:.1f}", f"{ratio:.2f}", errors]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Server: startup {mem.get('startup_s')} s; memory (RSS of the process tree) "
                 f"{mem.get('rss_idle_gib')} GiB idle, {mem.get('rss_after_gib')} GiB after the load.")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE / "config.yaml"))
    ap.add_argument("--home", help="TAILOR_HOME (default: a new temporary folder)")
    ap.add_argument("--rates", type=float, nargs="+")
    ap.add_argument("--seconds", type=float)
    a = ap.parse_args()
    cfg = yaml.safe_load(Path(a.config).read_text())
    home = Path(a.home or tempfile.mkdtemp(prefix="serving_load_"))
    os.environ["TAILOR_HOME"] = str(home)
    env = {**os.environ, "TAILOR_HOME": str(home), "TAILOR_PSEUDONYM_KEY": "serving-load"}
    env.pop("MLFLOW_TRACKING_URI", None)
    took = setup(home, cfg, env)
    for stage, s in took.items():
        print(f"{stage}: {s:.1f} s")
    rows, mem = measure(home, cfg, env, a.rates or cfg["rates"], a.seconds or cfg["seconds"])
    manifest = json.loads((home / "serving" / "indices" / "manifest.json").read_text())
    sizes = {k: v["size"] for k, v in manifest["indices"].items()}
    kinds = ", ".join(f"{k} {v['type']}" for k, v in manifest["indices"].items())
    print(f"\nserved: {sizes['members']:,} members, {sizes['items']:,} items, {sizes['offers']} offers ({kinds})\n")
    print(table(rows, mem))
    (home / "serving_load.json").write_text(json.dumps({"rows": rows, "memory": mem, "indices": manifest}, indent=1))


if __name__ == "__main__":
    main()
