"""Batch-scoring scale: train churn on a small synthetic dataset, then score every member of a large one.

Both datasets come from the same generator (same feature distribution). Stages run as separate
`tailor` processes; the scoring stage prints its own split (member frame vs model) and the
peak RSS comes from the kernel's accounting for that process.

    python experiments/churn_benchmark/score_scale.py --members 1000000   # default
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAILOR = [sys.executable, "-m", "tailor", "--log-level", "WARNING"]
QUICK = ["n_train_cutoffs=2", "net.max_epochs=20", "lightgbm.num_leaves=[15]", "lightgbm.min_child_samples=[50]"]


def stage(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, peak RSS GiB, stdout) of one tailor command."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(TAILOR + args, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {err.read()[-2000:]}")
        return wall, usage.ru_maxrss / 1024**2, out.read()  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--train-members", type=int, default=20_000)
    ap.add_argument("--home", help="TAILOR_HOME to use (default: a temporary folder)")
    a = ap.parse_args()
    home = Path(a.home or tempfile.mkdtemp(prefix="score_scale_"))
    env = {**os.environ, "TAILOR_HOME": str(home), "TAILOR_PSEUDONYM_KEY": "score-scale"}
    rows = []
    for name, n in (("small", a.train_members), ("large", a.members)):
        if not (home / "data" / name).exists():
            raw = home / "raw" / name
            rows.append((f"generate {n:,}", *stage(["generate", "--members", str(n), "--out", str(raw)], env)[:2]))
            rows.append(
                (f"prepare {n:,}", *stage(["prepare", "canonical", "--path", str(raw), "--dataset", name], env)[:2])
            )
    wall, rss, _ = stage(["train", "churn", "--dataset", "small", "--set", *QUICK], env)
    rows.append((f"train churn on {a.train_members:,}", wall, rss))
    wall, rss, out = stage(["score", "churn", "--dataset", "large", "--version", "1"], env)
    rows.append((f"score churn, {a.members:,} members", wall, rss))
    print("| stage | wall s | peak RSS GiB |\n| --- | --- | --- |")
    for label, w, r in rows:
        print(f"| {label} | {w:.1f} | {r:.2f} |")
    print(re.sub(r"\s+", " ", out.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
