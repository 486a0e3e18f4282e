"""Typed config of the uplift jobs (configs/uplift.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ModelSection(BaseModel):
    hidden: int = Field(64, gt=0)
    depth: int = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    bags: int = Field(5, gt=0)  # networks averaged (different seeds and bootstrap rows)


class TrainSection(BaseModel):
    epochs: int = Field(40, gt=0)  # upper bound: early stopping on validation loss
    patience: int = Field(5, gt=0)
    batch_size: int = Field(512, gt=0)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    effect_penalty: float = Field(0.0, ge=0)  # on the mean squared arm-effect offset (logit scale)
    spend_weight: float = Field(0.1, ge=0)  # multi-task weight of the log1p(spend) regression
    bootstrap: bool = True  # each bag sees a bootstrap sample of the fit rows


class BaselineSection(BaseModel):
    learners: list[str] = ["s_learner", "t_learner", "class_transformation", "x_learner"]
    n_estimators: list[int] = [100, 200, 400]  # picked per learner on the validation Qini
    learning_rate: float = Field(0.03, gt=0)
    num_leaves: int = Field(15, gt=1)
    min_child_samples: int = Field(100, gt=0)


class UpliftConfig(BaseModel):
    dataset: str
    outcome: str = "visit"  # the outcome the gate metric (test/qini_auc) is computed on
    comparison: str | None = None  # the gated comparison; None = the dataset's first (womens_vs_none on Hillstrom)
    seed: int = 0
    test_size: float = Field(0.5, gt=0, lt=1)
    val_size: float = Field(0.2, gt=0, lt=1)  # share of the train half held out for early stopping + calibration
    k: float = Field(0.3, gt=0, lt=1)
    model: ModelSection = ModelSection()
    train: TrainSection = TrainSection()
    baselines: BaselineSection = BaselineSection()
