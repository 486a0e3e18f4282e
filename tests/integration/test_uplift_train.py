"""Uplift: the network ranks planted responders first; the job runs end to end, logs and registers `uplift`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import FIXTURES

QUICK = ["model.bags=1", "train.epochs=3", "baselines.n_estimators=[20]", "baselines.min_child_samples=20"]


def planted_frame(n: int = 4000, seed: int = 0):
    """Two arms + control; only members with x0 > 0.5 (~30%) respond to either offer (+40 points of visit)."""
    from training.uplift.data import CONTROL, UpliftFrame

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 4)), columns=["x0", "x1", "x2", "x3"]).astype("float32")
    arm = rng.choice(np.array([CONTROL, "a", "b"], dtype=object), n)
    responsive = x["x0"].to_numpy() > 0.5
    p = 0.1 + 0.05 * (x["x1"].to_numpy() > 0) + 0.4 * responsive * (arm != CONTROL)
    visit = (rng.random(n) < p).astype(float)
    conversion = visit * (rng.random(n) < 0.3)
    out = pd.DataFrame({"visit": visit, "conversion": conversion, "spend": conversion * 50.0})
    group = np.full(n, "all", dtype=object)
    return UpliftFrame(np.array([f"m{i}" for i in range(n)]), x, arm, group, out, "planted"), responsive


def test_planted_uplift_is_ranked_first():
    from datasets.config import load
    from training.uplift.config import UpliftConfig
    from training.uplift.data import comparison_rows, split
    from training.uplift.lightning import fit_ensemble
    from training.uplift.metrics import qini_auc

    frame, responsive = planted_frame()
    cfg = load(UpliftConfig, "uplift", ["dataset=planted", "model.bags=1", "train.epochs=30"])
    sp = split(frame, "visit", seed=0)
    ens, _ = fit_ensemble(frame, sp, cfg, seed=0)
    x = frame.x.to_numpy(np.float32)[sp.test]
    u = ens.uplift(x, ["a", "b"])
    top = np.argsort(-u)[: int(0.3 * len(u))]
    assert responsive[sp.test][top].mean() > 0.8, "top 30% by uplift should be the planted responders (random: 0.3)"
    assert u[responsive[sp.test]].mean() > u[~responsive[sp.test]].mean() + 0.1
    te, t = comparison_rows(frame, sp.test, ["a"])
    assert (
        qini_auc(frame.outcomes["visit"].to_numpy()[te], ens.uplift(frame.x.to_numpy(np.float32)[te], ["a"]), t) > 0.3
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.setenv("TAILOR_PSEUDONYM_KEY", "k")
        from datasets.config import load
        from datasets.prepare import prepare
        from datasets.settings import PrepareConfig

        cfg = load(PrepareConfig, "prepare")
        prepare("hillstrom", FIXTURES / "hillstrom" / "hillstrom.csv", cfg, dataset="hs")
        prepare("completejourney", FIXTURES / "completejourney", cfg, dataset="cj")
    return str(home)


def test_train_logs_registers_and_the_pyfunc_gives_uplift(home, monkeypatch, capsys):
    monkeypatch.setenv("TAILOR_HOME", home)
    import mlflow

    from training import tracking
    from training.uplift.job import run

    table = run("hs", overrides=QUICK, job="train")
    assert {"uplift_net", "s_learner", "t_learner", "class_transformation"} <= set(table["model"])
    assert "womens_vs_none" in capsys.readouterr().out
    c = tracking.client()
    mv = c.search_model_versions("name='uplift'")[0]
    run_ = c.get_run(mv.run_id)
    assert "test/qini_auc" in run_.data.metrics and "baseline/s_learner/test/qini_auc" in run_.data.metrics
    assert run_.data.tags["job"] == "train" and run_.data.tags["data_fingerprint"]
    artifacts = {a.path for a in c.list_artifacts(mv.run_id, "plots")}
    assert {"plots/qini_uplift_curves.png", "plots/feature_importance.png"} <= artifacts
    model = mlflow.pyfunc.load_model(f"models:/uplift/{mv.version}")
    assert model.metadata.signature is not None
    names = model.metadata.get_input_schema().input_names()
    rows = pd.DataFrame(0.0, index=range(2), columns=names).assign(
        history_spend=[100.0, 900.0], recency_months=[1.0, 12.0]
    )
    pred = model.predict(rows)
    assert "womens_vs_none/visit" in pred.columns and len(pred) == 2 and np.isfinite(pred.to_numpy()).all()


def test_targeted_data_is_refused_as_uplift(home, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", home)
    from datasets.store import Dataset
    from training.uplift.data import load_frame

    with pytest.raises(ValueError, match="no randomized exposures"):
        load_frame(Dataset("cj"))


def test_no_treated_rows_and_single_class_are_clear_errors():
    from training.uplift.data import check_groups, check_outcome

    with pytest.raises(ValueError, match="no treated rows"):
        check_groups(np.zeros(10, bool), "test")
    with pytest.raises(ValueError, match="single class"):
        check_outcome(np.zeros(10), "test")


def test_score_uplift_writes_the_file_the_offer_ranker_reads(home, monkeypatch, capsys):
    """`tailor score uplift`: one row per member, columns as the pyfunc's, read by load_scores and rank_offers."""
    monkeypatch.setenv("TAILOR_HOME", home)
    from datetime import UTC, datetime

    import mlflow

    from datasets.store import Dataset
    from serving.bundle import load_scores
    from serving.offers import Catalogue, MemberView, rank_offers
    from serving.snapshot import Rows
    from training import registry, tracking
    from training.cli import main
    from training.uplift.data import features
    from training.uplift.job import run
    from training.uplift.score import score_uplift

    run("hs", overrides=[*QUICK, "baselines.learners=[s_learner]"], job="train")
    version = max(int(v.version) for v in tracking.client().search_model_versions("name='uplift'"))
    registry.promote("uplift", version, force=True, reason="test")
    out = score_uplift("hs", chunk=400)  # several chunks on the 1,500 fixture members
    assert "scored 1,500 members of hs with uplift" in capsys.readouterr().out

    members = Dataset("hs").table("members")
    assert len(out) == len(members) and set(out["member_id"]) == set(members["member_id"].astype(str))
    model = mlflow.pyfunc.load_model(f"models:/uplift/{version}")
    names = [f"{c}/{o}" for c in ("mens_vs_none", "womens_vs_none", "any_vs_none") for o in ("visit", "conversion")]
    assert set(names) <= set(out.columns) and (out["version"] == version).all() and (out["model"] == "uplift").all()
    rows = [0, 401, 1499]  # members in the first, second and last chunk, recomputed by the logged pyfunc
    expected = model.predict(features(members).iloc[rows].reset_index(drop=True))
    by_id = out.set_index("member_id")
    got = by_id.loc[members["member_id"].astype(str).iloc[rows], list(expected.columns)].to_numpy()
    assert np.allclose(got, expected.to_numpy(), atol=1e-6) and np.isfinite(out[names].to_numpy()).all()

    loaded = load_scores("uplift", "hs", version)
    assert loaded is not None and loaded.index.equals(pd.Index(by_id.index))
    assert np.allclose(loaded[names].to_numpy(), by_id[names].to_numpy())
    assert load_scores("uplift", "hs", version + 1) is None  # not the champion's file: ignored

    member = str(by_id.index[0])
    cat = Catalogue(offers=[
        {"offer_id": "womens_mail", "kind": "coupon", "value": 20, "cost": 1, "uplift_key": "womens_vs_none/visit"},
        {"offer_id": "plain", "kind": "coupon", "value": 5, "cost": 1},
    ])  # fmt: skip
    scores = Rows.of(loaded.drop(columns=["model", "cutoff"]))  # as serving's snapshot holds them
    ranked = rank_offers(cat, MemberView(member, None, None), affinity={}, p_buy=None, uplift=scores.get(member),
                         at=datetime.now(UTC))  # fmt: skip
    basis = {r["offer_id"]: r for r in ranked}
    u = float(by_id.at[member, "womens_vs_none/visit"])
    assert basis["womens_mail"]["basis"] == "uplift" and basis["plain"]["basis"] == "prior"
    assert basis["womens_mail"]["expected_incremental_value"] == pytest.approx(u * 20 - 1, abs=1e-5)

    with pytest.raises(ValueError, match=r"lack: .*history_spend"):  # Hillstrom-trained: no CJ household has these
        score_uplift("cj")
    capsys.readouterr()
    assert main(["score", "uplift", "--dataset", "hs", "--version", str(version)]) == 0
    assert f"with uplift v{version}" in capsys.readouterr().out
    assert main(["score", "uplift", "--dataset", "cj"]) == 2 and "lack:" in capsys.readouterr().err


