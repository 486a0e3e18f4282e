"""`tailor sweep churn|propensity|persona`: an Optuna study over configs/sweeps/<model>.yaml, tracked in MLflow.

- Objective: churn/propensity: ROC-AUC of the family's primary task on the held-out members at
  the training cutoffs (the validation side of the protocol); persona: NDCG@k over all items on
  the validation window (fitted before the validation cutoff, best validated epoch). The test
  cutoff is never looked at.
- Pruning: optuna-integration's Lightning callback, epoch by epoch, on the validation loss
  (churn/propensity) or on the validation NDCG@k the PersonaModule logs (persona).
- Storage: an Optuna RDB (default SQLite under TAILOR_HOME; any SQLAlchemy URL, e.g. PostgreSQL,
  lets several workers share one study). Running the same command again continues the study.
- Several workers (processes on one or many machines running the same command on one shared
  storage): the worker whose `create_study` wins the database's unique study name is the creator;
  it alone creates the MLflow parent run and enqueues trial 0 (the base config), and publishes the
  parent run id as the study's user attribute `mlflow_parent_run_id`, which the others wait for.
  On a shared (non-SQLite) storage the TPE seed also mixes in the worker's host and pid and TPE
  uses the constant liar, so workers do not draw the same points; trials carry a heartbeat, and a
  trial whose worker died is failed by the next worker that starts a trial (after `grace_period`
  seconds without a heartbeat), its MLflow run marked failed, and its params retried once.
- `trials` = trials this invocation runs; `total_trials` = run until the study holds that many
  trials (any state, counted study-wide across workers): what W workers sharing a study want.
- MLflow: one parent run per study (resumed on the next invocation) and one nested run per trial
  with its params, metrics and state (complete, pruned, failed). A crashing trial is recorded as
  failed and the sweep goes on.
- The best trial's full config is written to TAILOR_HOME/sweeps/<study>/best.yaml, which
  `tailor train <model> --config <that file>` takes as it is.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import mlflow
import optuna
import yaml
from pydantic import BaseModel, Field, model_validator

from datasets.config import Strict, apply_overrides, load, load_yaml
from datasets.layout import Layout
from datasets.store import Dataset
from training import tracking
from training.families import family, sweepable

log = logging.getLogger(__name__)


class Param(Strict):
    """One dimension of the space: a float or int range (`low`..`high`, optionally `log`), or `choices`."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Param:
        if self.type == "categorical" and not self.choices:
            raise ValueError("a categorical parameter needs choices")
        if self.type != "categorical" and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError(f"a {self.type} parameter needs low <= high")
        return self


class Sampler(Strict):
    n_startup_trials: int = Field(ge=0)


class Pruner(Strict):
    n_startup_trials: int = Field(ge=0)
    n_warmup_steps: int = Field(ge=0)


class SweepConfig(Strict):
    """configs/sweeps/<model>.yaml: the search space over keys of the `base` config, and the study's settings."""

    base: str  # the config every trial starts from (configs/<base>.yaml)
    direction: Literal["maximize", "minimize"]
    seed: int
    sampler: Sampler  # TPESampler arguments
    pruner: Pruner  # MedianPruner arguments
    space: dict[str, Param]
    # Shared (non-SQLite) storages only: a trial's worker beats every `heartbeat_interval` s; a RUNNING trial with no
    # beat for `grace_period` s is failed by the next worker to start a trial, and retried `max_retry` times.
    heartbeat_interval: int = 30
    grace_period: int = 120
    max_retry: int = 1


PARENT_ATTR = "mlflow_parent_run_id"
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # recorded on each trial (user attr `worker`, tag `sweep.worker`)


def default_storage() -> str:
    return Layout.from_env().optuna_url


def is_shared(url: str) -> bool:
    """A storage several workers may share (a database server), as opposed to a local SQLite file."""
    return not url.startswith("sqlite")


def _retry(what: str, fn, attempts: int = 6):
    """`fn()`, retried with jittered backoff: workers starting at once race on creating tables and experiments."""
    for i in range(attempts):
        try:
            return fn()
        except optuna.exceptions.DuplicatedStudyError:
            raise
        except Exception as exc:  # sqlalchemy IntegrityError/ProgrammingError, MlflowException RESOURCE_ALREADY_EXISTS
            if i == attempts - 1:
                raise
            log.info("%s: %s; retrying", what, str(exc).splitlines()[0][:200])
            time.sleep(random.uniform(0.2, 1.0) * (i + 1))
    raise AssertionError("unreachable")


