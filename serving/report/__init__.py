"""Member consumption reports and the operator's segment overview (HTML, inline SVG, no network).

Public API: `member_report_html`, `overview_html` (strings) and `write_report`, `write_overview` (files, for the CLI).
"""

from __future__ import annotations

from pathlib import Path

from datasets.layout import Layout
from datasets.store import Dataset


def _state_dataset(state: object) -> str | None:
    """The served dataset's name: `state.dataset` (a name or a Dataset), else `state.dataset_name` / `state.ds`."""
    for attr in ("dataset", "dataset_name", "ds"):
        ds = getattr(state, attr, None)
        if ds is not None:
            return str(getattr(ds, "name", ds))
    return None


def member_report_html(
    state_or_none: object | None,
    raw_member_id: str,
    locale: str = "en",
    dataset: str | None = None,
    offers: list[dict] | None = None,
    period: tuple | None = None,
) -> str:
    """The member's report as one HTML page; with a serving state, its dataset and ranked offers are used."""
    from serving.report.member import build_member_report

    if state_or_none is not None:
        dataset = dataset or _state_dataset(state_or_none)
        if offers is None:
            offers = state_or_none.rank_offers(raw_member_id, k=3).get("offers", [])  # type: ignore[attr-defined]
    if dataset is None:
        raise ValueError("member_report_html needs a dataset (or a serving state that has one)")
    return build_member_report(Dataset(dataset), raw_member_id, locale, offers, period)[0]


def overview_html(dataset: str, cutoffs: tuple | None = None, state: object | None = None) -> str:
    """The operator's overview of a dataset: segments, transitions, churn risk, budgets, models, drift, fairness."""
    from serving.report.overview import build_overview

    return build_overview(Dataset(dataset), cutoffs, state)


def write_report(
    raw_member_id: str,
    dataset: str,
    locale: str = "en",
    out: str | Path | None = None,
    offers: list[dict] | None = None,
) -> Path:
    """`tailor report MEMBER`: write the member's report; an unknown member is an error here.

    Default file: TAILOR_HOME/reports/<dataset>/<pseudonym>_<locale>.html (never named by the raw id).
    """
    from serving.report.data import resolve_member
    from serving.report.member import build_member_report

    ds = Dataset(dataset)
    html, _ = build_member_report(ds, raw_member_id, locale, offers, require_known=True)
    default = Layout.from_env().reports / ds.name / f"{resolve_member(ds, raw_member_id)}_{locale}.html"
    path = Path(out) if out else default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def write_overview(dataset: str, out: str | Path | None = None, cutoffs: tuple | None = None) -> Path:
    """`tailor overview`: write the operator overview (default TAILOR_HOME/reports/<dataset>/overview.html)."""
    path = Path(out) if out else Layout.from_env().reports / dataset / "overview.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(overview_html(dataset, cutoffs), encoding="utf-8")
    return path


__all__ = ["member_report_html", "overview_html", "write_overview", "write_report"]
