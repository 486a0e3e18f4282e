"""Persona under Lightning DDP on CPU (2 gloo ranks, spawned): the best weights come back to the
caller, the job logs one MLflow run, and the quality matches one process within noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.integration.planted_tastes import QUICK

DDP = ["trainer.strategy=ddp", "trainer.devices=2"]


def test_length_buckets_split_every_batch_over_the_ranks():
    from training.persona.data import LengthBuckets

    lengths = np.random.default_rng(1).integers(1, 50, 1001)
    whole = list(LengthBuckets(lengths, 64, seed=3))
    shares = [list(LengthBuckets(lengths, 64, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == len(whole)  # same number of steps: no rank waits
    for batch, a, b in zip(whole, *shares, strict=True):
        assert sorted(a + b) == sorted(batch) and abs(len(a) - len(b)) <= 1
    # a batch smaller than the world still gives every rank an example
    assert list(LengthBuckets(np.array([3]), 8, rank=1, world=2)) == [[0]]


@pytest.mark.slow
def test_ddp_fit_brings_back_the_best_epochs_weights(dataset, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", dataset)
    from datasets.config import load
    from datasets.store import Dataset
    from training.interactions import protocol
    from training.metrics import evaluate_ranking
    from training.persona.config import PersonaConfig
    from training.persona.fit import Scorer, fit, task_catalogue

    cfg = load(PersonaConfig, "persona", ["dataset=planted", *QUICK, *DDP])
    val, _ = protocol(Dataset("planted"), 28, 28)
    cat = task_catalogue(Dataset("planted"), val.train, cfg)
    module, stats = fit(val.train, cat, cfg, cfg.train.epochs, 28, val=val)
    assert stats["world_size"] == 2 and stats["epochs"] == cfg.train.epochs
    assert 1 <= stats["best_epoch"] <= cfg.train.epochs
    # the net the caller holds is the best validated epoch of the ranks: re-scoring the validation
    # window in this process gives exactly the score the ranks chose that epoch by
    res = evaluate_ranking(Scorer(module.net, val.train, cat, cfg.data.max_len), val, cfg.k)
    assert res[f"all/ndcg@{cfg.k}"] + res[f"new/ndcg@{cfg.k}"] == pytest.approx(stats["best_score"], abs=1e-6)


@pytest.mark.slow
def test_ddp_job_logs_one_run_and_matches_one_process(dataset, monkeypatch, capsys):
    monkeypatch.setenv("TAILOR_HOME", dataset)
    from tailor.cli import main
    from training import tracking

    c = tracking.client()
    exp = c.get_experiment_by_name("persona")
    before = {r.info.run_id for r in c.search_runs([exp.experiment_id])} if exp else set()
    runs = {}
    for name, extra in (("one", []), ("ddp", DDP)):
        args = ["evaluate", "persona", "--dataset", "planted", "--set", *QUICK, "baselines=false", *extra]
        assert main(args) == 0
        capsys.readouterr()
        exp = c.get_experiment_by_name("persona")
        new = [
            r
            for r in c.search_runs([exp.experiment_id])
            if r.info.run_id not in before | {x.info.run_id for x in runs.values()}
        ]
        assert len(new) == 1, f"{name}: {len(new)} runs logged (extra ranks must not re-run the job)"
        runs[name] = new[0]
    one, ddp = (runs[n].data.metrics for n in ("one", "ddp"))
    for key in ("test/all/ndcg_at_20", "test/new/ndcg_at_20"):
        assert math.isfinite(ddp[key]) and ddp[key] > 0.1, (key, ddp[key])
        # DDP sees the same batches split over 2 ranks; on this small fixture DDP and one process were
        # seen 0.01-0.03 apart (NDCG@10, 6 epochs); 0.05 is noise, a broken DDP (ranks training apart,
        # untrained or last-epoch weights coming back) is not caught by this alone (see the test above)
        assert abs(ddp[key] - one[key]) < 0.05, (key, one[key], ddp[key])
    assert np.isfinite(ddp["fit/best_epoch"]) and 1 <= ddp["fit/best_epoch"] <= 6
