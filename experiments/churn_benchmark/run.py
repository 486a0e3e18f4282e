"""Churn / propensity benchmark: every study of config.yaml over its seeds -> results.md (mean ± std per model).

export TAILOR_HOME=...   # with online_retail and cj_full prepared (see README.md)
python experiments/churn_benchmark/run.py [--only SUBSTRING] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
import yaml

from training.outcomes.job import run
from training.tables import markdown

HERE = Path(__file__).parent
METRICS = ["auroc", "auprc", "brier", "ece", "ece_uncalibrated", "fit_s"]


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """mean ± std per model over seeds, model order as in the first seed's table."""
    order = list(dict.fromkeys(rows["model"]))
    g = rows.groupby("model")[METRICS]
    mean, std = g.mean().reindex(order), g.std().reindex(order)
    out = pd.DataFrame(index=order)
    for m in METRICS:
        out[m] = [f"{a:.3f} ± {b:.3f}" if m != "fit_s" else f"{a:.1f}" for a, b in zip(mean[m], std[m], strict=True)]
    return out.reset_index(names="model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="run the studies whose name contains any of these")
    ap.add_argument("--seeds", type=int, nargs="*")
    ap.add_argument("--out", default=str(HERE / "results.md"))
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = yaml.safe_load((HERE / "config.yaml").read_text())
    seeds = a.seeds if a.seeds else cfg["seeds"]
    lines = [
        "# Churn and propensity benchmark: results",
        "",
        f"`python experiments/churn_benchmark/run.py` (seeds {seeds}); mean ± std over seeds; every model "
        "calibrated on the held-out members (see README.md). fit_s: mean seconds of the final fit (2-core machine).",
        "",
    ]
    for study in cfg["studies"]:
        if a.only and not any(o in study["name"] for o in a.only):
            continue
        t0, tables = time.perf_counter(), []
        for seed in seeds:
            t = run(study["family"], study["dataset"], overrides=[*study["overrides"], f"seed={seed}"], job="evaluate")
            tables.append(t.assign(seed=seed))
        rows = pd.concat(tables, ignore_index=True)
        took = f"`--set {' '.join(study['overrides'])}` ({time.perf_counter() - t0:.0f} s)"
        lines += [f"## {study['name']}", "", took, "", markdown(summarize(rows)), ""]
        Path(a.out).write_text("\n".join(lines))
        print("\n".join(lines[-4:]))


if __name__ == "__main__":
    main()
