"""Labelled churn benchmark: OutcomeNet vs LightGBM vs logistic regression on the E Commerce churn table.

Near-copies (rows differing in at most `near_copy_max_diff` model-input fields) are joined into
groups (connected components) and kept in one fold by StratifiedGroupKFold; plain StratifiedKFold
is run beside it to show how much near-copies inflate the score. Inside each outer training fold
one inner fold (same scheme) is the validation window: it picks each model's settings, stops the
net and LightGBM early, and fits the calibrator (`choose_calibrator`). The outer fold only scores.

    nice python experiments/churn_benchmark/labelled.py [--config ...] [--seeds 0 1] [--out runs.csv]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import torch
import yaml
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.preprocessing import OneHotEncoder

from datasets.config import apply_overrides
from datasets.store import Dataset
from training.outcomes.calibration import choose_calibrator
from training.outcomes.fit import fit_outcome_net
from training.outcomes.metrics import classifier_report, log_loss
from training.outcomes.net import OutcomeNetConfig
from training.outcomes.tabular import Preprocessor, TabularData

HERE = Path(__file__).parent
log = logging.getLogger("labelled")


def load_members(cfg: dict) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The prepared members table (prepared from the source file when missing) and its feature columns."""
    try:
        members = Dataset(cfg["dataset"]).table("members")
    except FileNotFoundError:
        from datasets.config import load
        from datasets.prepare import prepare
        from datasets.settings import PrepareConfig

        prepare("ecommerce_churn", cfg["source_path"], load(PrepareConfig, "prepare"), dataset=cfg["dataset"])
        members = Dataset(cfg["dataset"]).table("members")
    attrs = [c for c in members.columns if c.startswith("attr_")]
    numeric = [c for c in attrs if pd.api.types.is_numeric_dtype(members[c])]
    categorical = ["region", *(c for c in attrs if c not in numeric)]
    return members, numeric, categorical


def near_copy_groups(x: pd.DataFrame, max_diff: int) -> np.ndarray:
    """Group id per row: connected components of 'differs in at most max_diff fields' (NaN equals NaN)."""
    codes = np.stack([pd.factorize(x[c], use_na_sentinel=False)[0] for c in x.columns], 1)
    src, dst = [], []
    for i in range(len(codes) - 1):
        j = np.flatnonzero((codes[i + 1 :] != codes[i]).sum(1) <= max_diff) + i + 1
        src.append(np.full(len(j), i))
        dst.append(j)
    s, d = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(s)), (s, d)), shape=(len(codes), len(codes)))
    return connected_components(graph, directed=False)[1]


