"""Distributed sweep: worker processes share one Optuna study on a real PostgreSQL server, MLflow on the same server.

The server is the distribution's PostgreSQL (installed by `make postgres`), started by pytest-postgresql's executor in
a temporary folder on a free port; without it the tests skip, or fail under TAILOR_REQUIRE_POSTGRES=1 (`make test`).
Two `tailor sweep` processes start at once on an empty Optuna database (racing on its tables and on creating the
study), so every trial must be recorded once, trial 0 must be the base config, and the MLflow runs (one parent, one
nested run per trial) must match Optuna's trials. Then a third worker is killed in the middle of a trial: the next
worker fails it for want of a heartbeat, marks its MLflow run failed and retries its params, and `--total-trials`
stops the study at the requested size.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.components import need
from tests.integration.synthetic_home import prepare_synthetic

REPO = Path(__file__).parents[2]
WORKERS, PER_WORKER = 2, 3
QUICK = ["horizons.churn=60", "n_train_cutoffs=2", "net.max_epochs=4", "net.patience=4"]
STATE = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


@pytest.fixture(scope="module")
def pg() -> Iterator[Callable[[str], str]]:
    """A throwaway PostgreSQL server; yields `database(name) -> URL`, which creates an empty database.

    pytest-postgresql's executor runs the system's pg_ctl (initdb, start, stop, version check) with trust
    authentication on 127.0.0.1. initdb and the server refuse to run as root, so as root (CI) pg_ctl runs as the
    `postgres` user through a two-line wrapper, in a folder that user owns (pytest's own temporary folders are
    private to root).
    """
    from port_for import get_port
    from pytest_postgresql.executors import PostgreSQLExecutor
    from pytest_postgresql.janitor import DatabaseJanitor

    pg_ctl = need("postgres")
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="tailor-pg-"))
    run = root / "run"
    run.mkdir()
    executable = pg_ctl
    if os.geteuid() == 0:
        executable = str(root / "pg_ctl")
        Path(executable).write_text(f'#!/bin/sh\nexec runuser -u postgres -- "{pg_ctl}" "$@"\n')
        os.chmod(executable, 0o755)
        root.chmod(0o755)
        shutil.chown(run, "postgres", "postgres")
    server = PostgreSQLExecutor(
        executable=executable,
        host="127.0.0.1",
        port=get_port(None),
        dbname="tailor",
        datadir=str(run / "data"),
        unixsocketdir=str(run),
        logfile=str(run / "server.log"),
        startparams="-w",
    )

    def database(name: str) -> str:
        DatabaseJanitor(user=server.user, host=server.host, port=server.port, dbname=name).init()
        return f"postgresql://{server.user}@{server.host}:{server.port}/{name}"

    try:
        with server:
            up = time.perf_counter() - t0
            print(f"\nPostgreSQL {server.version} ({pg_ctl}) up on port {server.port} in {up:.1f} s")
            yield database
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dist_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.setenv("TAILOR_PSEUDONYM_KEY", "k")
        prepare_synthetic(home, 800)
    return home


def _space(tmp_path: Path) -> Path:
    space = yaml.safe_load((REPO / "configs" / "sweeps" / "churn.yaml").read_text())
    space.update(sampler={"n_startup_trials": 2}, heartbeat_interval=1, grace_period=10)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def test_workers_share_a_postgres_study_and_mlflow_store(pg, home: Path, tmp_path: Path, monkeypatch) -> None:
    import optuna
    from mlflow import MlflowClient

    from datasets.config import load
    from training.outcomes.config import OutcomeConfig
    from training.sweep import SweepConfig, default_params, run_sweep

    optuna_url, mlflow_url = pg("optuna"), pg("mlflow")
    MlflowClient(mlflow_url).search_experiments()  # MLflow's schema, once (as `mlflow db upgrade URL` does)
    space = _space(tmp_path)
    env = {**os.environ, "TAILOR_HOME": str(home), "TAILOR_PSEUDONYM_KEY": "k", "MLFLOW_TRACKING_URI": mlflow_url}
    tailor = str(Path(sys.executable).parent / "tailor")
    cmd = [tailor, "sweep", "churn", "--dataset", "syn", "--study", "dist", "--storage", optuna_url,
           "--config", str(space)]  # fmt: skip

    # 1. two workers at once on an empty Optuna database and no MLflow experiment yet
    t0 = time.perf_counter()
    logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
    procs = []
    for path in logs:
        with path.open("w") as f:
            argv = [*cmd, "--trials", str(PER_WORKER), "--set", *QUICK]
            procs.append(subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=f, stderr=subprocess.STDOUT))
    for p in procs:
        p.wait(timeout=400)
    wall = time.perf_counter() - t0
    for p, path in zip(procs, logs, strict=True):
        assert p.returncode == 0, path.read_text()[-3000:]
        assert "study dist:" in path.read_text()
    retried = [line for path in logs for line in path.read_text().splitlines() if "retrying" in line]
    n = WORKERS * PER_WORKER

    study = optuna.load_study(study_name="dist", storage=optuna_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(n))  # every trial once, no gap
    assert all(t.state.is_finished() for t in trials)
    assert {t.state.name for t in trials} <= set(STATE)
    base = load(OutcomeConfig, "churn", ["dataset=syn", *QUICK])
    default = default_params(
        base.model_dump(mode="json"), SweepConfig.model_validate(yaml.safe_load(space.read_text())).space
    )
    assert trials[0].params == default  # trial 0 = the base config, enqueued once
    assert sum(t.params == default for t in trials) == 1
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n  # the workers drew different points
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == WORKERS
    assert all(sum(t.user_attrs["worker"] == w for t in trials) == PER_WORKER for w in workers)

    c = MlflowClient(mlflow_url)
    exp = c.get_experiment_by_name("churn")
    assert exp.artifact_location.startswith(home.as_uri())  # artifacts under TAILOR_HOME, not the cwd
    runs = c.search_runs([exp.experiment_id], "tags.`sweep.study` = 'dist'", max_results=1000)
    parents = [r for r in runs if r.data.tags.get("job") == "sweep"]
    assert len(parents) == 1, [r.info.run_id for r in parents]
    parent = parents[0].info.run_id
    assert study.user_attrs["mlflow_parent_run_id"] == parent
    nested = {r.info.run_id: r for r in runs if "sweep.trial" in r.data.tags}
    assert len(nested) == n
    assert all(r.data.tags["mlflow.parentRunId"] == parent for r in nested.values())
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == set(nested)  # 1:1
    for t in trials:
        r = nested[t.user_attrs["mlflow_run_id"]]
        assert r.data.tags["sweep.trial"] == str(t.number)
        assert r.data.tags["sweep.state"] == STATE[t.state.name], (t.number, t.state)
        assert r.data.tags["sweep.worker"] == t.user_attrs["worker"]
        if t.state.name == "COMPLETE":
            assert r.data.metrics["val/auroc"] == pytest.approx(t.value)
    assert (home / "sweeps" / "dist" / "best.yaml").exists()
    states = {s: sum(t.state.name == s for t in trials) for s in STATE}
    print(f"\n{WORKERS} workers x {PER_WORKER} trials on PostgreSQL: {n} trials {states} in {wall:.1f} s wall")
    print("setup races retried:", *retried or ["none"], sep="\n  ")

    # 2. a worker killed in the middle of a trial leaves it RUNNING ...
    slow = [*QUICK, "net.max_epochs=500", "net.patience=500"]
    victim = subprocess.Popen([*cmd, "--trials", "1", "--set", *slow], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    lost = None
    deadline = time.monotonic() + 180
    while lost is None and time.monotonic() < deadline and victim.poll() is None:
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        lost = next((t for t in running if "mlflow_run_id" in t.user_attrs), None)
        time.sleep(0.3)
    assert lost is not None, "the third worker never started a trial"
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    time.sleep(11)  # past grace_period without a heartbeat

    # 3. ... the next worker fails it, marks its MLflow run failed, retries its params; --total-trials caps the study
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    total = n + 2  # the lost trial and its retry
    run_sweep("churn", "syn", None, storage=optuna_url, study_name="dist", overrides=QUICK, config=str(space),
              total_trials=total)  # fmt: skip
    trials = optuna.load_study(study_name="dist", storage=optuna_url).get_trials()
    assert len(trials) == total and all(t.state.is_finished() for t in trials)
    assert trials[lost.number].state == optuna.trial.TrialState.FAIL
    retry = trials[-1]
    assert retry.system_attrs.get("failed_trial") == lost.number and retry.params == lost.params
    lost_run = c.get_run(lost.user_attrs["mlflow_run_id"])
    assert lost_run.info.status == "FAILED" and lost_run.data.tags["sweep.state"] == "failed"
    assert retry.user_attrs["mlflow_run_id"] != lost.user_attrs["mlflow_run_id"]
    # the study is full: another worker runs nothing
    run_sweep("churn", "syn", None, storage=optuna_url, study_name="dist", overrides=QUICK, config=str(space),
              total_trials=total)  # fmt: skip
    assert len(optuna.load_study(study_name="dist", storage=optuna_url).trials) == total
    print(f"killed worker's trial {lost.number} failed after its grace period and retried as trial {retry.number}; "
          f"whole test {time.perf_counter() - t0:.1f} s after the server start")  # fmt: skip


def _open(url: str, space: str, barrier, out) -> None:
    import yaml

    from training.sweep import SweepConfig, make_storage, open_study

    cfg = SweepConfig.model_validate(yaml.safe_load(Path(space).read_text()))
    barrier.wait()
    try:
        study, created = open_study(make_storage(url, cfg), "together", cfg)
        out.put((created, study.study_name))
    except Exception as exc:
        out.put(("error", repr(exc)))


def test_workers_starting_together_on_an_empty_database_create_one_study(pg, tmp_path: Path) -> None:
    """Optuna creates its tables on first connect: several workers at once race on that and on the study name."""
    import multiprocessing as mp

    import training.sweep  # noqa: F401  (imported once, before the fork)

    url = pg("optuna_race")
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(url, str(_space(tmp_path)), barrier, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(r[0] for r in results if r[0] != "error") == [False, False, False, True], results
