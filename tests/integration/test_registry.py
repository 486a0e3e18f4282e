"""Tracking and registry on one shared SQLite store: run metadata, the promotion gate, rollback, history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from tailor.cli import main
from training import registry, tracking


@pytest.fixture(scope="session")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One TAILOR_HOME (and so one SQLite MLflow store) for the whole session."""
    home = tmp_path_factory.mktemp("mlflow_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield home


@pytest.fixture
def home(mlflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Re-point this test at the shared store (per-test fixtures elsewhere may move TAILOR_HOME)."""
    monkeypatch.setenv("TAILOR_HOME", str(mlflow_home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TAILOR_USER", "tester")
    return mlflow_home


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, model_input: list[str], params=None) -> list[str]:
        return model_input


def candidate(family: str, all_: float, new: float, baselines: dict[str, tuple[float, float]]) -> int:
    """Log a tiny run carrying gate metrics and baseline figures, register its model; returns the version."""
    with tracking.start_run(family, "train", {"model": {"dim": 8}, "all": all_}, None, "tiny") as run:
        metrics = {"test/all/ndcg@20": all_, "test/new/ndcg@20": new}
        for name, (b_all, b_new) in baselines.items():
            metrics |= {f"baseline/{name}/test/all/ndcg@20": b_all, f"baseline/{name}/test/new/ndcg@20": b_new}
        tracking.log_metrics(metrics)
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["mlflow"])
    return registry.register(run.info.run_id, family, info.model_uri)


BASE = {"ease": (0.25, 0.15), "popularity": (0.10, 0.05)}


def test_gate_promote_refuse_rollback_history(home: Path, capsys: pytest.CaptureFixture) -> None:
    v1 = candidate("persona", 0.30, 0.20, BASE)
    d = registry.promote("persona")  # nothing to beat: the gate says so
    assert d.action == "refused" and registry.champion("persona") is None
    assert all("no champion yet" in r.note for r in d.rows)
    with pytest.raises(ValueError, match="--reason"):
        registry.promote("persona", v1, force=True)
    d = registry.promote("persona", v1, force=True, reason="first persona model")
    assert d.action == "promote" and d.forced and registry.champion("persona")[0] == v1

    v2 = candidate("persona", 0.35, 0.22, BASE)
    assert main(["promote", "persona"]) == 0
    assert registry.champion("persona")[0] == v2
    out = capsys.readouterr().out
    assert "PROMOTED" in out and "test/all/ndcg@20" in out and "0.2500 (ease)" in out

    v3 = candidate("persona", 0.34, 0.30, BASE)  # worse on one gate metric
    assert main(["promote", "persona", "--version", str(v3)]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "does not beat the champion" in out
    v4 = candidate("persona", 0.35, 0.30, BASE)  # a tie is not a win
    assert registry.promote("persona", v4).action == "refused"
    v5 = candidate("persona", 0.40, 0.25, {"ease": (0.30, 0.26)})  # beats the champion, not a baseline
    d = registry.promote("persona", v5)
    assert d.action == "refused" and "below baseline ease" in d.rows[1].note and d.rows[0].passed
    assert registry.champion("persona")[0] == v2

    assert main(["rollback", "persona"]) == 0
    assert registry.champion("persona")[0] == v1
    assert main(["rollback", "persona"]) == 2  # nothing before the first champion
    assert "nothing to roll back" in capsys.readouterr().err

    moves = [(r["action"], r["version_from"], r["version_to"]) for r in registry.alias_history("persona")]
    assert moves == [("promote", None, v1), ("promote", v1, v2), ("rollback", v2, v1)]
    every = registry.alias_history("persona", include_refused=True)
    assert [r["action"] for r in every].count("refused") == 4 and every[0]["who"] == "tester"
    assert (home / "registry" / "alias_history.jsonl").exists()

    tags = tracking.client().get_model_version("persona", str(v2)).tags
    assert tags["gate.passed"] == "true" and tags["promotion.from_version"] == str(v1)
    assert tags["promotion.by"] == "tester" and tags["git_sha"] and tags["run_id"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "persona: champion v1" in out and " * v1 " in out and "rollback v2 -> v1" in out


def test_gate_rules_are_per_metric() -> None:
    gate = registry.FamilyGate.model_validate(
        {"metrics": [{"name": "test/brier", "higher_is_better": False, "beat_baselines": False}]}
    )
    rows = registry.evaluate_gate(gate, {"test/brier": 0.10, "baseline/x/test/brier": 0.05}, {"test/brier": 0.12})
    assert rows[0].passed  # lower is better, and baselines are not required to be beaten here
    assert not registry.evaluate_gate(gate, {"test/brier": 0.12}, {"test/brier": 0.12})[0].passed
    assert "candidate lacks" in registry.evaluate_gate(gate, {}, {"test/brier": 0.1})[0].note


def test_unknown_family_and_missing_version(home: Path) -> None:
    with pytest.raises(ValueError, match="unknown model family"):
        registry.promote("nosuch")
    assert main(["promote", "churn"]) == 2  # no versions registered


def test_start_run_records_metadata(home: Path, tmp_path: Path) -> None:
    from datasets.store import Dataset

    ds_dir = tmp_path / "ds"
    ds_dir.mkdir()
    manifest = {"dataset": "tiny", "source": "synthetic", "rows": {"events": 7, "members": 2}, "fingerprint": "ab" * 32}
    (ds_dir / "manifest.json").write_text(json.dumps(manifest | {"batches": [{"id": "b1"}]}))
    cfg = {"model": {"lr": 0.001, "layers": [64, 32]}, "seed": 0}
    with tracking.start_run("churn", "train_churn", cfg, Dataset(ds_dir), "churn", cutoff="2024-01-01") as run:
        logged = tracking.log_metrics({"val/ndcg@20": 0.5, "val/loss": 1.0, "skip": None}, step=1)
        tracking.log_figure(tracking.recall_at_k_plot({"ease": [(10, 0.2), (20, 0.3)]}), "plots/recall_at_k.png")
    assert logged == {"val/ndcg_at_20": 0.5, "val/loss": 1.0}
    c = tracking.client()
    r = c.get_run(run.info.run_id)
    sha = tracking.git_sha()
    assert r.info.run_name == f"churn-{sha[:7]}-{tracking.config_hash(cfg)[:6]}"
    assert c.get_experiment(r.info.experiment_id).name == "churn"
    assert r.data.tags["job"] == "train_churn" and r.data.tags["git_sha"] == sha and r.data.tags["stage"] == "dev"
    assert r.data.tags["data_fingerprint"] == "ab" * 32 and r.data.tags["dataset"] == "tiny"
    assert r.data.params["model.lr"] == "0.001" and r.data.params["model.layers"] == "[64, 32]"
    assert r.data.metrics["val/ndcg_at_20"] == 0.5
    arts = {a.path for a in c.list_artifacts(run.info.run_id)} | {
        a.path for a in c.list_artifacts(r.info.run_id, "plots")
    }
    assert {"config.yaml", "data_fingerprint.json", "plots/recall_at_k.png"} <= arts
    fp = mlflow.artifacts.load_dict(f"{r.info.artifact_uri}/data_fingerprint.json")
    assert fp["cutoff"] == "2024-01-01" and fp["rows"]["events"] == 7 and fp["source"] == "synthetic"
    assert str(home) in tracking.tracking_uri() and r.info.artifact_uri.startswith(tracking.artifact_root().as_uri())


def test_metric_key() -> None:
    assert tracking.metric_key("val/ndcg@20") == "val/ndcg_at_20"
    assert (
        tracking.metric_key("baseline/buy_again+ease/test/all/ndcg@20")
        == "baseline/buy_again_plus_ease/test/all/ndcg_at_20"
    )
    assert tracking.metric_key("test/auroc (all)") == "test/auroc all"


def test_new_commands_have_help() -> None:
    for cmd in ("promote", "rollback", "models"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
