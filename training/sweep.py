"""`tailor sweep churn|propensity`: an Optuna study over configs/sweeps/<model>.yaml, tracked in MLflow.

- Objective: ROC-AUC of the family's primary task on the held-out members at the training
  cutoffs (the validation side of the protocol); the test cutoff is never looked at.
- Pruning: optuna-integration's Lightning callback on the validation loss, epoch by epoch.
- Storage: an Optuna RDB (default SQLite under TAILOR_HOME; any SQLAlchemy URL, e.g. PostgreSQL,
  lets several workers share one study). Running the same command again continues the study.
- MLflow: one parent run per study (resumed on the next invocation) and one nested run per trial
  with its params, metrics and state (complete, pruned, failed). A crashing trial is recorded as
  failed and the sweep goes on.
- The best trial's full config is written to TAILOR_HOME/sweeps/<study>/best.yaml, which
  `tailor train <model> --config <that file>` takes as it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import mlflow
import numpy as np
import optuna
import yaml
from pydantic import BaseModel, Field

from datasets.config import apply_overrides, load, load_yaml
from datasets.paths import tailor_home
from datasets.store import Dataset
from training import tracking
from training.outcomes.config import OutcomeConfig

log = logging.getLogger(__name__)
FAMILIES = ("churn", "propensity")


class Param(BaseModel):
    type: str  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None


class SweepConfig(BaseModel):
    base: str
    direction: str = "maximize"
    seed: int = 0
    sampler: dict[str, int] = Field(default_factory=lambda: {"n_startup_trials": 8})
    pruner: dict[str, int] = Field(default_factory=lambda: {"n_startup_trials": 5, "n_warmup_steps": 4})
    space: dict[str, Param]


def default_storage() -> str:
    return f"sqlite:///{tailor_home() / 'optuna.db'}"


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> list[str]:
    """`key=value` overrides for one trial (values written as YAML, as --set takes them)."""
    out = []
    for key, p in space.items():
        if p.type == "categorical":
            value = trial.suggest_categorical(key, p.choices or [])
        elif p.type == "int":
            value = trial.suggest_int(key, int(p.low), int(p.high), log=p.log)
        elif p.type == "float":
            value = trial.suggest_float(key, p.low, p.high, log=p.log)
        else:
            raise ValueError(f"space.{key}.type must be float, int or categorical, got {p.type!r}")
        out.append(f"{key}={value}")
    return out


def default_params(config: dict[str, Any], space: dict[str, Param]) -> dict[str, Any]:
    """The base config's values for the space's keys (categorical lists as their YAML text)."""
    out = {}
    for key, p in space.items():
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        if p.type == "categorical":
            match = [c for c in p.choices or [] if c == node or (isinstance(c, str) and yaml.safe_load(c) == node)]
            if match:
                out[key] = match[0]
        elif p.low is not None and p.high is not None and p.low <= node <= p.high:
            out[key] = node
    return out


def _parent_run(experiment_id: str, study: str, cfg: SweepConfig, ds: Dataset, family: str) -> str:
    """The study's MLflow parent run: found by tag and resumed, or created."""
    found = tracking.client().search_runs([experiment_id], f"tags.`sweep.study` = '{study}'", max_results=1)
    if found:
        return found[0].info.run_id
    with tracking.start_run(family, "sweep", cfg, ds, f"sweep-{study}", tags={"sweep.study": study}) as run:
        return run.info.run_id


