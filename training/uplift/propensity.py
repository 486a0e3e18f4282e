"""Response propensity on targeted (non-randomized) exposures: P(redeem | targeted), NOT uplift.

Complete Journey's campaigns were targeted, not randomized, so there is no control group and the
incremental effect of a coupon is not identified. What can be learned is who responds among the targeted:
a classifier of redemption given targeting, judged by ROC-AUC on a temporal split (the last campaigns by
start date are the test set; validation = the campaigns before them). Features: member attributes, the
campaign (one-hot), and the member's behaviour before the campaign start (purchases, spend, recency,
earlier redemptions). Model: LightGBM, Platt-calibrated on validation; baselines: the member's earlier
redemption rate, and logistic regression.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from datasets.store import Dataset
from training.uplift.data import check_outcome, features
from training.uplift.learners import GBMParams, _clf


def exposures_frame(ds: Dataset) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(features, outcome, exposure start) of every targeted exposure with a start time."""
    exp = ds.table("exposures")
    exp = exp.loc[exp["treated"].fillna(False).astype(bool) & exp["ts"].notna()].reset_index(drop=True)
    if exp.empty:
        raise ValueError(f"dataset '{ds.name}' has no targeted exposures with a time: no response to model")
    members = ds.table("members").drop_duplicates("member_id")
    rows = exp.merge(members, on="member_id", how="left")
    x = features(rows, rows["offer_id"].astype(str)).reset_index(drop=True)
    hist = _history(ds, exp)
    return pd.concat([x, hist], axis=1), exp["outcome"].astype(float).to_numpy(), exp["ts"].to_numpy()


def _history(ds: Dataset, exp: pd.DataFrame, days: float = 90.0) -> pd.DataFrame:
    """Per exposure: purchases and spend in the `days` before its start, recency, earlier redemptions."""
    ev = ds.table("events", ["member_id", "ts", "event_type", "amount"])
    out = pd.DataFrame(0.0, index=exp.index, columns=["purchases_90d", "spend_90d", "recency_days", "redeemed_before"])
    key = exp.reset_index()[["index", "member_id", "ts"]].rename(columns={"ts": "start"})
    for kind, cols in (
        ("purchase", ["purchases_90d", "spend_90d", "recency_days"]),
        ("coupon_redeem", ["redeemed_before"]),
    ):
        e = ev.loc[ev["event_type"] == kind, ["member_id", "ts", "amount"]]
        j = key.merge(e, on="member_id", how="inner")
        j = j.loc[j["ts"] < j["start"]]
        if kind == "coupon_redeem":
            out.loc[:, cols[0]] = j.groupby("index").size().reindex(exp.index).fillna(0).to_numpy()
            continue
        age = (j["start"] - j["ts"]).dt.total_seconds() / 86400
        recent = j.loc[age <= days]
        g = recent.groupby("index")
        out["purchases_90d"] = g.size().reindex(exp.index).fillna(0).to_numpy()
        out["spend_90d"] = g["amount"].sum().reindex(exp.index).fillna(0).to_numpy()
        out["recency_days"] = age.groupby(j["index"]).min().reindex(exp.index).fillna(365.0).to_numpy()
    return out.astype("float32")


def temporal_split(ts: np.ndarray, test_share: float = 0.3, val_share: float = 0.2) -> tuple[np.ndarray, ...]:
    """(fit, val, test) indices: the exposures of the latest campaign starts are test, the ones before val."""
    order = np.argsort(ts, kind="mergesort")
    starts = np.sort(np.unique(ts))
    cum = np.searchsorted(ts[order], starts, side="right") / len(ts)
    test_from = starts[np.searchsorted(cum, 1 - test_share)]
    val_from = starts[np.searchsorted(cum, (1 - test_share) * (1 - val_share))]
    idx = np.arange(len(ts))
    return idx[ts < val_from], idx[(ts >= val_from) & (ts < test_from)], idx[ts >= test_from]


def evaluate(ds: Dataset, seed: int = 0) -> pd.DataFrame:
    """ROC-AUC, Brier and base rate of redemption-given-targeting on the temporal test part, model beside baselines."""
    x, y, ts = exposures_frame(ds)
    fit, val, test = temporal_split(ts)
    for part, idx in (("fit", fit), ("validation", val), ("test", test)):
        check_outcome(y[idx], f"dataset '{ds.name}' ({part} campaigns)")
    gbm = _clf(GBMParams(n_estimators=300, min_child_samples=50), seed).fit(x.iloc[fit], y[fit])
    platt = LogisticRegression().fit(_logit(gbm.predict_proba(x.iloc[val])[:, 1])[:, None], y[val])
    scores = {"lightgbm_calibrated": platt.predict_proba(_logit(gbm.predict_proba(x.iloc[test])[:, 1])[:, None])[:, 1]}
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x.iloc[fit], y[fit])
    scores["logistic"] = lr.predict_proba(x.iloc[test])[:, 1]
    prior = x["redeemed_before"].to_numpy()[test]
    scores["past_redemptions"] = prior + 1e-3 * x["spend_90d"].to_numpy()[test]  # tie-break by recent spend
    rows = []
    for name, s in scores.items():
        brier = brier_score_loss(y[test], np.clip(s, 0, 1)) if name != "past_redemptions" else np.nan
        rows.append({"estimand": "response propensity (not uplift)", "model": name, "auroc": roc_auc_score(y[test], s),
                     "brier": brier, "base_rate": float(y[test].mean()), "test_exposures": len(test)})  # fmt: skip
    return pd.DataFrame(rows)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
