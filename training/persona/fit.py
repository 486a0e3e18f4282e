"""Fit a PersonaNet on one task's training data and score members for evaluation."""

from __future__ import annotations

import logging
import os
import time

import lightning as L
import numpy as np
import pandas as pd
import torch

from datasets.split import before_mask
from datasets.store import Dataset
from training.interactions import Interactions, Task
from training.persona.config import PersonaConfig
from training.persona.data import Catalogue, ExampleSet, LengthBuckets, catalogue, examples, histories
from training.persona.lightning import PersonaModule
from training.persona.model import PersonaNet, PersonaShape

log = logging.getLogger(__name__)


def unit_prices(ds: Dataset, cutoff: pd.Timestamp) -> pd.Series:
    """Median paid unit price per item from purchases strictly before the cutoff."""
    ev = ds.table("events", columns=["ts", "event_type", "item_id", "quantity", "amount"])
    ev = ev.loc[(ev["event_type"] == "purchase") & before_mask(ev, cutoff) & (ev["quantity"] > 0)]
    return (ev["amount"] / ev["quantity"]).groupby(ev["item_id"]).median()


def task_catalogue(ds: Dataset, inter: Interactions, cfg: PersonaConfig) -> Catalogue:
    """Item and member attributes for a task, using nothing from after its cutoff."""
    return catalogue(inter, ds.table("items"), ds.table("members"), unit_prices(ds, inter.cutoff), cfg.data.price_bands)


def shape_for(inter: Interactions, cat: Catalogue, cfg: PersonaConfig) -> PersonaShape:
    return PersonaShape(inter.n_items, cat.n_categories, cfg.data.price_bands + 1, cat.n_regions, cat.n_age_bands,
                        cfg.model.dim, cfg.model.hidden, cfg.model.dropout)  # fmt: skip


def member_batches(inter: Interactions, cat: Catalogue, member_idx: np.ndarray, max_len: int) -> ExampleSet:
    """Encoder inputs of members at the task cutoff (all their history before it)."""
    h = histories(inter, inter.t_cutoff, member_idx, max_len)
    return ExampleSet({**h, "region": cat.region[member_idx], "age": cat.age[member_idx]})


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


def strategy_for(cfg: PersonaConfig):
    """Lightning's strategy for `cfg.trainer`.

    Plain `ddp` (and `auto` with several devices) on CPU becomes DDP over gloo in *spawned*
    processes: Lightning's default `ddp` launcher re-executes the command line, so each rank would
    re-run the whole job (its MLflow run, baselines, registration). Spawned ranks run only
    `trainer.fit`; rank 0's weights come back into the caller's module.
    """
    t = cfg.trainer
    if t.accelerator == "cpu" and (t.strategy in ("ddp", "ddp_spawn") or (t.strategy == "auto" and t.devices > 1)):
        from lightning.fabric.plugins.environments.lightning import find_free_network_port
        from lightning.pytorch.strategies import DDPStrategy

        # a fresh rendezvous port per fit: Lightning keeps the first one in MASTER_PORT, which another
        # process (a parallel test worker) may have taken by the next fit
        os.environ["MASTER_PORT"] = str(find_free_network_port())
        return DDPStrategy(process_group_backend="gloo", start_method="spawn")
    return t.strategy


def fit(
    inter: Interactions,
    cat: Catalogue,
    cfg: PersonaConfig,
    epochs: int,
    window_days: float,
    val: Task | None = None,
    callbacks: list | None = None,
    logger=None,
) -> tuple[PersonaModule, dict]:
    """Train for `epochs`; with `val`, validate each epoch and keep the best epoch's weights."""
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    arrays = examples(
        inter, cat, cfg.data.n_cutoffs, window_days, cfg.data.max_len, cfg.data.max_targets, cfg.data.stride_days
    )
    lengths = (arrays["hist"] != inter.n_items).sum(1)
    sampler = LengthBuckets(lengths, cfg.train.batch_size, cfg.train.seed)
    train_dl = torch.utils.data.DataLoader(ExampleSet(arrays), batch_sampler=sampler)
    val_dl = None
    if val is not None:
        val_dl = torch.utils.data.DataLoader(member_batches(inter, cat, val.members, cfg.data.max_len), batch_size=512)
    module = PersonaModule(
        shape_for(inter, cat, cfg),
        cat.tensors(),
        cfg.train.lr,
        cfg.train.weight_decay,
        cfg.train.explore_weight,
        val,
        cfg.k,
        cfg.train.denoise_weight,
        cfg.train.denoise_drop,
        cfg.train.hist_dropout,
    )
    # the sampler shards each batch over DDP ranks itself (a batch_sampler cannot be wrapped)
    trainer = L.Trainer(max_epochs=epochs, accelerator=cfg.trainer.accelerator, devices=cfg.trainer.devices,
                        strategy=strategy_for(cfg), use_distributed_sampler=False, logger=logger or False,
                        enable_checkpointing=False, callbacks=[_RankSetup(cfg.train.seed), *(callbacks or [])],
                        num_sanity_val_steps=0, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, train_dl, val_dl)
    fit_s = time.perf_counter() - t0
    # the module's net holds the best validated epoch's weights (PersonaModule.on_fit_end), also when
    # they were trained in spawned DDP ranks; fit_summary came back with them
    ran, best_epoch, best_score = module.fit_summary.tolist()
    if module.best is None and best_epoch > 0:  # trained in spawned ranks: rebuild what they chose
        module.best = (best_score, int(best_epoch), {k: v.clone() for k, v in module.net.state_dict().items()})
    stats = {"examples": len(arrays["targets"]), "fit_s": fit_s, "epochs": int(ran), "world_size": trainer.world_size,
             "examples_per_s": len(arrays["targets"]) * int(ran) / max(fit_s, 1e-9)}  # fmt: skip
    if best_epoch > 0:
        stats["best_epoch"] = int(best_epoch)
    return module, stats


class Scorer:
    """Full-catalogue scores of a trained net for a task's members (history before its cutoff)."""

    def __init__(self, net: PersonaNet, inter: Interactions, cat: Catalogue, max_len: int) -> None:
        self.net, self.inter, self.cat, self.max_len = net.eval(), inter, cat, max_len
        self.items = cat.tensors()

    @torch.no_grad()
    def score(self, member_idx: np.ndarray) -> np.ndarray:
        batch = member_batches(self.inter, self.cat, np.asarray(member_idx), self.max_len).arrays
        return self.net(batch, self.items).numpy()

    @torch.no_grad()
    def explore(self, member_idx: np.ndarray) -> np.ndarray:
        """Discovery scores only (what retrieval ranks by)."""
        batch = member_batches(self.inter, self.cat, np.asarray(member_idx), self.max_len).arrays
        return self.net.explore(batch, self.items).numpy()
