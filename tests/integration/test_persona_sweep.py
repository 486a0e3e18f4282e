"""`tailor sweep persona` on planted tastes: validation NDCG as the objective, pruning on the logged metric."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.integration.planted_tastes import QUICK

REPO = Path(__file__).parents[2]


def test_persona_sweep_reports_validation_ndcg_each_epoch(dataset, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAILOR_HOME", dataset)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import optuna

    from datasets.config import load
    from training.persona.config import PersonaConfig
    from training.sweep import run_sweep
    from training.tracking import client

    space = yaml.safe_load((REPO / "configs" / "sweeps" / "persona.yaml").read_text())
    space["sampler"] = {"n_startup_trials": 2}
    space["space"]["model.dim"] = {"type": "categorical", "choices": [8, 16]}  # small nets: a trial takes seconds
    space["space"]["model.hidden"] = {"type": "categorical", "choices": [32, 64]}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    quick = [*QUICK, "train.epochs=4", "k=10"]
    study = run_sweep("persona", "planted", 3, study_name="p1", overrides=quick, config=str(path))
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert trials[0].params["model.dim"] == 16 and trials[0].params["train.lr"] == 0.003  # the base config
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done and all(0 < t.value <= 1 for t in done)
    # the pruning callback saw the metric the PersonaModule logs, every epoch
    assert all(len(t.intermediate_values) >= 1 for t in trials if t.state != optuna.trial.TrialState.FAIL)
    assert all(max(t.intermediate_values) <= 3 for t in done)
    c = client()
    runs = c.search_runs([c.get_experiment_by_name("persona").experiment_id], "tags.`sweep.study` = 'p1'")
    nested = {r.data.tags["sweep.trial"]: r for r in runs if "sweep.trial" in r.data.tags}
    assert set(nested) == {"0", "1", "2"}
    for t in done:
        m = nested[str(t.number)].data.metrics
        assert m["val/all/ndcg_at_10"] == t.value and "val/new/ndcg_at_10" in m
    cfg = load(PersonaConfig, str(Path(dataset) / "sweeps" / "p1" / "best.yaml"))
    assert cfg.dataset == "planted" and cfg.k == 10
