"""Persona end to end on planted tastes: it must beat popularity; train logs, registers, and loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_CATS, PER_CAT, N_MEMBERS = 4, 25, 400


def planted(folder: Path, seed: int = 0) -> Path:
    """Canonical files: each member buys only from one favourite category, items within it uniformly."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    ids = [(c, k) for c in range(N_CATS) for k in range(PER_CAT)]
    items = pd.DataFrame({"item_id": [f"c{c}-{k}" for c, k in ids], "category": [f"cat{c}" for c, _ in ids]})
    items["price"] = 10.0
    rows = []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for m in range(N_MEMBERS):
        fav = m % N_CATS
        for _ in range(rng.integers(8, 20)):
            day = int(rng.integers(0, 180))
            item = f"c{fav}-{rng.integers(0, PER_CAT)}"
            rows.append((f"M{m}", start + pd.Timedelta(days=day, hours=int(rng.integers(8, 20))), item))
    ev = pd.DataFrame(rows, columns=["member_id", "ts", "item_id"]).assign(event_type="purchase", quantity=1.0,
                                                                           amount=10.0)  # fmt: skip
    ev.to_csv(folder / "events.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.setenv("TAILOR_PSEUDONYM_KEY", "k")
        from datasets.config import load
        from datasets.prepare import prepare
        from datasets.settings import PrepareConfig

        prepare("canonical", planted(home / "raw"), load(PrepareConfig, "prepare"), dataset="planted")
    return str(home)


QUICK = ["train.epochs=6", "data.n_cutoffs=6", "data.stride_days=10", "model.dim=16", "train.batch_size=128"]


def test_persona_beats_popularity_on_planted_tastes(dataset, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", dataset)
    from datasets.config import load
    from datasets.store import Dataset
    from training.baselines import Popularity
    from training.interactions import protocol
    from training.metrics import evaluate_ranking
    from training.persona.config import PersonaConfig
    from training.persona.fit import Scorer, fit, task_catalogue

    cfg = load(PersonaConfig, "persona", ["dataset=planted", *QUICK])
    ds = Dataset("planted")
    _, test = protocol(ds, 28, 28)
    cat = task_catalogue(ds, test.train, cfg)
    module, _ = fit(test.train, cat, cfg, cfg.train.epochs, 28)
    persona = evaluate_ranking(Scorer(module.net, test.train, cat, cfg.data.max_len), test, 10)
    pop = evaluate_ranking(Popularity().fit(test.train), test, 10)
    assert persona["new/ndcg@10"] > 1.5 * pop["new/ndcg@10"], (persona, pop)
    assert persona["all/ndcg@10"] > 1.5 * pop["all/ndcg@10"], (persona, pop)


def test_train_logs_registers_and_the_pyfunc_gives_vectors(dataset, monkeypatch, capsys):
    monkeypatch.setenv("TAILOR_HOME", dataset)
    import mlflow

    from training import tracking
    from training.cli import main

    assert main(["train", "persona", "--dataset", "planted", "--set", *QUICK[1:], "train.epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "persona" in out and "popularity" in out and "ease" in out  # the side-by-side table
    c = tracking.client()
    mv = c.search_model_versions("name='persona'")[0]
    run = c.get_run(mv.run_id)
    assert "test/all/ndcg_at_20" in run.data.metrics and "baseline/ease/test/new/ndcg_at_20" in run.data.metrics
    assert run.data.tags["job"] == "train" and run.data.tags["data_fingerprint"]
    model = mlflow.pyfunc.load_model(f"models:/persona/{mv.version}")
    rows = pd.DataFrame({"member_id": ["x", "x", "cold"], "item_id": ["c1-3", "c1-4", "nope"],
                         "ts": ["2024-03-01", "2024-03-02", "2024-03-02"]})  # fmt: skip
    vectors = model.predict(rows)
    assert list(vectors["member_id"]) == ["cold", "x"] and len(vectors["vector"].iloc[0]) == 16
