"""The uplift ensemble as an MLflow pyfunc: member features in, uplift per comparison and outcome out.

`tailor score uplift` loads it with `mlflow.pyfunc.load_model` (torch and the plain module, no Lightning) and
writes the scores the service's offer ranker reads (`scores/uplift/<dataset>.parquet`).
Input: the feature columns of `training.uplift.data.features` (missing columns are read as 0, extra ones are
ignored). Output: one column `<comparison>/<outcome>` per comparison and outcome, e.g. `womens_vs_none/visit`
= expected visit probability if e-mailed minus if not (calibrated), and `.../spend` in currency.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from training.uplift.model import Ensemble, UpliftNet, UpliftShape


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """Networks + feature list + comparisons, loaded from the run's artifacts."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.ensemble, self.meta = load_artifacts(Path(context.artifacts["uplift"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Uplift per comparison and outcome for each input row."""
        return predict_frame(self.ensemble, self.meta, model_input)


def predict_frame(ensemble: Ensemble, meta: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Uplift columns for rows of member features (same order as the input)."""
    x = frame.reindex(columns=meta["features"]).astype("float32").fillna(0.0).to_numpy()
    pred = ensemble.predict(x)  # [rows, arms, outcomes]
    arms, outcomes = ensemble.shape.arms, ensemble.shape.outcomes
    out = {}
    for name, treated in meta["comparisons"].items():
        idx = [arms.index(a) for a in treated]
        for j, o in enumerate(outcomes):
            out[f"{name}/{o}"] = pred[:, idx, j].mean(1) - pred[:, 0, j]
    return pd.DataFrame(out, index=frame.index).astype("float64")


def save_artifacts(folder: Path, ensemble: Ensemble, features: list[str], comparisons: dict[str, list[str]]) -> Path:
    """Write the weights of every network, their shape, the feature list and the comparisons."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, net in enumerate(ensemble.nets):
        torch.save(net.state_dict(), folder / f"net_{k}.pt")
    meta = {"shape": ensemble.shape.to_dict(), "n_nets": len(ensemble.nets), "features": features,
            "comparisons": comparisons}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder


def load_artifacts(folder: Path) -> tuple[Ensemble, dict]:
    """The ensemble and its metadata from `save_artifacts`' folder."""
    meta = json.loads((folder / "meta.json").read_text())
    nets = []
    for k in range(meta["n_nets"]):
        net = UpliftNet(UpliftShape(**meta["shape"]))
        net.load_state_dict(torch.load(folder / f"net_{k}.pt", weights_only=True))
        nets.append(net.eval())
    return Ensemble(nets), meta


def example(x: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """arm_code few rows of features for the logged input example (float64 columns for a stable signature)."""
    return x.head(n).astype(np.float64).reset_index(drop=True)
