"""Typed config of `tailor prepare`: configs/prepare.yaml holds every value, the model only the types and bounds."""

from __future__ import annotations

from pydantic import Field, field_validator

from datasets.config import Strict


class TierLevel(Strict):
    name: str
    min_spend: float = Field(ge=0)


class TierRules(Strict):
    window_days: int = Field(gt=0)
    points_per_unit: float = Field(ge=0)
    levels: list[TierLevel]

    @field_validator("levels")
    @classmethod
    def _ascending(cls, v: list[TierLevel]) -> list[TierLevel]:
        spends = [lvl.min_spend for lvl in v]
        if not v or spends != sorted(spends) or spends[0] != 0:
            raise ValueError("tier levels must start at min_spend 0 and ascend")
        return v


class PrepareConfig(Strict):
    ts_min: str
    max_future_days: int = Field(ge=0)
    rows_per_partition: int = Field(gt=0)
    chunk_rows: int = Field(gt=0)
    tiers: TierRules
    non_product_codes: list[str]
