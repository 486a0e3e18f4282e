"""Fit a PersonaNet on one task's training data and score members for evaluation."""

from __future__ import annotations

import logging
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
from training.trainer import KeepBest, make_trainer

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
    """Train for `epochs`; with `val`, validate each epoch and keep the best epoch's weights (all + new NDCG@k)."""
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
    keep = KeepBest(f"val/score_at_{cfg.k}", mode="max")
    t = cfg.trainer
    # the sampler shards each batch over DDP ranks itself (a batch_sampler cannot be wrapped)
    trainer = make_trainer(
        epochs,
        "persona (validated each epoch)" if val is not None else "persona",
        [keep, *(callbacks or [])],
        logger,
        t.accelerator,
        t.devices,
        t.strategy,
        seed=cfg.train.seed,
        use_distributed_sampler=False,
    )
    trainer.fit(module, train_dl, val_dl)
    fit_s = time.perf_counter() - t0
    # the module's net holds the best validated epoch's weights (KeepBest), also when they were trained in
    # spawned DDP ranks; the epoch counts came back with them
    keep.collect(trainer)
    n = len(arrays["targets"])
    stats = {"examples": n, "fit_s": fit_s, "epochs": keep.epochs, "world_size": trainer.world_size}
    stats["examples_per_s"] = n * keep.epochs / max(fit_s, 1e-9)
    if keep.best_epoch is not None:
        stats.update({"best_epoch": keep.best_epoch, "best_score": keep.best_score})
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
