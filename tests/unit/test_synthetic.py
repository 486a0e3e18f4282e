"""The synthetic generator: deterministic, roughly as configured, its planted truth recoverable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.config import load
from datasets.prepare import prepare
from datasets.store import Dataset
from datasets.synthetic import SyntheticConfig, generate, run_generate


def cfg(*overrides: str) -> SyntheticConfig:
    return load(SyntheticConfig, "synthetic", overrides)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 members, 3 chunks (so chunk boundaries are exercised), default rates."""
    folder = tmp_path_factory.mktemp("synth") / "raw"
    generate(cfg("chunk_members=700"), 2000, 7, folder)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path / "home"))
    a = run_generate(members=300, seed=3, config="synthetic", overrides=["chunk_members=120"])
    run_generate(members=300, seed=3, out=tmp_path / "b", overrides=["chunk_members=120"])
    run_generate(members=300, seed=4, out=tmp_path / "c", overrides=["chunk_members=120"])
    assert Path(a["path"]) == tmp_path / "home" / "raw" / "synthetic-300-3"
    first, again, other = snapshot(Path(a["path"])), snapshot(tmp_path / "b"), snapshot(tmp_path / "c")
    assert first == again
    assert first.keys() == other.keys() and first["events/part-00000.parquet"] != other["events/part-00000.parquet"]
    assert {"members.parquet", "items.parquet", "offers.parquet", "events/part-00002.parquet"} <= set(first)
    assert {"truth/members.parquet", "truth/exposures/part-00000.parquet", "truth/summary.json"} <= set(first)


def test_shapes_and_rates_roughly_as_configured(synth):
    c = cfg()
    summary = json.loads((synth / "truth" / "summary.json").read_text())
    members = pd.read_parquet(synth / "members.parquet")
    events = pd.read_parquet(synth / "events")
    assert len(members) == 2000 and members["member_id"].is_unique and members["member_id"].iloc[0] == "S0000001"
    assert len(events) == summary["events_written"]
    assert 0.85 < summary["events_clean"] / 2000 / c.events_per_member < 1.15
    dirt = summary["injected_dirt"]
    assert set(dirt) == set(c.dirt.model_dump())
    for kind, rate in c.dirt.model_dump().items():  # binomial counts: within 5 standard deviations
        expect = rate * summary["events_clean"]
        assert abs(dirt[kind] - expect) < 5 * np.sqrt(expect) + 1, kind
    assert set(events["event_type"]) >= {"view", "search", "click", "cart", "purchase", "return", "coupon_redeem"}
    assert set(events["channel"]) == set(c.members.channels)
    assert not {"name", "email", "phone", "address"} & {col for f in synth.rglob("*.parquet") for col in _cols(f)}
    clean = events[events["member_id"].notna() & (events["ts"].dt.year > 2000)]
    span = clean["ts"].max() - clean["ts"].min()
    assert pd.Timedelta(days=c.span_days - 5) < span <= pd.Timedelta(days=c.span_days)
    assert clean["ts"].max() < pd.Timestamp(c.end, tz="UTC") + pd.Timedelta(days=1)


def _cols(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_schema(path).names


def test_planted_taste_and_habits_are_recoverable(synth):
    truth = pd.read_parquet(synth / "truth" / "members.parquet").set_index("member_id")
    items = pd.read_parquet(synth / "items.parquet").set_index("item_id")
    events = pd.read_parquet(synth / "events")
    buys = events[events["event_type"] == "purchase"].dropna(subset=["member_id"])
    buys = buys.assign(category=buys["item_id"].map(items["category"]))
    counts = pd.crosstab(buys["member_id"], buys["category"])
    shares = counts.div(counts.sum(1), axis=0)
    for category in ["fashion", "electronics", "grocery"]:
        taste = truth.loc[shares.index, f"taste_{category}"]
        top, bottom = shares[category][taste >= taste.quantile(0.75)], shares[category][taste <= taste.quantile(0.25)]
        assert top.mean() > 3 * bottom.mean(), category
        assert np.corrcoef(taste, shares[category])[0, 1] > 0.5, category
    views = events[events["event_type"] == "view"].dropna(subset=["member_id"])
    on_preferred = views["channel"].to_numpy() == truth.loc[views["member_id"], "preferred_channel"].to_numpy()
    assert on_preferred.mean() > 0.7  # channel_loyalty 0.7 plus a random third
    sens = truth.loc[buys["member_id"], "price_sensitivity"].to_numpy()
    price = (
        items.loc[buys["item_id"], "price"].to_numpy()
        / items.groupby("category")["price"].transform("median").loc[buys["item_id"]].to_numpy()
    )
    assert price[sens > 0.7].mean() < price[sens < 0.3].mean()  # price-sensitive members buy cheaper items


def test_treated_outcome_exceeds_control_by_the_planted_uplift(tmp_path):
    folder = tmp_path / "raw"
    summary = generate(cfg("events_per_member=1", "offers.exposure_rate=1.0"), 20000, 11, folder)
    exp = pd.read_parquet(folder / "exposures")
    truth = pd.read_parquet(folder / "truth" / "exposures")
    assert len(exp) == len(truth) == summary["exposures"] and 0.48 < exp["treated"].mean() < 0.52
    observed = exp.loc[exp["treated"], "outcome"].mean() - exp.loc[~exp["treated"], "outcome"].mean()
    planted = truth["true_uplift"].mean()
    assert planted > 0.01 and abs(observed - planted) < 0.006  # ~3 standard errors at ~100k exposures
    # Heterogeneous: members with high planted discount affinity respond more.
    aff = pd.read_parquet(folder / "truth" / "members.parquet").set_index("member_id")["discount_affinity"]
    high = exp["member_id"].map(aff).to_numpy() > aff.median()
    lift = [exp[h & exp.treated].outcome.mean() - exp[h & ~exp.treated].outcome.mean() for h in (high, ~high)]
    assert lift[0] > 2 * lift[1]


def test_generate_then_prepare_quarantines_exactly_the_injected_dirt(synth, tailor_home, prepare_cfg):
    summary = json.loads((synth / "truth" / "summary.json").read_text())
    report = prepare("canonical", synth, prepare_cfg, dataset="synth")
    ev = report["tables"]["events"]
    assert ev["rows_in"] == summary["events_written"] == ev["kept"] + sum(ev["quarantined"].values())
    assert ev["quarantined"] == {k: v for k, v in summary["injected_dirt"].items() if v}
    assert ev["kept"] == summary["events_clean"]
    ds = Dataset("synth")
    assert ds.manifest["has_tiers"] and len(ds.table("members")) == 2000
    assert report["tables"]["exposures"]["kept"] == summary["exposures"]
    assert not ds.table("members")["member_id"].str.startswith("S").any()  # raw ids never stored
