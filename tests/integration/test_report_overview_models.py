"""The overview with a served churn champion: model table, drift against the champion's cutoff, score drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.synthetic_home import prepare_synthetic

QUICK = ["horizons.churn=60", "n_train_cutoffs=2", "net.max_epochs=15", "net.patience=4"]
QUICK += ["lightgbm.num_leaves=[7]", "lightgbm.min_child_samples=[20]"]


def test_overview_with_a_champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TAILOR_PSEUDONYM_KEY", "k")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from serving.report import overview_html
    from tailor.cli import main
    from training.registry import promote

    prepare_synthetic(tmp_path, 1500)
    assert main(["train", "churn", "--dataset", "syn", "--set", *QUICK]) == 0
    promote("churn", version=1, force=True, reason="report test")
    assert main(["score", "churn", "--dataset", "syn"]) == 0
    capsys.readouterr()
    html = overview_html("syn")
    assert "<td>churn</td><td>v1</td>" in html and "No champion models registered yet" not in html
    assert "champion churn model&#39;s test cutoff Nov 1, 2025" in html  # drift reference = the champion's cutoff
    assert "Churn scores: mean p_churn today" in html and "test base rate" in html
    assert "No churn scores yet" not in html
