"""Request and response models of the HTTP service: strict limits, so bad input is a 4xx naming the field.

Inputs are never echoed back in validation errors (`hide_input_in_errors`): a rejected member id must not
reach a response body or a log line. Numbers and booleans are strict (`k: true` or `k: "5"` is refused, not
coerced), and the limits are configs/serving.yaml's (`limits.max_k`, `events.max_batch`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from datasets.schema import EVENT_TYPES
from serving.config import ServingConfig

_CFG = ServingConfig.load()
MAX_K = _CFG.limits.max_k
MAX_BATCH = _CFG.events.max_batch
MAX_LIST = 1_000
MAX_AMOUNT = 1e9

MemberId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(max_length=256)]
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")]


class Strict(BaseModel):
    """Base of every request: unknown fields are refused and inputs are hidden in error messages."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


def _utc(value: datetime | None) -> datetime | None:
    """Naive times are read as UTC; aware ones are converted to it; years outside 2000..2100 are refused."""
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not 2000 <= value.year <= 2100:
        raise ValueError("time must fall between the years 2000 and 2100")
    return value


class MemberRequest(Strict):
    member_id: MemberId


class PersonaRequest(MemberRequest):
    pass


class Context(Strict):
    channel: ShortText | None = None
    time: datetime | None = None

    check_time = field_validator("time")(_utc)


class RankOffersRequest(MemberRequest):
    context: Context = Field(default_factory=Context)
    k: int = Field(5, strict=True, ge=1, le=MAX_K)
    record: bool = Field(True, strict=True)  # false: a dry run (nothing issued, any context.time)


class RecommendRequest(MemberRequest):
    k: int = Field(10, strict=True, ge=1, le=MAX_K)
    exclude_bought: bool = Field(True, strict=True)


class LookalikeRequest(Strict):
    seeds: list[MemberId] | None = Field(None, min_length=1, max_length=MAX_LIST)
    segment: ShortText | None = None
    k: int = Field(50, strict=True, ge=1, le=MAX_K)


class Event(Strict):
    """One canonical event (datasets/schema.py, table `events`), member id raw: pseudonymized on arrival."""

    member_id: MemberId
    ts: datetime
    event_type: EventType
    item_id: ShortText | None = None
    quantity: Finite | None = None
    amount: Finite | None = None
    discount: Finite | None = None
    channel: ShortText | None = None
    session_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    query: Text | None = None

    check_ts = field_validator("ts")(_utc)


class EventsRequest(Strict):
    """The envelope only: each event is checked on its own (`Event`), so one bad event is one itemized rejection."""

    events: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Events, each an `Event` object; an invalid one is listed in the answer's `rejected`",
    )


class ReportRequest(MemberRequest):
    locale: Locale = "en"


class EraseRequest(MemberRequest):
    pass


class AuditRequest(Strict):
    limit: int = Field(100, strict=True, ge=1, le=MAX_LIST)
    member_id: MemberId | None = None


class Empty(Strict):
    pass


# ---- responses (pseudonyms only: `member` is never the raw id) -------------------------------------------------


class Ok(BaseModel):
    ok: bool


class Scores(BaseModel):
    churn: float | None = None
    purchase_30d: float | None = None


class PersonaResponse(BaseModel):
    member: str
    cold_start: bool
    vector: list[float] | None = None
    segment: str | None = None
    lifecycle: str | None = None
    recency_days: float | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    tier: str | None = None
    points: float | None = None
    scores: Scores = Field(default_factory=Scores)
    model_versions: dict[str, Any] = Field(default_factory=dict)


class Item(BaseModel):
    item_id: str
    score: float
    reasons: list[str] = Field(default_factory=list)


class RecommendResponse(BaseModel):
    member: str
    cold_start: bool
    items: list[Item]
    model_versions: dict[str, Any] = Field(default_factory=dict)


class Offer(BaseModel):
    offer_id: str
    kind: str
    score: float
    expected_incremental_value: float | None = None
    basis: str | None = None
    reasons: list[str] = Field(default_factory=list)


class RankOffersResponse(BaseModel):
    member: str
    cold_start: bool
    offers: list[Offer]
    policy: str | None = None
    policy_version: str | int | None = None


class Lookalike(BaseModel):
    member: str
    score: float


class LookalikeResponse(BaseModel):
    members: list[Lookalike]
    basis: str | dict[str, Any] | None = None


class Rejected(BaseModel):
    index: int
    field: str
    reason: str


class EventsResponse(BaseModel):
    accepted: int
    rejected: list[Rejected] = Field(default_factory=list)


class EraseResponse(BaseModel):
    member: str
    removed: dict[str, Any] = Field(default_factory=dict)


class VersionsResponse(BaseModel):
    ok: bool = True
    versions: dict[str, Any] = Field(default_factory=dict)


class AuditRow(BaseModel):
    id: int
    ts: str
    principal: str
    action: str
    member: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditResponse(BaseModel):
    rows: list[AuditRow]
