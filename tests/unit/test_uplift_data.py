"""The uplift frame (training/uplift/data.py) by hand: arms, groups and outcomes per kind of dataset, the member
features, the split and the rows of a comparison (cases the mutation check found unchecked, issue 19)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.uplift.data import CONTROL, UpliftFrame, comparison_rows, features, load_frame, split


class Tables:
    """A prepared dataset's read side: name, manifest and `table(name)`."""

    def __init__(self, **tables: pd.DataFrame) -> None:
        self.name, self.manifest, self.tables = "fake", {"source": "fake_source"}, tables

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self.tables[name].copy()


def test_features_one_hot_categories_fill_numbers_and_order_segments() -> None:
    rows = pd.DataFrame(
        {
            "member_id": ["a", "b", "c"],
            "region": ["Urban", "Rural", None],
            "tier": ["gold", None, "gold"],
            "attr_history_segment": ["2) $100 - $200", "7) $1,000 +", "unknown"],
            "attr_recency": [1.0, np.nan, 3.0],
            "attr_newbie": [True, False, True],
            "attr_channel": ["web", "phone", "web"],
            "attr_color": ["red", "blue", None],
            "attr_empty": [np.nan, np.nan, np.nan],
            "points_balance": [10, 20, 30],
        }
    )
    x = features(rows, pd.Series(["o2", "o1", "o2"]))
    expected = {
        "history_segment": [1, 6, -1],
        "recency": [1, 2, 3],  # the missing value is the median
        "newbie": [1, 0, 1],
        "points_balance": [10, 20, 30],
        "region=Rural": [0, 1, 0],
        "region=Urban": [1, 0, 0],
        "tier=gold": [1, 0, 1],
        "channel=phone": [0, 1, 0],
        "channel=web": [1, 0, 1],
        "color=blue": [0, 1, 0],
        "color=red": [1, 0, 0],
        "offer=o1": [0, 1, 0],
        "offer=o2": [1, 0, 1],
    }
    assert list(x.columns) == list(expected)
    assert (x.dtypes == "float32").all()
    assert {c: x[c].tolist() for c in x.columns} == expected
    assert list(features(rows.drop(columns=["points_balance"])).columns)[:3] == ["history_segment", "recency", "newbie"]


def test_history_segments_are_ordered_and_fixed_categories_one_hot() -> None:
    segments = ["1) $0 - $100", "2) $100 - $200", "3) $200 - $350", "4) $350 - $500", "5) $500 - $750"]
    segments += ["6) $750 - $1,000", "7) $1,000 +"]
    rows = pd.DataFrame({"attr_history_segment": segments, "age_band": ["18-24"] * 6 + ["65+"]})
    rows["attr_channel"] = [1, 2, 3, 1, 2, 3, 1]  # a channel code is a category, not a number
    x = features(rows)
    assert x["history_segment"].tolist() == list(range(7))
    assert list(x.columns) == [
        "history_segment",
        "age_band=18-24",
        "age_band=65+",
        "channel=1",
        "channel=2",
        "channel=3",
    ]
    many = pd.DataFrame({"attr_age": np.arange(25.0), "attr_channel": [f"c{i}" for i in range(25)]})
    assert sum(c.startswith("channel=") for c in features(many).columns) == 25  # no 20-value limit for it


def test_a_text_attribute_with_more_than_20_values_is_left_out() -> None:
    n = 21
    rows = pd.DataFrame({"attr_age": np.arange(n, dtype=float), "attr_zip": [f"z{i % 20}" for i in range(n)]})
    assert sum(c.startswith("zip=") for c in features(rows).columns) == 20
    rows["attr_zip"] = [f"z{i}" for i in range(n)]
    assert list(features(rows).columns) == ["age"]
    with pytest.raises(ValueError, match="no usable attributes"):
        features(rows[["attr_zip"]])


def _frame(arm: list[str], group: list[str] | None = None) -> UpliftFrame:
    n = len(arm)
    group = group or ["all"] * n
    out = pd.DataFrame({"visit": np.zeros(n)})
    x = pd.DataFrame({"f": np.zeros(n, np.float32)})
    return UpliftFrame(np.arange(n).astype(str), x, np.array(arm, dtype=object), np.array(group, object), out, "t")


def test_arms_and_comparisons() -> None:
    assert _frame(["b", CONTROL, "a", "b"]).arms == ["a", "b"]
    assert _frame(["b", CONTROL, "a"]).comparisons() == {
        "a_vs_none": ["a"],
        "b_vs_none": ["b"],
        "any_vs_none": ["a", "b"],
    }
    assert _frame(["b", CONTROL]).comparisons() == {"b_vs_none": ["b"]}  # one arm: no "any"


def test_comparison_rows_take_the_control_rows_of_the_arms_groups() -> None:
    frame = _frame([CONTROL, "o1", "o2", CONTROL, "o1", CONTROL], ["o1", "o1", "o2", "o2", "o1", "o3"])
    idx = np.arange(6)
    rows, t = comparison_rows(frame, idx, ["o1"])
    assert rows.tolist() == [0, 1, 4] and t.tolist() == [0, 1, 1]
    rows, t = comparison_rows(frame, idx, ["o1", "o2"])
    assert rows.tolist() == [0, 1, 2, 3, 4] and t.tolist() == [0, 1, 1, 0, 1]
    rows, t = comparison_rows(frame, np.array([1, 3, 5]), ["o2"])  # o2's group is chosen over every row
    assert rows.tolist() == [3] and t.tolist() == [0]


