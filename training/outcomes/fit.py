"""Fitting OutcomeNets: the thin LightningModule and seeded training with early stopping (imports Lightning)."""

from __future__ import annotations

import time

import lightning as L
import numpy as np
import pandas as pd
import torch

from training.outcomes.net import FittedOutcomeNet, OutcomeNet, OutcomeNetConfig, TaskKind, task_losses, torch_threads
from training.outcomes.tabular import Preprocessor, TabularData
from training.trainer import KeepBest, make_trainer


class OutcomeModule(L.LightningModule):
    """Weighted sum of per-task mean losses; logs train/val loss per task and keeps a history of them."""

    def __init__(self, net: OutcomeNet, cfg: OutcomeNetConfig) -> None:
        super().__init__()
        self.net, self.cfg, self.tasks = net, cfg, net.tasks
        self.primary = cfg.primary or next(iter(self.tasks))
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

    def on_train_epoch_end(self) -> None:
        logs = self._epoch_losses("train")
        self.log_dict(logs)
        self.history.append({"epoch": self.current_epoch + 1, **logs, **self._val_logs})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)


def _loader(data: TabularData, y: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> torch.utils.data.DataLoader:
    tensors = (torch.from_numpy(data.numeric), torch.from_numpy(data.categorical), torch.from_numpy(y))
    rows = torch.utils.data.TensorDataset(*tensors)  # indexed with a whole batch of positions at once
    gen = torch.Generator().manual_seed(seed)
    base = torch.utils.data.RandomSampler(rows, generator=gen) if shuffle else torch.utils.data.SequentialSampler(rows)
    # drop a last batch of one row in training: BatchNorm cannot normalize a single row
    drop_last = shuffle and len(rows) % batch_size == 1
    sampler = torch.utils.data.BatchSampler(base, batch_size, drop_last=drop_last)
    return torch.utils.data.DataLoader(rows, sampler=sampler, batch_size=None)


def _targets(y: dict[str, np.ndarray], tasks: dict[str, TaskKind], n: int) -> np.ndarray:
    """(n, n_tasks) float32; a task absent from `y` is all-NaN (no labels)."""
    cols = [np.asarray(y[t], dtype=np.float32) if t in y else np.full(n, np.nan, np.float32) for t in tasks]
    return np.stack(cols, 1)


def fit_outcome_net(
    train: TabularData,
    y_train: dict[str, np.ndarray],
    val: TabularData,
    y_val: dict[str, np.ndarray],
    tasks: dict[str, TaskKind],
    cfg: OutcomeNetConfig,
    logger=None,
    preprocessor: Preprocessor | None = None,
    callbacks: list | None = None,
) -> FittedOutcomeNet:
    """Train `cfg.n_bags` nets (seeds seed..seed+n_bags-1) on CPU; each keeps its best-by-validation epoch."""
    t0 = time.perf_counter()
    yt, yv = _targets(y_train, tasks, len(train)), _targets(y_val, tasks, len(val))
    nets, histories, best_epochs = [], [], []
    for bag in range(cfg.n_bags):
        seed = cfg.seed + bag
        L.seed_everything(seed, workers=True, verbose=False)
        net = OutcomeNet(train.numeric.shape[1], train.cardinalities, tasks, cfg.hidden, cfg.dropout, cfg.norm)
        module = OutcomeModule(net, cfg)
        monitor = f"val/loss_{module.primary}"
        stop = L.pytorch.callbacks.EarlyStopping(monitor, patience=cfg.patience, mode="min")
        keep = KeepBest(monitor, mode="min")
        name = f"{module.primary} net" + (f" (bag {bag + 1} of {cfg.n_bags})" if cfg.n_bags > 1 else "")
        every = [stop, keep, *(callbacks or [])]  # sweeps add Optuna's pruning callback
        trainer = make_trainer(cfg.max_epochs, name, every, logger, deterministic=True)
        with torch_threads(cfg.num_threads):
            trainer.fit(module, _loader(train, yt, cfg.batch_size, True, seed), _loader(val, yv, 4096, False, seed))
        if keep.best_epoch is not None:
            best_epochs.append(keep.best_epoch)
        nets.append(net)
        histories.append(pd.DataFrame(module.history).assign(bag=bag))
    history = pd.concat(histories, ignore_index=True)
    return FittedOutcomeNet(nets, cfg, tasks, preprocessor, history, time.perf_counter() - t0, best_epochs)
