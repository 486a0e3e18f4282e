"""Member reports and the overview on a prepared synthetic dataset: figures equal the events, privacy, CLI writers."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.report_data import make_report_dataset

ID_PATTERNS = [r"\bS\d{7}\b", r"m_[0-9a-f]{16}", r"s_[0-9a-f]{16}", r"\bI\d{5}\b"]  # raw, pseudonym, session, item


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("report_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.setenv("TAILOR_PSEUDONYM_KEY", "k")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        ids = make_report_dataset(home)
        yield home, ids


def _env(home, monkeypatch) -> None:
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.setenv("TAILOR_PSEUDONYM_KEY", "k")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _direct(events: pd.DataFrame, member: str, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """The figures computed straight from the events table, independently of serving.report."""
    ev = events[(events["member_id"] == member) & (events["ts"] >= start) & (events["ts"] < end)]
    buys = ev[ev["event_type"] == "purchase"]
    return {
        "spend": round(buys["amount"].sum(), 2),
        "orders": buys["session_id"].nunique(),
        "savings": round(buys["discount"].fillna(0).sum(), 2),
        "by_month": buys.groupby(buys["ts"].dt.strftime("%Y-%m"))["amount"].sum().round(2).to_dict(),
    }


def test_report_figures_equal_the_members_events(home, monkeypatch) -> None:
    home, ids = home
    _env(home, monkeypatch)
    from datasets.split import dataset_end
    from datasets.store import Dataset
    from serving.report.figures import default_period
    from serving.report.locale import Locale
    from serving.report.member import build_member_report

    ds = Dataset("syn")
    events = ds.table("events")
    start, end = default_period(dataset_end(ds))
    buyers = events.loc[events["event_type"] == "purchase", "member_id"].value_counts()
    checked = 0
    for raw, pseudo in ids.itertuples(index=False):
        if pseudo not in buyers.index or checked >= 8:
            continue
        want = _direct(events, pseudo, start, end)
        html, fig = build_member_report(ds, raw, "en")
        assert fig.spend == pytest.approx(want["spend"], abs=0.005) and fig.orders == want["orders"]
        assert fig.savings == pytest.approx(want["savings"], abs=0.005)
        got_month = {str(p): v for p, v in fig.spend_by_month.items() if v}
        assert got_month == pytest.approx({k: v for k, v in want["by_month"].items() if v})
        loc = Locale("en")
        for kpi in (loc.money(want["spend"]), loc.money(want["savings"]), f"<b>{want['orders']}</b>"):
            assert kpi in html, kpi  # the page shows the same numbers
        checked += 1
    assert checked == 8


def test_pages_hold_no_ids_or_personal_fields(home, monkeypatch) -> None:
    home, ids = home
    _env(home, monkeypatch)
    from datasets.schema import PERSONAL_FIELDS
    from datasets.store import Dataset
    from serving.report import member_report_html, overview_html

    ds = Dataset("syn")
    members = ds.table("members").set_index("member_id")
    offers = [
        {
            "offer_id": "O01",
            "kind": "coupon",
            "score": 0.2,
            "expected_incremental_value": 1.0,
            "basis": "uplift",
            "reasons": ["you often buy fashion"],
        }
    ]
    pages = {"overview": overview_html("syn")}
    for raw, pseudo in ids.head(12).itertuples(index=False):
        for loc in ("en", "zh-CN"):
            html = member_report_html(None, raw, loc, dataset="syn", offers=offers)
            pages[f"{raw}-{loc}"] = html
            assert raw not in html and pseudo not in html and pseudo[2:] not in html
            row = members.loc[pseudo]
            text = re.sub(r"<[^>]+>", " ", html)
            for field in ("region", "age_band"):  # shown nowhere on a member page
                assert not re.search(rf"\b{re.escape(str(row[field]))}\b", text), (field, row[field])
            assert f"{row['joined_at']:%Y-%m-%d}" not in html
    for name, html in pages.items():
        for pat in ID_PATTERNS:
            assert not re.search(pat, html), (name, pat)
        for field in PERSONAL_FIELDS:
            assert f'"{field}"' not in html and f">{field}<" not in html, (name, field)


def test_member_without_purchases_and_unknown_member(home, monkeypatch, tmp_path: Path) -> None:
    home, ids = home
    _env(home, monkeypatch)
    from datasets.store import Dataset
    from serving.report import member_report_html, write_report

    buyers = set(Dataset("syn").table("events").query("event_type == 'purchase'")["member_id"])
    raw = next(r for r, p in ids.itertuples(index=False) if p not in buyers)
    for loc, text in (("en", "No purchases in this period yet"), ("zh-CN", "本期暂无购买记录")):
        html = member_report_html(None, raw, loc, dataset="syn")
        assert text in html and 'id="spend-month"' not in html
    assert "No purchases in this period yet" in member_report_html(None, "nobody", dataset="syn")
    with pytest.raises(LookupError):
        write_report("nobody", "syn", "en", tmp_path / "x.html")


def test_writers_for_the_cli(home, monkeypatch, tmp_path: Path) -> None:
    home, ids = home
    _env(home, monkeypatch)
    from serving.report import member_report_html, write_overview, write_report

    p = write_report(ids["raw"].iloc[1], "syn", "zh-CN", tmp_path / "r" / "report.html")
    assert p.exists() and '<html lang="zh-CN">' in p.read_text(encoding="utf-8")
    o = write_overview("syn", tmp_path / "overview.html")
    html = o.read_text(encoding="utf-8")
    for section in ("segments", "lifecycle", "transitions", "churn", "budget", "models", "drift", "fairness"):
        assert f'id="{section}"' in html
    assert "loyal → at risk" in html and "No champion models registered yet" in html
    one_month = member_report_html(None, ids["raw"].iloc[1], "en", dataset="syn", period=("2025-06-01", "2025-07-01"))
    assert "Jun 1, 2025 – Jun 30, 2025" in one_month
