"""MLflow tracking: one run per job, named and tagged the same way everywhere.

Experiment = model family; run name `{config}-{git_sha7}-{config_hash6}`; tags `job`, `git_sha`,
`data_fingerprint`, `stage`, `dataset`. The store is SQLite under TAILOR_HOME unless
MLFLOW_TRACKING_URI says otherwise; artifacts go to TAILOR_HOME/mlartifacts/<experiment>.
Metric names are stage-namespaced (`val/ndcg@20`); MLflow refuses `@`, so `metric_key` writes
it as `_at_` (`val/ndcg_at_20`) and every reader (the promotion gate) goes through the same map.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import yaml
from mlflow import MlflowClient
from pydantic import BaseModel

from datasets.layout import Layout
from datasets.paths import repo_root

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from datasets.store import Dataset

_INVALID = re.compile(r"[^\w./ :-]+")


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite store TAILOR_HOME/mlflow.db."""
    return Layout.from_env().tracking_uri


def artifact_root() -> Path:
    """Folder holding every experiment's artifacts: TAILOR_HOME/mlartifacts."""
    return Layout.from_env().artifacts


def client() -> MlflowClient:
    """A client on the project's tracking (and registry) store; also points the fluent API there."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def ensure_experiment(name: str) -> str:
    """Id of experiment `name`, created when missing: with its artifacts under TAILOR_HOME/mlartifacts for a database
    store (SQLite, PostgreSQL), in the server's artifact root for a tracking server (workers on other machines must
    not be handed this machine's folder)."""
    c = client()
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if tracking_uri().startswith(("http://", "https://")):
        return c.create_experiment(name)
    return c.create_experiment(name, artifact_location=(artifact_root() / name).as_uri())


def metric_key(name: str) -> str:
    """The name MLflow stores for a metric: `@` -> `_at_`, `+` -> `_plus_`, other refused characters dropped."""
    return _INVALID.sub("", name.replace("@", "_at_").replace("+", "_plus_")).strip("/")


@cache
def git_sha() -> str:
    """Commit of the source checkout, or "unknown" outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_dict(config: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config as plain JSON-able data."""
    return config.model_dump(mode="json") if isinstance(config, BaseModel) else json.loads(json.dumps(config))


def config_hash(config: BaseModel | Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the resolved config."""
    return hashlib.sha256(json.dumps(config_dict(config), sort_keys=True).encode()).hexdigest()


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {"a.b.c": str(value)} (MLflow params; str() as Lightning's logger writes them)."""
    out: dict[str, str] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = str(v)
    return out


def data_fingerprint(dataset: Dataset | None, cutoff: str | None = None) -> dict[str, Any]:
    """What data a run saw: dataset, source, cutoff, row counts, content hash, batches."""
    if dataset is None:
        return {"dataset": None, "cutoff": cutoff, "fingerprint": "none"}
    m = dataset.manifest
    return {
        "dataset": m.get("dataset"),
        "source": m.get("source"),
        "cutoff": cutoff,
        "rows": m.get("rows", {}),
        "fingerprint": m.get("fingerprint", "unknown"),
        "batches": [b.get("id") for b in m.get("batches", [])],
        "ts_min": m.get("ts_min"),
        "ts_max": m.get("ts_max"),
    }


@contextmanager
def start_run(
    family: str,
    job: str,
    config: BaseModel | Mapping[str, Any],
    dataset: Dataset | None,
    config_name: str,
    *,
    stage: str = "dev",
    cutoff: str | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Open the job's one MLflow run (experiment = family) with tags, params, config and data fingerprint."""
    c = client()
    exp_id = ensure_experiment(family)
    cfg = config_dict(config)
    sha = git_sha()
    fp = data_fingerprint(dataset, cutoff)
    run_tags = {
        "job": job,
        "git_sha": sha,
        "data_fingerprint": fp["fingerprint"],
        "stage": stage,
        "dataset": fp["dataset"] or "none",
        "config_name": config_name,
        "config_hash": config_hash(cfg),
        **(tags or {}),
    }
    name = f"{config_name}-{sha[:7]}-{config_hash(cfg)[:6]}"
    # Under `mlflow run` (MLproject), MLflow hands the child its own launcher run through MLFLOW_RUN_ID; the job
    # still logs its one run in the family's experiment, and records which launcher run started it.
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)
    if launcher:
        run_tags["mlproject_run_id"] = launcher
    with mlflow.start_run(experiment_id=exp_id, run_name=name, tags=run_tags, nested=nested) as run:
        if cutoff is not None:
            c.set_tag(run.info.run_id, "cutoff", cutoff)
        params = flatten(cfg)
        mlflow.log_params({metric_key(k): v[:250] for k, v in params.items()})  # as Lightning truncates: no clash
        mlflow.log_text(yaml.safe_dump(cfg, sort_keys=False), "config.yaml")
        mlflow.log_dict(fp, "data_fingerprint.json")
        yield run


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> dict[str, float]:
    """Log numeric metrics to the active run under `metric_key` names; returns what was logged."""
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        if value is None or isinstance(value, str | bool):
            continue
        v = float(value)
        if math.isinf(v):
            continue
        clean[metric_key(name)] = v
    if clean:
        mlflow.log_metrics(clean, step=step)
    return clean


def log_figure(fig: Figure, path: str) -> None:
    """Save a matplotlib figure as an artifact of the active run (e.g. `plots/roc.png`)."""
    mlflow.log_figure(fig, path)


def log_table(df: pd.DataFrame, path: str) -> None:
    """Save a table as an artifact of the active run: `.csv` as CSV, anything else as MLflow's JSON table."""
    if path.endswith(".csv"):
        mlflow.log_text(df.to_csv(index=False), path)
    else:
        mlflow.log_table(data=df, artifact_file=path if path.endswith(".json") else f"{path}.json")


def recall_at_k_plot(curves: Mapping[str, list[tuple[int, float]]], title: str = "Recall@K") -> Figure:
    """One line per model: recall against K."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for label, points in curves.items():
        ks, recalls = zip(*sorted(points), strict=True) if points else ((), ())
        ax.plot(ks, recalls, marker="o", label=label)
    ax.set(xlabel="K", ylabel="recall", title=title, ylim=(0, None))
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    fig.tight_layout()
    return fig
