"""Typed config of the persona jobs: configs/persona.yaml holds every value, the model only the types and bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from datasets.config import Strict


class Window(Strict):
    test_days: float = Field(gt=0)
    val_days: float = Field(gt=0)


class ModelSection(Strict):
    dim: int = Field(gt=0)
    hidden: int = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)


class DataSection(Strict):
    n_cutoffs: int = Field(gt=0)
    stride_days: float | None = Field(gt=0)  # between pseudo-cutoffs (null: one protocol window)
    max_len: int = Field(gt=0)
    max_targets: int = Field(gt=0)
    price_bands: int = Field(gt=0)


class TrainSection(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    explore_weight: float = Field(ge=0)  # weight of the new-to-member (discovery) loss
    denoise_weight: float = Field(ge=0)  # weight of the hide-and-predict history loss
    denoise_drop: float = Field(gt=0, lt=1)  # share of history items hidden
    hist_dropout: float = Field(ge=0, lt=1)  # share of history items dropped from the main loss's input
    seed: int


class TrainerSection(Strict):
    """Where Lightning trains. `strategy: ddp` with `devices: N` on CPU runs N gloo ranks in spawned
    processes (only `trainer.fit` runs there; the job itself, MLflow included, stays in this process)."""

    accelerator: Literal["cpu", "gpu", "cuda", "mps", "auto"]
    devices: int = Field(gt=0)
    strategy: Literal["auto", "ddp", "ddp_spawn"]


class PersonaConfig(Strict):
    dataset: str
    k: int = Field(gt=0)
    protocols: dict[str, Window]
    model: ModelSection
    data: DataSection
    train: TrainSection
    trainer: TrainerSection
    baselines: bool
    baseline_models: list[str] | None  # None: every baseline and blend
    baseline_grids: dict[str, dict[str, list]]  # per-baseline grid replacing its default

    @field_validator("protocols")
    @classmethod
    def _has_default(cls, v: dict[str, Window]) -> dict[str, Window]:
        if "default" not in v:
            raise ValueError("protocols must include `default` (the windows of a source not listed)")
        return v

    def window(self, source: str) -> Window:
        """The protocol windows for a dataset's source."""
        return self.protocols.get(source, self.protocols["default"])
