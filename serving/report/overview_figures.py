"""The operator overview's figures: pure pandas over feature frames, scores, offers and exposures.

Drift is the population stability index, PSI = sum over bins of (a - e) * ln(a / e), with bins
from the reference's quantiles (numeric) or its categories; PSI >= 0.2 is flagged as moved.
Fairness compares groups by coverage (share of members who got at least one offer) and value;
a group whose coverage is below 0.8 x the best group's (the four-fifths rule) and significantly so
(one-sided two-proportion z > 2, so a handful of offers in a small group is not called a skew) is flagged.
Scores: no per-member training scores are logged, so the mean churn score today is compared with
the champion's test base rate (what a calibrated model's mean matched when it was trained).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PSI_THRESHOLD = 0.2
SCORE_SHIFT = 0.05  # |mean p_churn today - the champion's test base rate| above this is flagged
FOUR_FIFTHS = 0.8
NUMERIC_DRIFT = (
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "discount_affinity",
    "weekend_share",
    "price_index",
)
CATEGORICAL_DRIFT = ("segment", "lifecycle", "tier", "channel", "price_band")
LIFECYCLE = ("prospect", "new", "active", "at_risk", "lapsed")
NONE = "(none)"


def sizes(features: pd.DataFrame, column: str, order: tuple[str, ...] | None = None) -> pd.Series:
    """Members per value of `column` (missing counted as '(none)'), in `order` or by size."""
    s = features[column].astype(object).where(features[column].notna(), NONE).value_counts()
    if order:
        return s.reindex([*order, *sorted(set(s.index) - set(order))], fill_value=0).astype(int)
    return s.sort_values(ascending=False, kind="stable").astype(int)


def transitions(before: pd.DataFrame, after: pd.DataFrame, column: str) -> pd.DataFrame:
    """Crosstab of `column` at the first cutoff (rows) against the second (columns), over all members of either."""
    a = before.set_index("member_id")[column].astype(object)
    b = after.set_index("member_id")[column].astype(object)
    both = pd.DataFrame({"from": a, "to": b}).fillna(NONE)
    return pd.crosstab(both["from"], both["to"])


def moved(table: pd.DataFrame, src: str, dst: str) -> int:
    """How many members moved from `src` to `dst` in a transitions table."""
    return int(table.loc[src, dst]) if src in table.index and dst in table.columns else 0


def churn_by_segment(features: pd.DataFrame, scores: pd.DataFrame, high: float = 0.5) -> pd.DataFrame:
    """Per segment: scored members, mean and median p_churn, share at or above `high`."""
    seg = features.set_index("member_id")["segment"].astype(object)
    s = scores[["member_id", "p_churn"]].assign(segment=scores["member_id"].map(seg).fillna(NONE).to_numpy())
    g = s.groupby("segment", sort=True)["p_churn"]
    out = pd.DataFrame(
        {
            "members": g.size(),
            "mean": g.mean(),
            "median": g.median(),
            "high_risk": g.apply(lambda p: float((p >= high).mean())),
        }
    )
    return out.sort_values("mean", ascending=False, kind="stable")


def histogram(values: pd.Series, bins: int = 10, lo: float = 0.0, hi: float = 1.0) -> tuple[list[float], list[int]]:
    """Bin edges and counts of values in [lo, hi]."""
    counts, edges = np.histogram(np.clip(values.to_numpy(dtype=float), lo, hi), bins=bins, range=(lo, hi))
    return edges.tolist(), counts.astype(int).tolist()


def budget_used(offers: pd.DataFrame, exposures: pd.DataFrame) -> pd.DataFrame:
    """Per offer: issued (treated exposures), redeemed (treated with outcome > 0), used = cost x redeemed, share."""
    ex = exposures.loc[exposures["treated"].fillna(False).astype(bool).to_numpy()]
    issued = ex.groupby("offer_id").size()
    redeemed = ex.loc[(ex["outcome"].fillna(0) > 0).to_numpy()].groupby("offer_id").size()
    out = offers.set_index("offer_id")[["kind", "cost", "budget"]].copy()
    out["issued"] = issued.reindex(out.index, fill_value=0).astype(int)
    out["redeemed"] = redeemed.reindex(out.index, fill_value=0).astype(int)
    out["used"] = (out["cost"].fillna(0.0) * out["redeemed"]).round(2)
    out["share"] = (out["used"] / out["budget"].where(out["budget"] > 0)).round(4)
    return out


def live_budget(offers: pd.DataFrame, ledger: pd.DataFrame) -> pd.DataFrame:
    """Per offer of the served catalogue (offer_id, kind, cost, budget), from the service's live ledger (`issued`,
    `committed` per offer_id): issued, used = cost committed, share = used / budget. Offers the catalogue no longer
    holds but the ledger does (money already committed) are kept."""
    out = offers.set_index("offer_id")[["kind", "cost", "budget"]].copy()
    out = out.reindex(out.index.union(ledger.index, sort=False))
    out["issued"] = ledger["issued"].reindex(out.index).fillna(0).astype(int)
    out["used"] = ledger["committed"].reindex(out.index).fillna(0.0).astype(float).round(2)
    out["share"] = (out["used"] / out["budget"].where(out["budget"] > 0)).round(4)
    return out


def psi(reference: pd.Series, current: pd.Series, bins: int = 10, categorical: bool = False) -> float:
    """Population stability index of `current` against `reference` (missing values are a bin of their own)."""
    eps = 1e-4
    if categorical:
        r = reference.astype(object).fillna(NONE)
        c = current.astype(object).fillna(NONE)
        cats = sorted(set(r) | set(c))
        e = r.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
        a = c.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
    else:
        r = reference.astype(float).to_numpy()
        c = current.astype(float).to_numpy()
        edges = np.unique(np.nanquantile(r, np.linspace(0, 1, bins + 1))) if np.isfinite(r).any() else np.zeros(0)
        inner = edges[1:-1]

        def shares(x: np.ndarray) -> np.ndarray:
            ok = np.isfinite(x)
            idx = np.where(ok, np.searchsorted(inner, x, side="right"), len(inner) + 1)
            return np.bincount(idx, minlength=len(inner) + 2) / max(len(x), 1)

        e, a = shares(r), shares(c)
    e, a = np.clip(e, eps, None), np.clip(a, eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_table(reference: pd.DataFrame, current: pd.DataFrame, threshold: float = PSI_THRESHOLD) -> pd.DataFrame:
    """PSI of each key feature between two feature frames, with reference and current summaries and a flag."""
    rows = []
    for col in NUMERIC_DRIFT:
        if col in reference and col in current:
            r, c = reference[col].astype(float), current[col].astype(float)
            rows.append((col, psi(r, c), f"{r.median():.3g}", f"{c.median():.3g}"))
    for col in CATEGORICAL_DRIFT:
        if col in reference and col in current:
            top = lambda s: str(s.astype(object).fillna(NONE).mode().iloc[0]) if len(s) else NONE  # noqa: E731
            rows.append(
                (col, psi(reference[col], current[col], categorical=True), top(reference[col]), top(current[col]))
            )
    out = pd.DataFrame(rows, columns=["feature", "psi", "reference", "current"])
    out["psi"] = out["psi"].round(4)
    out["moved"] = out["psi"] >= threshold
    return out


def fairness(members: pd.DataFrame, got: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per group of `by`: members, coverage (share with an offer) and mean offer value per member; flags skew.

    `members` has member_id and `by`; `got` has member_id and value (one row per offer given).
    """
    grp = members[by].astype(object).fillna(NONE)
    per = got.groupby("member_id")["value"].sum()
    value = members["member_id"].map(per)
    frame = pd.DataFrame(
        {"group": grp.to_numpy(), "covered": value.notna().to_numpy(), "value": value.fillna(0.0).to_numpy()}
    )
    g = frame.groupby("group", sort=True)
    out = pd.DataFrame({"members": g.size(), "coverage": g["covered"].mean().round(4), "value": g["value"].mean()})
    out["value"] = out["value"].round(2)
    out["skewed"] = skewed(out["coverage"].to_numpy(), out["members"].to_numpy())
    return out


def skewed(coverage: np.ndarray, n: np.ndarray, z_min: float = 2.0) -> np.ndarray:
    """Groups below four fifths of the best group's coverage, and significantly below it."""
    b = int(np.argmax(coverage))
    pb, nb = coverage[b], n[b]
    pooled = (coverage * n + pb * nb) / np.maximum(n + nb, 1)
    se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(n, 1) + 1 / max(nb, 1)))
    z = np.divide(pb - coverage, se, out=np.zeros(len(n)), where=se > 0)
    return (coverage < FOUR_FIFTHS * pb) & (z > z_min)
