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
