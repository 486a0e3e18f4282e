"""`tailor train|evaluate churn|propensity`: a calibrated multi-task net beside its baselines, one split.

Protocol (DESIGN.md): features only from before each cutoff. The test cutoff is the last whole
day of data minus the primary horizon (churn 90 days, buy 30), so its labels are fully observed; training
frames sit at the train cutoff (test - primary horizon, so their primary labels end where the
test starts) and optionally at earlier cutoffs. A share of members (by id hash) is held out of
training: early stopping, model choice and calibration use their frames (by default at every
training cutoff, pooling the seasons; `calibrate_on: latest` uses the latest cutoff only). Every
model and baseline is calibrated the same way there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd

from datasets.config import load
from datasets.split import protocol_split
from datasets.store import Dataset
from training import tracking
from training.job import Comparison, mlflow_logger, run_job
from training.outcomes import baselines as bl
from training.outcomes.calibration import Calibrator, choose_calibrator, fit_calibrator
from training.outcomes.config import OutcomeConfig
from training.outcomes.fit import fit_outcome_net
from training.outcomes.frame import CATEGORICAL, NUMERIC, member_frame
from training.outcomes.labels import orders, outcome_targets, population, window_labels
from training.outcomes.metrics import classifier_report
from training.outcomes.net import FittedOutcomeNet, permutation_importance
from training.outcomes.tabular import Preprocessor

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


@dataclass
class Frames:
    """Member frames and targets: training rows, validation rows, the calibration subset of them, test rows."""

    train: pd.DataFrame
    val: pd.DataFrame
    calib: np.ndarray  # boolean mask over val rows used for calibration (config calibrate_on)
    test: pd.DataFrame
    y_train: dict[str, np.ndarray]
    y_val: dict[str, np.ndarray]
    y_test: dict[str, np.ndarray]
    cutoffs: list[pd.Timestamp]
    test_cutoff: pd.Timestamp


def held_out(members: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Deterministic member-level holdout: True for about `share` of members, the same at every cutoff."""
    h = pd.util.hash_array(np.asarray(members, dtype=object), hash_key=f"tailor-val{seed:06d}")
    return (h % 10_000) < share * 10_000


def build_frames(ds: Dataset, cfg: OutcomeConfig) -> Frames:
    """The protocol's frames: training cutoffs, validation members, test cutoff with its labels."""
    o = orders(ds)
    # default: the last whole day with data, minus the horizon (its window is fully observed); the train
    # cutoff's labels may not run into the test window
    c = cfg.cutoffs
    split = protocol_split(
        o["ts"].max(),
        cfg.primary_days,
        whole_days=True,
        test_cutoff=c.test or None,
        val_cutoff=c.train or None,
        val_name="train",
    )
    end, test_cut, train_cut = split.end, split.test_cutoff, split.val_cutoff
    cuts = [train_cut - pd.Timedelta(days=cfg.stride_days * j) for j in range(cfg.n_train_cutoffs)]
    parts = []
    for k, cut in enumerate(cuts):
        members = population(o, cut)
        if len(members) == 0:
            log.warning("no member has an order before %s: cutoff skipped", cut.date())
            continue
        frame = member_frame(ds, o, cut, members, cfg.horizons["churn"])
        targets = outcome_targets(window_labels(o, cut, cfg.horizons, members, end=test_cut))
        frame = frame.assign(**{f"y_{t}": v for t, v in targets.items()}, _cut=k)
        parts.append(frame)
    if not parts:
        raise ValueError(f"dataset {ds.name}: no member has an order before the train cutoff {train_cut.date()}")
    rows = pd.concat(parts)
    val = held_out(rows.index.to_numpy(), cfg.val_share, cfg.seed)
    test_members = population(o, test_cut)
    test = member_frame(ds, o, test_cut, test_members, cfg.horizons["churn"])
    y_test = outcome_targets(window_labels(o, test_cut, cfg.horizons, test_members, end=end))
    tr, va = rows[~val], rows[val]

    def ys(f: pd.DataFrame) -> dict[str, np.ndarray]:
        return {t: f[f"y_{t}"].to_numpy(float) for t in ("churn", "buy", "spend")}

    for name, f in (("training", tr), ("validation", va)):
        y = f[f"y_{cfg.primary}"].dropna()
        if y.nunique() < 2:
            raise ValueError(
                f"{name} rows of {ds.name} have a single {cfg.primary} class ({y.unique()}): nothing to learn"
            )
    calib = (va["_cut"] == 0).to_numpy() if cfg.calibrate_on == "latest" else np.ones(len(va), dtype=bool)
    return Frames(tr, va, calib, test, ys(tr), ys(va), y_test, cuts, test_cut)


def _calibrate(kind: str, val_logits: np.ndarray, y: np.ndarray) -> Calibrator:
    return choose_calibrator(val_logits, y) if kind == "auto" else fit_calibrator(kind, val_logits, y)