def run_sweep(
    model: str,
    dataset: str,
    trials: int,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
    config: str | None = None,
) -> optuna.Study:
    """Run (or continue) the study for `trials` more trials; prints the best trial and where its config went."""
    from optuna_integration import PyTorchLightningPruningCallback

    from training.outcomes.fit import fit_outcome_net
    from training.outcomes.frame import CATEGORICAL, NUMERIC
    from training.outcomes.job import build_frames
    from training.outcomes.metrics import roc_auc
    from training.outcomes.tabular import Preprocessor

    if model not in FAMILIES:
        raise ValueError(f"tailor sweep supports {', '.join(FAMILIES)}; got {model!r}")
    if trials <= 0:
        raise ValueError("--trials must be positive")
    scfg = SweepConfig.model_validate(load_yaml(config or f"sweeps/{model}"))
    fixed = [f"dataset={dataset}", *overrides]
    base = load(OutcomeConfig, scfg.base, fixed)
    ds = Dataset(base.dataset)
    name = study_name or f"{model}-{ds.name}"
    study = optuna.create_study(
        study_name=name,
        storage=storage or default_storage(),
        direction=scfg.direction,
        load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(**scfg.pruner),
    )
    # Seeded by the trials already there: a continued study draws new points instead of repeating its first ones,
    # and a sequential sweep with the same seed and history gives the same trials.
    study.sampler = optuna.samplers.TPESampler(seed=scfg.seed + len(study.trials), **scfg.sampler)
    if not study.trials:  # trial 0 = the default config, so the sweep's gain is measured in the same study
        study.enqueue_trial(default_params(base.model_dump(mode="json"), scfg.space), skip_if_exists=True)
    t0 = time.perf_counter()
    frames = build_frames(ds, base)  # every trial shares the split (the space holds model settings only)
    p = base.primary
    pre = Preprocessor().fit(frames.train, NUMERIC, CATEGORICAL)
    xt, xv = pre.transform(frames.train), pre.transform(frames.val)
    keep = ~np.isnan(frames.y_val[p])
    log.info("sweep %s: frames ready in %.1f s", name, time.perf_counter() - t0)
    experiment = tracking.ensure_experiment(model)
    parent = _parent_run(experiment, name, scfg, ds, model)

    def objective(trial: optuna.Trial) -> float:
        trial_overrides = suggest(trial, scfg.space)
        with (
            mlflow.start_run(run_id=parent),
            mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, experiment_id=experiment) as r,
        ):
            trial.set_user_attr("mlflow_run_id", r.info.run_id)
            mlflow.set_tags({"sweep.study": name, "sweep.trial": str(trial.number), "sweep.state": "running"})
            mlflow.log_params({tracking.metric_key(k): str(v) for k, v in trial.params.items()})
            try:
                cfg = load(OutcomeConfig, scfg.base, [*fixed, *trial_overrides])
                tasks = {
                    t: ("regression" if t == "spend" else "binary") for t in sorted(cfg.tasks, key=lambda t: t != p)
                }
                net_cfg = cfg.net.model_copy(update={"task_weights": cfg.tasks, "primary": p, "seed": cfg.seed})
                prune = PyTorchLightningPruningCallback(trial, monitor=f"val/loss_{p}")
                net = fit_outcome_net(xt, frames.y_train, xv, frames.y_val, tasks, net_cfg, callbacks=[prune])
                auc = roc_auc(frames.y_val[p][keep], net.predict_proba(xv.subset(keep), p))
                tracking.log_metrics({"val/auroc": auc, "fit/fit_s": net.fit_s,
                                      "fit/best_epoch": float(np.mean(net.best_epochs or [0]))})  # fmt: skip
                mlflow.set_tag("sweep.state", "complete")
                return auc
            except optuna.TrialPruned:
                mlflow.set_tag("sweep.state", "pruned")
                raise
            except Exception as exc:
                mlflow.set_tags({"sweep.state": "failed", "sweep.error": str(exc)[:500]})
                raise

    study.optimize(objective, n_trials=trials, catch=(Exception,), gc_after_trial=True)
    _finish(study, scfg, fixed, parent, name, time.perf_counter() - t0)
    return study


def _finish(study: optuna.Study, scfg: SweepConfig, fixed: list[str], parent: str, name: str, took: float) -> None:
    states = {s.name.lower(): sum(t.state == s for t in study.trials) for s in optuna.trial.TrialState}
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        print(f"study {name}: no trial completed ({states})")
        return
    best = study.best_trial
    resolved = apply_overrides(load_yaml(scfg.base), [*fixed, *(f"{k}={v}" for k, v in best.params.items())])
    out = tailor_home() / "sweeps" / name / "best.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    head = f"# best trial {best.number} of study {name}: val/auroc {best.value:.4f}\n"
    out.write_text(
        head + yaml.safe_dump(OutcomeConfig.model_validate(resolved).model_dump(mode="json"), sort_keys=False)
    )
    with mlflow.start_run(run_id=parent):
        tracking.log_metrics({"best/val/auroc": best.value, "sweep/trials": len(study.trials)})
        mlflow.set_tags({"sweep.best_trial": str(best.number), **{f"sweep.n_{k}": str(v) for k, v in states.items()}})
        mlflow.log_artifact(str(out))
    print(f"study {name}: {len(study.trials)} trials ({', '.join(f'{k} {v}' for k, v in states.items() if v)}), "
          f"this invocation {took:.0f} s")  # fmt: skip
    print(f"best trial {best.number}: val/auroc {best.value:.4f} with {best.params}")
    print(f"best config -> {out}\n  tailor train {OutcomeConfig.model_validate(resolved).family} --config {out}")
