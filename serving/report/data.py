"""Reading what a report needs from a prepared dataset: one member's events, tiers, cohort totals."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from datasets.membership import derive_tiers
from datasets.pseudonym import load_key, pseudonymize_one
from datasets.settings import TierRules
from datasets.split import iter_event_parts
from datasets.store import Dataset, partition_of
from serving.report.figures import order_keys

EVENT_COLUMNS = ["member_id", "ts", "event_type", "item_id", "quantity", "amount", "channel", "session_id", "discount"]


def tier_rules(ds: Dataset) -> TierRules:
    """The tier rules prepare recorded in the manifest (else configs/prepare.yaml)."""
    recorded = ds.manifest.get("tier_rules")
    if recorded:
        return TierRules.model_validate(recorded)
    from datasets.config import load
    from datasets.settings import PrepareConfig

    return load(PrepareConfig, "prepare").tiers


def resolve_member(ds: Dataset, raw_member_id: str) -> str | None:
    """The pseudonym of a raw platform id in this dataset (same key and namespace as prepare), or None."""
    members = ds.table("members", columns=["member_id"])["member_id"]
    known = set(members.astype(str))
    pseudo = pseudonymize_one(str(raw_member_id), load_key(), ds.manifest.get("id_namespace", ""))
    if pseudo in known:
        return pseudo
    return str(raw_member_id) if str(raw_member_id) in known else None  # already a pseudonym (internal callers)


def member_events(ds: Dataset, pseudonym: str) -> pd.DataFrame:
    """All events of one member, read from the one member-hash partition that holds them."""
    n = int(ds.manifest.get("n_partitions", 1))
    part = int(partition_of(pd.Series([pseudonym]), n).iloc[0])
    path = ds.path / "events" / f"part-{part:05d}.parquet"
    if not path.exists():
        return pd.DataFrame({c: [] for c in EVENT_COLUMNS}).astype({"ts": "datetime64[us, UTC]"})
    ev = pd.read_parquet(path, filters=[("member_id", "==", pseudonym)])
    ev = ev.loc[(ev["member_id"] == pseudonym).to_numpy()].reset_index(drop=True)
    if "discount" not in ev:
        ev["discount"] = float("nan")
    return ev


def member_row(ds: Dataset, pseudonym: str) -> dict:
    """The member's row of the members table (tier, points when the source has them)."""
    m = ds.table("members")
    row = m.loc[(m["member_id"] == pseudonym).to_numpy()]
    return row.iloc[0].to_dict() if len(row) else {}


def member_tiers(ds: Dataset, end: pd.Timestamp) -> pd.Series:
    """Tier of every member: the source's own when it has tiers, else derived by the rules at `end`."""
    if ds.manifest.get("has_tiers"):
        m = ds.table("members", columns=["member_id", "tier"])
        return m.set_index("member_id")["tier"].astype(object)
    ev = pd.concat(iter_event_parts(ds, end=end, columns=["member_id", "event_type", "amount"]), ignore_index=True)
    t = derive_tiers(ev, tier_rules(ds), end)
    return t.set_index("member_id")["tier"].astype(object)


@lru_cache(maxsize=16)
def _cohort_totals(path: str, fingerprint: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Spend and orders per member with a purchase in [start, end), with the member's tier (cached per dataset)."""
    ds = Dataset(path)
    tz = ds.manifest.get("timezone") or "UTC"
    frames = []
    for part in iter_event_parts(ds, start=start, end=end, columns=["member_id", "event_type", "amount", "session_id"]):
        buys = part.loc[(part["event_type"] == "purchase").to_numpy()]
        if not len(buys):
            continue
        keyed = buys.assign(_order=order_keys(buys, tz).to_numpy(), amount=buys["amount"].fillna(0.0))
        g = keyed.groupby("member_id", sort=True)
        frames.append(pd.DataFrame({"spend": g["amount"].sum().round(2), "orders": g["_order"].nunique()}))
    out = pd.concat(frames) if frames else pd.DataFrame({"spend": [], "orders": []})
    out.index = out.index.astype(object)
    return out.assign(tier=member_tiers(ds, end).reindex(out.index).to_numpy())


def cohort(ds: Dataset, tier: str | None, period: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    """Members of the same tier with a purchase in the period: their spend and orders."""
    totals = _cohort_totals(str(ds.path), ds.manifest.get("fingerprint", ""), *period)
    return totals.loc[(totals["tier"] == tier).to_numpy()] if tier else totals.iloc[0:0]
