"""Typed config of the persona jobs (configs/persona.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Window(BaseModel):
    test_days: float = Field(gt=0)
    val_days: float = Field(gt=0)


class ModelSection(BaseModel):
    dim: int = Field(64, gt=0)
    hidden: int = Field(128, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)


class DataSection(BaseModel):
    n_cutoffs: int = Field(10, gt=0)
    max_len: int = Field(200, gt=0)
    max_targets: int = Field(64, gt=0)
    price_bands: int = Field(3, gt=0)
    stride_days: float | None = Field(None, gt=0)  # between pseudo-cutoffs (default: one window)


class TrainSection(BaseModel):
    epochs: int = Field(20, gt=0)
    batch_size: int = Field(256, gt=0)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    explore_weight: float = Field(1.0, ge=0)  # weight of the new-to-member (discovery) loss
    denoise_weight: float = Field(0.0, ge=0)  # weight of the hide-and-predict history loss
    denoise_drop: float = Field(0.5, gt=0, lt=1)  # share of history items hidden
    hist_dropout: float = Field(0.0, ge=0, lt=1)  # share of history items dropped from the main loss's input
    seed: int = 0


class TrainerSection(BaseModel):
    """Where Lightning trains. `strategy: ddp` with `devices: N` on CPU runs N gloo ranks in spawned
    processes (only `trainer.fit` runs there; the job itself, MLflow included, stays in this process)."""

    accelerator: str = "cpu"
    devices: int = Field(1, gt=0)
    strategy: str = "auto"


class PersonaConfig(BaseModel):
    dataset: str
    k: int = Field(20, gt=0)
    protocols: dict[str, Window]
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    train: TrainSection = TrainSection()
    trainer: TrainerSection = TrainerSection()
    baselines: bool = True
    baseline_models: list[str] | None = None  # None: every baseline and blend
    baseline_grids: dict[str, dict[str, list]] = {}  # per-baseline grid replacing its default

    def window(self, source: str) -> Window:
        """The protocol windows for a dataset's source."""
        return self.protocols.get(source, self.protocols["default"])