def _mark_lost(study: optuna.Study, trial: optuna.trial.FrozenTrial, max_retry: int) -> None:
    """A trial failed for want of a heartbeat (its worker died): mark its MLflow run failed, then retry its params."""
    run_id = trial.user_attrs.get("mlflow_run_id")
    if run_id:
        try:
            c = tracking.client()
            c.set_tag(run_id, "sweep.state", "failed")
            c.set_tag(run_id, "sweep.error", "worker lost: no heartbeat")
            c.set_terminated(run_id, "FAILED")
        except Exception as exc:
            log.warning("could not mark MLflow run %s of lost trial %d failed: %s", run_id, trial.number, exc)
    log.warning("trial %d lost its worker (no heartbeat): failed%s", trial.number, ", retrying" if max_retry else "")
    if max_retry:
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, trial)


def make_storage(url: str, cfg: SweepConfig) -> optuna.storages.RDBStorage:
    """The Optuna RDB; on a database server with pre-ping (connections dropped by the server are replaced) and
    heartbeats (a dead worker's trial is failed and retried)."""
    if not is_shared(url):
        return optuna.storages.RDBStorage(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: "experimental" since 2.9
        return _retry(
            "optuna storage",
            lambda: optuna.storages.RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=cfg.heartbeat_interval,
                grace_period=cfg.grace_period,
                heartbeat_stale_trial_callback=lambda study, trial: _mark_lost(study, trial, cfg.max_retry),
            ),
        )


def open_study(storage: optuna.storages.RDBStorage, name: str, cfg: SweepConfig) -> tuple[optuna.Study, bool]:
    """Create the study or load it; True when this worker created it (the database arbitrates: one creator)."""
    pruner = optuna.pruners.MedianPruner(**cfg.pruner.model_dump())
    try:
        study = _retry(
            "create study",
            lambda: optuna.create_study(study_name=name, storage=storage, direction=cfg.direction, pruner=pruner),
        )
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, pruner=pruner), False


def sampler_seed(seed: int, n_trials: int, shared: bool) -> int:
    """The sweep's seed plus the trials already there (a continued study draws new points); on a shared storage
    also the worker's host and pid, so workers that start together draw different points."""
    if not shared:
        return seed + n_trials
    return (seed + n_trials + zlib.crc32(WORKER.encode())) % 2**32


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


def _new_parent(study: str, cfg: SweepConfig, ds: Dataset, family: str) -> str:
    with tracking.start_run(family, "sweep", cfg, ds, f"sweep-{study}", tags={"sweep.study": study}) as run:
        return run.info.run_id


def _parent_run(
    study: optuna.Study,
    created: bool,
    experiment_id: str,
    cfg: SweepConfig,
    ds: Dataset,
    family: str,
    default: dict[str, Any],
    wait_s: float = 120.0,
) -> str:
    """The study's one MLflow parent run; the study's creator also enqueues trial 0 (the base config).

    The creator makes both and then publishes the run id as the study's user attribute; every other worker waits for
    it. A study without the attribute (its creator died first, or it predates this) falls back to the oldest parent
    run carrying the study's tag, or a new one."""
    name = study.study_name
    if created:
        run_id = _new_parent(name, cfg, ds, family)
        study.enqueue_trial(default, skip_if_exists=True)  # before publishing: whoever sees the run id sees trial 0
        study.set_user_attr(PARENT_ATTR, run_id)
        return run_id
    deadline = time.monotonic() + wait_s
    fresh = all(t.state == optuna.trial.TrialState.WAITING for t in study.trials)  # no trial has run yet
    while fresh and PARENT_ATTR not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.5)  # the creator is between create_study and publishing (a second or two)
    run_id = study.user_attrs.get(PARENT_ATTR)
    if run_id:
        return run_id
    log.warning("study %s has no %s: looking for its parent run by tag", name, PARENT_ATTR)
    found = tracking.client().search_runs(
        [experiment_id], f"tags.`sweep.study` = '{name}' and tags.job = 'sweep'", order_by=["attributes.start_time ASC"]
    )
    run_id = found[0].info.run_id if found else _new_parent(name, cfg, ds, family)
    if not study.trials:
        study.enqueue_trial(default, skip_if_exists=True)
    study.set_user_attr(PARENT_ATTR, run_id)
    return run_id


Trainer = Callable[[Any, optuna.Trial], tuple[float, dict[str, float]]]


