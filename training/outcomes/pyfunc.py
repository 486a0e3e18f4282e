"""Churn / propensity models as MLflow pyfuncs, and batch scoring of every member of a dataset.

The pyfunc takes the member frame of `training.outcomes.frame` (one row per member: the data
layer's RFM and tags, order behaviour, BG/NBD columns) and returns calibrated probabilities
for the family's primary task plus the net's other heads. Serving and `tailor score` build
that frame at "now" from the member's orders, so the model never sees a different input.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from datasets.layout import Layout
from datasets.split import dataset_end
from datasets.store import Dataset, write_parquet
from training.outcomes.calibration import calibrator_from_dict
from training.outcomes.config import OutcomeConfig
from training.outcomes.frame import CATEGORICAL, NUMERIC, member_frame
from training.outcomes.labels import orders, population
from training.outcomes.net import FittedOutcomeNet

log = logging.getLogger(__name__)
PIP = ["torch==2.13.0", "lightning==2.6.6", "mlflow==3.17.2", "pandas==3.1.1", "numpy==2.4.6", "scikit-learn==1.9.1"]


def predict_frame(net: FittedOutcomeNet, calibrator, meta: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Scores of each row: p_<primary> (calibrated), the other binary heads (uncalibrated), expected spend."""
    missing = [c for c in NUMERIC + CATEGORICAL if c not in frame.columns]
    if missing:
        raise ValueError(f"member frame is missing columns {missing}")
    logits = net.predict_logits(frame[NUMERIC + CATEGORICAL])
    primary = meta["primary"]
    ids = frame["member_id"] if "member_id" in frame.columns else frame.index
    out = pd.DataFrame({"member_id": np.asarray(ids, dtype=object)})
    out[f"p_{primary}"] = calibrator.transform(logits[primary])
    for task, kind in net.tasks.items():
        if task == primary:
            continue
        if kind == "binary":
            out[f"p_{task}_uncalibrated"] = 1.0 / (1.0 + np.exp(-logits[task]))
        else:
            out[f"expected_{task}_{meta['horizons']['buy']:g}d"] = np.expm1(np.minimum(logits[task], 30.0)).clip(min=0)
    return out


class OutcomePyfunc(mlflow.pyfunc.PythonModel):
    """Net + preprocessor + calibrator, loaded from the run's artifacts."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        folder = Path(context.artifacts["outcome"])
        self.net = FittedOutcomeNet.load(folder / "net.pt")
        self.calibrator = calibrator_from_dict(json.loads((folder / "calibrator.json").read_text()))
        self.meta = json.loads((folder / "meta.json").read_text())

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return predict_frame(self.net, self.calibrator, self.meta, model_input)


def log_outcome_model(net: FittedOutcomeNet, calibrator, cfg: OutcomeConfig, fr) -> str:
    """Log the pyfunc (with signature and input example) to the active run; returns its model URI."""
    meta = {
        "family": cfg.family,
        "primary": cfg.primary,
        "horizons": cfg.horizons,
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "test_cutoff": str(fr.test_cutoff),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "outcome"
        folder.mkdir()
        net.save(folder / "net.pt")
        (folder / "calibrator.json").write_text(json.dumps(calibrator.to_dict()))
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))
        example = fr.test.head(5).reset_index()[["member_id", *NUMERIC, *CATEGORICAL]]
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=OutcomePyfunc(),
            artifacts={"outcome": str(folder)},
            input_example=example,
            pip_requirements=PIP,
        )
    return info.model_uri


def score_path(family: str, dataset: str) -> Path:
    return Layout.from_env().scores(family, dataset)


def score_dataset(
    family: str | list[str],
    dataset: str,
    alias: str = "champion",
    version: int | None = None,
    feats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score every member with an order in the dataset, at its end, with a registered version; write Parquet.

    Several families (e.g. churn and propensity champions) share one member frame when their
    horizons agree; `feats` are the data layer's features at the dataset's end if already computed.
    Returns the last family's scores.
    """
    families = [family] if isinstance(family, str) else list(family)
    if version is not None and len(families) > 1:
        raise ValueError("--version applies to one family at a time")
    models = [_load_registered(f, alias, version) for f in families]
    ds = Dataset(dataset)
    t0 = time.perf_counter()
    o = orders(ds)
    cut = dataset_end(ds)
    members = population(o, cut)
    frames: dict[float, pd.DataFrame] = {}
    out = pd.DataFrame()
    for f, (inner, mv) in zip(families, models, strict=True):
        horizon = float(inner.meta["horizons"]["churn"])
        if horizon not in frames:
            frames[horizon] = member_frame(ds, o, cut, members, horizon, feats=feats).reset_index()
        t1 = time.perf_counter()
        out = inner.predict(None, frames[horizon])
        t2 = time.perf_counter()
        out = out.assign(model=f, version=int(mv.version), cutoff=cut)
        path = score_path(f, ds.name)
        write_parquet(out, path)
        print(
            f"scored {len(out):,} members of {ds.name} with {f} v{mv.version} at {cut.date()}: frame {t1 - t0:.1f} s, "
            f"model {t2 - t1:.1f} s ({len(out) / max(t2 - t1, 1e-9):,.0f} members/s) -> {path}"
        )
        t0 = time.perf_counter()
    return out


def _load_registered(family: str, alias: str, version: int | None):
    """(the unwrapped OutcomePyfunc, its ModelVersion) of a registered version or alias."""
    from training.tracking import client

    ref = f"models:/{family}/{version}" if version else f"models:/{family}@{alias}"
    try:
        mv = (
            client().get_model_version(family, str(version))
            if version
            else client().get_model_version_by_alias(family, alias)
        )
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"no {family} model at {ref}: train one (`tailor train {family}`) and promote it") from exc
    return mlflow.pyfunc.load_model(ref).unwrap_python_model(), mv


def score_family(family: str, dataset: str, version: int | None = None, chunk: int | None = None) -> pd.DataFrame:
    """`tailor score churn|propensity`: every member of `dataset` (one frame; `chunk` does not apply)."""
    return score_dataset(family, dataset, version=version)
