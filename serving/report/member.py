"""The member's consumption report: one mobile-first HTML page with inline SVG charts, no ids."""

from __future__ import annotations

from typing import Any

import pandas as pd

from datasets.split import dataset_end, utc_cutoff
from datasets.store import Dataset
from serving.report import data, svg
from serving.report.figures import MemberFigures, cohort_comparison, default_period, habit_words, member_figures
from serving.report.locale import Locale
from serving.report.render import render, safe_svg

_PAGE_KEYS = (
    "report_title",
    "spend_month",
    "spend_category",
    "savings",
    "savings_none",
    "tier",
    "habits",
    "favourites",
    "offers",
    "offers_none",
    "why",
    "cohort",
    "no_purchases",
    "summary",
)


def _masked_ref(pseudonym: str | None) -> str:
    """A short masked reference (never the pseudonym or the raw id)."""
    return "••••" + (pseudonym[-4:].upper() if pseudonym else "----")


def _offer_value(o: dict, loc: Locale) -> str | None:
    v, kind = o.get("value"), o.get("kind")
    if v is None or pd.isna(v):
        return None
    if kind in {"coupon", "member_price"} and 0 < v < 1:
        return loc.percent(v) + " off" if loc.code == "en" else "优惠 " + loc.percent(v)
    if kind == "points_multiplier":
        return f"×{loc.number(v, 1)}"
    return loc.money(v)


def offer_rows(offers: list[dict], catalogue: pd.DataFrame | None, loc: Locale) -> list[dict[str, Any]]:
    """What the page shows of each offer: kind, title, value, reasons (no ids, no scores)."""
    info = catalogue.set_index("offer_id") if catalogue is not None and len(catalogue) else None
    rows = []
    for o in offers:
        extra = info.loc[o["offer_id"]].to_dict() if info is not None and o.get("offer_id") in info.index else {}
        merged = {**extra, **o}
        title = merged.get("title")
        rows.append(
            {
                "kind": loc.label("kind", merged.get("kind", "")),
                "title": title if isinstance(title, str) and title else loc.label("kind", merged.get("kind", "")),
                "value": _offer_value(merged, loc),
                "reasons": [str(r) for r in merged.get("reasons") or []],
            }
        )
    return rows


def _charts(fig: MemberFigures, loc: Locale, comp: dict | None) -> dict[str, Any]:
    charts: dict[str, Any] = {"month": None, "category": None, "savings": None, "weekday": None, "daypart": None}
    if fig.has_purchases:
        charts["month"] = svg.bars(
            [loc.short_month(p) for p in fig.spend_by_month.index],
            fig.spend_by_month.tolist(),
            loc.t("spend_month"),
            fmt=loc.money,
        )
        cats = fig.spend_by_category.head(8)
        charts["category"] = svg.hbars(
            [loc.label("category", c) for c in cats.index], cats.tolist(), loc.t("spend_category"), fmt=loc.money
        )
        charts["weekday"] = svg.bars(
            [loc.weekday(d) for d in range(7)], fig.orders_by_weekday.tolist(), loc.t("orders_weekday"), height=140
        )
        dp = fig.orders_by_daypart
        charts["daypart"] = svg.bars(
            [loc.label("daypart", p) for p in dp.index], dp.tolist(), loc.t("orders_daypart"), height=140
        )
    if fig.savings > 0:
        charts["savings"] = svg.hbars(
            [loc.t("savings_coupons"), loc.t("savings_other")],
            [fig.savings_coupons, fig.savings_other],
            loc.t("savings"),
            fmt=loc.money,
        )
    if comp:
        charts["cohort"] = svg.hbars(
            [loc.t("spent"), loc.t("cohort")],
            [comp["member_spend"], comp["median_spend"]],
            loc.t("cohort"),
            fmt=loc.money,
        )
    return {k: safe_svg(v) for k, v in charts.items()}


def _habit_lines(fig: MemberFigures, loc: Locale) -> list[str]:
    h = habit_words(fig)
    if not h:
        return []
    day = loc.weekday(h["top_weekday"])
    first = loc.t(f"habit_{h['weekend_habit']}", share=loc.percent(h["weekend_share"]), day=day)
    return [
        first,
        loc.t("habit_daypart", part=loc.label("daypart", h["daypart"]), share=loc.percent(h["daypart_share"])),
        loc.t("habit_channel", channel=loc.label("channel", h["channel"]), share=loc.percent(h["channel_share"])),
    ]


