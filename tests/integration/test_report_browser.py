"""The member report (en, zh-CN), an empty member's page and the overview in headless Chromium.

Checks: every chart is present with a non-zero size, no console errors or uncaught exceptions, no
request leaves the machine, no horizontal overflow at phone width; screenshots are saved. A
negative control proves the checks catch a broken page. Needs the distribution's `chromium` (`make browser`);
without it the tests skip, or fail under TAILOR_REQUIRE_BROWSER=1 (`make test` sets it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.components import need
from tests.integration.cdp import inspect_page
from tests.integration.report_data import make_report_dataset, write_churn_scores

need("browser", module=True)  # skips without Chromium; fails instead under TAILOR_REQUIRE_BROWSER=1 (make test)

SHOTS = os.environ.get("TAILOR_SCREENSHOTS")  # e.g. docs/img: refresh the README's screenshots (palette PNGs)
DOC_NAMES = {"report_en": "report_en.png", "report_zh": "report_zh.png", "overview": "overview.png"}


def _save_for_docs(png: Path, dest: Path, max_height: int = 2600) -> None:
    """A small palette copy of a screenshot (top part, at most `max_height` px) for the README."""
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(png) as im:
        im = im.crop((0, 0, im.width, min(im.height, max_height))).convert("RGB")
        im.quantize(colors=64, dither=Image.Dither.NONE).save(dest, optimize=True)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("browser_home")
    out = tmp_path_factory.mktemp("pages")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.setenv("TAILOR_PSEUDONYM_KEY", "k")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        ids = make_report_dataset(home)
        from datasets.store import Dataset
        from serving.report import member_report_html, write_overview

        events = Dataset("syn").table("events")
        buys = events.loc[events["event_type"] == "purchase", "member_id"].value_counts()
        busy = ids.set_index("pseudonym").loc[buys.index[buys.index.isin(ids["pseudonym"])][0], "raw"]
        idle = next(r for r, p in ids.itertuples(index=False) if p not in buys.index)
        write_churn_scores(home, ids["pseudonym"])
        offers = [
            {
                "offer_id": "O02",
                "kind": "member_price",
                "score": 0.4,
                "expected_incremental_value": 2.5,
                "basis": "uplift",
                "reasons": ["You often buy home goods", "Member price this week"],
            },
            {
                "offer_id": "O03",
                "kind": "free_shipping",
                "score": 0.2,
                "expected_incremental_value": 1.1,
                "basis": "segment",
                "reasons": ["Popular with members like you"],
            },
        ]
        files = {}
        for name, raw, loc in (("report_en", busy, "en"), ("report_zh", busy, "zh-CN"), ("empty_en", idle, "en")):
            files[name] = out / f"{name}.html"
            files[name].write_text(member_report_html(None, raw, loc, dataset="syn", offers=offers), encoding="utf-8")
        files["overview"] = write_overview("syn", out / "overview.html")
    return files


def _check(result: dict, min_charts: int) -> None:
    assert result["errors"] == [], result["errors"]
    assert result["remote_requests"] == []
    assert not result["overflow"], "page is wider than a phone screen"
    charts = result["charts"]
    assert len(charts) >= min_charts, [c["label"] for c in charts]
    for c in charts:
        assert c["width"] > 100 and c["height"] > 20, c
        assert c["label"] and c["title"], c


@pytest.mark.parametrize(
    ("name", "width", "min_charts", "texts"),
    [
        ("report_en", 390, 5, ["Spending by month", "Offers for you", "You often buy home goods", "$"]),
        ("report_zh", 390, 5, ["每月消费", "为您推荐的优惠", "¥", "年"]),
        ("empty_en", 390, 0, ["No purchases in this period yet", "Offers for you"]),
        ("overview", 1000, 6, ["Segments at", "Drift", "Fairness", "Churn risk by segment"]),
    ],
)
def test_page_renders_in_chromium(pages, tmp_path: Path, name: str, width: int, min_charts: int, texts) -> None:
    png = tmp_path / f"{name}.png"
    result = inspect_page(pages[name].as_uri(), png, width=width)
    _check(result, min_charts)
    for text in texts:
        assert text in result["text"], text
    assert png.stat().st_size > 10_000  # a real render, not a blank page
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if SHOTS and name in DOC_NAMES:
        _save_for_docs(png, Path(SHOTS) / DOC_NAMES[name])


def test_checks_catch_a_broken_page(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><svg class="chart" width="0" height="0"></svg>'
        '<script>console.error("boom"); missing();</script><img src="https://example.invalid/x.png"></body></html>'
    )
    result = inspect_page(bad.as_uri(), tmp_path / "bad.png")
    assert len(result["errors"]) >= 2 and result["remote_requests"]
    with pytest.raises(AssertionError):
        _check(result, 1)
