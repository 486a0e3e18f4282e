"""OutcomeNet: an MLP over member features with one head per outcome (churn, buy30, spend30, ...).

A plain nn.Module inside a thin LightningModule. Targets may hold NaN ("no label for this row"),
masked out of that task's loss, so tasks with partial labels train together. Training keeps the
best-by-validation weights in memory (no checkpoint files) and stops early on the primary task.
"""

from __future__ import annotations

import copy
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

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


class OutcomeNetConfig(BaseModel):
    """Architecture and training settings of one OutcomeNet fit."""

    hidden: list[int] = Field(default_factory=lambda: [128, 64])
    dropout: float = Field(0.1, ge=0, lt=1)
    norm: Literal["batch", "layer", "none"] = "batch"
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(256, gt=0)
    max_epochs: int = Field(100, gt=0)
    patience: int = Field(10, ge=1)  # epochs without a better primary-task validation loss
    seed: int = 0
    task_weights: dict[str, float] = Field(default_factory=dict)  # missing task -> 1.0
    primary: str | None = None  # early stopping / best-epoch task (default: the first task)
    regression_loss: Literal["huber", "mse"] = "huber"
    n_bags: int = Field(1, ge=1)  # seeds seed, seed+1, ...; logits averaged
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


class OutcomeModule(L.LightningModule):
    """Weighted sum of per-task mean losses; logs train/val loss per task; keeps the best state."""

    def __init__(self, net: OutcomeNet, cfg: OutcomeNetConfig) -> None:
        super().__init__()
        self.net, self.cfg, self.tasks = net, cfg, net.tasks
        self.primary = cfg.primary or next(iter(self.tasks))
        self.best: tuple[float, int, dict] | None = None  # (val loss of primary, epoch, state)
        self.history: list[dict[str, float]] = []
        self._val_logs: dict[str, float] = {}
        self._sums: dict[str, dict[str, list[float]]] = {"train": {}, "val": {}}

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        numeric, categorical, y = batch
        losses = task_losses(self.net(numeric, categorical), y, self.tasks, self.cfg.regression_loss)
        total = numeric.new_zeros(())
        for task, (s, n) in losses.items():
            total = total + self.cfg.task_weights.get(task, 1.0) * s / max(n, 1)
            acc = self._sums[stage].setdefault(task, [0.0, 0])
            acc[0], acc[1] = acc[0] + float(s.detach()), acc[1] + n
        return total

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        self._step(batch, "val")

    def _epoch_losses(self, stage: str) -> dict[str, float]:
        sums = self._sums[stage]
        out = {f"{stage}/loss_{t}": s / n for t, (s, n) in sums.items() if n > 0}
        out[f"{stage}/loss"] = sum(self.cfg.task_weights.get(t, 1.0) * s / n for t, (s, n) in sums.items() if n > 0)
        self._sums[stage] = {}
        return out

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._sums["val"] = {}
            return
        logs = self._epoch_losses("val")
        self.log_dict(logs)
        self._val_logs = logs
        score = logs.get(f"val/loss_{self.primary}", float("inf"))
        if self.best is None or score < self.best[0]:
            self.best = (score, self.current_epoch + 1, copy.deepcopy(self.net.state_dict()))

    def on_train_epoch_end(self) -> None:
        logs = self._epoch_losses("train")
        self.log_dict(logs)
        self.history.append({"epoch": self.current_epoch + 1, **logs, **self._val_logs})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)


def __getattr__(name: str) -> object:
    """Versions registered before fitting moved to `fit.py` pickled `net.FittedOutcomeNet`: keep them loadable."""
    if name == "FittedOutcomeNet":
        from training.outcomes.fit import FittedOutcomeNet

        return FittedOutcomeNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
