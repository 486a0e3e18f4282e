"""The offer catalogue (configs/offers.yaml) and the ranking policy: expected incremental value, then rules.

Score of an offer for a member: with an uplift estimate u (extra response probability if issued),
EIV = u x value - cost (basis "uplift"). Otherwise EIV = p x value - cost with p = the member's
purchase propensity scaled by their affinity to the offer relative to the other offers
(p x exp(a - mean a), capped at 1): basis "propensity" when p comes from the propensity model,
"prior" when no score is known. Rules, in order: tier/segment eligibility, channel, validity at
the request time, remaining budget, per-member frequency cap; with `drop_negative` (what the
service and batch scoring issue) an offer of negative EIV, which costs more than it is expected to
bring, is left out: only an exploration arm issues one; then the best by EIV, with no two offers
on the same category among the top `diversity_top`. The policy version is a hash of the catalogue
file, so every answer says which catalogue produced it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from pydantic import Field, field_validator

from datasets.config import Strict
from datasets.paths import config_path
from datasets.schema import OfferKind


class Scope(Strict):
    categories: list[str] = Field(default_factory=list)
    items: list[str] = Field(default_factory=list)


class Cap(Strict):
    max: int = Field(ge=1)
    days: float = Field(gt=0)


class Offer(Strict):
    """One offer of the catalogue; a field left out means none (no scope: store-wide; no tiers: everyone)."""

    offer_id: str
    kind: OfferKind
    title: str = ""
    scope: Scope = Scope()
    value: float = Field(ge=0)
    cost: float = Field(ge=0)
    eligible_tiers: list[str] = Field(default_factory=list)
    eligible_segments: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    budget: float | None = Field(None, ge=0)
    cap: Cap | None = None  # None: the catalogue's default_cap
    uplift_key: str | None = None  # column of the uplift scores that estimates this offer's uplift


class Catalogue(Strict):
    """configs/offers.yaml: the ranking policy's settings (every one from the file) and the offers."""

    policy: str  # the policy's name, echoed in every answer
    default_cap: Cap
    diversity_top: int = Field(ge=1)
    prior_response: float = Field(gt=0, le=1)
    offers: list[Offer]
    version: str = ""  # sha256 of the file, set by load_catalogue

    @field_validator("offers")
    @classmethod
    def _unique(cls, v: list[Offer]) -> list[Offer]:
        ids = [o.offer_id for o in v]
        if len(ids) != len(set(ids)):
            raise ValueError("offer_id values must be unique")
        return v

    def cap(self, offer: Offer) -> Cap:
        return offer.cap or self.default_cap


def load_catalogue(name: str = "offers") -> Catalogue:
    """The catalogue from configs/<name>.yaml (or a path); version = sha256 of the file, 12 hex chars."""
    import yaml

    path = config_path(str(name))
    raw = path.read_bytes()
    cat = Catalogue.model_validate(yaml.safe_load(raw) or {})
    cat.version = hashlib.sha256(raw).hexdigest()[:12]
    return cat


@dataclass
class MemberView:
    """What the rules and reasons need to know about a member."""

    member: str
    tier: str | None
    segment: str | None
    top_categories: list[str] = field(default_factory=list)
    bought_items: dict[str, str] = field(default_factory=dict)  # item_id -> category of items bought


def as_utc(at: datetime) -> pd.Timestamp:
    t = pd.Timestamp(at)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


Issued = dict[str, list[datetime]]  # offer_id -> times it was issued to the member


def issued(shown: pd.DataFrame | list[tuple[str, str | datetime]] | None) -> Issued:
    """Issue times per offer from a frame (offer_id, ts) or (offer_id, ISO time or datetime) pairs."""
    if shown is None or len(shown) == 0:
        return {}
    if isinstance(shown, pd.DataFrame):
        pairs = zip(shown["offer_id"], pd.to_datetime(shown["ts"], utc=True), strict=True)
    else:
        pairs = ((o, datetime.fromisoformat(t) if isinstance(t, str) else t) for o, t in shown)
    out: Issued = {}
    for o, t in pairs:
        out.setdefault(str(o), []).append(as_utc(t))
    return out


