"""Tier and points derived from spend, by the configurable rules of configs/prepare.yaml."""

from __future__ import annotations

import numpy as np
import pandas as pd

from datasets.settings import TierRules


def derive_tiers(events: pd.DataFrame, rules: TierRules, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per member: trailing-window spend, tier reached, and points earned before `as_of`.

    Only purchases strictly before `as_of` count, so a feature cutoff never sees the future.
    """
    buys = events.loc[(events["event_type"] == "purchase") & (events["ts"] < as_of), ["member_id", "ts", "amount"]]
    window_start = as_of - pd.Timedelta(days=rules.window_days)
    amount = buys["amount"].fillna(0.0).to_numpy()
    recent = np.where((buys["ts"] >= window_start).to_numpy(), amount, 0.0)
    per = (
        pd.DataFrame({"member_id": buys["member_id"].to_numpy(), "total": amount, "window_spend": recent})
        .groupby("member_id", sort=True)
        .sum()
    )
    thresholds = np.array([lvl.min_spend for lvl in rules.levels])
    names = np.array([lvl.name for lvl in rules.levels], dtype=object)
    idx = np.searchsorted(thresholds, per["window_spend"].to_numpy(), side="right") - 1
    return pd.DataFrame(
        {
            "member_id": per.index.astype(str),
            "window_spend": per["window_spend"].to_numpy(),
            "tier": names[np.clip(idx, 0, None)],
            "points_balance": np.round(per["total"].to_numpy() * rules.points_per_unit, 2),
        }
    )


def next_tier(window_spend: float, rules: TierRules) -> tuple[str | None, float]:
    """The next tier's name and the spend still needed to reach it (None at the top)."""
    for lvl in rules.levels:
        if lvl.min_spend > window_spend:
            return lvl.name, round(lvl.min_spend - window_spend, 2)
    return None, 0.0
