"""Validation and test NDCG@20 of every persona run in the MLflow store, with what each changed.

TAILOR_HOME=... python experiments/persona_benchmark/summarize.py [--dataset online_retail]
"""

from __future__ import annotations

import argparse

import pandas as pd

from training import tracking

KEYS = ["val/all/ndcg_at_20", "val/new/ndcg_at_20", "test/all/ndcg_at_20", "test/new/ndcg_at_20"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="online_retail")
    a = ap.parse_args()
    c = tracking.client()
    exp = c.get_experiment_by_name("persona")
    runs = c.search_runs([exp.experiment_id], f"tags.dataset = '{a.dataset}'", order_by=["start_time ASC"])
    rows = []
    for r in runs:
        m = r.data.metrics
        row = {"run": r.info.run_name, "job": r.data.tags.get("job")}
        for key in KEYS[:2]:  # best validation epoch (what chose the epoch count)
            hist = c.get_metric_history(r.info.run_id, key)
            row[key] = max((h.value for h in hist), default=float("nan"))
        row.update({k: m.get(k) for k in KEYS[2:]})
        row["best_epoch"] = m.get("fit/best_epoch")
        row["val_fit_s"], row["test_fit_s"] = m.get("fit/val_fit_s"), m.get("fit/test_fit_s")
        p = r.data.params
        row["settings"] = " ".join(
            f"{k}={p[k]}" for k in sorted(p) if k.startswith(("train.", "model.", "data.", "trainer."))
        )
        rows.append(row)
    with pd.option_context("display.width", 250, "display.max_colwidth", 200):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
