"""Training of the uplift network: a thin LightningModule, early stopping on validation, Platt calibration.

Every row contributes to its own arm's logits only (the other arms are counterfactual). Loss = binary
cross-entropy on visit and conversion + `spend_weight` x squared error on log1p(spend) + `effect_penalty` x
mean squared effect offset (shrinks arm effects toward zero unless the data insist). The epoch with the
lowest validation loss is kept; then each binary outcome's logits get a scale and shift fitted on the
validation rows (calibration changes probabilities, and so uplift magnitudes, without touching the trunk).
"""

from __future__ import annotations

import logging
import time

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from training.trainer import KeepBest, make_trainer
from training.uplift.config import TrainSection
from training.uplift.model import UpliftNet, UpliftShape

log = logging.getLogger(__name__)


class UpliftModule(L.LightningModule):
    def __init__(self, net: UpliftNet, cfg: TrainSection) -> None:
        super().__init__()
        self.net, self.cfg = net, cfg

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, arm, y = batch
        logits, effect = self.net(x)
        own = logits[torch.arange(len(x)), arm]  # [B, outcomes]
        mask = self.net.binary().to(own.device)
        loss = F.binary_cross_entropy_with_logits(own[:, mask], y[:, mask])
        if (~mask).any():
            loss = loss + self.cfg.spend_weight * F.mse_loss(own[:, ~mask], torch.log1p(y[:, ~mask]))
        return loss + self.cfg.effect_penalty * effect.pow(2).mean()

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), on_epoch=True, on_step=False, batch_size=len(batch[0]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)


def _tensors(x: np.ndarray, arm: np.ndarray, ys: np.ndarray) -> TensorDataset:
    return TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(arm, dtype=torch.long),
                         torch.as_tensor(ys, dtype=torch.float32))  # fmt: skip


def fit_net(
    shape: UpliftShape, cfg: TrainSection, seed: int, fit: tuple, val: tuple, name: str = "uplift net"
) -> tuple[UpliftNet, dict]:
    """Train one network on `fit` = (x, arm index, ys), stop on `val`, calibrate on `val`; returns (net, stats)."""
    from lightning.pytorch.callbacks import EarlyStopping

    L.seed_everything(seed, workers=False, verbose=False)
    net = UpliftNet(shape)
    net.set_scaler(fit[0])
    module = UpliftModule(net, cfg)
    gen = torch.Generator().manual_seed(seed)
    train_dl = DataLoader(_tensors(*fit), batch_size=cfg.batch_size, shuffle=True, generator=gen)
    val_dl = DataLoader(_tensors(*val), batch_size=8192)
    keep = KeepBest("val_loss", mode="min")
    stop = EarlyStopping("val_loss", patience=cfg.patience)
    trainer = make_trainer(cfg.epochs, name, [stop, keep])
    t0 = time.perf_counter()
    trainer.fit(module, train_dl, val_dl)
    assert keep.best_epoch is not None and keep.best_score is not None
    calibrate(net, *val)
    return net, {"fit_s": time.perf_counter() - t0, "best_epoch": keep.best_epoch, "val_loss": keep.best_score}


def calibrate(net: UpliftNet, x: np.ndarray, arm: np.ndarray, ys: np.ndarray, steps: int = 100) -> None:
    """Platt scaling per binary outcome on held-out rows: logit' = temperature x logit + shift."""
    net.eval()
    with torch.no_grad():
        logits, _ = net(torch.as_tensor(x, dtype=torch.float32))
    own = logits[torch.arange(len(x)), torch.as_tensor(arm, dtype=torch.long)]
    y = torch.as_tensor(ys, dtype=torch.float32)
    for j, binary in enumerate(net.binary().tolist()):
        if not binary or y[:, j].min() == y[:, j].max():
            continue
        a, b = torch.ones(1, requires_grad=True), torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([a, b], lr=0.5, max_iter=steps)

        def closure(j: int = j, a: torch.Tensor = a, b: torch.Tensor = b, opt: torch.optim.LBFGS = opt) -> torch.Tensor:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(own[:, j] * a + b, y[:, j])
            loss.backward()
            return loss

        opt.step(closure)
        net.temperature[j] = a.detach().clamp(0.05, 20).item()
        net.shift[j] = b.detach().item()


def fit_ensemble(frame, split, cfg, seed: int) -> tuple:
    """`cfg.model.bags` networks on every arm of the fit rows (bootstrap per bag), validated on the val rows."""
    from training.uplift.data import CONTROL
    from training.uplift.model import Ensemble

    arms = [CONTROL, *frame.arms]
    shape = UpliftShape(frame.x.shape[1], arms, list(frame.outcomes.columns), cfg.model.hidden, cfg.model.depth,
                        cfg.model.dropout)  # fmt: skip
    code = {a: k for k, a in enumerate(arms)}
    x, arm_code, ys = (
        frame.x.to_numpy(np.float32),
        np.array([code[a] for a in frame.arm]),
        frame.outcomes.to_numpy(np.float32),
    )
    val = (x[split.val], arm_code[split.val], ys[split.val])
    nets, stats = [], []
    for b in range(cfg.model.bags):
        s = seed * 1000 + b
        rows = split.fit
        if cfg.train.bootstrap and cfg.model.bags > 1:
            rows = np.random.default_rng(s).choice(split.fit, len(split.fit), replace=True)
        name = "uplift net" + (f" (bag {b + 1} of {cfg.model.bags})" if cfg.model.bags > 1 else "")
        net, st = fit_net(shape, cfg.train, s, (x[rows], arm_code[rows], ys[rows]), val, name)
        nets.append(net)
        stats.append(st)
    summary = {"fit_s": sum(s["fit_s"] for s in stats), "best_epoch": float(np.mean([s["best_epoch"] for s in stats])),
               "val_loss": float(np.mean([s["val_loss"] for s in stats]))}  # fmt: skip
    return Ensemble(nets), summary
