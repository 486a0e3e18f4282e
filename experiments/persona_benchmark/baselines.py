"""Tune every recommendation baseline on the validation window, refit before the test cutoff, print the table.

TAILOR_HOME=... python experiments/persona_benchmark/baselines.py --dataset online_retail
TAILOR_HOME=... python experiments/persona_benchmark/baselines.py --dataset cj_full --days 28
"""

from __future__ import annotations

import argparse
import logging
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pandas as pd

from training.baselines import BASELINES, BLENDS, tune_and_evaluate
from training.tables import markdown

ORDER = ["buy_again+als", "buy_again+ease", "buy_again", "als", "ease", "item_knn", "recent_popularity", "popularity"]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Parse arguments, run the study, print one table per view."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="online_retail")
    p.add_argument("--days", type=float, default=30, help="test window = validation window length, days")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--models", nargs="*", default=None, help=f"subset of {[*BASELINES, *BLENDS]}")
    p.add_argument("--fixed-blend-components", action="store_true", help="blend the components' own best params")
    p.add_argument("--csv", default=None, help="also write the table here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    table = tune_and_evaluate(
        args.dataset, args.days, args.days, k=args.k, models=args.models, joint_blends=not args.fixed_blend_components
    )
    table["order"] = table["model"].map({m: i for i, m in enumerate(ORDER)})
    table = table.sort_values(["view", "order"]).drop(columns="order")
    if args.csv:
        table.to_csv(args.csv, index=False)
    k = args.k
    for view, part in table.groupby("view", sort=True):
        print(f"\n{args.dataset}, view={view} ({int(part['members'].iloc[0])} members)")
        cols = ["model", f"ndcg@{k}", f"recall@{k}", f"coverage@{k}", f"val_ndcg@{k}", "fit_s", "params"]
        print(markdown(part[cols]))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return table


if __name__ == "__main__":
    main()