def run(
    family: str, dataset: str, config: str | None = None, overrides: Sequence[str] = (), job: str = "train"
) -> pd.DataFrame:
    """Fit the net and every baseline, calibrate, evaluate on the test cutoff; `train` also logs and registers."""
    cfg = load(OutcomeConfig, config or family, [f"dataset={dataset}", *overrides])
    if cfg.family != family:
        raise ValueError(f"config {config or family} is for family {cfg.family}, not {family}")
    ds = Dataset(cfg.dataset)
    t0 = time.perf_counter()
    fr = build_frames(ds, cfg)
    p = cfg.primary
    log.info(
        "frames: %d training rows, %d validation rows, %d test members at %s (%.1f s)",
        len(fr.train),
        len(fr.val),
        len(fr.test),
        fr.test_cutoff.date(),
        time.perf_counter() - t0,
    )

    def compare(active: mlflow.ActiveRun) -> Comparison:
        tracking.log_metrics(
            {
                "data/train_rows": len(fr.train),
                "data/val_rows": len(fr.val),
                "data/test_members": len(fr.test),
                "data/test_base_rate": np.nanmean(fr.y_test[p]),
            }
        )
        pre = Preprocessor().fit(fr.train, NUMERIC, CATEGORICAL)
        xt, xv, xs = pre.transform(fr.train), pre.transform(fr.val), pre.transform(fr.test)
        tasks = {t: ("regression" if t == "spend" else "binary") for t in sorted(cfg.tasks, key=lambda t: t != p)}
        net_cfg = cfg.net.model_copy(update={"task_weights": cfg.tasks, "primary": p, "seed": cfg.seed})
        logger = mlflow_logger(active)
        net = fit_outcome_net(xt, fr.y_train, xv, fr.y_val, tasks, net_cfg, logger=logger, preprocessor=pre)
        scores = {
            "outcome_net": bl.BaselineScores(
                "outcome_net",
                net.predict_logits(xv)[p],
                net.predict_logits(xs)[p],
                net.fit_s,
                {"best_epochs": net.best_epochs},
            )
        }
        for name in cfg.baselines:
            scores[name] = _baseline(name, fr, xt, xv, xs, cfg)
        table, probs, calibrators = _evaluate(scores, fr, cfg)
        model = table.iloc[0].to_dict()
        tracking.log_metrics({f"test/{k}": model[k] for k in ("auroc", "auprc", "brier", "log_loss", "ece")})
        tracking.log_metrics(
            {
                "test/ece_uncalibrated": model["ece_uncalibrated"],
                "fit/fit_s": net.fit_s,
                "fit/best_epoch": float(np.mean(net.best_epochs or [0])),
            }
        )
        for r in table.iloc[1:].to_dict("records"):
            tracking.log_metrics(
                {f"baseline/{r['model']}/test/{k}": r[k] for k in ("auroc", "auprc", "brier", "log_loss", "ece")}
            )
        if "spend" in tasks:
            tracking.log_metrics(_spend_metrics(net, xs, fr))
        _plots(table, probs, fr, net, xv, scores, p)
        headline = (
            f"{family} on {ds.name}: test cutoff {fr.test_cutoff.date()}, {len(fr.test):,} members, "
            f"{p} rate {np.nanmean(fr.y_test[p]):.3f}; calibration on {int(fr.calib.sum()):,} held-out members"
        )

        def log_model() -> str:
            from training.outcomes.pyfunc import log_outcome_model

            return log_outcome_model(net, calibrators["outcome_net"], cfg, fr)

        return Comparison(table, headline, log_model=log_model, hide=["params"])

    return run_job(family, job, cfg, ds, config or family, compare, cutoff=str(fr.test_cutoff))


def _baseline(name: str, fr: Frames, xt, xv, xs, cfg: OutcomeConfig) -> bl.BaselineScores:
    p = cfg.primary
    if name == "recency":
        return bl.recency(fr.val, fr.test, p)
    if name == "bgnbd":
        return bl.bgnbd(fr.val, fr.test, p)
    yt, yv = fr.y_train[p], fr.y_val[p]
    if name == "logistic":
        return bl.logistic(xt, yt, xv, yv, xs, cfg.seed)
    return bl.lightgbm(fr.train, yt, fr.val, yv, fr.test, cfg.lightgbm, cfg.seed)


def _evaluate(scores: dict[str, bl.BaselineScores], fr: Frames, cfg: OutcomeConfig):
    """Calibrate each model on the held-out members at the latest training cutoff, then score the test members."""
    p = cfg.primary
    y_cal, y_test = fr.y_val[p][fr.calib], fr.y_test[p]
    rows, probs, calibrators = [], {}, {}
    for name, s in scores.items():
        cal = _calibrate(cfg.calibration, s.val[fr.calib], y_cal)
        prob = cal.transform(s.test)
        raw = 1.0 / (1.0 + np.exp(-s.test))
        rep = classifier_report(y_test, prob)
        rows.append(
            {
                "model": name,
                **{k: rep[k] for k in ("auroc", "auprc", "brier", "log_loss", "ece")},
                "ece_uncalibrated": classifier_report(y_test, raw)["ece"],
                "calibration": cal.kind,
                "fit_s": round(s.fit_s, 2),
                "params": s.params,
            }
        )
        probs[name], calibrators[name] = prob, cal
    return pd.DataFrame(rows), probs, calibrators