def test_pooled_offers_are_scored_with_each_comparisons_offer_set():
    """A model of pooled offers: each comparison is predicted with its own `offer=` column set (any: the mean)."""
    import torch

    from training.uplift.model import Ensemble, UpliftNet, UpliftShape
    from training.uplift.pyfunc import predict_frame
    from training.uplift.score import member_features, uplift_scores

    torch.manual_seed(0)
    feats = ["spend", "region=North", "region=South", "offer=o1", "offer=o2"]
    shape = UpliftShape(n_features=len(feats), arms=["control", "o1", "o2"], outcomes=["visit", "spend"], hidden=8)
    nets = [UpliftNet(shape), UpliftNet(shape)]
    for net in nets:
        torch.nn.init.normal_(net.effect.weight)  # effects start at zero: make the offers differ
    ens = Ensemble(nets)
    meta = {"features": feats, "comparisons": {"o1_vs_none": ["o1"], "o2_vs_none": ["o2"], "any_vs_none": ["o1", "o2"]}}
    members = pd.DataFrame({"member_id": ["a", "b", "c"], "attr_spend": [1.0, None, 30.0],
                            "region": ["North", "North", None]})  # fmt: skip
    x = member_features(members, meta)  # nobody in the South: that column is 0, not missing
    assert (
        list(x.columns) == feats and (x["region=South"] == 0).all() and (x[["offer=o1", "offer=o2"]] == 0).all().all()
    )
    out = uplift_scores(ens, meta, x, chunk=2)
    for offer in ("o1", "o2"):
        xo = x.assign(**{"offer=o1": float(offer == "o1"), "offer=o2": float(offer == "o2")})
        want = predict_frame(ens, meta, xo)
        assert np.allclose(out[f"{offer}_vs_none/visit"], want[f"{offer}_vs_none/visit"])
    assert np.allclose(out["any_vs_none/spend"], (out["o1_vs_none/spend"] + out["o2_vs_none/spend"]) / 2)
    assert not np.allclose(out["o1_vs_none/visit"], out["o2_vs_none/visit"])
    with pytest.raises(ValueError, match=r"lack: spend, region=North\|South \(they carry: income=low\)"):
        member_features(pd.DataFrame({"member_id": ["a"], "attr_income": ["low"]}), meta)
