"""Member features at a cutoff, checked against values worked out by hand."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from datasets.config import load
from datasets.feature_settings import FeatureConfig
from datasets.features import compute_features, run_features, segment_table
from datasets.settings import PrepareConfig
from datasets.store import Dataset


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))


CUT = pd.Timestamp("2024-03-01", tz="UTC")
TZ = "America/New_York"  # UTC-5 in winter, UTC-4 in summer
COLS = ["member_id", "ts", "event_type", "item_id", "quantity", "amount", "channel", "session_id", "discount"]
ITEMS = pd.DataFrame(
    {
        "item_id": ["i1", "i2", "i3", "i4", "i5", "i6", "i7"],
        "category": ["bakery", "bakery", "dairy", "dairy", "produce", "produce", "snacks"],
        "price": 1.0,
    }
)


def _ev(member, ts, item, qty, amount, channel, session=None, kind="purchase", discount=0.0):
    return (member, pd.Timestamp(ts, tz="UTC"), kind, item, qty, amount, channel, session, discount)


EVENTS = [
    # A: 6 orders of 100, 19 days in, 5 on weekends, all mornings local; one discounted line.
    _ev("A", "2024-02-10 15:00", "i1", 10, 100, "app", "a1", discount=5.0),
    _ev("A", "2024-02-11 15:00", "i1", 10, 100, "app", "a2"),
    _ev("A", "2024-02-17 15:00", "i2", 10, 100, "app", "a3"),
    _ev("A", "2024-02-18 15:00", "i3", 20, 100, "app", "a4"),
    _ev("A", "2024-02-24 15:00", "i3", 20, 100, "app", "a5"),
    _ev("A", "2024-02-29 12:00", "i5", 50, 100, "app", "a6"),
    _ev("A", "2024-03-05 12:00", "i5", 50, 999, "web", "a7"),  # after the cutoff: ignored
    # B: 4 orders (one Saturday afternoon, three evenings), 2 coupon redemptions.
    _ev("B", "2023-12-30 17:00", "i2", 20, 100, "web", "b1"),
    _ev("B", "2024-01-10 23:30", "i7", 10, 100, "web", "b2"),
    _ev("B", "2024-01-10 23:30", None, None, None, None, None, kind="coupon_redeem"),
    _ev("B", "2024-02-01 23:00", "i4", 10, 100, "app", "b3"),
    _ev("B", "2024-02-20 23:00", "i6", 30, 60, "app", "b4"),
    _ev("B", "2024-02-20 23:00", "i7", 4, 40, "app", "b4"),
    _ev("B", "2024-02-20 23:00", None, None, None, None, "c2", kind="coupon_redeem"),
    # C: no sessions; 20:00 and 03:00 UTC fall on the same local day (Fri 19 Jan) -> one order.
    _ev("C", "2024-01-19 20:00", "i1", 2, 40, "store"),
    _ev("C", "2024-01-20 03:00", "i1", 3, 60, "store"),
    _ev("C", "2024-01-21 18:00", "i2", 5, 100, "store"),
    _ev("C", "2024-01-21 19:00", "i2", 5, 100, "store", "c-s"),  # same day, but a session: its own order
    # D: dairy at 2.5 a unit (half the category median of 5).
    _ev("D", "2023-11-10 14:00", "i3", 40, 100, "web", "d1"),
    _ev("D", "2023-11-21 14:00", "i3", 40, 100, "web", "d2"),
    # E: one order in August (EDT: 16:00 UTC is 12:00 local -> afternoon); channel tie web/app -> app.
    _ev("E", "2023-08-14 16:00", "i5", 50, 100, "web", "e1"),
    _ev("E", "2023-09-01 10:00", "i5", None, None, "app", kind="view"),
    # P: only a view: a prospect.  F: joins after the cutoff.
    _ev("P", "2024-02-01 12:00", "i1", None, None, "web", kind="view"),
    _ev("F", "2024-04-01 12:00", "i1", 1, 10, "web", "f1"),
]
MEMBERS = pd.DataFrame(
    {
        "member_id": ["A", "B", "C", "D", "E", "F", "P", "Q", "U"],
        "joined_at": pd.to_datetime(
            ["2023-06-01", None, None, None, None, "2024-04-01", "2024-01-15", "2024-01-01", None], utc=True
        ),
        "tier": None,
        "points_balance": np.nan,
        "region": ["north", "south", "south", "east", "west", "north", "east", "west", "north"],
        "age_band": None,
    }
)


def _events(rows=EVENTS) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLS).astype({"ts": "datetime64[us, UTC]"})


@functools.cache
def _cfg() -> tuple[FeatureConfig, object]:
    return load(FeatureConfig, "features"), load(PrepareConfig, "prepare").tiers


def _features(events: pd.DataFrame | None = None, **kw) -> pd.DataFrame:
    cfg, rules = _cfg()
    ev = _events() if events is None else events
    parts = [ev[ev["member_id"].isin(["A", "C", "E"])], ev[~ev["member_id"].isin(["A", "C", "E"])]]
    kw = {"timezone": TZ, "tier_rules": rules} | kw
    return compute_features(parts, MEMBERS, ITEMS, CUT, kw.pop("cfg", cfg), **kw).set_index("member_id")


def test_rfm_segments_lifecycle_by_hand() -> None:
    f = _features()
    # F joined after the cutoff, U has no join date and no events: neither exists yet.
    assert list(f.index) == ["A", "B", "C", "D", "E", "P", "Q"]
    buyers = f.loc[["A", "B", "C", "D", "E"]]
    assert buyers["recency_days"].tolist() == [0, 9, 39, 100, 199]
    assert buyers["frequency"].tolist() == [6, 4, 3, 2, 1]
    assert buyers["monetary"].tolist() == [600.0, 400.0, 300.0, 200.0, 100.0]
    # Five buyers with distinct values: score = 1 + number strictly worse.
    for col in ("r_score", "f_score", "m_score"):
        assert buyers[col].tolist() == [5, 4, 3, 2, 1]
    assert buyers["segment"].tolist() == ["champions", "loyal", "need_attention", "hibernating", "lost"]
    assert buyers["days_since_first_purchase"].tolist() == [19, 61, 41, 111, 199]
    assert f["lifecycle"].tolist() == ["new", "active", "active", "at_risk", "lapsed", "prospect", "prospect"]
    assert f.loc[["P", "Q"], ["recency_days", "r_score", "segment"]].isna().all().all()
    assert f.loc[["P", "Q"], "frequency"].tolist() == [0, 0]
    # Tenure: joined_at, else the first event before the cutoff.
    assert f["tenure_days"].tolist() == [274, 61, 41, 111, 199, 46, 60]
    assert f["region"].tolist() == ["north", "south", "south", "east", "west", "east", "west"]


def test_tags_by_hand() -> None:
    f = _features()
    # Category medians of buyers' mean unit prices: bakery 10, dairy 5, produce 2, snacks 10.
    assert f.loc["A", "top_categories"].tolist() == ["bakery", "dairy", "produce"]
    assert f.loc["B", "top_categories"].tolist() == ["snacks", "bakery", "dairy"]  # bakery/dairy tie: by name
    assert len(f.loc["P", "top_categories"]) == 0
    assert f["price_index"].round(4).tolist()[:5] == [1.0, 1.0, 2.0, 0.5, 1.0]
    assert f["price_band"].tolist()[:5] == ["mid", "mid", "premium", "budget", "mid"]
    assert f.loc[["P", "Q"], "price_band"].isna().all()
    assert f["discount_affinity"].round(4).tolist()[:5] == [0.1667, 0.2857, 0.0, 0.0, 0.0]
    assert f.loc[["P", "Q"], "discount_affinity"].isna().all()
    assert f["weekend_share"].round(4).tolist()[:5] == [0.8333, 0.25, 0.6667, 0.0, 0.0]
    assert f["weekend_habit"].tolist()[:5] == ["weekend", "mixed", "weekend", "weekday", "weekday"]
    assert f["time_of_day"].tolist()[:5] == ["morning", "evening", "afternoon", "morning", "afternoon"]
    assert f["channel"].tolist()[:6] == ["app", "app", "store", "web", "app", "web"]
    assert pd.isna(f.loc["Q", "channel"])


def test_derived_and_source_tiers() -> None:
    f = _features()
    assert f.loc["A", "tier"] == "silver" and f.loc["A", "points_balance"] == 600.0  # 600 >= 500
    assert f.loc[["B", "P"], "tier"].tolist() == ["base", "base"]
    assert f.loc["P", "points_balance"] == 0.0
    members = MEMBERS.assign(tier="gold", points_balance=42.0)
    cfg, _ = _cfg()
    g = compute_features([_events()], members, ITEMS, CUT, cfg, timezone=TZ, tier_rules=None).set_index("member_id")
    assert set(g["tier"]) == {"gold"} and set(g["points_balance"]) == {42.0}


def test_no_discount_information_is_null_not_zero() -> None:
    ev = _events()
    ev = ev[ev["event_type"] != "coupon_redeem"].drop(columns="discount")
    assert _features(ev)["discount_affinity"].isna().all()


def test_undated_members_included_on_request() -> None:
    cfg, _ = _cfg()
    f = _features(cfg=cfg.model_copy(update={"include_undated_members": True}))
    assert f.loc["U", "lifecycle"] == "prospect" and pd.isna(f.loc["U", "tenure_days"])
    assert "F" not in f.index


def test_members_without_purchases_only() -> None:
    ev = _events()
    f = _features(ev[ev["event_type"] != "purchase"])
    assert set(f["lifecycle"]) == {"prospect"}
    assert f["segment"].isna().all() and f["r_score"].isna().all()
    assert len(segment_table(f)) == 1


def test_segment_table() -> None:
    t = segment_table(_features().reset_index())
    assert t["members"].sum() == 7
    row = t.set_index("segment").loc["(no purchase yet)"]
    assert row["members"] == 2 and row["share"] == round(2 / 7, 4)
    assert t.set_index("segment").loc["champions", "median_monetary"] == 600.0


def test_segments_must_cover_every_score_pair() -> None:
    with pytest.raises(ValidationError, match="without a segment"):
        load(FeatureConfig, "features", ["segments=[{name: x, r: [1, 5], f: [1, 4]}]"])
    cfg = load(FeatureConfig, "features", ["lifecycle.active_days=60"])
    assert cfg.lifecycle.active_days == 60


OR_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
OR_ROWS = [
    "536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850,United Kingdom",
    "536367,84879,ASSORTED COLOUR BIRD,32,12/1/2010 8:34,1.69,13047,United Kingdom",
    "536368,22960,JAM MAKING SET,6,12/3/2010 8:34,4.25,13047,United Kingdom",
    "536369,21756,BATH BUILDING BLOCK,3,12/5/2010 8:35,5.95,12583,France",
    "C536379,D,Discount,-1,12/6/2010 9:41,27.5,14527,United Kingdom",
    "536370,22728,ALARM CLOCK PINK,24,12/6/2010 10:00,3.75,,United Kingdom",
    "536371,22086,PAPER CHAIN KIT,80,12/8/2010 9:00,2.55,13748,United Kingdom",
    "536372,22632,HAND WARMER RED,6,12/10/2010 9:01,1.85,17850,United Kingdom",
    "536373,84029G,KNITTED UNION FLAG,6,12/12/2010 9:02,3.39,15100,United Kingdom",
    "536374,21258,VICTORIAN SEWING BOX,32,12/14/2010 9:09,10.95,15291,United Kingdom",
    "536375,84029E,RED WOOLLY HOTTIE,6,12/15/2010 9:32,3.39,12583,France",
]


def test_online_retail_fixture_covers_every_buyer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datasets.prepare import prepare

    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))
    csv = tmp_path / "online_retail.csv"
    csv.write_text("\n".join([OR_HEADER, *OR_ROWS]) + "\n")
    prepare("online_retail", csv, load(PrepareConfig, "prepare"))
    ds = Dataset("online_retail")
    f = run_features("online_retail", cutoff="2010-12-09")
    events = ds.table("events")
    before = set(
        events.loc[
            (events["ts"] < pd.Timestamp("2010-12-09", tz="UTC")) & (events["event_type"] == "purchase"), "member_id"
        ]
    )
    assert before and before <= set(f["member_id"])
    assert set(f["member_id"]) == before  # undated members with no purchase yet are not there
    assert (f["frequency"] > 0).all() and f["segment"].notna().all()
    path = ds.path / "features" / "cutoff=2010-12-09.parquet"
    first = path.read_bytes()
    run_features("online_retail", cutoff="2010-12-09")
    assert path.read_bytes() == first  # deterministic bytes
    full = run_features("online_retail")  # default: the day after the last event
    assert (ds.path / "features" / "cutoff=2010-12-16.parquet").exists()
    assert set(full["member_id"]) == set(events["member_id"])
    with pytest.raises(ValueError, match="no timezone"):
        run_features("online_retail", cutoff="2010-12-09 10:00")
