"""Response propensity on targeted exposures (training/uplift/propensity.py) and the uplift job's fallback to it.

No selected test ran this module before the mutation check (issue 19): the temporal split and the behaviour
features are checked by hand here, the model against planted responders, and `tailor evaluate uplift` on the
targeted Complete Journey fixture end to end (logged as response propensity, nothing registered).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.uplift.propensity import _history, _logit, evaluate, exposures_frame, temporal_split

S = pd.Timestamp("2024-06-01", tz="UTC")
DAY = pd.Timedelta(days=1)


class Tables:
    """A prepared dataset's read side: `name` and `table(name, columns)`."""

    def __init__(self, **tables: pd.DataFrame) -> None:
        self.name, self.tables = "fake", tables

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        df = self.tables[name]
        return (df[columns] if columns is not None else df).copy()


def test_temporal_split_puts_the_latest_campaign_starts_in_test() -> None:
    counts = [5, 5, 10, 10, 10, 10, 10, 12, 13, 15]  # cumulative share 0.05 ... 0.60, 0.72, 0.85, 1.0
    day = np.repeat(np.arange(10), counts)
    day = np.random.default_rng(0).permutation(day)  # rows in any order
    ts = np.datetime64("2024-01-01") + day.astype("timedelta64[D]")
    fit, val, test = temporal_split(ts)
    # test: from the start where the share reaches 1 - 0.3; validation: from where it reaches 0.7 x 0.8 = 0.56
    assert sorted(set(day[test])) == [7, 8, 9] and sorted(set(day[val])) == [6]
    assert sorted(set(day[fit])) == [0, 1, 2, 3, 4, 5]
    assert sorted(np.r_[fit, val, test].tolist()) == list(range(len(day)))
    _, val2, test2 = temporal_split(ts, test_share=0.5, val_share=0.5)  # 0.5: day 5; 0.25: day 3
    assert sorted(set(day[test2])) == [5, 6, 7, 8, 9] and sorted(set(day[val2])) == [3, 4]


def test_history_counts_the_90_days_before_each_start() -> None:
    exp = pd.DataFrame({"member_id": ["m1", "m2", "m1"], "ts": [S, S, S + 30 * DAY]})
    ev = pd.DataFrame(
        [
            ("m1", S - 10 * DAY, "purchase", 5.0),
            ("m1", S - 90 * DAY, "purchase", 3.0),  # exactly 90 days before: counts
            ("m1", S - 91 * DAY, "purchase", 7.0),  # older: only for recency
            ("m1", S, "purchase", 100.0),  # at the start: not before it (but before the second exposure)
            ("m1", S - 200 * DAY, "coupon_redeem", np.nan),
            ("m1", S - 1 * DAY, "view", np.nan),  # other events do not count
            ("m3", S - 1 * DAY, "purchase", 50.0),  # another member
        ],
        columns=["member_id", "ts", "event_type", "amount"],
    )
    got = _history(Tables(events=ev), exp)
    assert list(got.columns) == ["purchases_90d", "spend_90d", "recency_days", "redeemed_before"]
    assert (got.dtypes == "float32").all()
    assert got.to_numpy().tolist() == [[2, 8, 10, 1], [0, 0, 365, 0], [2, 105, 30, 1]]


def test_logit_is_clipped() -> None:
    got = _logit(np.array([0.0, 0.5, 0.9, 1.0]))
    assert got[1] == 0.0 and got[2] == pytest.approx(np.log(9))
    assert got[0] == pytest.approx(np.log(1e-6 / (1 - 1e-6))) and got[3] == pytest.approx(-got[0])


