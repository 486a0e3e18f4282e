"""One Lightning trainer for every family: `make_trainer` builds it, `KeepBest` keeps the best validated epoch.

On a terminal the trainer shows Lightning's progress bar; in a log (a file, a pipe, CI) it writes one line
per epoch instead (at most about ten per fit) with the epoch's figures, and the last line says which epoch
was kept. DDP on CPU runs in spawned ranks; those log and warn as the calling process does.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import pickle
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch

log = logging.getLogger(__name__)
# the epoch lines have a logger of their own: a sweep keeps only each trial's last line (the kept epoch)
epoch_log = logging.getLogger(f"{__name__}.epochs")

# what KeepBest hands back through `trainer.callback_metrics`: the one channel (with the weights) by which
# spawned DDP ranks return results to the caller's process
_EPOCHS, _BEST_EPOCH, _BEST_SCORE = "keep_best/epochs", "keep_best/epoch", "keep_best/score"


class KeepBest(L.Callback):
    """Keeps the state dict of `pl_module.<part>` at its best validated epoch and loads it back at fit end.

    `monitor` is a key of `trainer.callback_metrics`, read after each validation (also what the module logs in
    its own `on_validation_epoch_end`, which runs after the callbacks' hook of that name). An epoch whose
    validation lacks the key counts as the worst possible.
    """

    def __init__(self, monitor: str, mode: Literal["min", "max"] = "min", part: str = "net") -> None:
        self.monitor, self.mode, self.part = monitor, mode, part
        self.best_score: float | None = None
        self.best_epoch: int | None = None  # 1-based
        self.best_state: dict[str, torch.Tensor] | None = None
        self.epochs = 0  # epochs run

    def _better(self, score: float) -> bool:
        if self.best_score is None:
            return True
        return score < self.best_score if self.mode == "min" else score > self.best_score

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.best_score = self.best_epoch = self.best_state = None
        self.epochs = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        score = float(value) if value is not None else (math.inf if self.mode == "min" else -math.inf)
        if self._better(score):
            self.best_score, self.best_epoch = score, trainer.current_epoch + 1
            self.best_state = copy.deepcopy(getattr(pl_module, self.part).state_dict())

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # in each DDP rank too, before rank 0's weights are sent back to the caller
        self.epochs = trainer.current_epoch
        if self.best_state is not None:
            getattr(pl_module, self.part).load_state_dict(self.best_state)
        summary = {_EPOCHS: self.epochs}
        if self.best_epoch is not None:
            summary.update({_BEST_EPOCH: self.best_epoch, _BEST_SCORE: self.best_score})
        trainer.callback_metrics.update({k: torch.tensor(v, dtype=torch.float64) for k, v in summary.items()})

    def collect(self, trainer: L.Trainer) -> None:
        """After `trainer.fit`: take the epoch counts that spawned DDP ranks chose (their weights are already in)."""
        m = trainer.callback_metrics
        if _EPOCHS in m:
            self.epochs = int(m[_EPOCHS])
        if self.best_epoch is None and _BEST_EPOCH in m:
            self.best_epoch, self.best_score = int(m[_BEST_EPOCH]), float(m[_BEST_SCORE])


class _EpochLines(L.Callback):
    """One log line per epoch (about ten per fit at most) with its figures; the last says which epoch was kept.

    An epoch is reported when the next one starts or training ends: the module logs its own epoch figures in
    `on_train_epoch_end`, after the callbacks' hook of that name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._t0 = self._reported = 0.0
        self._every = 1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._every = max(1, math.ceil((trainer.max_epochs or 1) / 10))
        self._reported, self._t0 = 0, time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch > 0 and trainer.current_epoch % self._every == 0:
            self._line(trainer, trainer.current_epoch, last=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch > 0:
            self._line(trainer, trainer.current_epoch, last=True)

    def _line(self, trainer: L.Trainer, epoch: int, last: bool) -> None:
        if not trainer.is_global_zero or epoch == self._reported:
            return
        secs = (time.perf_counter() - self._t0) / (epoch - self._reported)
        self._reported, self._t0 = epoch, time.perf_counter()
        metrics = sorted(trainer.callback_metrics.items())
        figures = "  ".join(f"{k} {float(v):.4g}" for k, v in metrics if not k.startswith("keep_best/"))
        epoch_log.info("%s epoch %d/%d (%.1f s/epoch)  %s", self.name, epoch, trainer.max_epochs, secs, figures)
        keep = next((cb for cb in trainer.callbacks if isinstance(cb, KeepBest)), None)
        if last and keep is not None and keep.best_epoch is not None:
            stopped = f"stopped early after {epoch} epochs; " if epoch < (trainer.max_epochs or epoch) else ""
            log.info(
                "%s: %skept epoch %d (%s %.4g)", self.name, stopped, keep.best_epoch, keep.monitor, keep.best_score
            )


class _RankSetup(L.Callback):
    """In each DDP rank: one share of the cores for torch, its own dropout/noise stream, and a clean exit."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // trainer.world_size))
            torch.manual_seed(self.seed * 1000 + trainer.global_rank)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Lightning leaves a gloo group to the process's exit, where its threads were sometimes destroyed
        # unjoined: "terminate called without an active exception", SIGABRT in a rank after a finished fit
        dist = torch.distributed
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _one_console() -> None:
    """Lightning's packages add console handlers at import (the top one always, the others when the root logger
    has none): with the root configured, every Lightning line would print twice."""
    if not logging.getLogger().handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if type(h) is logging.StreamHandler:
                lg.removeHandler(h)
        lg.propagate = True


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


class _CallerOutput(L.Callback):
    """Spawned DDP ranks log and warn as the calling process does.

    A spawned rank is a fresh interpreter: no logging handlers (Lightning then installs its own and prints its
    INFO lines) and no warning filters. This callback travels to the ranks inside the trainer and, unpickled
    there, installs the caller's console handlers (format and filters), log level and warning filters.
    """

    def __init__(self) -> None:
        root = logging.getLogger()
        self.pid, self.level = os.getpid(), root.level
        self.handlers = [(h.formatter, h.filters) for h in root.handlers if type(h) is logging.StreamHandler]
        self.handlers = [h for h in self.handlers if _picklable(h)]
        self.filters = [f for f in warnings.filters if _picklable(f)]
        self.showwarning = warnings.showwarning if _picklable(warnings.showwarning) else None

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if os.getpid() != self.pid and not logging.getLogger().handlers:  # unpickled in another process
            self._install()

    def _install(self) -> None:
        root = logging.getLogger()
        for formatter, filters in self.handlers:
            h = logging.StreamHandler()
            h.setFormatter(formatter)
            for f in filters:
                h.addFilter(f)
            root.addHandler(h)
        root.setLevel(self.level)
        _one_console()
        warnings.resetwarnings()
        warnings.filters[:] = self.filters
        if self.showwarning is not None:
            warnings.showwarning = self.showwarning


def _strategy(accelerator: str, devices: int, strategy: str) -> Any:
    """Lightning's strategy: DDP on CPU runs over gloo in *spawned* ranks.

    Lightning's default `ddp` launcher re-executes the command line, so each rank would re-run the whole job
    (its MLflow run, baselines, registration); spawned ranks run only `trainer.fit`, and rank 0's weights come
    back into the caller's module.
    """
    if accelerator == "cpu" and (strategy in ("ddp", "ddp_spawn") or (strategy == "auto" and devices > 1)):
        from lightning.fabric.plugins.environments.lightning import find_free_network_port
        from lightning.pytorch.strategies import DDPStrategy

        # a fresh rendezvous port per fit: Lightning keeps the first one in MASTER_PORT, which another
        # process (a parallel test worker) may have taken by the next fit
        os.environ["MASTER_PORT"] = str(find_free_network_port())
        return DDPStrategy(process_group_backend="gloo", start_method="spawn")
    return strategy


def make_trainer(
    max_epochs: int,
    name: str,
    callbacks: Sequence[L.Callback] = (),
    logger: Any = None,
    accelerator: str = "cpu",
    devices: int = 1,
    strategy: str = "auto",
    seed: int = 0,
    deterministic: bool | None = None,
    **options: Any,
) -> L.Trainer:
    """A Trainer as every family uses it: CPU by default, no checkpoints or sanity validation, `logger` or none.

    `name` starts each epoch line. `seed` seeds each DDP rank's own noise stream; `deterministic=None` leaves
    torch's setting as it is. `options` go to `L.Trainer` (e.g. `use_distributed_sampler=False`).
    """
    _one_console()
    on_terminal = sys.stderr.isatty()
    extra: list[L.Callback] = [] if on_terminal else [_EpochLines(name)]
    if devices > 1 or "ddp" in strategy:
        extra += [_RankSetup(seed), _CallerOutput()]
    with warnings.catch_warnings():
        # "GPU available but not used" and the like: this factory chooses the device on purpose
        warnings.simplefilter("ignore")
        return L.Trainer(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            strategy=_strategy(accelerator, devices, strategy),
            logger=logger or False,
            callbacks=[*callbacks, *extra],
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=on_terminal,
            num_sanity_val_steps=options.pop("num_sanity_val_steps", 0),
            deterministic=deterministic,
            **options,
        )
