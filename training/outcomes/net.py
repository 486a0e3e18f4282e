"""OutcomeNet: an MLP over member features with one head per outcome (churn, buy30, spend30, ...).

Torch only: the plain nn.Module, its losses, the fitted bundle that scores and saves it, and
permutation importance. Scoring (the pyfunc, `tailor score`) needs nothing else; the thin
LightningModule and the training loop live in `fit.py`. Targets may hold NaN ("no label for this
row"), masked out of that task's loss, so tasks with partial labels train together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from datasets.config import Strict
from training.outcomes.tabular import Preprocessor, TabularData

TaskKind = Literal["binary", "regression"]


def embedding_dim(cardinality: int) -> int:
    """fast.ai's rule of thumb, capped: enough room for rare categories, not more."""
    return max(1, min(16, round(1.6 * cardinality**0.56)))


class OutcomeNet(nn.Module):
    """Embeddings + numerics -> MLP trunk -> one scalar head per task (logit or value)."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        tasks: dict[str, TaskKind],
        hidden: list[int],
        dropout: float = 0.1,
        norm: Literal["batch", "layer", "none"] = "batch",
    ) -> None:
        super().__init__()
        self.tasks, self.n_numeric, self.cardinalities = dict(tasks), n_numeric, list(cardinalities)
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim(c)) for c in cardinalities)
        width = n_numeric + sum(embedding_dim(c) for c in cardinalities)
        layers: list[nn.Module] = []
        for h in hidden:
            norm_layer = {"batch": nn.BatchNorm1d(h), "layer": nn.LayerNorm(h), "none": nn.Identity()}[norm]
            layers += [nn.Linear(width, h), norm_layer, nn.SiLU(), nn.Dropout(dropout)]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({t: nn.Linear(width, 1) for t in tasks})

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        z = self.trunk(torch.cat(parts, 1))
        return {t: head(z).squeeze(1) for t, head in self.heads.items()}


class OutcomeNetConfig(Strict):
    """Architecture and training settings of one OutcomeNet fit (the jobs take them from configs/<family>.yaml's
    `net`); seed, task weights and primary task are the job's, from the config's top level."""

    hidden: list[int]
    dropout: float = Field(ge=0, lt=1)
    norm: Literal["batch", "layer", "none"] = "batch"
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(gt=0)
    max_epochs: int = Field(gt=0)
    patience: int = Field(ge=1)  # epochs without a better primary-task validation loss
    seed: int = 0
    task_weights: dict[str, float] = Field(default_factory=dict)  # missing task -> 1.0
    primary: str | None = None  # early stopping / best-epoch task (default: the first task)
    regression_loss: Literal["huber", "mse"] = "huber"
    n_bags: int = Field(ge=1)  # seeds seed, seed+1, ...; logits averaged
    num_threads: int = Field(1, ge=1)  # torch threads while training: 2 ran ~20-50x slower on the shared 2-core box


def task_losses(
    out: dict[str, torch.Tensor], y: torch.Tensor, tasks: dict[str, TaskKind], regression_loss: str = "huber"
) -> dict[str, tuple[torch.Tensor, int]]:
    """Per task: (sum of the loss over labelled rows, number of labelled rows); NaN targets are skipped."""
    res = {}
    for j, (task, kind) in enumerate(tasks.items()):
        target, pred = y[:, j], out[task]
        mask = ~torch.isnan(target)
        if not mask.any():  # keep the graph, contribute nothing
            res[task] = (pred.sum() * 0.0, 0)
            continue
        p, t = pred[mask], target[mask]
        if kind == "binary":
            loss = F.binary_cross_entropy_with_logits(p, t, reduction="sum")
        elif regression_loss == "huber":
            loss = F.huber_loss(p, t, reduction="sum")
        else:
            loss = F.mse_loss(p, t, reduction="sum")
        res[task] = (loss, int(mask.sum()))
    return res


class FittedOutcomeNet:
    """Trained OutcomeNet(s) (one per bag) with what is needed to score and to save them."""

    def __init__(
        self,
        nets: list[OutcomeNet],
        cfg: OutcomeNetConfig,
        tasks: dict[str, TaskKind],
        preprocessor: Preprocessor | None = None,
        history: pd.DataFrame | None = None,
        fit_s: float = 0.0,
        best_epochs: list[int] | None = None,
    ) -> None:
        self.nets, self.cfg, self.tasks, self.preprocessor = nets, cfg, dict(tasks), preprocessor
        self.history = history if history is not None else pd.DataFrame()
        self.fit_s, self.best_epochs = fit_s, best_epochs or []
        for net in self.nets:
            net.eval()

    def _inputs(self, data: TabularData | pd.DataFrame) -> TabularData:
        if isinstance(data, pd.DataFrame):
            if self.preprocessor is None:
                raise ValueError("a DataFrame needs a fitted preprocessor; pass TabularData instead")
            return self.preprocessor.transform(data)
        return data

    @torch.no_grad()
    def predict_logits(self, data: TabularData | pd.DataFrame) -> dict[str, np.ndarray]:
        """Per task: logits (binary) or predicted values (regression), averaged over bags."""
        d = self._inputs(data)
        num, cat = torch.from_numpy(d.numeric), torch.from_numpy(d.categorical)
        with torch_threads(self.cfg.num_threads):
            outs = [net(num, cat) for net in self.nets]
        return {t: torch.stack([o[t] for o in outs]).mean(0).numpy().astype(np.float64) for t in self.tasks}

    def predict_proba(self, data: TabularData | pd.DataFrame, task: str) -> np.ndarray:
        """Sigmoid of a binary task's (uncalibrated) logit."""
        if self.tasks[task] != "binary":
            raise ValueError(f"task {task!r} is {self.tasks[task]}, not binary")
        return 1.0 / (1.0 + np.exp(-self.predict_logits(data)[task]))

    def state_dict(self) -> dict:
        """Everything to rebuild the model: weights, config, tasks, shapes, preprocessor, history."""
        net = self.nets[0]
        return {
            "weights": [n.state_dict() for n in self.nets],
            "config": self.cfg.model_dump(),
            "tasks": self.tasks,
            "n_numeric": net.n_numeric,
            "cardinalities": net.cardinalities,
            "preprocessor": self.preprocessor.to_dict() if self.preprocessor else None,
            "history": self.history.to_dict("list"),
            "fit_s": self.fit_s,
            "best_epochs": self.best_epochs,
        }

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> FittedOutcomeNet:
        s = torch.load(path, weights_only=True)
        cfg = OutcomeNetConfig(**s["config"])
        nets = []
        for w in s["weights"]:
            net = OutcomeNet(s["n_numeric"], s["cardinalities"], s["tasks"], cfg.hidden, cfg.dropout, cfg.norm)
            net.load_state_dict(w)
            nets.append(net)
        pre = Preprocessor.from_dict(s["preprocessor"]) if s["preprocessor"] else None
        return cls(nets, cfg, s["tasks"], pre, pd.DataFrame(s["history"]), s["fit_s"], s["best_epochs"])


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` torch threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def permutation_importance(
    fitted: FittedOutcomeNet, data: TabularData, y: np.ndarray, task: str, metric, n_repeats: int = 3, seed: int = 0
) -> pd.Series:
    """Drop of `metric(y, score)` (higher is better) when one input column is shuffled, mean over repeats.

    A numeric column is shuffled together with its missing indicator and bin code. Score is the probability for
    binary tasks and the prediction for regression. Rows with NaN `y` are left out.
    """
    keep = ~np.isnan(np.asarray(y, dtype=float))
    data, y = data.subset(keep), np.asarray(y)[keep]

    def score(d: TabularData) -> float:
        out = fitted.predict_proba(d, task) if fitted.tasks[task] == "binary" else fitted.predict_logits(d)[task]
        return float(metric(y, out))

    base, rng = score(data), np.random.default_rng(seed)
    res = {}
    for col in data.input_columns:
        drops = []
        for _ in range(n_repeats):
            perm = rng.permutation(len(data))
            d = data.subset(np.arange(len(data)))
            num = [i for i, s in enumerate(data.numeric_sources) if s == col]
            cat = [i for i, s in enumerate(data.categorical_sources) if s == col]
            d.numeric[:, num] = d.numeric[perm][:, num]
            d.categorical[:, cat] = d.categorical[perm][:, cat]
            drops.append(base - score(d))
        res[col] = float(np.mean(drops))
    return pd.Series(res, name=f"importance_{task}").sort_values(ascending=False)
