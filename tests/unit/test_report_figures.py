"""Member report figures against hand-computed values; empty members; cohort threshold; locale formats."""

from __future__ import annotations

import pandas as pd
import pytest

from datasets.settings import TierRules
from serving.report.figures import MIN_COHORT, cohort_comparison, habit_words, member_figures, tier_progress
from serving.report.locale import Locale
from serving.report.member import offer_rows, page_context
from serving.report.render import render

RULES = TierRules.model_validate(
    {
        "window_days": 365,
        "points_per_unit": 2.0,
        "levels": [
            {"name": "base", "min_spend": 0},
            {"name": "silver", "min_spend": 500},
            {"name": "gold", "min_spend": 2000},
        ],
    }
)
ITEMS = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["books", "toys", "home"]})
PERIOD = (pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2025-01-01", tz="UTC"))


def _events(rows: list[tuple]) -> pd.DataFrame:
    cols = ["ts", "event_type", "item_id", "amount", "discount", "channel", "session_id"]
    ev = pd.DataFrame(rows, columns=cols)
    ev["ts"] = pd.to_datetime(ev["ts"], utc=True)
    return ev.assign(member_id="m_x", quantity=1.0)


EVENTS = _events(
    [
        # 2024-03-02 is a Saturday, 2024-03-04 a Monday, 2024-11-06 a Wednesday (UTC)
        ("2024-03-02T19:00:00Z", "purchase", "a", 40.0, 10.0, "app", "s1"),  # books, evening
        ("2024-03-02T19:05:00Z", "purchase", "b", 20.0, 0.0, "app", "s1"),  # same order (session s1)
        ("2024-03-02T19:05:01Z", "coupon_redeem", None, 10.0, 10.0, "app", "s1"),
        ("2024-03-04T09:30:00Z", "purchase", "b", 15.5, None, "web", "s2"),  # toys, morning
        ("2024-03-10T10:00:00Z", "return", "b", 20.0, None, "web", "s3"),
        ("2024-11-06T14:00:00Z", "purchase", "c", 100.0, 5.0, "app", None),  # home, afternoon, no session
        ("2024-11-06T15:00:00Z", "view", "a", None, None, "app", "s5"),
        ("2023-12-31T23:00:00Z", "purchase", "a", 999.0, 0.0, "app", "s0"),  # before the period: points, not spend
        ("2025-01-01T00:00:00Z", "purchase", "a", 7.0, 0.0, "app", "s9"),  # at the end: excluded
    ]
)


def test_figures_equal_hand_computed_values() -> None:
    f = member_figures(EVENTS, ITEMS, PERIOD, RULES, tz="UTC")
    assert f.spend == 175.5  # 40 + 20 + 15.5 + 100
    assert f.orders == 3  # s1, s2, and the session-less local day 2024-11-06
    assert f.returns == 20.0
    assert (f.savings, f.savings_coupons, f.savings_other) == (15.0, 10.0, 5.0)
    assert f.points_earned == 351.0  # 175.5 x 2 points per unit
    assert f.points_balance == (999.0 + 175.5) * 2  # no platform balance: all purchases before the end
    assert len(f.spend_by_month) == 12 and f.spend_by_month.sum() == 175.5
    assert f.spend_by_month[pd.Period("2024-03", "M")] == 75.5 and f.spend_by_month[pd.Period("2024-11", "M")] == 100
    assert list(f.spend_by_category.items()) == [("home", 100.0), ("books", 40.0), ("toys", 35.5)]
    assert f.orders_by_weekday.tolist() == [1, 0, 1, 0, 0, 1, 0]  # Mon, Wed, Sat
    assert f.orders_by_daypart.to_dict() == {"night": 0, "morning": 1, "afternoon": 1, "evening": 1}
    assert f.orders_by_channel.to_dict() == {"app": 2, "web": 1}
    assert f.top_before == ["books", "toys"] and f.top_after == ["home"]
    # tier window: the 365 days before the end hold 175.5 (the 999 of 2023-12-31 is 367 days before)
    assert (f.window_spend, f.tier, f.next_tier, f.next_tier_needed) == (175.5, "base", "silver", 324.5)
    h = habit_words(f)
    assert h["weekend_habit"] == "mixed" and h["channel"] == "app" and h["channel_share"] == pytest.approx(2 / 3)


def test_local_clock_moves_orders_across_days_and_months() -> None:
    ev = _events([("2024-03-31T23:30:00Z", "purchase", "a", 10.0, 0.0, "app", "s1")])
    utc = member_figures(ev, ITEMS, PERIOD, RULES, tz="UTC")
    sh = member_figures(ev, ITEMS, PERIOD, RULES, tz="Asia/Shanghai")  # 07:30 on Monday 1 April
    assert utc.spend_by_month[pd.Period("2024-03", "M")] == 10 and sh.spend_by_month[pd.Period("2024-04", "M")] == 10
    assert utc.orders_by_weekday[6] == 1 and sh.orders_by_weekday[0] == 1
    assert utc.orders_by_daypart["night"] == 0 and sh.orders_by_daypart["morning"] == 1


def test_tier_progress_uses_the_platform_tier_when_known() -> None:
    assert tier_progress(600.0, None, RULES) == ("silver", "gold", 1400.0)
    assert tier_progress(600.0, "gold", RULES) == ("gold", None, 0.0)  # the platform says gold: top tier
    assert tier_progress(2500.0, None, RULES) == ("gold", None, 0.0)


def _page(fig, loc: Locale, offers=(), comp=None) -> str:
    ctx = page_context(fig, loc, offer_rows(list(offers), None, loc), comp, "••••ABCD", "UTC", 365)
    return render("member.html.j2", **ctx)


def test_member_without_purchases_gets_a_sensible_page() -> None:
    views = EVENTS.loc[EVENTS["event_type"] == "view"]
    f = member_figures(views, ITEMS, PERIOD, RULES)
    assert (f.spend, f.orders, f.savings, f.has_purchases) == (0.0, 0, 0.0, False)
    assert f.spend_by_month.eq(0).all() and f.spend_by_category.empty and habit_words(f) == {}
    for code in ("en", "zh-CN"):
        loc = Locale(code)
        html = _page(f, loc)
        assert loc.t("no_purchases") in html and loc.t("offers_none") in html
        assert 'id="spend-month"' not in html and "<svg" not in html
        assert loc.t("tier_next", amount=loc.money(500), days=365, tier=loc.label("tier", "silver")) in html


def test_cohort_comparison_hidden_below_fifty_members() -> None:
    f = member_figures(EVENTS, ITEMS, PERIOD, RULES)
    small = pd.DataFrame({"spend": [float(i) for i in range(MIN_COHORT - 1)], "orders": 1})
    big = pd.DataFrame({"spend": [float(i) for i in range(MIN_COHORT)], "orders": 1})
    assert MIN_COHORT == 50 and cohort_comparison(f.spend, f.orders, small) is None
    comp = cohort_comparison(f.spend, f.orders, big)
    assert comp["size"] == 50 and comp["median_spend"] == 24.5 and comp["spend_percentile"] == 1.0
    loc = Locale("en")
    assert 'id="cohort"' not in _page(f, loc, comp=None)
    html = _page(f, loc, comp=comp)
    assert 'id="cohort"' in html and "Among 50 members" in html


def test_offers_are_escaped_and_reasons_shown() -> None:
    f = member_figures(EVENTS, ITEMS, PERIOD, RULES)
    offers = [{"offer_id": "O1", "kind": "coupon", "value": 0.15, "title": "<script>x</script>", "reasons": ["a & b"]}]
    html = _page(f, Locale("en"), offers)
    assert "<script>" not in html and "&lt;script&gt;" in html and "a &amp; b" in html and "15% off" in html


def test_locale_formats() -> None:
    en, zh = Locale("en"), Locale("zh-CN")
    assert en.money(1234.5) == "$1,234.50" and zh.money(1234.5) == "¥1,234.50" and en.money(-5) == "-$5.00"
    assert en.date("2024-03-05") == "Mar 5, 2024" and zh.date("2024-03-05") == "2024年3月5日"
    assert en.month(pd.Period("2024-03", "M")) == "Mar 2024" and zh.month(pd.Period("2024-03", "M")) == "2024年3月"
    assert en.number(1234567) == "1,234,567" and en.percent(0.256) == "26%" and en.number(float("nan")) == "–"
    assert Locale("zh_cn").code == "zh-CN" and Locale("fr").code == "en" and Locale("en", "€").money(2) == "€2.00"
    assert (
        zh.weekday(0) == "周一" and zh.label("tier", "gold") == "金卡" and en.label("category", "new_cat") == "new cat"
    )
