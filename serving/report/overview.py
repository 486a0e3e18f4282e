"""The operator overview: segments, lifecycle transitions, churn risk, offer budgets, models, drift, fairness.

Drift reference: the member features recomputed at the champion churn model's test cutoff (the
`cutoff` tag of its run: the members it was evaluated on, built the same way as its inputs);
without a champion, the first overview cutoff. Current: the features at the second cutoff.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from datasets.features import features_at
from datasets.layout import Layout
from datasets.split import dataset_end, utc_cutoff
from datasets.store import Dataset
from serving.report import overview_figures as of
from serving.report import svg
from serving.report.locale import Locale
from serving.report.render import render, safe_svg

FAIRNESS_BY = ("age_band", "region", "tier")


def registry_models() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(champion per family with version, run and test cutoff; the churn champion's cutoff and test base rate)."""
    from serving.bundle import champions, registry

    layout = Layout.from_env()
    rows, churn = [], {}
    for mv in champions(layout):
        run = registry(layout).get_run(mv.run_id)
        cut = run.data.tags.get("cutoff")
        if mv.name == "churn":
            churn = {"cutoff": cut, "base_rate": run.data.metrics.get("data/test_base_rate")}
        created = pd.Timestamp(int(mv.creation_timestamp), unit="ms", tz="UTC")
        rows.append(
            {
                "family": mv.name,
                "version": mv.version,
                "run": mv.run_id[:8],
                "cutoff": f"{pd.Timestamp(cut):%Y-%m-%d}" if cut else "–",
                "dataset": run.data.tags.get("dataset", "–"),
                "registered": f"{created:%Y-%m-%d %H:%M} UTC",
            }
        )
    return rows, churn


def _cell(v: object, col: str, dtype: object, money: set[str], pct: set[str], loc: Locale) -> str:
    """One table cell, formatted by its column's kind."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "–"
    if pd.api.types.is_bool_dtype(dtype):
        return "⚠ yes" if v else "no"
    if col in money:
        return loc.money(float(v))
    if col in pct:
        return loc.percent(float(v), 1)
    if pd.api.types.is_integer_dtype(dtype):
        return loc.number(int(v))
    if pd.api.types.is_float_dtype(dtype):
        return loc.number(float(v), 3 if abs(float(v)) < 10 else 0)
    return str(v)


def _table(
    frame: pd.DataFrame, money: set[str] = frozenset(), pct: set[str] = frozenset(), loc: Locale | None = None
) -> dict:
    """A frame as header + formatted rows (strings; the template escapes them)."""
    loc = loc or Locale()
    cols = [(c, frame[c].to_numpy(dtype=object), frame[c].dtype) for c in frame.columns]
    rows = [
        [str(idx), *(_cell(vals[i], c, dt, money, pct, loc) for c, vals, dt in cols)]
        for i, idx in enumerate(frame.index)
    ]
    return {"head": [str(frame.index.name or ""), *map(str, frame.columns)], "rows": rows}


def _state_offers(state: object, member_ids: list[str], k: int = 3) -> pd.DataFrame:
    """Offers the serving state ranks now for each member (a sample), as member_id, value rows.

    Ranked with `record=False`: an operator's overview issues nothing (no impression, no budget spent)."""
    rows = []
    for m in member_ids:
        for o in state.rank_offers(m, k=k, record=False).get("offers", []):  # type: ignore[attr-defined]
            rows.append({"member_id": m, "value": float(o.get("expected_incremental_value") or 0.0)})
    return pd.DataFrame(rows, columns=["member_id", "value"])


def budget_section(loc: Locale, home: Layout | None = None) -> tuple[dict | None, str | None]:
    """(table, chart) of "Offer budget used" from the service's live ledger (the state store of TAILOR_HOME) against
    the served catalogue's budgets, not the dataset's historical exposures."""
    from serving.config import ServingConfig
    from serving.events import EventStore
    from serving.offers import load_catalogue

    layout = home or Layout.from_env()
    cat = load_catalogue(ServingConfig.load().offers)
    offers = pd.DataFrame(
        [{"offer_id": o.offer_id, "kind": str(o.kind), "cost": o.cost, "budget": o.budget} for o in cat.offers],
        columns=["offer_id", "kind", "cost", "budget"],
    )
    store = EventStore(layout.home)
    try:
        budget = of.live_budget(offers, store.ledger())
    finally:
        store.close()
    if not len(budget):
        return None, None
    chart = safe_svg(svg.hbars(list(budget.index), budget["used"].tolist(), "Budget used per offer", fmt=loc.money))
    return _table(budget, money={"cost", "budget", "used"}, pct={"share"}, loc=loc), chart


