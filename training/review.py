"""Run comparison for reviewers (the notebooks call these): a family's runs, a run against its baselines,
against earlier runs, and its training curves, all read from the MLflow store of TAILOR_HOME.

Metric names are the stored ones (`test/auroc`, `baseline/lightgbm/test/auroc`, `test/all/ndcg_at_20`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from training.tracking import client

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def family_runs(family: str, job: str | None = "train", max_results: int = 50) -> pd.DataFrame:
    """The family's runs, newest first: run_id, start, job, dataset, config_name and every test/ metric."""
    c = client()
    exp = c.get_experiment_by_name(family)
    if exp is None:
        raise ValueError(f"no runs of '{family}' yet: run `tailor train {family} --dataset D` first")
    query = f"tags.job = '{job}'" if job else ""
    rows = []
    for r in c.search_runs([exp.experiment_id], query, max_results=max_results, order_by=["start_time DESC"]):
        metrics = {k: v for k, v in r.data.metrics.items() if k.startswith("test/")}
        rows.append({"run_id": r.info.run_id, "start": pd.Timestamp(r.info.start_time, unit="ms", tz="UTC"),
                     "job": r.data.tags.get("job"), "dataset": r.data.tags.get("dataset"),
                     "config_name": r.data.tags.get("config_name"), **metrics})  # fmt: skip
    return pd.DataFrame(rows)


def against_baselines(run_id: str) -> pd.DataFrame:
    """One row per model on the run (the model first, then each baseline), one column per test metric."""
    metrics = client().get_run(run_id).data.metrics
    rows: dict[str, dict[str, float]] = {"model": {}}
    for key, value in metrics.items():
        if key.startswith("test/"):
            rows["model"][key.removeprefix("test/")] = value
        elif key.startswith("baseline/") and "/test/" in key:
            name, metric = key.removeprefix("baseline/").split("/test/", 1)
            rows.setdefault(name, {})[metric] = value
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.rename_axis("model").reset_index()


def bar_figure(table: pd.DataFrame, metric: str, title: str | None = None) -> Figure:
    """Horizontal bars of one metric per model (the model highlighted)."""
    from matplotlib.figure import Figure

    t = table.dropna(subset=[metric]).sort_values(metric)
    fig = Figure(figsize=(6, 0.4 * len(t) + 1.2), dpi=100)
    ax = fig.add_subplot()
    ax.barh(t["model"].astype(str), t[metric], color=["#d62728" if m == "model" else "#1f77b4" for m in t["model"]])
    ax.set(xlabel=metric, title=title or metric)
    fig.tight_layout()
    return fig


def history_figure(runs: pd.DataFrame, metric: str) -> Figure:
    """One metric across a family's runs over time (one line per dataset)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    for dataset, g in runs.dropna(subset=[metric]).sort_values("start").groupby("dataset"):
        ax.plot(g["start"], g[metric], marker="o", label=str(dataset))
    ax.set(xlabel="run start", ylabel=metric, title=f"{metric} across runs")
    ax.legend()
    fig.autofmt_xdate()
    return fig


def curves_figure(run_id: str, prefix: str = "val/loss") -> Figure:
    """Every logged metric starting with `prefix` (and its train/ twin) against the step."""
    from matplotlib.figure import Figure

    c = client()
    keys = [k for k in c.get_run(run_id).data.metrics if k.startswith(prefix) or k.startswith("train/loss")]
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    for key in sorted(keys):
        hist = c.get_metric_history(run_id, key)
        ax.plot([m.step for m in hist], [m.value for m in hist], marker=".", label=key)
    ax.set(xlabel="step", ylabel="loss", title="training curves")
    if keys:
        ax.legend(fontsize=7)
    return fig


def logged_plot(run_id: str, path: str = "plots/calibration.png") -> str:
    """Local path of a plot the run logged (downloaded from the artifact store)."""
    import mlflow

    client()
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)
