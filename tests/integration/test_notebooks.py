"""The reviewers' notebooks run top to bottom on a small synthetic dataset with a trained churn model."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.integration.synthetic_home import prepare_synthetic

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
QUICK = ["horizons.churn=60", "n_train_cutoffs=2", "net.max_epochs=6", "baselines=[recency,logistic]"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("nb_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.setenv("TAILOR_PSEUDONYM_KEY", "k")
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        from tailor.cli import main

        prepare_synthetic(home, 800, seed=5, events_per_member=25)
        for _ in range(2):  # two runs: "against earlier runs" has something to draw
            assert main(["train", "churn", "--dataset", "syn", "--set", *QUICK]) == 0
    return home


@pytest.mark.parametrize("name", ["compare_runs.ipynb", "segments.ipynb"])
def test_notebook_runs(home: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"TAILOR_HOME": str(home), "TAILOR_PSEUDONYM_KEY": "k", "TAILOR_DATASET": "syn",
                       "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "def " not in code and "class " not in code  # notebooks import the packages and define no logic
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(home)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    if name == "compare_runs.ipynb":
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # bars, history, calibration, curves