def eligible(cat: Catalogue, o: Offer, m: MemberView, at: datetime, channel: str | None,
             spent: dict[str, float], shown: Issued) -> str | None:  # fmt: skip
    """Why an offer is excluded for this member now, or None when it may be issued."""
    t = as_utc(at)
    if o.eligible_tiers and m.tier not in o.eligible_tiers:
        return "tier"
    if o.eligible_segments and m.segment not in o.eligible_segments:
        return "segment"
    if channel and o.channels and channel not in o.channels:
        return "channel"
    if (o.valid_from and t < as_utc(o.valid_from)) or (o.valid_to and t >= as_utc(o.valid_to)):
        return "validity"
    if o.budget is not None and o.budget - spent.get(o.offer_id, 0.0) < o.cost:
        return "budget"
    cap = cat.cap(o)
    times = shown.get(o.offer_id, ())
    if times and sum(x >= t - pd.Timedelta(days=cap.days) for x in times) >= cap.max:
        return "frequency_cap"
    return None


def reasons(o: Offer, m: MemberView, basis: str, p: float | None) -> list[str]:
    """Readable reasons for an offer."""
    out = []
    fav = [c for c in m.top_categories if c in o.scope.categories]
    if fav:
        out.append(f"matches your favourite category: {fav[0]}")
    similar = [i for i, c in m.bought_items.items() if i in o.scope.items or c in o.scope.categories]
    if similar:
        out.append(f"similar to items you bought: {', '.join(sorted(similar)[:3])}")
    if o.eligible_tiers and m.tier:
        out.append(f"a benefit of your tier: {m.tier}")
    if basis == "uplift":
        out.append("you are likely to respond to this offer")
    elif p is not None and p >= 0.3:
        out.append(f"high expected response (segment: {m.segment or 'new member'})")
    if not out:
        out.append(f"{o.kind.replace('_', ' ')} for members" + (f" in segment {m.segment}" if m.segment else ""))
    return out


def rank_offers(
    cat: Catalogue,
    m: MemberView,
    *,
    affinity: dict[str, float],
    p_buy: float | None,
    uplift: dict[str, float] | None = None,
    spent: dict[str, float] | None = None,
    shown: pd.DataFrame | list[tuple[str, str | datetime]] | None = None,
    at: datetime,
    k: int = 5,
    channel: str | None = None,
    drop_negative: bool = False,
) -> list[dict]:
    """The top k offers for a member (see the module docstring for the score and the rules).

    `drop_negative`: leave out offers of negative expected value; the issuing callers pass `not exploring`
    (`ServingState._exploring`: an exploration arm may issue them, nobody else does)."""
    times = issued(shown)
    spent, uplift = spent or {}, uplift or {}
    ok = [o for o in cat.offers if eligible(cat, o, m, at, channel, spent, times) is None]
    mean_a = sum(affinity.get(o.offer_id, 0.0) for o in ok) / max(len(ok), 1)
    scored = []
    for o in ok:
        u = uplift.get(o.uplift_key) if o.uplift_key else None
        if u is not None and math.isfinite(u):
            basis, p, eiv = "uplift", None, u * o.value - o.cost
        else:
            basis = "propensity" if p_buy is not None else "prior"
            base = p_buy if p_buy is not None else cat.prior_response
            p = min(1.0, base * math.exp(max(-5.0, min(5.0, affinity.get(o.offer_id, 0.0) - mean_a))))
            eiv = p * o.value - o.cost
        if eiv >= 0 or not drop_negative:
            scored.append((eiv, o, basis, p))
    scored.sort(key=lambda s: (-s[0], s[1].offer_id))
    picked, rest, used = [], [], set()
    for s in scored:  # diversity: no shared category among the first `diversity_top`
        cats = set(s[1].scope.categories)
        if len(picked) < cat.diversity_top and cats & used:
            rest.append(s)
            continue
        if len(picked) < cat.diversity_top:
            used |= cats
        picked.append(s)
    top = cat.diversity_top
    picked = (picked[:top] + sorted(picked[top:] + rest, key=lambda s: (-s[0], s[1].offer_id)))[:k]
    return [
        {"offer_id": o.offer_id, "kind": o.kind, "score": round(eiv, 6), "expected_incremental_value": round(eiv, 6),
         "basis": basis, "reasons": reasons(o, m, basis, p), "cost": o.cost}
        for eiv, o, basis, p in picked
    ]  # fmt: skip