def splits(scheme: str, y: np.ndarray, groups: np.ndarray, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if scheme == "grouped":
        return list(StratifiedGroupKFold(n, shuffle=True, random_state=seed).split(y, y, groups))
    return list(StratifiedKFold(n, shuffle=True, random_state=seed).split(y, y))


def fit_logreg(d: dict[str, TabularData], y: dict[str, np.ndarray], cfg: dict) -> tuple[dict, str]:
    """Standardized numerics (Preprocessor) + one-hot categoricals; C picked on inner validation log loss."""
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(d["train"].categorical)
    x = {k: np.hstack([v.numeric, onehot.transform(v.categorical)]) for k, v in d.items()}
    best = None
    for c in cfg["C"]:
        m = LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"])
        loss = log_loss(y["val"], m.predict_proba(x["val"])[:, 1])
        if best is None or loss < best[0]:
            best = (loss, c, m)
    return {k: best[2].decision_function(x[k]) for k in ("val", "test")}, f"C={best[1]}"


def fit_lightgbm(raw: dict[str, np.ndarray], n_cat: int, y: dict[str, np.ndarray], cfg: dict) -> tuple[dict, str]:
    """Raw numerics (NaN kept) + categorical codes; candidates and rounds picked on inner validation."""
    cats = list(range(raw["train"].shape[1] - n_cat, raw["train"].shape[1]))
    best = None
    for cand in cfg["candidates"]:
        m = lgb.LGBMClassifier(**cfg["base"], **cand)
        m.fit(
            raw["train"],
            y["train"],
            eval_X=(raw["val"],),
            eval_y=(y["val"],),
            categorical_feature=cats,
            callbacks=[lgb.early_stopping(cfg["early_stopping_rounds"], verbose=False)],
        )
        loss = log_loss(y["val"], m.predict_proba(raw["val"])[:, 1])
        if best is None or loss < best[0]:
            best = (loss, cand, m)
    m = best[2]
    scores = {k: m.predict(raw[k], raw_score=True, num_iteration=m.best_iteration_) for k in ("val", "test")}
    return scores, f"{best[1]} trees={m.best_iteration_}"


def fit_net(
    frames: dict[str, pd.DataFrame],
    cols: tuple[list[str], list[str]],
    y: dict[str, np.ndarray],
    cfg: dict,
    pre_cfg: dict,
) -> tuple[dict, str]:
    """OutcomeNet candidates (config x n_bins), the one with the lowest inner-validation log loss kept."""
    best = None
    for n_bins in cfg["n_bins"]:
        pre = Preprocessor(pre_cfg["min_count"], pre_cfg["skew_threshold"], n_bins).fit(frames["train"], *cols)
        d = {k: pre.transform(f) for k, f in frames.items()}
        for cand in cfg["candidates"]:
            net_cfg = OutcomeNetConfig(**{**cfg["base"], **cand})
            fitted = fit_outcome_net(
                d["train"], {"churn": y["train"]}, d["val"], {"churn": y["val"]}, {"churn": "binary"}, net_cfg
            )
            scores = {k: fitted.predict_logits(d[k])["churn"] for k in ("val", "test")}
            loss = log_loss(y["val"], 1 / (1 + np.exp(-scores["val"])))
            if best is None or loss < best[0]:
                best = (loss, f"{cand} bins={n_bins} epoch={fitted.best_epochs}", scores)
    return best[2], best[1]


def run_fold(
    members: pd.DataFrame,
    cols: tuple[list[str], list[str]],
    tr: np.ndarray,
    te: np.ndarray,
    inner: tuple[np.ndarray, np.ndarray],
    cfg: dict,
    models: list[str],
) -> list[dict]:
    """Fit each model on inner-train, tune/stop/calibrate on inner-val, score the outer test fold."""
    idx = {"train": tr[inner[0]], "val": tr[inner[1]], "test": te}
    frames = {k: members.iloc[v] for k, v in idx.items()}
    y = {k: members["label_churn"].to_numpy()[v] for k, v in idx.items()}
    pcfg = cfg["preprocess"]
    pre = Preprocessor(pcfg["min_count"], pcfg["skew_threshold"]).fit(frames["train"], *cols)
    d = {k: pre.transform(f) for k, f in frames.items()}
    raw = {k: np.hstack([f[cols[0]].to_numpy(float), d[k].categorical]) for k, f in frames.items()}
    rows = []
    for model in models:
        t0 = time.perf_counter()
        if model == "logreg":
            scores, chosen = fit_logreg(d, y, cfg["logreg"])
        elif model == "lightgbm":
            scores, chosen = fit_lightgbm(raw, len(cols[1]), y, cfg["lightgbm"])
        else:
            scores, chosen = fit_net(frames, cols, y, cfg["net"], pcfg)
        fit_s = time.perf_counter() - t0
        cal = choose_calibrator(scores["val"], y["val"])
        report = classifier_report(y["test"], cal.transform(scores["test"]))
        raw_auc = classifier_report(y["test"], 1 / (1 + np.exp(-scores["test"])))["auroc"]
        val_loss = log_loss(y["val"], 1 / (1 + np.exp(-scores["val"])))
        rows.append(
            {
                "model": model,
                **report,
                "auroc_uncal": raw_auc,
                "val_log_loss": val_loss,
                "calibrator": cal.kind,
                "fit_s": fit_s,
                "chosen": chosen,
            }
        )
        log.info("%s auroc %.4f ece %.4f %.1fs %s", model, report["auroc"], report["ece"], fit_s, chosen)
    return rows


def summarize(runs: pd.DataFrame) -> str:
    """Markdown table: mean ± std over all (seed, fold) pairs; seed-std is the spread of per-seed means."""
    head = [
        "scheme",
        "model",
        "ROC-AUC",
        "per-seed std",
        "PR-AUC",
        "Brier",
        "ECE",
        "log loss",
        "inner-val log loss",
        "fit s/fold",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (scheme, model), g in runs.groupby(["scheme", "model"], sort=False):
        seed_std = g.groupby("seed")["auroc"].mean().std(ddof=0)
        lines.append(
            f"| {scheme} | {model} | {g.auroc.mean():.3f} ± {g.auroc.std(ddof=0):.3f} | {seed_std:.3f} | "
            f"{g.auprc.mean():.3f} | {g.brier.mean():.4f} | {g.ece.mean():.4f} | {g.log_loss.mean():.4f} | "
            f"{g.val_log_loss.mean():.4f} | {g.fit_s.mean():.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=HERE / "labelled_config.yaml", type=Path)
    ap.add_argument("--seeds", type=int, nargs="*", help="fold-assignment seeds (default: the config's)")
    ap.add_argument("--models", nargs="*", default=["logreg", "lightgbm", "outcome_net"])
    ap.add_argument("--max-diff", type=int, help="near-copy threshold (default: the config's)")
    ap.add_argument("--schemes", nargs="*", default=["grouped", "plain"])
    ap.add_argument("--set", nargs="*", default=[], help="config overrides, e.g. net.base.dropout=0.3")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("TAILOR_HOME", "var")) / "churn_labelled_runs.csv")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("lightning", "lightning.pytorch", "training.outcomes.calibration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(1)
    cfg = apply_overrides(yaml.safe_load(a.config.read_text()), a.set)
    members, numeric, categorical = load_members(cfg)
    y = members["label_churn"].to_numpy()
    max_diff = cfg["near_copy_max_diff"] if a.max_diff is None else a.max_diff
    groups = near_copy_groups(members[numeric + categorical], max_diff)
    sizes = np.bincount(groups)
    pure = pd.Series(y).groupby(groups).nunique().eq(1).mean()
    log.info(
        "%d rows, %d groups, %d rows with a near-copy, largest group %d, label-pure groups %.3f",
        len(y),
        len(sizes),
        int((sizes[groups] > 1).sum()),
        sizes.max(),
        pure,
    )
    seeds = a.seeds if a.seeds is not None else cfg["seeds"]
    rows = []
    for scheme in a.schemes:
        for seed in seeds if scheme == "grouped" else seeds[: cfg["plain_seeds"]]:
            for fold, (tr, te) in enumerate(splits(scheme, y, groups, cfg["folds"], seed)):
                inner = splits(scheme, y[tr], groups[tr], cfg["inner_folds"], seed + 1000)[0]
                log.info("%s seed %d fold %d: train %d val %d test %d", scheme, seed, fold, *map(len, (*inner, te)))
                for r in run_fold(members, (numeric, categorical), tr, te, inner, cfg, a.models):
                    rows.append({"scheme": scheme, "seed": seed, "fold": fold, **r})
    runs = pd.DataFrame(rows)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    runs.to_csv(a.out, index=False)
    print(summarize(runs))
    print(f"\nper-fold rows: {a.out}")


if __name__ == "__main__":
    main()
