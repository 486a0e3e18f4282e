"""The member report's figures: pure pandas over one member's events (no I/O, testable by hand).

Conventions (stated on the page too): spend is the amount paid on purchases in the period
(after discounts), returns are listed apart; savings are the purchase discounts, of which
coupons are what `coupon_redeem` events record; months, weekdays and hours are on the
dataset's local clock; an order is a session with a purchase (a local day when there is none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from datasets.settings import TierRules

MIN_COHORT = 50  # "members like you" is shown only for cohorts at least this large
DAYPARTS = (("night", 0), ("morning", 6), ("afternoon", 12), ("evening", 18))  # local hour starts


@dataclass
class MemberFigures:
    """Everything the member page shows, as plain numbers and Series."""

    start: pd.Timestamp
    end: pd.Timestamp
    orders: int = 0
    spend: float = 0.0
    returns: float = 0.0
    spend_by_month: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    spend_by_category: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    savings: float = 0.0
    savings_coupons: float = 0.0
    savings_other: float = 0.0
    points_earned: float = 0.0
    points_balance: float | None = None
    tier: str | None = None
    window_spend: float = 0.0
    next_tier: str | None = None
    next_tier_needed: float = 0.0
    orders_by_weekday: pd.Series = field(default_factory=lambda: pd.Series(0, index=range(7)))
    orders_by_daypart: pd.Series = field(default_factory=lambda: pd.Series(dtype=int))
    orders_by_channel: pd.Series = field(default_factory=lambda: pd.Series(dtype=int))
    top_before: list[str] = field(default_factory=list)
    top_after: list[str] = field(default_factory=list)

    @property
    def has_purchases(self) -> bool:
        return self.orders > 0


def default_period(end: pd.Timestamp, months: int = 12) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The `months` whole months ending at `end` (exclusive, UTC)."""
    end = pd.Timestamp(end).tz_convert("UTC")
    return end - pd.DateOffset(months=months), end


def _local(ts: pd.Series, tz: str) -> pd.Series:
    return ts.dt.tz_convert(tz)


def order_keys(buys: pd.DataFrame, tz: str) -> pd.Series:
    """One key per order: the session id, or the local day for purchases without one."""
    day = "day:" + _local(buys["ts"], tz).dt.strftime("%Y-%m-%d")
    sess = buys["session_id"].astype(object) if "session_id" in buys else pd.Series(None, index=buys.index)
    return sess.where(sess.notna(), day).astype(str)


def _by_category(buys: pd.DataFrame, items: pd.DataFrame) -> pd.Series:
    cat = buys["item_id"].map(items.set_index("item_id")["category"]).astype(object)
    cat = cat.where(cat.notna(), "other")
    out = buys["amount"].fillna(0.0).groupby(cat.to_numpy()).sum().round(2)
    return out[out > 0].sort_values(ascending=False, kind="stable")


def _top(buys: pd.DataFrame, items: pd.DataFrame, n: int = 3) -> list[str]:
    s = _by_category(buys, items)
    return sorted(s.index, key=lambda c: (-s[c], c))[:n]


def tier_progress(window_spend: float, tier: str | None, rules: TierRules) -> tuple[str | None, str | None, float]:
    """(current tier, next tier, spend still needed). The current tier is the given one when known."""
    names = [lvl.name for lvl in rules.levels]
    reached = names[max(0, int(np.searchsorted([lvl.min_spend for lvl in rules.levels], window_spend, "right")) - 1)]
    current = tier if tier else reached
    rank = names.index(current) if current in names else names.index(reached)
    if rank + 1 >= len(names):
        return current, None, 0.0
    nxt = rules.levels[rank + 1]
    return current, nxt.name, round(max(nxt.min_spend - window_spend, 0.0), 2)