def build_overview(ds: Dataset, cutoffs: tuple | None = None, state: object | None = None) -> str:
    """The overview page of a prepared dataset between two cutoffs (default: 90 days before its end, and its end)."""
    end = dataset_end(ds)
    c1, c2 = (end - pd.Timedelta(days=90), end) if cutoffs is None else tuple(utc_cutoff(c) for c in cutoffs)
    loc = Locale("en", ds.manifest.get("currency"))
    before, after = features_at(ds, c1), features_at(ds, c2)
    seg, life = of.sizes(after, "segment"), of.sizes(after, "lifecycle", of.LIFECYCLE)
    seg_t, life_t = of.transitions(before, after, "segment"), of.transitions(before, after, "lifecycle")
    ctx: dict[str, Any] = {"dataset": ds.name, "c1": loc.date(c1), "c2": loc.date(c2)}
    ctx["charts"] = {
        "segments": safe_svg(svg.hbars([s.replace("_", " ") for s in seg.index], seg.tolist(), "Members per segment")),
        "lifecycle": safe_svg(
            svg.hbars([s.replace("_", " ") for s in life.index], life.tolist(), "Members per lifecycle stage")
        ),
    }
    ctx["seg_transitions"] = _table(seg_t.rename_axis("from \\ to"))
    ctx["life_transitions"] = _table(life_t.rename_axis("from \\ to"))
    ctx["highlights"] = [
        f"loyal → at risk: {of.moved(seg_t, 'loyal', 'at_risk')}",
        f"champions → at risk: {of.moved(seg_t, 'champions', 'at_risk')}",
        f"active → at risk (lifecycle): {of.moved(life_t, 'active', 'at_risk')}",
        f"at risk → lapsed (lifecycle): {of.moved(life_t, 'at_risk', 'lapsed')}",
    ]
    score_path = Layout.from_env().scores("churn", ds.name)
    if score_path.exists():
        scores = pd.read_parquet(score_path)
        ctx["churn"] = _table(of.churn_by_segment(after, scores), pct={"high_risk"})
        edges, counts = of.histogram(scores["p_churn"])
        ctx["charts"]["churn"] = safe_svg(svg.histogram(edges, counts, "Churn probability, all scored members"))
        ctx["churn_note"] = (
            f"{len(scores):,} members scored at {scores['cutoff'].iloc[0] if 'cutoff' in scores else '?'}"
        )
    else:
        ctx["churn"], ctx["churn_note"] = (
            None,
            "No churn scores yet: run `tailor score churn --dataset " + ds.name + "`.",
        )
    offers, exposures = ds.table("offers"), ds.table("exposures")
    ctx["budget"], ctx["charts"]["budget"] = budget_section(loc)
    models = list(state.versions().items()) if state is not None and hasattr(state, "versions") else None
    reg, churn = registry_models()
    churn_cut = churn.get("cutoff")
    ctx["models"], ctx["served"] = reg, [f"{k}: {v}" for k, v in models] if models else []
    ref_cut = utc_cutoff(churn_cut) if churn_cut else c1
    reference = features_at(ds, ref_cut) if ref_cut != c1 else before
    drift = of.drift_table(reference, after)
    ctx["drift"] = _table(drift.set_index("feature"))
    ctx["drift_ref"] = ("champion churn model's test cutoff " if churn_cut else "first cutoff ") + loc.date(ref_cut)
    ctx["drift_moved"] = drift.loc[drift["moved"], "feature"].tolist()
    ctx["psi_threshold"] = of.PSI_THRESHOLD
    ctx["score_drift"] = None
    if score_path.exists() and churn.get("base_rate") is not None:
        mean, base = float(scores["p_churn"].mean()), float(churn["base_rate"])
        ctx["score_drift"] = {"mean": f"{mean:.3f}", "base": f"{base:.3f}", "moved": abs(mean - base) > of.SCORE_SHIFT}
    ctx["fairness"] = _fairness(ds, after, exposures, offers, c1, c2, state, loc)
    return render("overview.html.j2", **ctx)


def _fairness(ds, after, exposures, offers, c1, c2, state, loc: Locale) -> list[dict[str, Any]]:
    """Coverage and value per age band, region and tier: offers ranked now (state) or given in the window."""
    members = ds.table("members")
    members = members.loc[members["member_id"].isin(after["member_id"]).to_numpy()]
    members = members.drop(columns=["tier"]).merge(after[["member_id", "tier"]], on="member_id", how="left")
    if state is not None:
        sample = members.sample(min(len(members), 500), random_state=0)
        got, basis = _state_offers(state, sample["member_id"].tolist()), "offers ranked now (sample of 500)"
        members = sample
    else:
        ex = exposures.loc[exposures["treated"].fillna(False).astype(bool).to_numpy()]
        ex = ex.loc[((ex["ts"] >= c1) & (ex["ts"] < c2)).to_numpy()]
        got = ex.merge(offers[["offer_id", "cost"]], on="offer_id", how="left").rename(columns={"cost": "value"})
        basis = "offers given between the cutoffs; value = the offer's cost to the program"
    out = []
    for by in FAIRNESS_BY:
        if by in members:
            t = of.fairness(members, got.fillna({"value": 0.0}), by)
            out.append(
                {
                    "by": by.replace("_", " "),
                    "basis": basis,
                    "skewed": t.index[t["skewed"]].tolist(),
                    "table": _table(t.rename_axis(by), money={"value"}, pct={"coverage"}, loc=loc),
                    "chart": safe_svg(
                        svg.hbars(
                            list(t.index),
                            t["coverage"].tolist(),
                            f"Offer coverage by {by}",
                            fmt=lambda v: f"{100 * v:.0f}%",
                        )
                    ),
                }
            )
    return out
