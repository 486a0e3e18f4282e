"""Typed config of the churn and propensity jobs: configs/churn.yaml and configs/propensity.yaml hold the values."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from datasets.config import Strict
from training.outcomes.net import OutcomeNetConfig

Task = Literal["churn", "buy", "spend"]
Baseline = Literal["recency", "bgnbd", "logistic", "lightgbm"]


class Cutoffs(Strict):
    test: date | str | None  # null: the last day with data (midnight UTC) minus the primary horizon
    train: date | str | None  # null: the test cutoff minus the primary horizon (labels end at the test cutoff)


class LightGBMSection(Strict):
    num_leaves: list[int]
    min_child_samples: list[int]
    learning_rate: float = Field(gt=0)
    n_estimators: int = Field(2000, gt=0)  # upper bound; early stopping on the validation members
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)


class OutcomeConfig(Strict):
    dataset: str
    family: Literal["churn", "propensity"]
    horizons: dict[Literal["churn", "buy"], float]  # label windows in days
    cutoffs: Cutoffs
    n_train_cutoffs: int = Field(ge=1)  # training frames at train, train - stride, ...
    stride_days: float = Field(gt=0)
    val_share: float = Field(gt=0, lt=1)  # members held out (by id hash) for early stopping and calibration
    calibration: Literal["auto", "temperature", "isotonic", "none"]
    calibrate_on: Literal["all", "latest"]  # held-out members at every training cutoff, or the latest only
    tasks: dict[Task, float]  # multi-task weights; primary first
    net: OutcomeNetConfig
    baselines: list[Baseline]
    lightgbm: LightGBMSection
    seed: int

    @property
    def primary(self) -> str:
        """The task this family is judged on: churn -> churn, propensity -> buy."""
        return "churn" if self.family == "churn" else "buy"

    @property
    def primary_days(self) -> float:
        return self.horizons[self.primary]

    @model_validator(mode="after")
    def _check(self) -> OutcomeConfig:
        for name in ("churn", "buy"):
            if name not in self.horizons:
                raise ValueError(f"horizons must define '{name}' (days), got {sorted(self.horizons)}")
        if self.primary not in self.tasks:
            raise ValueError(f"tasks must include the primary task '{self.primary}' of family {self.family}")
        return self