def _planted(n_members: int = 400, seed: int = 0) -> Tables:
    """Ten campaigns 10 days apart, each targeting 120 members; loyal members (40%) redeem 70% of the time, the
    others 10%, and loyal members bought more in the weeks before."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"m{i}" for i in range(n_members)], dtype=object)
    loyal = rng.random(n_members) < 0.4
    members = pd.DataFrame({"member_id": ids, "attr_age": rng.normal(40, 10, n_members)})
    exposures, events = [], []
    for c in range(10):
        start = S + 10 * c * DAY
        for m in rng.choice(n_members, 120, replace=False):
            redeemed = rng.random() < (0.7 if loyal[m] else 0.1)
            exposures.append((ids[m], f"c{c}", start, True, float(redeemed)))
            if redeemed:
                events.append((ids[m], start + DAY, "coupon_redeem", np.nan))
    for m in range(n_members):
        for _ in range(rng.poisson(6 if loyal[m] else 1)):
            events.append((ids[m], S + rng.uniform(-60, 100) * DAY, "purchase", float(rng.uniform(5, 50))))
    exp = pd.DataFrame(exposures, columns=["member_id", "offer_id", "ts", "treated", "outcome"])
    exp.loc[len(exp)] = (ids[0], "untargeted", S, False, 1.0)  # not targeted: left out
    exp.loc[len(exp)] = (ids[1], "c0", pd.NaT, True, 1.0)  # no time: left out
    ev = pd.DataFrame(events, columns=["member_id", "ts", "event_type", "amount"])
    return Tables(members=members, exposures=exp, events=ev)


def test_exposures_frame_keeps_targeted_exposures_with_a_time() -> None:
    ds = _planted()
    x, y, ts = exposures_frame(ds)
    assert len(x) == len(y) == len(ts) == 1200
    assert {"age", "offer=c0", "offer=c9", "purchases_90d", "redeemed_before"} <= set(x.columns)
    assert "offer=untargeted" not in x.columns
    with pytest.raises(ValueError, match="no targeted exposures"):
        exposures_frame(Tables(exposures=ds.tables["exposures"].assign(treated=False)))


def test_evaluate_ranks_planted_responders_and_keeps_its_baselines_apart() -> None:
    ds = _planted()
    table = evaluate(ds).set_index("model")
    assert list(table.index) == ["lightgbm_calibrated", "logistic", "past_redemptions"]
    assert (table["estimand"] == "response propensity (not uplift)").all()
    x, y, ts = exposures_frame(ds)
    _, _, test = temporal_split(ts)
    assert (table["test_exposures"] == len(test)).all() and (table["base_rate"] == y[test].mean()).all()
    past = x["redeemed_before"].to_numpy()[test] + 1e-3 * x["spend_90d"].to_numpy()[test]
    assert table.loc["past_redemptions", "auroc"] == pytest.approx(roc_auc_score(y[test], past))
    assert np.isnan(table.loc["past_redemptions", "brier"])
    base = y[test].mean() * (1 - y[test].mean())  # Brier of always answering the base rate
    for model in ("lightgbm_calibrated", "logistic"):
        assert table.loc[model, "auroc"] > 0.7, table
        assert 0 < table.loc[model, "brier"] < base, table


def test_uplift_job_on_targeted_data_logs_response_propensity_and_registers_nothing(
    tailor_home, prepare_cfg, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri of an earlier test sets it
    from datasets.prepare import prepare
    from tests.conftest import FIXTURES
    from training import tracking
    from training.uplift.job import run

    prepare("completejourney", FIXTURES / "completejourney", prepare_cfg, dataset="cj")
    table = run("cj", job="evaluate")
    assert set(table["model"]) == {"lightgbm_calibrated", "logistic", "past_redemptions"}
    assert "RESPONSE PROPENSITY" in capsys.readouterr().out
    c = tracking.client()
    (r,) = c.search_runs([c.get_experiment_by_name("uplift").experiment_id])
    assert r.data.tags["estimand"] == "response_propensity"
    for model in table["model"]:
        assert f"response_propensity/{model}/test/auroc" in r.data.metrics
    assert "response_propensity/logistic/test/brier" in r.data.metrics
    assert "response_propensity.csv" in {a.path for a in c.list_artifacts(r.info.run_id)}
    assert c.search_model_versions("name='uplift'") == []
