"""Typed config of `tailor prepare` (configs/prepare.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class TierLevel(BaseModel):
    name: str
    min_spend: float = Field(ge=0)


class TierRules(BaseModel):
    window_days: int = Field(365, gt=0)
    points_per_unit: float = Field(1.0, ge=0)
    levels: list[TierLevel]

    @field_validator("levels")
    @classmethod
    def _ascending(cls, v: list[TierLevel]) -> list[TierLevel]:
        spends = [lvl.min_spend for lvl in v]
        if not v or spends != sorted(spends) or spends[0] != 0:
            raise ValueError("tier levels must start at min_spend 0 and ascend")
        return v


class PrepareConfig(BaseModel):
    ts_min: str = "1990-01-01"
    max_future_days: int = Field(1, ge=0)
    rows_per_partition: int = Field(3_000_000, gt=0)
    chunk_rows: int = Field(2_000_000, gt=0)
    tiers: TierRules
    non_product_codes: list[str] = []
