"""Typed config of `tailor features` (configs/features.yaml): every threshold lives in the YAML."""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import Field, model_validator

from datasets.config import Strict


class SegmentRule(Strict):
    """A named RFM segment: inclusive ranges of the recency and frequency scores."""

    name: str
    r: tuple[int, int]
    f: tuple[int, int]

    def covers(self, r: int, f: int) -> bool:
        """Whether the rule matches the score pair (r, f)."""
        return self.r[0] <= r <= self.r[1] and self.f[0] <= f <= self.f[1]


class Lifecycle(Strict):
    """Day thresholds of the lifecycle stages (prospect = no purchase yet)."""

    new_days: int = Field(ge=0)  # first purchase at most this many days before the cutoff
    active_days: int = Field(gt=0)  # last purchase at most this many days ago
    at_risk_days: int = Field(gt=0)  # beyond this: lapsed

    @model_validator(mode="after")
    def _ordered(self) -> Lifecycle:
        if not self.active_days < self.at_risk_days:
            raise ValueError("lifecycle: active_days must be below at_risk_days")
        return self


class PriceBands(Strict):
    """Bands of the member's price index (paid unit price / category median)."""

    budget_below: float = Field(gt=0)
    premium_above: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> PriceBands:
        if not self.budget_below <= self.premium_above:
            raise ValueError("price_band: budget_below must not exceed premium_above")
        return self


class DayPart(Strict):
    name: str
    start: int = Field(ge=0, le=23)  # local hour, inclusive
    end: int = Field(ge=1, le=24)  # local hour, exclusive


class Habits(Strict):
    """When a member shops, on the source's local clock."""

    weekend_days: list[Annotated[int, Field(ge=0, le=6)]]  # Monday = 0
    weekend_min_share: float = Field(ge=0, le=1)  # share of orders on weekend days -> "weekend"
    weekday_max_share: float = Field(ge=0, le=1)  # at most this share -> "weekday"; between: "mixed"
    time_of_day: list[DayPart]

    @model_validator(mode="after")
    def _contiguous(self) -> Habits:
        bounds = [(p.start, p.end) for p in self.time_of_day]
        ok = bool(bounds) and bounds[0][0] == 0 and bounds[-1][1] == 24
        ok = ok and all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        if not ok or any(s >= e for s, e in bounds):
            raise ValueError("habits.time_of_day must be ascending, contiguous bins covering hours 0-24")
        if self.weekday_max_share > self.weekend_min_share:
            raise ValueError("habits: weekday_max_share must not exceed weekend_min_share")
        return self


class FeatureConfig(Strict):
    """Member features at a cutoff."""

    scores: int = Field(ge=2, le=10)  # RFM scores are 1..scores, by quantiles among purchasers
    segments: list[SegmentRule]  # ordered: the first matching rule names the segment
    lifecycle: Lifecycle
    price_band: PriceBands
    habits: Habits
    top_categories: int = Field(ge=1)
    include_undated_members: bool

    @model_validator(mode="after")
    def _segments_cover(self) -> FeatureConfig:
        n = self.scores
        bad = [
            (r, f) for r in range(1, n + 1) for f in range(1, n + 1) if not any(s.covers(r, f) for s in self.segments)
        ]
        if bad:
            raise ValueError(f"segments leave (R, F) score pairs without a segment: {bad[:8]}")
        return self