def run_sweep(
    model: str,
    dataset: str,
    trials: int | None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
    config: str | None = None,
    total_trials: int | None = None,
) -> optuna.Study:
    """Run (or continue) the study for `trials` more trials, or until it holds `total_trials` (study-wide, any
    worker), whichever comes first (neither: 20 trials); prints the best trial and where its config went."""
    fam = family(model)
    logging.getLogger("training.trainer.epochs").setLevel(logging.WARNING)  # Optuna's line per trial is the story
    if model not in sweepable():
        raise ValueError(f"tailor sweep supports {', '.join(sweepable())}; got {model!r}")
    if trials is None and total_trials is None:
        trials = 20
    if (trials is not None and trials <= 0) or (total_trials is not None and total_trials <= 0):
        raise ValueError("--trials and --total-trials must be positive")
    scfg = SweepConfig.model_validate(load_yaml(config or f"sweeps/{model}"))
    fixed = [f"dataset={dataset}", *overrides]
    cls = fam.config_class()
    base = load(cls, scfg.base, fixed)
    ds = Dataset(base.dataset)
    name = study_name or f"{model}-{ds.name}"
    url = storage or default_storage()
    study, created = open_study(make_storage(url, scfg), name, scfg)
    if is_shared(url):  # a trial left RUNNING by a dead worker is failed (and retried) now, not only before a trial
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    # Seeded by the trials already there: a continued study draws new points instead of repeating its first ones,
    # and a sequential sweep with the same seed and history gives the same trials.
    study.sampler = optuna.samplers.TPESampler(
        seed=sampler_seed(scfg.seed, len(study.trials), is_shared(url)),
        constant_liar=is_shared(url),
        **scfg.sampler.model_dump(),
    )
    experiment = _retry("mlflow experiment", lambda: tracking.ensure_experiment(model))
    # trial 0 = the default config, so the sweep's gain is measured in the same study
    default = default_params(base.model_dump(mode="json"), scfg.space)
    parent = _parent_run(study, created, experiment, scfg, ds, model, default)
    t0 = time.perf_counter()
    metric, train = fam.sweep_objective()(ds, base)
    log.info("sweep %s: data ready in %.1f s", name, time.perf_counter() - t0)

    def objective(trial: optuna.Trial) -> float:
        trial_overrides = suggest(trial, scfg.space)
        with (
            mlflow.start_run(run_id=parent),
            mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, experiment_id=experiment) as r,
        ):
            trial.set_user_attr("mlflow_run_id", r.info.run_id)
            trial.set_user_attr("worker", WORKER)
            mlflow.set_tags({"sweep.study": name, "sweep.trial": str(trial.number), "sweep.state": "running",
                             "sweep.worker": WORKER})  # fmt: skip
            mlflow.log_params({tracking.metric_key(k): str(v) for k, v in trial.params.items()})
            try:
                value, extra = train(load(cls, scfg.base, [*fixed, *trial_overrides]), trial)
                tracking.log_metrics({metric: value, **extra})
                mlflow.set_tag("sweep.state", "complete")
                return value
            except optuna.TrialPruned:
                mlflow.set_tag("sweep.state", "pruned")
                raise
            except Exception as exc:
                mlflow.set_tags({"sweep.state": "failed", "sweep.error": str(exc)[:500]})
                raise

    callbacks = []
    if total_trials is not None:
        # finished or running trials, every worker's; waiting ones (enqueued, retries) are not counted yet
        counted = tuple(s for s in optuna.trial.TrialState if s != optuna.trial.TrialState.WAITING)
        callbacks.append(optuna.study.MaxTrialsCallback(total_trials, states=counted))
        if len(study.get_trials(deepcopy=False, states=counted)) >= total_trials:
            trials = 0
    if trials != 0:
        study.optimize(objective, n_trials=trials, catch=(Exception,), gc_after_trial=True, callbacks=callbacks)
    _finish(study, scfg, cls, model, metric, fixed, parent, name, time.perf_counter() - t0)
    return study


def _finish(
    study: optuna.Study,
    scfg: SweepConfig,
    cls: type[BaseModel],
    model: str,
    metric: str,
    fixed: list[str],
    parent: str,
    name: str,
    took: float,
) -> None:
    states = {s.name.lower(): sum(t.state == s for t in study.trials) for s in optuna.trial.TrialState}
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        print(f"study {name}: no trial completed ({states})")
        return
    best = study.best_trial
    resolved = apply_overrides(load_yaml(scfg.base), [*fixed, *(f"{k}={v}" for k, v in best.params.items())])
    out = Layout.from_env().sweep(name) / "best.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    head = f"# best trial {best.number} of study {name}: {metric} {best.value:.4f}\n"
    tmp = out.with_name(f".best.{os.getpid()}.yaml")  # workers sharing TAILOR_HOME may finish together
    tmp.write_text(head + yaml.safe_dump(cls.model_validate(resolved).model_dump(mode="json"), sort_keys=False))
    tmp.replace(out)
    with mlflow.start_run(run_id=parent):
        tracking.log_metrics({f"best/{metric}": best.value, "sweep/trials": len(study.trials)})
        mlflow.set_tags({"sweep.best_trial": str(best.number), **{f"sweep.n_{k}": str(v) for k, v in states.items()}})
        mlflow.log_artifact(str(out))
    print(f"study {name}: {len(study.trials)} trials ({', '.join(f'{k} {v}' for k, v in states.items() if v)}), "
          f"this invocation {took:.0f} s")  # fmt: skip
    print(f"best trial {best.number}: {metric} {best.value:.4f} with {best.params}")
    print(f"best config -> {out}\n  tailor train {model} --config {out}")
