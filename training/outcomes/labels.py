"""Outcome labels on the temporal protocol: churn, purchase in a window, spend in a window.

An order is one (member, timestamp) purchase occasion. At a cutoff c the population is every
member with an order before c; for a horizon of H days the window is [c, c + H): a purchase at
c + H (even one microsecond after the window's last instant) is outside it. Labels need the data
to cover the whole window: asking for a window that runs past the last event is an error, not a
silent "churned".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from datasets.split import MICROSECOND, TimeLike, before_mask, utc_cutoff, window_mask
from datasets.store import Dataset


def orders(dataset: str | Dataset) -> pd.DataFrame:
    """One row per purchase occasion: member_id, ts (UTC), value (sum of amounts, NaN if none known), lines, units.

    Read one member-hash part at a time with the purchase filter pushed down to Parquet: a member's
    events all live in one part, so grouping per part is exact and memory stays bounded.
    """
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    cols = ["member_id", "ts", "event_type", "quantity", "amount"]
    parts = []
    for path in ds.event_parts():
        ev = pd.read_parquet(path, columns=cols, filters=[("event_type", "==", "purchase")])
        buys = ev[(ev["event_type"] == "purchase") & ~(ev["quantity"] <= 0)]
        agg = buys.groupby(["member_id", "ts"], sort=True, observed=True, as_index=False).agg(
            value=("amount", "sum"), n_amounts=("amount", "count"), lines=("amount", "size"), units=("quantity", "sum")
        )
        agg.loc[agg["n_amounts"] == 0, "value"] = float("nan")  # no amount known: unknown, not zero
        parts.append(agg.drop(columns="n_amounts"))  # flat frames: concatenating MultiIndexes is ~10x slower
    if not parts or not sum(len(x) for x in parts):
        raise ValueError(f"dataset {ds.name} has no purchase events: churn and propensity labels need purchases")
    out = pd.concat(parts, ignore_index=True)
    out["ts"] = out["ts"].dt.tz_convert("UTC")
    return out


def data_end(orders_: pd.DataFrame) -> pd.Timestamp:
    """The instant just after the last order (an exclusive end; `datasets.split.protocol_split`'s end)."""
    return orders_["ts"].max() + MICROSECOND


def population(orders_: pd.DataFrame, cutoff: TimeLike) -> np.ndarray:
    """Sorted ids of the members with at least one order strictly before the cutoff."""
    cut = utc_cutoff(cutoff)
    return np.sort(orders_.loc[before_mask(orders_, cut), "member_id"].unique())


def window_labels(
    orders_: pd.DataFrame,
    cutoff: TimeLike,
    horizons: dict[str, float],
    members: np.ndarray | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per member of the population: `orders_<H>d` and `spend_<H>d` in [cutoff, cutoff + H) for each horizon.

    `horizons` maps a name to days, e.g. {"churn": 90, "buy": 30}; a horizon whose window runs
    past `end` (default: the last order) gets NaN labels, so a multi-task model can skip them.
    """
    cut = utc_cutoff(cutoff)
    end = data_end(orders_) if end is None else end
    members = population(orders_, cut) if members is None else np.asarray(members)
    out = pd.DataFrame(index=pd.Index(members, name="member_id"))
    mine = orders_[orders_["member_id"].isin(members)]
    for name, days in horizons.items():
        stop = cut + pd.Timedelta(days=days)
        if stop > end:
            out[f"orders_{name}"] = np.nan
            out[f"spend_{name}"] = np.nan
            continue
        win = mine[window_mask(mine, cut, stop)].groupby("member_id")
        out[f"orders_{name}"] = win.size().reindex(out.index, fill_value=0).astype(float)
        out[f"spend_{name}"] = win["value"].sum().reindex(out.index, fill_value=0.0).astype(float)
    return out


def outcome_targets(labels: pd.DataFrame, churn: str = "churn", buy: str = "buy") -> dict[str, np.ndarray]:
    """Model targets from window labels: churn = no order in the churn window, buy = any order, spend = log1p(spend)."""
    oc, ob, sb = labels[f"orders_{churn}"], labels[f"orders_{buy}"], labels[f"spend_{buy}"]
    return {
        "churn": np.where(oc.isna(), np.nan, (oc == 0).astype(float)),
        "buy": np.where(ob.isna(), np.nan, (ob > 0).astype(float)),
        "spend": np.log1p(sb.clip(lower=0).to_numpy(float)),
    }