def test_split_is_stratified_on_arm_and_outcome() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    arm = rng.choice(np.array([CONTROL, "a", "b"], dtype=object), n, p=[0.5, 0.3, 0.2])
    y = (rng.random(n) < np.where(arm == "a", 0.3, 0.1)).astype(float) * rng.choice([1.0, 7.5], n)  # spend-like
    frame = _frame(list(arm))
    frame.outcomes = pd.DataFrame({"spend": y})
    sp = split(frame, "spend", seed=3, test_size=0.5, val_size=0.2)
    assert sorted(np.r_[sp.fit, sp.val, sp.test].tolist()) == list(range(n))
    assert sp.train.tolist() == sorted(np.r_[sp.fit, sp.val].tolist())
    assert all((np.diff(p) > 0).all() for p in (sp.fit, sp.val, sp.test))
    assert len(sp.test) == n // 2 and abs(len(sp.val) - 0.2 * n // 2) <= 1
    for a in (CONTROL, "a", "b"):
        for bought in (False, True):
            stratum = np.flatnonzero((arm == a) & ((y > 0) == bought))
            assert abs(np.isin(stratum, sp.test).sum() - len(stratum) / 2) <= 1, (a, bought)
            assert abs(np.isin(stratum, sp.val).sum() - len(stratum) / 10) <= 1.5, (a, bought)
    again = split(frame, "spend", seed=3, test_size=0.5, val_size=0.2)
    assert again.test.tolist() == sp.test.tolist()
    assert split(frame, "spend", seed=4).test.tolist() != sp.test.tolist()


def _exposures(offers: list[str], treated: list[bool], **extra) -> pd.DataFrame:
    n = len(offers)
    return pd.DataFrame(
        {
            "member_id": [f"m{i}" for i in range(n)],
            "offer_id": offers,
            "treated": treated,
            "randomized": [True] * n,
            "outcome": [float(i % 2) for i in range(n)],
            "outcome_value": [5.0 if i % 2 else np.nan for i in range(n)],
            **extra,
        }
    )


def _members(n: int) -> pd.DataFrame:
    return pd.DataFrame({"member_id": [f"m{i}" for i in range(n)], "attr_age": np.arange(n, dtype=float)})


def test_load_frame_of_pooled_offers_gives_one_arm_and_group_per_offer() -> None:
    exp = _exposures(["o1", "o1", "o2", "o2", "o1"], [True, False, True, False, False])
    exp.loc[len(exp)] = ["m9", "o3", True, False, 1.0, 1.0]  # not randomized: left out
    exp.loc[len(exp)] = ["m8", "o3", True, None, 1.0, 1.0]  # randomization unknown: left out
    exp.loc[len(exp)] = ["m5", "o2", None, True, 0.0, np.nan]  # treatment unknown: control
    frame = load_frame(Tables(exposures=exp, members=_members(10)))
    assert frame.arm.tolist() == ["o1", CONTROL, "o2", CONTROL, CONTROL, CONTROL]
    assert frame.group.tolist() == ["o1", "o1", "o2", "o2", "o1", "o2"]
    assert frame.member_id.tolist() == ["m0", "m1", "m2", "m3", "m4", "m5"] and frame.source == "fake_source"
    assert list(frame.outcomes.columns) == ["conversion", "spend"]  # no visit column in the data
    assert frame.outcomes["spend"].tolist() == [0.0, 5.0, 0.0, 5.0, 0.0, 0.0]
    assert frame.outcomes["conversion"].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    assert list(frame.x.columns) == ["age", "offer=o1", "offer=o2"]
    one = load_frame(Tables(exposures=exp[exp["offer_id"] == "o1"], members=_members(10)))
    assert list(one.x.columns) == ["age"]  # a single offer: no offer column


def test_load_frame_of_hillstrom_maps_the_three_arms_with_one_control() -> None:
    offers = ["hs_womens_email", "hs_mens_email", "hs_no_email", "hs_no_email"]
    exp = _exposures(offers, [True, True, False, False], visit=[1.0, 0.0, 1.0, 0.0])
    frame = load_frame(Tables(exposures=exp, members=_members(4)))
    assert frame.arm.tolist() == ["womens", "mens", CONTROL, CONTROL]
    assert frame.group.tolist() == ["all"] * 4
    assert list(frame.outcomes.columns) == ["visit", "conversion", "spend"]
    assert frame.outcomes["visit"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert list(frame.x.columns) == ["age"]


@pytest.mark.parametrize(
    ("exp", "message"),
    [
        (_exposures([], []), "no exposures"),
        (_exposures(["o1", "o1"], [True, False]).assign(randomized=False), "no randomized exposures"),
        (_exposures(["o1", "o1"], [True, True]), "no control rows"),
        (_exposures(["o1", "o1"], [False, False]), "no treated rows"),
    ],
)
def test_load_frame_refuses_what_identifies_no_uplift(exp: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_frame(Tables(exposures=exp, members=_members(2)))
