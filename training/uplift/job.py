"""`tailor train uplift` / `tailor evaluate uplift`: the uplift ensemble beside every baseline, on one split.

Protocol (DESIGN.md, issue "offer response and uplift"): randomized exposures only; a 50/50 split stratified
on arm x outcome (seed `cfg.seed`); early stopping, calibration and the baselines' n_estimators are chosen on
a validation part carved from the train half. Every comparison (each arm vs none, any vs none) and binary
outcome is scored on the test half; `test/qini_auc` is the gated comparison on `cfg.outcome`, with every
baseline's figure logged beside it as `baseline/<name>/test/qini_auc`. arm_code dataset without randomized
exposures (targeted coupons) gets the response propensity instead, labelled as such and not registered.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from datasets.config import load
from datasets.store import Dataset
from training import tracking
from training.job import Comparison, run_job
from training.uplift import plots
from training.uplift.config import UpliftConfig
from training.uplift.data import UpliftFrame, check_outcome, comparison_rows, load_frame, split
from training.uplift.learners import GBMParams, tune
from training.uplift.metrics import evaluate, value_at_k

log = logging.getLogger(__name__)
PIP = ["torch==2.13.0", "mlflow==3.17.2", "pandas==3.1.1", "numpy==2.4.6"]
MODEL = "uplift_net"


def run(dataset: str, config: str = "uplift", overrides: Sequence[str] = (), job: str = "train") -> pd.DataFrame:
    """Fit, evaluate beside the baselines, log to MLflow; `job="train"` also logs and registers the model."""
    cfg = load(UpliftConfig, config, [f"dataset={dataset}", *overrides])
    ds = Dataset(cfg.dataset)
    try:
        frame = load_frame(ds)
    except ValueError as exc:
        if "no randomized exposures" not in str(exc):
            raise
        return _propensity_only(ds, cfg, config, job, str(exc))
    comps = frame.comparisons()
    gated = cfg.comparison or ("womens_vs_none" if "womens_vs_none" in comps else next(iter(comps)))
    if gated not in comps:
        raise ValueError(f"comparison '{gated}' not in dataset '{ds.name}' (has: {', '.join(comps)})")
    if cfg.outcome not in frame.outcomes:
        raise ValueError(f"outcome '{cfg.outcome}' not in dataset '{ds.name}' (has: {', '.join(frame.outcomes)})")
    check_outcome((frame.outcomes[cfg.outcome].to_numpy() > 0).astype(int), f"dataset '{ds.name}' {cfg.outcome}")
    sp = split(frame, cfg.outcome, cfg.seed, cfg.test_size, cfg.val_size)

    def compare(active: mlflow.ActiveRun) -> Comparison:
        from training.uplift.lightning import fit_ensemble

        ens, st = fit_ensemble(frame, sp, cfg, cfg.seed)
        tracking.log_metrics(
            {f"fit/{k}": v for k, v in st.items()} | {"fit/rows": len(sp.fit), "fit/val_rows": len(sp.val)}
        )
        x = frame.x.to_numpy(np.float32)
        scores = {MODEL: {(c, o): ens.uplift(x, arms, o) for c, arms in comps.items() for o in frame.outcomes}}
        fit_s = {MODEL: st["fit_s"]}
        table = score_table(frame, sp, comps, scores, fit_s, cfg.k)
        base_scores, base_table, importances, val = baselines(frame, sp, comps, cfg, gated)
        tracking.log_metrics(val)
        table = pd.concat([table, base_table], ignore_index=True)
        for _, r in table.iterrows():
            prefix = "" if r["model"] == MODEL else f"baseline/{r['model']}/"
            metrics = {m: r[m] for m in table.columns if m not in ("model", "comparison", "outcome", "fit_s")}
            tracking.log_metrics({f"{prefix}test/{r['comparison']}/{r['outcome']}/{m}": v for m, v in metrics.items()})
            if r["comparison"] == gated and r["outcome"] == cfg.outcome:
                tracking.log_metrics({f"{prefix}test/{m}": v for m, v in metrics.items()})
        te, t_te = comparison_rows(frame, sp.test, comps[gated])
        y_te = frame.outcomes[cfg.outcome].to_numpy()[te]
        curves = {MODEL: scores[MODEL][(gated, cfg.outcome)][te]} | {n: s[te] for n, s in base_scores.items()}
        tracking.log_figure(plots.curves(y_te, t_te, curves, f"{gated}, {cfg.outcome}"), "plots/qini_uplift_curves.png")
        importances[MODEL] = plots.sensitivity(ens, x[sp.val], comps[gated], cfg.outcome, list(frame.x.columns))
        tracking.log_figure(plots.importance(pd.DataFrame(importances)), "plots/feature_importance.png")
        headline = (
            f"uplift on {ds.name}: seed {cfg.seed}, test half {len(sp.test):,} rows; gated: {gated} / {cfg.outcome}"
        )
        return Comparison(table, headline, log_model=lambda: _log_model(ens, frame, comps), width=200)

    tags = {"estimand": "uplift", "comparison": gated}
    return run_job("uplift", job, cfg, ds, config, compare, tags=tags)


def score_table(frame: UpliftFrame, sp, comps: dict, scores: dict, fit_s: dict, k: float) -> pd.DataFrame:
    """One row per (model, comparison, outcome) the model scored: binary outcomes by the full set, spend at k."""
    rows = []
    for model, by in scores.items():
        for (comp, outcome), u in by.items():
            te, t = comparison_rows(frame, sp.test, comps[comp])
            y = frame.outcomes[outcome].to_numpy()[te]
            row = {"model": model, "comparison": comp, "outcome": outcome}
            if outcome == "spend":
                row[f"value@{round(k * 100)}"] = value_at_k(y, u[te], t, k)
            elif np.unique(y).size == 2:
                row |= evaluate(y, u[te], t, k)
            rows.append(row | {"fit_s": round(fit_s.get(model, np.nan), 1)})
    return pd.DataFrame(rows)


def baselines(frame: UpliftFrame, sp, comps: dict, cfg: UpliftConfig, gated: str) -> tuple:
    """Each baseline per comparison on cfg.outcome: tuned on validation, refitted on the train half, scored.

    Returns (test-half scores of the gated comparison per baseline, the scored table, gain importances of the
    gated comparison's learners, validation figures to log)."""
    b = cfg.baselines
    params = GBMParams(learning_rate=b.learning_rate, num_leaves=b.num_leaves, min_child_samples=b.min_child_samples)
    y_all = (frame.outcomes[cfg.outcome].to_numpy() > 0).astype(int)
    scores: dict[str, dict] = {}
    fit_s: dict[str, float] = {}
    gated_scores, importances, val = {}, {}, {}
    for comp, arms in comps.items():
        f, tf = comparison_rows(frame, sp.fit, arms)
        v, tv = comparison_rows(frame, sp.val, arms)
        for name in b.learners:
            fit_data, val_data = (frame.x.iloc[f], tf, y_all[f]), (frame.x.iloc[v], tv, y_all[v])
            learner, n, val_qini, secs = tune(name, params, b.n_estimators, cfg.seed, fit_data, val_data)
            scores.setdefault(name, {})[(comp, cfg.outcome)] = learner.uplift(frame.x)
            fit_s[name] = fit_s.get(name, 0.0) + secs
            val |= {f"baseline/{name}/val/{comp}/{cfg.outcome}/qini_auc": val_qini,
                    f"baseline/{name}/val/{comp}/n_estimators": n}  # fmt: skip
            if comp == gated:
                gated_scores[name] = scores[name][(comp, cfg.outcome)]
                importances[name] = learner.importance(list(frame.x.columns))
    return gated_scores, score_table(frame, sp, comps, scores, fit_s, cfg.k), importances, val


def _log_model(ens, frame: UpliftFrame, comps: dict) -> str:
    """Log the pyfunc (weights + feature list + comparisons) with signature and input example; returns its URI."""
    from mlflow.models import infer_signature

    from training.uplift.pyfunc import UpliftPyfunc, example, load_artifacts, predict_frame, save_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_artifacts(Path(tmp) / "uplift", ens, list(frame.x.columns), comps)
        ex = example(frame.x)
        signature = infer_signature(ex, predict_frame(*load_artifacts(folder), ex))
        info = mlflow.pyfunc.log_model(name="model", python_model=UpliftPyfunc(), artifacts={"uplift": str(folder)},
                                       signature=signature, input_example=ex, pip_requirements=PIP)  # fmt: skip
    return info.model_uri


def _propensity_only(ds: Dataset, cfg: UpliftConfig, config: str, job: str, why: str) -> pd.DataFrame:
    """Targeted data: log the response propensity (P(redeem | targeted)) labelled as such; nothing is registered."""
    from training.uplift.propensity import evaluate as propensity

    log.warning("%s", why)
    table = propensity(ds, cfg.seed)
    with tracking.start_run("uplift", job, cfg, ds, config, tags={"estimand": "response_propensity"}):
        for _, r in table.iterrows():
            tracking.log_metrics({f"response_propensity/{r['model']}/test/auroc": r["auroc"],
                                  f"response_propensity/{r['model']}/test/brier": r["brier"]})  # fmt: skip
        tracking.log_table(table, "response_propensity.csv")
    print(f"{ds.name}: no randomized exposures -> RESPONSE PROPENSITY P(redeem | targeted), not uplift; not registered")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m training.uplift.job {train,evaluate} --dataset D [--config C] [--set k=v ...]`."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m training.uplift.job")
    p.add_argument("job", choices=["train", "evaluate"])
    p.add_argument("--dataset", required=True)
    p.add_argument("--config", default="uplift")
    p.add_argument("--set", nargs="*", default=[], dest="overrides")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(a.dataset, a.config, a.overrides, a.job)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
