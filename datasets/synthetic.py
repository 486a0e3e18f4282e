"""`tailor generate`: synthetic raw data in the canonical format, with the planted ground truth.

Writes the exact input of `tailor prepare canonical`: members.parquet, items.parquet,
offers.parquet, events/part-*.parquet, exposures/part-*.parquet; and under truth/ the latent
traits (taste, activity, churn, price sensitivity, discount affinity, habits), the true
individual uplift of every exposure, and summary.json with the injected dirt counts.
The same seed gives byte-identical files; memory is bounded by `chunk_members`.
"""

from __future__ import annotations

import json
import time
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator
from tqdm.auto import tqdm

from datasets.config import Strict, load
from datasets.layout import Layout
from datasets.schema import OfferKind
from datasets.settings import TierLevel
from datasets.store import staged
from datasets.synthetic_sim import DAY, DAYPARTS, TS, Catalog, simulate

Share = Field(ge=0, le=1)


class MembersCfg(Strict):
    history_days: float = Field(gt=0)
    joined_in_span: float = Share
    regions: list[str]
    age_bands: list[str]
    taste_concentration: float = Field(gt=0.05)
    activity_sigma: float = Field(ge=0)
    churn_per_year: float = Field(gt=0)
    churn_sigma: float = Field(ge=0)
    channels: list[str]
    channel_loyalty: float = Share
    dayparts: dict[str, float]
    daypart_loyalty: float = Share

    @field_validator("dayparts")
    @classmethod
    def _dayparts(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != set(DAYPARTS) or abs(sum(v.values()) - 1) > 1e-6:
            raise ValueError(f"dayparts must give shares summing to 1 for {DAYPARTS}")
        return v


class CatalogCfg(Strict):
    categories: dict[str, float]
    items_per_category: int = Field(gt=0)
    subcategories: int = Field(gt=0)
    brands: int = Field(gt=0)
    price_levels: list[float]
    level_shares: list[float]
    zipf: float = Field(ge=0)


class SessionCfg(Strict):
    views_mean: float = Field(ge=1)
    search_rate: float = Share
    focus: float = Share
    click_rate: float = Share
    cart_rate: float = Share
    purchase_rate: float = Share
    return_rate: float = Share
    coupon_rate: float = Share
    coupon_discount: float = Field(ge=0, lt=1)


class TiersCfg(Strict):
    points_per_unit: float = Field(ge=0)
    levels: list[TierLevel]


class OfferSpec(Strict):
    offer_id: str
    kind: OfferKind
    scope: list[str] = Field(default_factory=list)
    value: float
    cost: float
    uplift: float  # mean planted uplift on conversion probability
    start_day: int = Field(ge=0)
    days: int = Field(gt=0)
    budget: float
    eligible_tiers: list[str] = Field(default_factory=list)


class OffersCfg(Strict):
    exposure_rate: float = Share
    treated_share: float = Share
    base_rate: float = Field(gt=0, lt=1)
    catalog: list[OfferSpec]


class DirtCfg(Strict):
    duplicate: float = Field(ge=0, le=0.1)
    missing_member_id: float = Field(ge=0, le=0.1)
    ts_out_of_range: float = Field(ge=0, le=0.1)
    non_positive_quantity: float = Field(ge=0, le=0.1)
    non_positive_price: float = Field(ge=0, le=0.1)


class SyntheticConfig(Strict):
    end: str
    span_days: int = Field(gt=0)
    chunk_members: int = Field(gt=0)
    events_per_member: float = Field(ge=0)
    members: MembersCfg
    catalog: CatalogCfg
    session: SessionCfg
    tiers: TiersCfg
    offers: OffersCfg
    dirt: DirtCfg

    @cached_property
    def mean_exposure(self) -> float:
        """E[activity x active days in the span], from a fixed sample, to scale sessions per member."""
        m, rng, n = self.members, np.random.default_rng(12345), 200_000
        act = rng.lognormal(-(m.activity_sigma**2) / 2, m.activity_sigma, n)
        joined = np.where(
            rng.random(n) >= m.joined_in_span, -rng.random(n) * m.history_days, rng.random(n) * self.span_days
        )
        hazard = m.churn_per_year / 365 * rng.lognormal(-(m.churn_sigma**2) / 2, m.churn_sigma, n) * act**-0.3
        churn = joined + rng.exponential(1 / hazard)
        days = np.clip(churn, 0, self.span_days - 1 / 24) - np.clip(joined, 0, self.span_days)
        return float(np.mean(act * np.maximum(days, 0)))


def build_catalog(cfg: SyntheticConfig, seed: int) -> tuple[Catalog, pa.Table]:
    """Items: per category, price levels of a base price; popularity Zipf within (category, level)."""
    c = cfg.catalog
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    names, n_lvl = list(c.categories), len(c.price_levels)
    per_level = np.floor(np.array(c.level_shares) / sum(c.level_shares) * c.items_per_category).astype(int)
    per_level[0] += c.items_per_category - per_level.sum()
    if (per_level <= 0).any():
        raise ValueError("catalog.items_per_category too small for the price levels")
    group_sizes = np.tile(per_level, len(names))
    group = np.repeat(np.arange(len(group_sizes)), group_sizes)
    rank = np.arange(len(group)) - np.repeat(np.cumsum(group_sizes) - group_sizes, group_sizes)
    weight = (rank + 1.0) ** -c.zipf
    cum = np.cumsum(weight)
    ends = np.cumsum(group_sizes) - 1
    totals = np.diff(np.concatenate([[0.0], cum[ends]]))
    before = np.repeat(np.concatenate([[0.0], cum[ends][:-1]]), group_sizes)
    share = (cum - before) / np.repeat(totals, group_sizes)
    share[ends] = 1.0  # exact upper bound of each group, so a draw never falls into the next
    category, level = group // n_lvl, group % n_lvl
    base = np.array([c.categories[n] for n in names])[category]
    price = np.maximum(0.5, np.round(base * np.array(c.price_levels)[level] * rng.lognormal(0, 0.2, len(group)), 2))
    n = len(group)
    item_ids = pa.array([f"I{i:05d}" for i in range(1, n + 1)], pa.string())
    cat_names = np.array(names, object)[category]
    sub = rng.integers(0, c.subcategories, n)
    brand = rng.integers(0, c.brands, n)
    items = pa.table(
        {
            "item_id": item_ids,
            "category": pa.array(cat_names, pa.string()),
            "subcategory": pa.array([f"{a}_{b}" for a, b in zip(cat_names, sub, strict=True)], pa.string()),
            "brand": pa.array([f"{a}_brand{b}" for a, b in zip(cat_names, brand, strict=True)], pa.string()),
            "price": price,
            "price_level": level,
            "popularity": weight / np.repeat(totals, group_sizes),
        }
    )
    return Catalog(item_ids, category, level, price, group + share, names), items


def offers_table(cfg: SyntheticConfig) -> pa.Table:
    """The offer catalogue (canonical offers table) from the config."""
    start = int(np.datetime64(cfg.end, "us").astype(np.int64)) + DAY - cfg.span_days * DAY
    all_tiers = [lv.name for lv in cfg.tiers.levels]
    specs = cfg.offers.catalog
    return pa.table(
        {
            "offer_id": [o.offer_id for o in specs],
            "kind": [o.kind for o in specs],
            "scope": pa.array([o.scope for o in specs], pa.list_(pa.string())),
            "value": [o.value for o in specs],
            "cost": [o.cost for o in specs],
            "eligible_tiers": pa.array([o.eligible_tiers or all_tiers for o in specs], pa.list_(pa.string())),
            "eligible_segments": pa.array([[] for _ in specs], pa.list_(pa.string())),
            "valid_from": pa.array([start + o.start_day * DAY for o in specs], TS),
            "valid_to": pa.array([start + (o.start_day + o.days) * DAY for o in specs], TS),
            "budget": [o.budget for o in specs],
            "title": [f"{o.kind.replace('_', ' ')}" + (f" on {', '.join(o.scope)}" if o.scope else "") for o in specs],
        }
    )


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")  # same table -> same bytes


def generate(cfg: SyntheticConfig, n_members: int, seed: int, folder: Path) -> dict:
    """Write the raw canonical files and the truth into `folder`; returns the summary."""
    if n_members <= 0:
        raise ValueError("--members must be positive")
    cat, items = build_catalog(cfg, seed)
    _write(items.drop_columns(["price_level", "popularity"]), folder / "items.parquet")
    _write(items.select(["item_id", "category", "price_level", "popularity"]), folder / "truth" / "items.parquet")
    _write(offers_table(cfg), folder / "offers.parquet")
    members, truth, dirt, rows = [], [], {}, {"events": 0, "exposures": 0}
    uplift: dict[str, list[float]] = {}
    starts = range(0, n_members, cfg.chunk_members)
    for i, first in enumerate(tqdm(starts, desc="generate", unit="chunk", leave=False)):
        ch = simulate(cfg, cat, first, min(cfg.chunk_members, n_members - first), seed, i)
        _write(ch.events, folder / "events" / f"part-{i:05d}.parquet")
        _write(ch.exposures, folder / "exposures" / f"part-{i:05d}.parquet")
        _write(ch.truth_exposures, folder / "truth" / "exposures" / f"part-{i:05d}.parquet")
        members.append(ch.members)
        truth.append(ch.truth_members)
        rows["events"] += ch.events.num_rows
        rows["exposures"] += ch.exposures.num_rows
        for k, v in ch.dirt.items():
            dirt[k] = dirt.get(k, 0) + v
        te = ch.truth_exposures.to_pandas().groupby("offer_id")["true_uplift"].agg(["sum", "count"])
        for oid, (total, count) in te.iterrows():
            acc = uplift.setdefault(str(oid), [0.0, 0])
            acc[0], acc[1] = acc[0] + float(total), acc[1] + int(count)
    _write(pa.concat_tables(members), folder / "members.parquet")
    _write(pa.concat_tables(truth), folder / "truth" / "members.parquet")
    summary = {
        "seed": seed,
        "members": n_members,
        "items": items.num_rows,
        "offers": len(cfg.offers.catalog),
        "events_written": rows["events"],
        "events_clean": rows["events"] - sum(dirt.values()),
        "exposures": rows["exposures"],
        "injected_dirt": dirt,
        "mean_true_uplift": {k: round(v[0] / max(v[1], 1), 6) for k, v in sorted(uplift.items())},
        "config": cfg.model_dump(),
    }
    (folder / "truth" / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def run_generate(
    members: int = 10_000,
    seed: int = 0,
    out: str | Path | None = None,
    config: str | Path = "synthetic",
    overrides: list[str] | tuple[str, ...] = (),
) -> dict:
    """`tailor generate`: write a synthetic raw dataset (atomically) and print a short summary."""
    cfg = load(SyntheticConfig, config, overrides or ())
    target = Path(out) if out else Layout.from_env().raw(f"synthetic-{members}-{seed}")
    t0 = time.perf_counter()
    with staged(target) as stage:
        summary = generate(cfg, members, seed, stage)
    dirt = ", ".join(f"{k} {v:,}" for k, v in summary["injected_dirt"].items())
    print(
        f"generated {members:,} members (seed {seed}) in {time.perf_counter() - t0:.1f}s -> {target}\n"
        f"  events {summary['events_written']:,} ({summary['events_clean'] / members:.1f} clean per member), "
        f"exposures {summary['exposures']:,}, items {summary['items']:,}, offers {summary['offers']}\n"
        f"  injected dirt: {dirt}\n"
        f"  next: tailor prepare canonical --path {target} --dataset synthetic"
    )
    return {**summary, "path": str(target)}
