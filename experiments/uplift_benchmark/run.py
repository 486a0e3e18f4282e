"""Uplift benchmark: model + baselines over seeds on Hillstrom, plus Complete Journey's response propensity.

Usage: nice .venv/bin/python experiments/uplift_benchmark/run.py [config.yaml] [--from-raw]  (writes results.md
beside it; --from-raw re-summarizes raw.csv of the last run without fitting)
Each seed: 50/50 split stratified on arm x visit; the network (all arms, multi-task) and each baseline
(per comparison, n_estimators picked on the validation part of the train half) are scored on the test half.
No MLflow here: `tailor train uplift` is the tracked job; this repeats its protocol over seeds.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from datasets.config import load
from datasets.store import Dataset
from training.tables import markdown
from training.uplift.config import UpliftConfig
from training.uplift.data import load_frame, split
from training.uplift.job import MODEL, baselines, score_table

HERE = Path(__file__).parent
METRICS = ["qini_auc", "auuc", "uplift@30", "incr_per_1000@30", "random_per_1000@30", "value@30", "fit_s"]


def hillstrom(bench: dict) -> pd.DataFrame:
    """Per seed, model and baselines scored on the test half: one row per (seed, model, comparison, outcome)."""
    from training.uplift.lightning import fit_ensemble

    frame = load_frame(Dataset(bench["dataset"]))
    comps = {c: a for c, a in frame.comparisons().items() if c in bench["comparisons"]}
    rows = []
    for seed in bench["seeds"]:
        cfg = load(UpliftConfig, bench["config"], [f"dataset={bench['dataset']}", f"seed={seed}", *bench["overrides"]])
        sp = split(frame, cfg.outcome, seed, cfg.test_size, cfg.val_size)
        t0 = time.perf_counter()
        ens, st = fit_ensemble(frame, sp, cfg, seed)
        x = frame.x.to_numpy(np.float32)
        scores = {MODEL: {(c, o): ens.uplift(x, arms, o) for c, arms in comps.items() for o in frame.outcomes}}
        table = score_table(frame, sp, comps, scores, {MODEL: st["fit_s"]}, cfg.k)
        _, base, _, _ = baselines(frame, sp, comps, cfg, comps and next(iter(comps)))
        rows.append(pd.concat([table, base], ignore_index=True).assign(seed=seed))
        visit = pd.concat([table, base]).query("outcome == 'visit'").set_index(["comparison", "model"])["qini_auc"]
        print(
            f"seed {seed}: {time.perf_counter() - t0:.0f}s, test Qini on visit:", visit.round(4).to_dict(), flush=True
        )
    return pd.concat(rows, ignore_index=True)


def summary(raw: pd.DataFrame) -> str:
    """Markdown: mean ± std over seeds per comparison, outcome and model (best Qini first)."""
    cols = [m for m in METRICS if m in raw]
    out = []
    for (comp, outcome), g in raw.groupby(["comparison", "outcome"], sort=False):
        agg = g.groupby("model")[cols].agg(["mean", "std"])
        key = ("qini_auc", "mean") if g["qini_auc"].notna().any() else ("value@30", "mean")
        agg = agg.sort_values(key, ascending=False)
        shown = [c for c in cols if agg[(c, "mean")].notna().any()]
        out.append(f"\n### {comp}, {outcome} ({g['seed'].nunique()} seeds)\n")
        out.append("| model | " + " | ".join(shown) + " |")
        out.append("|---" * (len(shown) + 1) + "|")
        for model, r in agg.iterrows():
            cells = [f"{r[(c, 'mean')]:.1f}" if c == "fit_s" else _pm(r[(c, "mean")], r[(c, "std")], c) for c in shown]
            out.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _pm(mean: float, std: float, metric: str) -> str:
    digits = 1 if "per_1000" in metric else 4
    return "-" if np.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def main(path: str = str(HERE / "config.yaml"), *flags: str) -> None:
    """Run every seed (or with `--from-raw`, only re-summarize the raw.csv of the last run)."""
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    bench = yaml.safe_load(Path(path).read_text())
    if "--from-raw" in flags:
        raw = pd.read_csv(HERE / "raw.csv")
    else:
        raw = hillstrom(bench)
        raw.to_csv(HERE / "raw.csv", index=False)
    text = [f"# Uplift benchmark results\n\nDataset `{bench['dataset']}`, seeds {bench['seeds']}, config "
            f"`{bench['config']}` {bench['overrides']}. Mean ± std over seeds, test half.\n", summary(raw)]  # fmt: skip
    if bench.get("propensity_dataset"):
        from training.uplift.propensity import evaluate

        try:
            prop = evaluate(Dataset(bench["propensity_dataset"]))
            text.append("\n## Response propensity (NOT uplift): P(redeem | targeted), Complete Journey coupons\n")
            text.append(markdown(prop))
        except (FileNotFoundError, ValueError) as exc:
            text.append(f"\n## Response propensity: not run ({exc})\n")
    (HERE / "results.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main(*sys.argv[1:])