def _spend_metrics(net: FittedOutcomeNet, xs, fr: Frames) -> dict[str, float]:
    """Expected spend in the buy window: the net's spend head against BG/NBD expected orders x mean order value."""
    from scipy.stats import spearmanr

    truth = np.expm1(fr.y_test["spend"])
    pred = np.expm1(np.minimum(net.predict_logits(xs)["spend"], 30.0)).clip(min=0)
    bg = (fr.test["bg_expected_30"] * fr.test["order_value_mean"].fillna(0)).to_numpy(float)
    return {
        "test/spend_mae": float(np.abs(pred - truth).mean()),
        "test/spend_spearman": float(spearmanr(pred, truth)[0]),
        "baseline/bgnbd/test/spend_mae": float(np.abs(bg - truth).mean()),
        "baseline/bgnbd/test/spend_spearman": float(spearmanr(bg, truth)[0]),
    }


def _plots(table: pd.DataFrame, probs: dict, fr: Frames, net: FittedOutcomeNet, xv, scores: dict, p: str) -> None:
    from matplotlib.figure import Figure

    from training.outcomes.metrics import roc_auc
    from training.outcomes.plots import calibration_plot, importance_plot, roc_plot

    y = fr.y_test[p]
    curves = {name: (y, prob) for name, prob in probs.items()}
    tracking.log_figure(roc_plot(curves, title=f"ROC, {p} at the test cutoff"), "plots/roc.png")
    tracking.log_figure(
        calibration_plot(curves, title=f"Calibration, {p} (calibrated on held-out members)"), "plots/calibration.png"
    )
    keep = ~np.isnan(fr.y_val[p])
    imp = permutation_importance(net, xv.subset(keep), fr.y_val[p][keep], p, roc_auc, n_repeats=2)
    tracking.log_figure(
        importance_plot(imp, title="outcome_net: permutation importance (validation AUC drop)"),
        "plots/importance_net.png",
    )
    if scores.get("lightgbm") is not None and scores["lightgbm"].importance is not None:
        tracking.log_figure(
            importance_plot(scores["lightgbm"].importance, title="LightGBM gain importance"),
            "plots/importance_lightgbm.png",
        )
    h = net.history
    if not h.empty:
        fig = Figure(figsize=(6, 4), dpi=100)
        ax = fig.add_subplot()
        for col in [c for c in h.columns if c.endswith("/loss")]:
            ax.plot(h["epoch"], h[col], marker=".", label=col)
        ax.set(xlabel="epoch", ylabel="weighted loss", title="outcome_net training curves")
        ax.legend()
        tracking.log_figure(fig, "plots/training_curves.png")


def sweep_objective(ds: Dataset, base: OutcomeConfig) -> tuple[str, Callable]:
    """Objective of churn/propensity: ROC-AUC of the primary task on the validation members; pruned on the
    validation loss. The member frames are built once: every trial shares the split (the space holds model
    settings only)."""
    from optuna_integration import PyTorchLightningPruningCallback

    from training.outcomes.fit import fit_outcome_net
    from training.outcomes.frame import CATEGORICAL, NUMERIC
    from training.outcomes.job import build_frames
    from training.outcomes.metrics import roc_auc
    from training.outcomes.tabular import Preprocessor

    frames = build_frames(ds, base)
    p = base.primary
    pre = Preprocessor().fit(frames.train, NUMERIC, CATEGORICAL)
    xt, xv = pre.transform(frames.train), pre.transform(frames.val)
    keep = ~np.isnan(frames.y_val[p])

    def train(cfg: OutcomeConfig, trial: optuna.Trial) -> tuple[float, dict[str, float]]:
        tasks = {t: ("regression" if t == "spend" else "binary") for t in sorted(cfg.tasks, key=lambda t: t != p)}
        net_cfg = cfg.net.model_copy(update={"task_weights": cfg.tasks, "primary": p, "seed": cfg.seed})
        prune = PyTorchLightningPruningCallback(trial, monitor=f"val/loss_{p}")
        net = fit_outcome_net(xt, frames.y_train, xv, frames.y_val, tasks, net_cfg, callbacks=[prune])
        auc = roc_auc(frames.y_val[p][keep], net.predict_proba(xv.subset(keep), p))
        return auc, {"fit/fit_s": net.fit_s, "fit/best_epoch": float(np.mean(net.best_epochs or [0]))}

    return "val/auroc", train
