"""The one skeleton of `tailor train|evaluate FAMILY`: open the run, compare, log, register, print.

Each family's `job.run` loads its config and data, then hands `run_job` a `compare(active_run)`
function that fits the model and its baselines on the fixed protocol and returns a `Comparison`:
the side-by-side table, the line that heads it, and (for `train`) how to log the model. The
skeleton owns what every family does the same way: one MLflow run per job, the table logged as
`side_by_side.csv`, registration of the logged model on `train` (never on `evaluate`), and the
printed story.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import mlflow
import pandas as pd
from pydantic import BaseModel

from datasets.store import Dataset
from training import tracking

log = logging.getLogger(__name__)
Job = Literal["train", "evaluate"]


@dataclass
class Comparison:
    """What a family's compare step hands back to the skeleton."""

    table: pd.DataFrame  # the model beside its baselines, same split (logged as side_by_side.csv)
    headline: str  # one line printed above the table: data, split, sizes
    log_model: Callable[[], str] | None = None  # logs the model in the open run, returns its URI (train only)
    hide: Sequence[str] = ()  # table columns logged but not printed
    width: int = 160


def run_job(
    family: str,
    job: str,
    cfg: BaseModel,
    ds: Dataset,
    config_name: str,
    compare: Callable[[mlflow.ActiveRun], Comparison],
    *,
    cutoff: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Run `compare` inside the job's one MLflow run; on `train`, log and register the model; print the table."""
    if job not in ("train", "evaluate"):
        raise ValueError(f"job must be train or evaluate, got {job!r}")
    with tracking.start_run(family, job, cfg, ds, config_name, cutoff=cutoff, tags=tags) as active:
        out = compare(active)
        tracking.log_table(out.table, "side_by_side.csv")
        if job == "train" and out.log_model is not None:
            from training.registry import register

            version = register(active.info.run_id, family, out.log_model())
            log.info("registered %s version %s (promote with `tailor promote %s`)", family, version, family)
    print(out.headline)
    with pd.option_context("display.width", out.width, "display.max_columns", 20, "display.max_rows", 200):
        shown = out.table.drop(columns=list(out.hide), errors="ignore")
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return out.table


def mlflow_logger(active: mlflow.ActiveRun) -> Any:
    """Lightning's MLflow logger writing into the job's open run (imported only when a family trains a net)."""
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(tracking_uri=tracking.tracking_uri(), run_id=active.info.run_id)
