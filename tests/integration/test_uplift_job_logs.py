"""What `tailor train uplift` logs: every comparison and outcome's test figures, the gated one as `test/...`, the
fit and validation figures, its tags and the versions the logged model pins (issue 19's mutation check found the
job's logging unchecked beyond `test/qini_auc`)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

QUICK = ["model.bags=1", "train.epochs=2", "baselines.n_estimators=[20]", "baselines.min_child_samples=20"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One uplift training on the Hillstrom fixture (default job, one baseline): (table, run, model version)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.setenv("TAILOR_PSEUDONYM_KEY", "k")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # an earlier test's mlflow.set_tracking_uri sets it
        from datasets.config import load
        from datasets.prepare import prepare
        from datasets.settings import PrepareConfig
        from training import tracking
        from training.uplift.job import run

        prepare("hillstrom", FIXTURES / "hillstrom" / "hillstrom.csv", load(PrepareConfig, "prepare"), dataset="hs")
        table = run("hs", overrides=[*QUICK, "baselines.learners=[s_learner]"])  # job: train by default
        c = tracking.client()
        (mv,) = c.search_model_versions("name='uplift'")
        yield table, c.get_run(mv.run_id), mv, c


def test_every_comparison_and_outcome_is_logged_and_the_gated_one_as_test(trained) -> None:
    table, run, _, _ = trained
    m = run.data.metrics
    comparisons = ["womens_vs_none", "mens_vs_none", "any_vs_none"]
    assert sorted(table["comparison"].unique()) == sorted(comparisons)
    assert list(table.index) == list(range(len(table)))
    for model, prefix in (("uplift_net", ""), ("s_learner", "baseline/s_learner/")):
        for comp in comparisons:
            assert f"{prefix}test/{comp}/visit/qini_auc" in m, (model, comp)
        assert m[f"{prefix}test/qini_auc"] == m[f"{prefix}test/womens_vs_none/visit/qini_auc"]  # gated: the default
        assert m[f"{prefix}test/auuc"] == m[f"{prefix}test/womens_vs_none/visit/auuc"]
    for comp in comparisons:
        assert f"test/{comp}/conversion/qini_auc" in m and f"test/{comp}/spend/value_at_30" in m
    assert not [k for k in m if k.endswith("fit_s") and k.startswith(("test/", "baseline/"))]
    assert {"fit/rows", "fit/val_rows", "fit/fit_s", "fit/best_epoch", "fit/val_loss"} <= set(m)
    for comp in comparisons:
        assert f"baseline/s_learner/val/{comp}/visit/qini_auc" in m
        assert m[f"baseline/s_learner/val/{comp}/n_estimators"] == 20


def test_tags_and_the_pinned_versions(trained) -> None:
    import mlflow

    _, run, mv, _ = trained
    tags = run.data.tags
    assert tags["job"] == "train" and tags["estimand"] == "uplift" and tags["comparison"] == "womens_vs_none"
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/uplift/{mv.version}")).read_text().split()
    for package in ("torch", "mlflow", "pandas", "numpy"):
        version = importlib.metadata.version(package).split("+")[0]
        assert f"{package}=={version}" in requirements, (package, requirements)