def member_figures(
    events: pd.DataFrame,
    items: pd.DataFrame,
    period: tuple[pd.Timestamp, pd.Timestamp],
    rules: TierRules,
    *,
    tz: str = "UTC",
    tier: str | None = None,
    points_balance: float | None = None,
) -> MemberFigures:
    """Figures of one member over [start, end) from that member's events (any event types)."""
    start, end = (pd.Timestamp(p).tz_convert("UTC") for p in period)
    ev = events.loc[((events["ts"] >= start) & (events["ts"] < end)).to_numpy()]
    buys = ev.loc[(ev["event_type"] == "purchase").to_numpy()]
    fig = MemberFigures(start=start, end=end, points_balance=points_balance)
    last = (end - pd.Timedelta(microseconds=1)).tz_convert(tz).tz_localize(None)
    months = pd.period_range(start.tz_convert(tz).tz_localize(None), last, freq="M")
    month = _local(buys["ts"], tz).dt.tz_localize(None).dt.to_period("M")
    fig.spend_by_month = buys["amount"].fillna(0.0).groupby(month.to_numpy()).sum().reindex(months, fill_value=0.0)
    fig.spend_by_month = fig.spend_by_month.round(2)
    fig.spend = round(float(buys["amount"].fillna(0.0).sum()), 2)
    fig.returns = round(float(ev.loc[(ev["event_type"] == "return").to_numpy(), "amount"].fillna(0.0).sum()), 2)
    fig.spend_by_category = _by_category(buys, items)
    disc = buys["discount"].fillna(0.0) if "discount" in buys else pd.Series(0.0, index=buys.index)
    fig.savings = round(float(disc.clip(lower=0).sum()), 2)
    coupons = ev.loc[(ev["event_type"] == "coupon_redeem").to_numpy()]
    c_val = coupons["discount"].fillna(coupons["amount"]) if "discount" in coupons else coupons["amount"]
    fig.savings_coupons = round(min(float(c_val.fillna(0.0).clip(lower=0).sum()), fig.savings), 2)
    fig.savings_other = round(fig.savings - fig.savings_coupons, 2)
    fig.points_earned = round(fig.spend * rules.points_per_unit, 2)
    win = events.loc[(events["event_type"] == "purchase").to_numpy()]
    win = win.loc[((win["ts"] >= end - pd.Timedelta(days=rules.window_days)) & (win["ts"] < end)).to_numpy()]
    fig.window_spend = round(float(win["amount"].fillna(0.0).sum()), 2)
    fig.tier, fig.next_tier, fig.next_tier_needed = tier_progress(fig.window_spend, tier, rules)
    if points_balance is None:  # derived like datasets.membership: all purchases before the end
        before = events.loc[((events["event_type"] == "purchase") & (events["ts"] < end)).to_numpy(), "amount"]
        fig.points_balance = round(float(before.fillna(0.0).sum()) * rules.points_per_unit, 2)
    if len(buys):
        keys = order_keys(buys, tz)
        first = buys.assign(_k=keys.to_numpy()).sort_values("ts", kind="stable").groupby("_k", sort=False).head(1)
        fig.orders = len(first)
        local = _local(first["ts"], tz)
        fig.orders_by_weekday = local.dt.dayofweek.value_counts().reindex(range(7), fill_value=0).astype(int)
        part = np.searchsorted([h for _, h in DAYPARTS], local.dt.hour.to_numpy(), side="right") - 1
        names = [n for n, _ in DAYPARTS]
        fig.orders_by_daypart = pd.Series(np.array(names)[part]).value_counts().reindex(names, fill_value=0).astype(int)
        chan = first["channel"].astype(object).where(first["channel"].notna(), "unknown")
        fig.orders_by_channel = chan.value_counts().sort_values(ascending=False, kind="stable").astype(int)
        mid = start + (end - start) / 2
        fig.top_before = _top(buys.loc[(buys["ts"] < mid).to_numpy()], items)
        fig.top_after = _top(buys.loc[(buys["ts"] >= mid).to_numpy()], items)
    else:
        fig.orders_by_daypart = pd.Series(0, index=[n for n, _ in DAYPARTS])
    return fig


def habit_words(fig: MemberFigures) -> dict[str, object]:
    """Plain-words habit keys: busiest weekday(s) share on weekends, main daypart and channel with shares."""
    if not fig.has_purchases:
        return {}
    wk = fig.orders_by_weekday
    weekend_share = float(wk.loc[[5, 6]].sum() / max(wk.sum(), 1))
    dp, ch = fig.orders_by_daypart, fig.orders_by_channel
    return {
        "weekend_share": weekend_share,
        "weekend_habit": "weekend" if weekend_share >= 0.5 else ("weekday" if weekend_share <= 0.1 else "mixed"),
        "top_weekday": int(wk.idxmax()),
        "daypart": str(dp.idxmax()),
        "daypart_share": float(dp.max() / max(dp.sum(), 1)),
        "channel": str(ch.index[0]),
        "channel_share": float(ch.iloc[0] / max(ch.sum(), 1)),
    }


def cohort_comparison(member_spend: float, member_orders: int, cohort: pd.DataFrame, min_size: int = MIN_COHORT):
    """Member vs cohort (columns spend, orders; one row per member, the member included) or None below min_size."""
    if len(cohort) < min_size:
        return None
    spend = cohort["spend"].to_numpy(dtype=float)
    return {
        "size": len(cohort),
        "median_spend": round(float(np.median(spend)), 2),
        "median_orders": float(np.median(cohort["orders"].to_numpy(dtype=float))),
        "spend_percentile": float((spend < member_spend).mean()),
        "member_spend": member_spend,
        "member_orders": member_orders,
    }
