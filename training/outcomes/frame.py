"""The member frame at a cutoff: RFM/tags from the data layer, order behaviour, BG/NBD outputs.

Everything here is computed from orders strictly before the cutoff (the data layer's features
read `events_before`; the behaviour and BG/NBD columns filter `ts < cutoff` first), so a frame
built at cutoff c can be labelled with any window starting at c without leaking it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from datasets.feature_settings import FeatureConfig
from datasets.features import features_at
from datasets.split import before_mask, utc_cutoff
from datasets.store import Dataset
from training.outcomes.bgnbd import BGNBD, summary_from_purchases

CATEGORICAL = ["segment", "lifecycle", "price_band", "weekend_habit", "time_of_day", "channel", "region", "tier"]
FROM_FEATURES = ["recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "days_since_first_purchase",
                 "tenure_days", "price_index", "discount_affinity", "weekend_share", "points_balance"]  # fmt: skip
WINDOWS = (30, 90, 180)
BEHAVIOUR = [
    "n_orders", "order_value_mean", "last_order_value", "gap_mean", "gap_std", "gap_cv", "recency_over_gap",
    "orders_per_month", "trend_90", "lines_per_order", "units_per_order",
    *[f"orders_{w}d" for w in WINDOWS], *[f"spend_{w}d" for w in WINDOWS],
]  # fmt: skip
BGNBD_COLS = ["bg_p_alive", "bg_expected_h", "bg_p_none_h", "bg_expected_30", "bg_p_none_30"]
NUMERIC = FROM_FEATURES + BEHAVIOUR + BGNBD_COLS
_DAY = pd.Timedelta(days=1)


def behaviour(orders: pd.DataFrame, cutoff: pd.Timestamp, members: np.ndarray) -> pd.DataFrame:
    """Order counts and spend in recent windows, inter-order gaps, trend (only orders before the cutoff)."""
    before = orders[before_mask(orders, cutoff) & orders["member_id"].isin(members)].sort_values(["member_id", "ts"])
    g = before.groupby("member_id", sort=True)
    age = (cutoff - before["ts"]) / _DAY
    out = pd.DataFrame(index=pd.Index(members, name="member_id"))
    out["n_orders"] = g.size()
    out["order_value_mean"] = g["value"].mean()
    out["last_order_value"] = g["value"].last()
    out["lines_per_order"] = g["lines"].mean() if "lines" in before else np.nan
    out["units_per_order"] = g["units"].mean() if "units" in before else np.nan
    gaps = before["ts"].diff() / _DAY
    gaps[before["member_id"].ne(before["member_id"].shift())] = np.nan
    gg = gaps.groupby(before["member_id"])
    out["gap_mean"], out["gap_std"] = gg.mean(), gg.std()
    out["gap_cv"] = out["gap_std"] / out["gap_mean"].where(out["gap_mean"] > 0)
    recency = (cutoff - g["ts"].max()) / _DAY
    out["recency_over_gap"] = recency / out["gap_mean"].where(out["gap_mean"] > 0)
    span_months = ((cutoff - g["ts"].min()) / _DAY).clip(lower=30) / 30.44
    out["orders_per_month"] = out["n_orders"] / span_months
    for w in WINDOWS:
        win = before[age < w].groupby("member_id")
        out[f"orders_{w}d"] = win.size().reindex(out.index, fill_value=0)
        out[f"spend_{w}d"] = win["value"].sum().reindex(out.index, fill_value=0.0)
    prev = before[(age >= 90) & (age < 180)].groupby("member_id").size().reindex(out.index, fill_value=0)
    out["trend_90"] = (out["orders_90d"] + 1) / (prev + 1)
    return out.astype(float)


def bgnbd_columns(
    orders: pd.DataFrame, cutoff: pd.Timestamp, members: np.ndarray, horizon_days: float
) -> tuple[pd.DataFrame, BGNBD]:
    """BG/NBD fitted on the population at the cutoff: P(alive), expected orders and P(no order) in H and 30 days."""
    summ = summary_from_purchases(orders[before_mask(orders, cutoff)], cutoff).reindex(members)
    x, tx, t = summ["frequency"].to_numpy(float), summ["recency"].to_numpy(float), summ["T"].to_numpy(float)
    model = BGNBD().fit(x, tx, t)
    cols = {
        "bg_p_alive": model.p_alive(x, tx, t),
        "bg_expected_h": model.expected_purchases(horizon_days, x, tx, t),
        "bg_p_none_h": model.p_no_purchase(horizon_days, x, tx, t),
        "bg_expected_30": model.expected_purchases(30.0, x, tx, t),
        "bg_p_none_30": model.p_no_purchase(30.0, x, tx, t),
    }
    return pd.DataFrame(cols, index=pd.Index(members, name="member_id")), model


def member_frame(
    ds: Dataset,
    orders: pd.DataFrame,
    cutoff: pd.Timestamp | str,
    members: np.ndarray,
    horizon_days: float,
    feature_cfg: FeatureConfig | None = None,
    feats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per member (index member_id): data-layer features, behaviour and BG/NBD columns at the cutoff.

    `feats`: the data layer's features at this cutoff when the caller already has them.
    """
    cut = utc_cutoff(cutoff)
    feats = features_at(ds, cut, feature_cfg) if feats is None else feats
    feats = feats.set_index("member_id").reindex(members)
    frame = feats[FROM_FEATURES + CATEGORICAL].copy()
    frame = frame.join(behaviour(orders, cut, members))
    bg, _ = bgnbd_columns(orders, cut, members, horizon_days)
    frame = frame.join(bg)
    frame[FROM_FEATURES] = frame[FROM_FEATURES].astype(float)
    frame[CATEGORICAL] = frame[CATEGORICAL].astype(object).where(frame[CATEGORICAL].notna(), None)
    return frame