def _favourite_lines(fig: MemberFigures, loc: Locale) -> list[str]:
    sep = "、" if loc.code == "zh-CN" else ", "
    names = lambda cs: sep.join(loc.label("category", c) for c in cs) or "–"  # noqa: E731
    lines = [loc.t("fav_then_now", before=names(fig.top_before), after=names(fig.top_after))]
    new = [c for c in fig.top_after if c not in fig.top_before]
    lines.append(loc.t("fav_new", cats=names(new)) if new and fig.top_before else loc.t("fav_same"))
    return lines


def page_context(
    fig: MemberFigures, loc: Locale, offers: list[dict], comp: dict | None, ref: str, tz: str, window_days: int
) -> dict[str, Any]:
    """Everything the template needs, already formatted for the locale."""
    last_day = fig.end - pd.Timedelta(microseconds=1)
    span = {"start": loc.date(fig.start.tz_convert(tz)), "end": loc.date(last_day.tz_convert(tz))}
    tier_name = loc.label("tier", fig.tier) if fig.tier else "–"
    if fig.next_tier:
        need = fig.next_tier_needed
        nxt = loc.t("tier_next", amount=loc.money(need), days=window_days, tier=loc.label("tier", fig.next_tier))
        pct = round(100 * fig.window_spend / max(fig.window_spend + need, 1e-9)) if need > 0 else 100
    else:
        nxt, pct = loc.t("tier_top"), 100
    kpis = [
        {"label": loc.t("spent"), "value": loc.money(fig.spend)},
        {"label": loc.t("orders"), "value": loc.number(fig.orders)},
        {"label": loc.t("saved"), "value": loc.money(fig.savings)},
        {"label": loc.t("points_earned"), "value": loc.number(fig.points_earned)},
    ]
    cohort_text = None
    if comp:
        cohort_text = loc.t(
            "cohort_text",
            size=loc.number(comp["size"]),
            median=loc.money(comp["median_spend"]),
            pct=loc.percent(comp["spend_percentile"]),
        )
    return {
        "lang": loc.lang,
        "t": {k: loc.t(k) for k in _PAGE_KEYS},
        "period": loc.t("period", **span),
        "ref": loc.t("ref", ref=ref),
        "has_purchases": fig.has_purchases,
        "kpis": kpis,
        "returns_note": loc.t("returns_note", amount=loc.money(fig.returns)) if fig.returns > 0 else None,
        "charts": _charts(fig, loc, comp),
        "tier": {
            "now": loc.t("tier_now", tier=tier_name),
            "points": loc.t("points_balance", points=loc.number(fig.points_balance)),
            "next": nxt,
            "pct": int(min(max(pct, 0), 100)),
            "window": loc.t("tier_window", days=window_days, amount=loc.money(fig.window_spend)),
        },
        "habits": _habit_lines(fig, loc),
        "favourites": _favourite_lines(fig, loc) if fig.has_purchases else [],
        "offers": offers,
        "cohort": cohort_text,
        "footer": loc.t("footer", tz=tz, **span),
    }


def build_member_report(
    ds: Dataset,
    raw_member_id: str,
    locale: str = "en",
    offers: list[dict] | None = None,
    period: tuple | None = None,
    *,
    require_known: bool = False,
    currency: str | None = None,
) -> tuple[str, MemberFigures]:
    """(HTML, figures) of one member's report; an unknown member gets the no-purchase page unless required."""
    pseudo = data.resolve_member(ds, raw_member_id)
    if pseudo is None and require_known:
        raise LookupError("member not found in this dataset")
    tz = ds.manifest.get("timezone") or "UTC"
    rules = data.tier_rules(ds)
    per = default_period(dataset_end(ds)) if period is None else tuple(utc_cutoff(p) for p in period)
    events = data.member_events(ds, pseudo) if pseudo else data.member_events(ds, "m_none")
    row = data.member_row(ds, pseudo) if pseudo else {}
    has_tiers = bool(ds.manifest.get("has_tiers"))
    tier = row.get("tier") if has_tiers and isinstance(row.get("tier"), str) else None
    points = row.get("points_balance") if has_tiers and pd.notna(row.get("points_balance")) else None
    items = ds.table("items", columns=["item_id", "category"])
    fig = member_figures(events, items, per, rules, tz=tz, tier=tier, points_balance=points)
    comp = None
    if fig.has_purchases:
        comp = cohort_comparison(fig.spend, fig.orders, data.cohort(ds, fig.tier, per))
    loc = Locale(locale, currency or ds.manifest.get("currency"))
    rows = offer_rows(offers or [], ds.table("offers"), loc)
    html = render("member.html.j2", **page_context(fig, loc, rows, comp, _masked_ref(pseudo), tz, rules.window_days))
    return html, fig
