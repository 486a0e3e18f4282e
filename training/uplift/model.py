"""The uplift network (plain torch, no Lightning: serving loads it without the trainer).

arm_code shared trunk reads standardized member features; a base head gives the control arm's logits for every
outcome (visit, conversion, spend) and an effect head adds one offset per treated arm and outcome. All
arms and outcomes are trained together (multi-task): the trunk learns who visits from every member, and
each arm's effect is a small, separately penalized offset on top (the S-learner's shrinkage toward "no
effect", but learned jointly for all arms). Uplift of arm a = sigmoid(base + effect_a) - sigmoid(base).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class UpliftShape:
    n_features: int
    arms: list[str]  # arms[0] is the control arm
    outcomes: list[str]  # binary outcomes first; "spend" (if present) is a regression on log1p(spend)
    hidden: int = 64
    depth: int = 2
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class UpliftNet(nn.Module):
    """Features -> logits per (arm, outcome); calibration scales and shifts the binary logits afterwards."""

    def __init__(self, shape: UpliftShape) -> None:
        super().__init__()
        self.shape = shape
        n_out, n_arms = len(shape.outcomes), len(shape.arms)
        self.register_buffer("mean", torch.zeros(shape.n_features))
        self.register_buffer("std", torch.ones(shape.n_features))
        self.register_buffer("temperature", torch.ones(n_out))  # Platt scaling per outcome (set by calibrate)
        self.register_buffer("shift", torch.zeros(n_out))
        layers: list[nn.Module] = []
        width = shape.n_features
        for _ in range(shape.depth):
            layers += [nn.Linear(width, shape.hidden), nn.GELU(), nn.Dropout(shape.dropout)]
            width = shape.hidden
        self.trunk = nn.Sequential(*layers)
        self.base = nn.Linear(width, n_out)
        self.effect = nn.Linear(width, n_out * (n_arms - 1))
        nn.init.zeros_(self.effect.weight)
        nn.init.zeros_(self.effect.bias)

    def set_scaler(self, x: np.ndarray) -> None:
        """Standardize inputs with the training rows' mean and spread (stored with the weights)."""
        x = torch.as_tensor(np.ascontiguousarray(x, np.float32))
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw logits [B, arms, outcomes], effect offsets [B, arms-1, outcomes])."""
        h = self.trunk((x - self.mean) / self.std)
        base = self.base(h)
        effect = self.effect(h).view(len(x), len(self.shape.arms) - 1, len(self.shape.outcomes))
        return torch.cat([base.unsqueeze(1), base.unsqueeze(1) + effect], dim=1), effect

    def binary(self) -> torch.Tensor:
        """Mask of the binary outcomes (the ones read as probabilities)."""
        return torch.tensor([o != "spend" for o in self.shape.outcomes])

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated expected outcome per (row, arm, outcome): probabilities, and spend in currency.

        `x` may be any 2-d array (a reordered frame's `to_numpy()` can have negative strides, which torch refuses).
        """
        self.eval()
        logits, _ = self(torch.tensor(np.ascontiguousarray(x, np.float32)))
        calibrated = logits * self.temperature + self.shift
        mask = self.binary()
        out = torch.where(mask, torch.sigmoid(calibrated), torch.expm1(logits).clamp_min(0))
        return out.numpy()

    def uplift(self, x: np.ndarray, treated_arms: list[str], outcome: str = "visit") -> np.ndarray:
        """Mean expected outcome over the treated arms minus the control arm's (arms weighted equally)."""
        pred = self.predict(x)[:, :, self.shape.outcomes.index(outcome)]
        idx = [self.shape.arms.index(a) for a in treated_arms]
        return pred[:, idx].mean(1) - pred[:, 0]


class Ensemble:
    """Networks trained on different seeds/bags; predictions are averaged."""

    def __init__(self, nets: list[UpliftNet]) -> None:
        self.nets = nets
        self.shape = nets[0].shape

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.mean([n.predict(x) for n in self.nets], axis=0)

    def uplift(self, x: np.ndarray, treated_arms: list[str], outcome: str = "visit") -> np.ndarray:
        return np.mean([n.uplift(x, treated_arms, outcome) for n in self.nets], axis=0)
