"""Data-layer scale study: wall time and peak RSS of generate, prepare and features.

Each stage runs as its own `tailor` process; its peak resident memory comes from the
kernel's accounting for that process (wait4 rusage), so figures are per stage, not a sum.

    python experiments/data_scale/run.py                # sizes from config.yaml
    python experiments/data_scale/run.py --sizes 100000 # one size
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TAILOR = [sys.executable, "-m", "tailor", "--log-level", "WARNING"]


def run_stage(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GiB) of one command; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(TAILOR + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", help="member counts (default: config.yaml)")
    ap.add_argument("--skip-real", action="store_true")
    a = ap.parse_args()
    cfg = yaml.safe_load((HERE / "config.yaml").read_text())
    sizes = a.sizes or cfg["synthetic"]["sizes"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tailor-scale-") as home:
        env = {**os.environ, "TAILOR_HOME": home, "TAILOR_PSEUDONYM_KEY": "scale-study"}
        for n in sizes:
            out = Path(home) / f"raw-{n}"
            stages = {
                "generate": [
                    "generate",
                    "--members",
                    str(n),
                    "--seed",
                    str(cfg["synthetic"]["seed"]),
                    "--out",
                    str(out),
                    "--set",
                    f"events_per_member={cfg['synthetic']['events_per_member']}",
                ],
                "prepare": ["prepare", "canonical", "--path", str(out), "--dataset", f"synth{n}"],
                "features": ["features", f"synth{n}"],
            }
            rows.append(measure(f"synthetic {n:,} members", stages, env))
        if not a.skip_real:
            for real in cfg["real"]:
                name = f"real_{real['source']}"
                stages = {
                    "prepare": ["prepare", real["source"], "--path", real["path"], "--dataset", name],
                    "features": ["features", name],
                }
                rows.append(measure(f"{real['source']} ({real['path']})", stages, env))
    print(table(rows))


def measure(label: str, stages: dict[str, list[str]], env: dict[str, str]) -> dict:
    """Run the stages in order, printing each as it finishes."""
    result = {"label": label}
    for stage, args in stages.items():
        wall, peak = run_stage(args, env)
        result[stage] = (wall, peak)
        print(f"{label:<32} {stage:<9} {wall:8.1f} s  peak {peak:5.2f} GiB", flush=True)
    return result


def table(rows: list[dict]) -> str:
    """Markdown results table."""
    head = (
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}.\n\n"
        "| data | generate s (GiB) | prepare s (GiB) | features s (GiB) | total s | max peak GiB |\n"
        "| --- | --- | --- | --- | --- | --- |"
    )
    lines = [head]
    for r in rows:
        cells = [f"{r[s][0]:.1f} ({r[s][1]:.2f})" if s in r else "-" for s in ("generate", "prepare", "features")]
        total = sum(r[s][0] for s in ("generate", "prepare", "features") if s in r)
        peak = max(r[s][1] for s in ("generate", "prepare", "features") if s in r)
        lines.append(f"| {r['label']} | {' | '.join(cells)} | {total:.1f} | {peak:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
