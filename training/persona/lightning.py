"""Thin LightningModule around PersonaNet: multi-label softmax over the full catalogue.

Validation is the protocol itself: full ranking of the validation window, NDCG@k and
Recall@k over all items and over new-to-member items, logged as `val/all/ndcg@20` etc.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from training.interactions import Task
from training.metrics import ndcg_at_k, recall_at_k
from training.persona.data import PAD_TARGET
from training.persona.model import PersonaNet, PersonaShape


def multilabel_softmax_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over examples of the mean -log softmax probability of each target item."""
    logp = F.log_softmax(logits, dim=1)
    mask = targets != PAD_TARGET
    # where, not multiply: a padded slot may point at a masked (-inf) item, and -inf * 0 is nan
    picked = torch.where(mask, logp.gather(1, targets.clamp(min=0)), 0.0)
    return -(picked.sum(1) / mask.sum(1).clamp(min=1)).mean()


def mask_history(logits: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
    """Logits with each member's history items at -inf (padding points one past the catalogue)."""
    spare = torch.cat([logits, logits.new_zeros(len(logits), 1)], dim=1)
    return spare.scatter(1, hist, float("-inf"))[:, :-1]


def _in_history(targets: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
    """(b, T) whether each target item is in the member's history."""
    return (targets.unsqueeze(2) == hist.unsqueeze(1)).any(2)


def trim(batch: dict[str, torch.Tensor], pad: int) -> dict[str, torch.Tensor]:
    """Cut history padding to the longest history in the batch (most members have short ones)."""
    longest = int((batch["hist"] != pad).sum(1).max().clamp(min=1))
    return {**batch, "hist": batch["hist"][:, :longest], "hist_feats": batch["hist_feats"][:, :longest]}


def hide(batch: dict[str, torch.Tensor], drop: torch.Tensor, pad: int) -> dict[str, torch.Tensor]:
    """The batch with the history positions in `drop` turned into padding."""
    return {
        **batch,
        "hist": batch["hist"].masked_fill(drop, pad),
        "hist_feats": batch["hist_feats"] * (~drop).unsqueeze(-1),
    }


class PersonaModule(L.LightningModule):
    """Training and protocol validation of a PersonaNet."""

    def __init__(
        self,
        shape: PersonaShape,
        items: dict[str, torch.Tensor],
        lr: float,
        weight_decay: float,
        explore_weight: float = 1.0,
        val_task: Task | None = None,
        k: int = 20,
        denoise_weight: float = 0.0,
        denoise_drop: float = 0.5,
        hist_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "shape": shape.to_dict(),
                "lr": lr,
                "weight_decay": weight_decay,
                "explore_weight": explore_weight,
                "k": k,
                "denoise_weight": denoise_weight,
                "denoise_drop": denoise_drop,
                "hist_dropout": hist_dropout,
            },
            logger=False,
        )
        self.net = PersonaNet(shape)
        for name, t in items.items():
            self.register_buffer(f"item_{name}", t, persistent=False)
        self.val_task, self.k = val_task, k
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def items(self) -> dict[str, torch.Tensor]:
        return {
            "category": self.item_category,
            "price_band": self.item_price_band,
            "repeat_rate": self.item_repeat_rate,
        }

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        batch = trim(batch, self.net.shape.n_items)
        if self.hparams.hist_dropout > 0:  # denoising: the encoder must not rely on any single item
            drop = torch.rand(batch["hist"].shape, device=self.device) < self.hparams.hist_dropout
            batch = hide(batch, drop, self.net.shape.n_items)
        explore = self.net.explore(batch, self.items)
        loss_all = multilabel_softmax_loss(self.net.add_repeat(explore, batch, self.items), batch["targets"])
        # discovery: rank the items the member has not bought yet, among items not bought yet
        new_targets = batch["targets"].masked_fill(_in_history(batch["targets"], batch["hist"]), PAD_TARGET)
        has_new = (new_targets != PAD_TARGET).any(1)
        loss_new = multilabel_softmax_loss(mask_history(explore, batch["hist"])[has_new], new_targets[has_new])
        loss = loss_all + self.hparams.explore_weight * loss_new
        if self.hparams.denoise_weight > 0:
            loss_dae = self._denoise(batch)
            loss = loss + self.hparams.denoise_weight * loss_dae
            self.log("train/loss_denoise", loss_dae, on_step=False, on_epoch=True, batch_size=len(batch["targets"]),
                     sync_dist=True)  # fmt: skip
        n = len(batch["targets"])
        self.log_dict({"train/loss": loss, "train/loss_all": loss_all, "train/loss_new": loss_new},
                      prog_bar=True, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)  # fmt: skip
        return loss

    def _denoise(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Item-item signal from every history, EASE-like: hide part of it, predict the hidden items."""
        pad = self.net.shape.n_items
        hist = batch["hist"]
        drop = (torch.rand(hist.shape, device=hist.device) < self.hparams.denoise_drop) & (hist != pad)
        kept = hist.masked_fill(drop, pad)
        usable = drop.any(1) & (kept != pad).any(1)
        if not usable.any():
            return hist.new_zeros((), dtype=torch.float32)
        logits = mask_history(self.net.explore(hide(batch, drop, pad), self.items), kept)
        return multilabel_softmax_loss(logits[usable], hist.masked_fill(~drop, PAD_TARGET)[usable])

    def validation_step(self, batch: dict[str, torch.Tensor], _: int) -> None:
        batch = trim(batch, self.net.shape.n_items)
        explore = self.net.explore(batch, self.items)
        top_all = torch.topk(self.net.add_repeat(explore, batch, self.items), self.k, dim=1).indices
        top_new = torch.topk(mask_history(explore, batch["hist"]), self.k, dim=1).indices
        self._val.append((top_all.cpu().numpy(), top_new.cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        if not self._val or self.val_task is None:
            return
        top_all = np.concatenate([a for a, _ in self._val])
        top_new = np.concatenate([b for _, b in self._val])
        self._val.clear()
        task = self.val_task
        new_truth = task.new_truth()
        keep = np.array([len(t) > 0 for t in new_truth])
        new_only = [t for t in new_truth if len(t)]
        # "@" is refused by MLflow: metric names are stored as val/all/ndcg_at_20
        metrics = {
            f"val/all/ndcg_at_{self.k}": float(ndcg_at_k(top_all, task.truth).mean()),
            f"val/all/recall_at_{self.k}": float(recall_at_k(top_all, task.truth).mean()),
            f"val/new/ndcg_at_{self.k}": float(ndcg_at_k(top_new[keep], new_only).mean()),
            f"val/new/recall_at_{self.k}": float(recall_at_k(top_new[keep], new_only).mean()),
        }
        if self.trainer.world_size > 1:
            # every DDP rank validates the whole window (same weights, same figures); rank 0's are
            # broadcast anyway so that the ranks cannot disagree on the best epoch
            metrics = self.trainer.strategy.broadcast(metrics, src=0)
        self.log_dict(metrics, prog_bar=True, sync_dist=True)
        # what the best epoch is chosen by (KeepBest): all + new NDCG@k; not sent to MLflow
        score = metrics[f"val/all/ndcg_at_{self.k}"] + metrics[f"val/new/ndcg_at_{self.k}"]
        self.log(f"val/score_at_{self.k}", score, sync_dist=True, logger=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
