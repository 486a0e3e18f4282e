"""Number, money, date and label formatting for the member's locale (en and zh-CN; no babel needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from serving.report.strings import STRINGS

_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ALIASES = {"en": "en", "en-us": "en", "en_us": "en", "zh": "zh-CN", "zh-cn": "zh-CN", "zh_cn": "zh-CN"}
DEFAULT_CURRENCY = {"en": "$", "zh-CN": "¥"}


def normalize(locale: str | None) -> str:
    """One of the supported locales ('en', 'zh-CN'); unknown locales fall back to English."""
    return _ALIASES.get((locale or "en").strip().lower(), "en")


@dataclass(frozen=True)
class Locale:
    """Formatting rules of one locale; `currency` is the symbol put before amounts."""

    code: str = "en"
    currency: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", normalize(self.code))
        if self.currency is None:
            object.__setattr__(self, "currency", DEFAULT_CURRENCY[self.code])

    @property
    def lang(self) -> str:
        return "zh-CN" if self.code == "zh-CN" else "en"

    def t(self, key: str, **kw: object) -> str:
        """The label `key` in this locale, with `{name}` placeholders filled."""
        table = STRINGS.get(key)
        if table is None:
            return key.replace("_", " ")
        text = table.get(self.code) or table["en"]
        return text.format(**kw) if kw else text

    def number(self, value: float | None, decimals: int = 0) -> str:
        """1,234 / 1,234.5 (both locales group by thousands with a comma); '–' when missing."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "–"
        return f"{value:,.{decimals}f}"

    def money(self, value: float | None, decimals: int = 2) -> str:
        """'$1,234.50' (en) or '¥1,234.50' (zh-CN); negatives as '-$5.00'."""
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "–"
        sign = "-" if value < 0 else ""
        return f"{sign}{self.currency}{abs(value):,.{decimals}f}"

    def percent(self, share: float | None, decimals: int = 0) -> str:
        """A share 0..1 as '12%'."""
        if share is None or (isinstance(share, float) and not math.isfinite(share)):
            return "–"
        return f"{100 * share:.{decimals}f}%"

    def date(self, ts: pd.Timestamp | str) -> str:
        """'Mar 5, 2024' (en) or '2024年3月5日' (zh-CN)."""
        t = pd.Timestamp(ts)
        if self.code == "zh-CN":
            return f"{t.year}年{t.month}月{t.day}日"
        return f"{_EN_MONTHS[t.month - 1]} {t.day}, {t.year}"

    def month(self, period: pd.Period | pd.Timestamp | str) -> str:
        """A month label: 'Mar 2024' (en) or '2024年3月' (zh-CN)."""
        t = period.to_timestamp() if isinstance(period, pd.Period) else pd.Timestamp(period)
        return f"{t.year}年{t.month}月" if self.code == "zh-CN" else f"{_EN_MONTHS[t.month - 1]} {t.year}"

    def short_month(self, period: pd.Period | pd.Timestamp | str) -> str:
        """A compact month label for chart axes: 'Mar' / '3月' (with the year on January)."""
        t = period.to_timestamp() if isinstance(period, pd.Period) else pd.Timestamp(period)
        if self.code == "zh-CN":
            return f"{t.month}月"
        return _EN_MONTHS[t.month - 1] + (f" {t.year % 100:02d}" if t.month == 1 else "")

    def weekday(self, day: int) -> str:
        """Monday = 0."""
        return self.t(f"weekday_{day}")

    def label(self, group: str, value: object) -> str:
        """A data value shown to people (category, channel, segment ...): translated when known."""
        text = str(value)
        key = f"{group}:{text}"
        return self.t(key) if key in STRINGS else text.replace("_", " ")
