"""Typed config of the uplift jobs: configs/uplift.yaml holds every value, the model only the types and bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from datasets.config import Strict

# training.uplift.learners.NAMES (not imported here: it imports LightGBM)
Learner = Literal["s_learner", "t_learner", "class_transformation", "x_learner"]


class ModelSection(Strict):
    hidden: int = Field(gt=0)
    depth: int = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)
    bags: int = Field(gt=0)  # networks averaged (different seeds and bootstrap rows)


class TrainSection(Strict):
    epochs: int = Field(gt=0)  # upper bound: early stopping on validation loss
    patience: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    effect_penalty: float = Field(ge=0)  # on the mean squared arm-effect offset (logit scale)
    spend_weight: float = Field(ge=0)  # multi-task weight of the log1p(spend) regression
    bootstrap: bool  # each bag sees a bootstrap sample of the fit rows


class BaselineSection(Strict):
    learners: list[Learner]
    n_estimators: list[int]  # picked per learner on the validation Qini
    learning_rate: float = Field(gt=0)
    num_leaves: int = Field(gt=1)
    min_child_samples: int = Field(gt=0)


class UpliftConfig(Strict):
    dataset: str
    outcome: str  # the outcome the gate metric (test/qini_auc) is computed on
    comparison: str | None  # the gated comparison; None = the dataset's first (womens_vs_none on Hillstrom)
    seed: int
    test_size: float = Field(gt=0, lt=1)
    val_size: float = Field(gt=0, lt=1)  # share of the train half held out for early stopping + calibration
    k: float = Field(gt=0, lt=1)
    model: ModelSection
    train: TrainSection
    baselines: BaselineSection
