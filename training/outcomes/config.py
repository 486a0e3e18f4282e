"""Typed config of the churn and propensity jobs (configs/churn.yaml, configs/propensity.yaml)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from training.outcomes.net import OutcomeNetConfig


class Cutoffs(BaseModel):
    test: date | str | None = None  # null: the last day with data (midnight UTC) minus the primary horizon
    train: date | str | None = None  # null: the test cutoff minus the primary horizon (labels end at the test cutoff)


class LightGBMSection(BaseModel):
    num_leaves: list[int] = [7, 15, 31]
    min_child_samples: list[int] = [20, 50]
    learning_rate: float = Field(0.03, gt=0)
    n_estimators: int = Field(2000, gt=0)  # upper bound; early stopping on the validation members
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)


class OutcomeConfig(BaseModel):
    dataset: str
    family: Literal["churn", "propensity"]
    horizons: dict[str, float] = {"churn": 90, "buy": 30}  # label windows in days
    cutoffs: Cutoffs = Cutoffs()
    n_train_cutoffs: int = Field(4, ge=1)  # training frames at train, train - stride, ...
    stride_days: float = Field(30, gt=0)
    val_share: float = Field(0.2, gt=0, lt=1)  # members held out (by id hash) for early stopping and calibration
    calibration: Literal["auto", "temperature", "isotonic", "none"] = "auto"
    calibrate_on: Literal["all", "latest"] = "all"  # held-out members at every training cutoff, or the latest only
    tasks: dict[str, float] = {"churn": 1.0, "buy": 0.5, "spend": 0.2}  # multi-task weights; primary first
    net: OutcomeNetConfig = OutcomeNetConfig()
    baselines: list[str] = ["recency", "bgnbd", "logistic", "lightgbm"]
    lightgbm: LightGBMSection = LightGBMSection()
    seed: int = 0

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
        unknown = set(self.tasks) - {"churn", "buy", "spend"}
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}: choose from churn, buy, spend")
        if self.primary not in self.tasks:
            raise ValueError(f"tasks must include the primary task '{self.primary}' of family {self.family}")
        bad = set(self.baselines) - {"recency", "bgnbd", "logistic", "lightgbm"}
        if bad:
            raise ValueError(f"unknown baselines {sorted(bad)}: choose from recency, bgnbd, logistic, lightgbm")
        return self
