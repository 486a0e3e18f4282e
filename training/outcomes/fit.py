"""Fitting OutcomeNets: seeded Lightning training with early stopping, the fitted bundle, permutation importance."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch

from training.outcomes.net import OutcomeModule, OutcomeNet, OutcomeNetConfig, TaskKind
from training.outcomes.tabular import Preprocessor, TabularData


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
        stop = L.pytorch.callbacks.EarlyStopping(f"val/loss_{module.primary}", patience=cfg.patience, mode="min")
        trainer = L.Trainer(
            max_epochs=cfg.max_epochs,
            accelerator="cpu",
            devices=1,
            logger=logger or False,
            enable_checkpointing=False,
            callbacks=[stop, *(callbacks or [])],  # e.g. Optuna's pruning callback in sweeps
            num_sanity_val_steps=0,
            deterministic=True,
            enable_progress_bar=sys.stderr.isatty(),
            enable_model_summary=False,
        )
        with torch_threads(cfg.num_threads):
            trainer.fit(module, _loader(train, yt, cfg.batch_size, True, seed), _loader(val, yv, 4096, False, seed))
        if module.best is not None:
            net.load_state_dict(module.best[2])
            best_epochs.append(module.best[1])
        nets.append(net)
        histories.append(pd.DataFrame(module.history).assign(bag=bag))
    history = pd.concat(histories, ignore_index=True)
    return FittedOutcomeNet(nets, cfg, tasks, preprocessor, history, time.perf_counter() - t0, best_epochs)


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
