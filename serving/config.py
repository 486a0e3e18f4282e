"""The service's typed config: `configs/serving.yaml`, validated once and passed down.

The YAML holds every value; the model holds none (a field has no default, so a missing or
misspelt key is an error at load, naming it, instead of a silent fallback).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexConfig(_Strict):
    exact_below: int = Field(ge=0)
    hnsw_m: int = Field(ge=2)
    ef_construction: int = Field(ge=1)
    ef_search: int = Field(ge=1)
    recall_queries: int = Field(ge=1)
    recall_target: float = Field(ge=0, le=1)


class EventsConfig(_Strict):
    future_tolerance_s: float = Field(ge=0)
    late_window_days: float = Field(gt=0)
    max_abs_value: float = Field(gt=0)
    max_batch: int = Field(ge=1)


class LookalikeConfig(_Strict):
    fresh_max: int = Field(ge=0)


class LimitsConfig(_Strict):
    max_k: int = Field(ge=1)


class OfferLoopConfig(_Strict):
    time_tolerance_s: float = Field(ge=0)
    unknown_members_commit: bool


class RateLimit(_Strict):
    rate: float = Field(gt=0)  # tokens per second
    burst: float = Field(ge=1)  # bucket size


class KeysConfig(_Strict):
    rotation_overlap_s: float = Field(ge=0)


class ServingConfig(_Strict):
    dataset: str = Field(min_length=1)
    offers: str = Field(min_length=1)
    index: IndexConfig
    events: EventsConfig
    lookalike: LookalikeConfig
    limits: LimitsConfig
    offer_loop: OfferLoopConfig
    rate_limits: dict[str, RateLimit]
    keys: KeysConfig
    popular_days: int = Field(ge=1)

    @field_validator("rate_limits")
    @classmethod
    def _scopes(cls, v: dict[str, RateLimit]) -> dict[str, RateLimit]:
        from serving.auth import SCOPES

        if set(v) != set(SCOPES):
            raise ValueError(f"rate_limits: one limit per scope, exactly {', '.join(SCOPES)}")
        return v

    @classmethod
    def load(cls, name: str = "serving", overrides: Iterable[str] = ()) -> ServingConfig:
        """configs/<name>.yaml (or a YAML path) with `key=value` overrides, validated."""
        from datasets.config import load

        return load(cls, name, overrides)
