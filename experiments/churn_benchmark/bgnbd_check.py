"""Our BG/NBD against lifetimes' BetaGeoFitter on UCI Online Retail: parameters, log-likelihood, fit time.

python experiments/churn_benchmark/bgnbd_check.py [--cutoff 2011-06-11] [--csv PATH]

Purchases: rows with a CustomerID, Quantity > 0, UnitPrice > 0 and an InvoiceNo not starting
with 'C'; one purchase per customer and invoice date. InvoiceDate is UK wall-clock time and is
read as UTC, so the calendar days are the source's (and what lifetimes sees). Both fits get the
same (frequency, recency, T) in days; both log-likelihoods are evaluated by our function at each
fit's parameters, in days (lifetimes reports its own on a rescaled time axis).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import pandas as pd

from training.outcomes.bgnbd import BGNBD, PARAMS, summary_from_purchases

CSV = "/work/shared/datasets/uci_online_retail/online_retail.csv.gz"


def load_purchases(path: str) -> pd.DataFrame:
    """member_id, ts (UTC): one row per customer and invoice date."""
    raw = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str}, parse_dates=["InvoiceDate"])
    ok = (
        raw["CustomerID"].notna()
        & (raw["Quantity"] > 0)
        & (raw["UnitPrice"] > 0)
        & ~raw["InvoiceNo"].str.startswith("C")
    )
    rows = raw.loc[ok, ["CustomerID", "InvoiceDate"]]
    out = pd.DataFrame(
        {"member_id": rows["CustomerID"].astype("int64"), "ts": rows["InvoiceDate"].dt.tz_localize("UTC")}
    )
    return out.assign(day=out["ts"].dt.floor("D")).drop_duplicates(["member_id", "day"]).drop(columns="day")


def timed(fn, repeats: int = 3) -> tuple[object, float]:
    """(result of the last call, best wall time over `repeats` calls)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cutoff", default="2011-06-11")
    ap.add_argument("--csv", default=CSV)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore")  # lifetimes / autograd deprecation noise
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import ConvergenceError, summary_data_from_transaction_data

    purchases = load_purchases(a.csv)
    summary = summary_from_purchases(purchases, a.cutoff)
    before = purchases[purchases["ts"] < pd.Timestamp(a.cutoff, tz="UTC")].assign(
        ts=lambda f: f["ts"].dt.tz_localize(None)
    )
    ref_summary = summary_data_from_transaction_data(
        before, "member_id", "ts", freq="D", observation_period_end=pd.Timestamp(a.cutoff)
    ).sort_index()
    same = np.array_equal(summary.to_numpy(float), ref_summary[["frequency", "recency", "T"]].to_numpy(float))
    rfm = (summary["frequency"], summary["recency"], summary["T"])
    print(
        f"cutoff {a.cutoff}: {len(summary)} customers, {int((summary['frequency'] > 0).sum())} with repeats; "
        f"summary identical to lifetimes': {same}"
    )

    ours = BGNBD().fit(*rfm)  # logs the degenerate-fit warning, if any, once
    logging.getLogger("training.outcomes.bgnbd").setLevel(logging.ERROR)
    _, t_ours = timed(lambda: BGNBD().fit(*rfm))
    try:
        ref, t_ref = timed(lambda: BetaGeoFitter(penalizer_coef=0.0).fit(*rfm))
    except ConvergenceError:  # lifetimes' BFGS gives up on degenerate (no-dropout) data at some cutoffs
        print("lifetimes: ConvergenceError (its BFGS stopped on precision loss); showing ours only")
        ref, t_ref = None, float("nan")
    ref_params = {k: float(ref.params_[k]) if ref is not None else float("nan") for k in PARAMS}
    ref_ll = float(BGNBD(params=ref_params).member_loglik(*rfm).sum())

    rows = {
        "ours (BGNBD)": {**ours.params, "loglik": ours.loglik, "fit_s": t_ours},
        "lifetimes": {**ref_params, "loglik": ref_ll, "fit_s": t_ref},
    }
    table = pd.DataFrame(rows).T[[*PARAMS, "loglik", "fit_s"]]
    with pd.option_context("display.width", 200):
        fmt = {k: "{:.6g}".format for k in PARAMS} | {"loglik": "{:.4f}".format, "fit_s": "{:.3f}".format}
        print(table.to_string(formatters=fmt))

    a_, b_ = ours.params["a"], ours.params["b"]
    alive = ours.p_alive(*rfm)
    print(f"degenerate: {ours.degenerate}; mean dropout per purchase a/(a+b) = {a_ / (a_ + b_):.3g}; ", end="")
    print(f"P(alive) min/median = {alive.min():.6f}/{np.median(alive):.6f}")
    if ref is None:
        return
    for name, fn in [("P(alive)", "p_alive"), ("E[purchases in 30 days]", "expected_purchases")]:
        args = (30, *rfm) if fn == "expected_purchases" else rfm
        gap = np.max(np.abs(getattr(ours, fn)(*args) / getattr(BGNBD(params=ref_params), fn)(*args) - 1))
        print(f"{name}: max relative difference between the two fits = {gap:.2e}")


if __name__ == "__main__":
    main()
