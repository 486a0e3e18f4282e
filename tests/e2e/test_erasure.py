"""Erasure end to end: a member erased over HTTP leaves the prepared data and everything trained or scored after.

The real service (`bentoml serve`, as `tailor serve` runs it) serves a persona model trained on a prepared synthetic
dataset. A member with purchases, exposures and quarantined rows is erased with `/erase` (the service writes the
tombstone). A churn model trained and scored right after, before any prepare, must leave the member out (the
dataset's reads drop tombstoned members). Then, as an operator would: `tailor prepare --append` of the batch already
loaded (answers `already_loaded`, and must still erase), `tailor prepare --append` of a new batch holding more of the
member's events, `tailor train churn` and `tailor score churn` again. Every file written after the erasure, and
every file of the prepared dataset and the scores, is searched for the member's pseudonym (Parquet decoded, other
files as bytes): none may hold it. What may hold it is named: the tombstone itself and the audit record of the
erasure, and the outputs made before the erasure (the persona model's artifacts and the indices: serving leaves the
member out of those at once, a rebuild drops them).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests

from tailor.serve import free_port, serve_command, stop, wait_ready
from tests.integration.synthetic_home import prepare_synthetic

DATASET = "syn"
PERSONA = ["train.epochs=1", "data.n_cutoffs=2", "data.stride_days=10", "model.dim=16", "train.batch_size=128"]
CHURN = ["horizons.churn=60", "n_train_cutoffs=2", "net.max_epochs=3", "net.patience=2"]
CHURN += ["lightgbm.num_leaves=[7]", "lightgbm.min_child_samples=[20]"]


def holds(path: Path, needle: str) -> bool:
    """Whether a file holds `needle`: Parquet decoded (its pages are compressed), anything else as raw bytes."""
    if path.suffix == ".parquet":
        return needle in pq.read_table(path).to_pandas().astype(str).to_csv()
    return needle.encode() in path.read_bytes()


def inventory(home: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(home)): (p.stat().st_mtime_ns, p.stat().st_size) for p in home.rglob("*") if p.is_file()}


def _pick_member(home: Path) -> tuple[str, str]:
    """(raw id, pseudonym) of a member with purchases, exposures and (when there is one) a quarantined event row."""
    from datasets.pseudonym import load_key, pseudonymize_one
    from datasets.store import Dataset

    ds = Dataset(DATASET)
    side = ds.quarantine("events")
    events = ds.table("events")
    buyers = set(events.loc[events["event_type"] == "purchase", "member_id"])
    candidates = set(ds.table("exposures")["member_id"]) & buyers
    richer = candidates & set(side.get("member_id", pd.Series(dtype=str)).dropna().astype(str))
    ns, key = ds.manifest["id_namespace"], load_key()
    raw_ids = pd.read_parquet(home / "raw" / "members.parquet")["member_id"].astype(str)
    for raw in raw_ids:
        p = pseudonymize_one(raw, key, ns)
        if p in (richer or candidates):
            return raw, p
    raise AssertionError("no member with events and exposures in the synthetic data")


def _new_batch(home: Path, raw_member: str, other: str) -> Path:
    """A second batch (canonical events): two purchases of the erased member, one of another member."""
    from datasets.store import Dataset

    ds = Dataset(DATASET)
    item = str(ds.table("items")["item_id"].iloc[0])
    ts = pd.Timestamp(ds.manifest["ts_max"]) - pd.Timedelta(days=3)
    rows = [(raw_member, ts), (raw_member, ts + pd.Timedelta(hours=1)), (other, ts)]
    folder = home / "raw_day2"
    folder.mkdir()
    events = pd.DataFrame({"member_id": [m for m, _ in rows], "ts": [t.isoformat() for _, t in rows]})
    events = events.assign(event_type="purchase", item_id=item, quantity=1, amount=9.5)
    events.to_csv(folder / "events.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def erased(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Serve, erase one member over HTTP, stop; returns the home, the member and what existed before the erasure."""
    home = tmp_path_factory.mktemp("erasure_home")
    env = {"TAILOR_HOME": str(home), "TAILOR_PSEUDONYM_KEY": "k", "TAILOR_DATASET": DATASET}
    env |= {"BENTOML_HOME": str(home / "bentoml"), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        from datasets.features import run_features
        from serving.auth import create_key
        from tailor.cli import main
        from tailor.index import build_indices
        from training.registry import promote

        prepare_synthetic(home, 400, overrides=["catalog.items_per_category=20"], dataset=DATASET)
        run_features(DATASET)
        assert main(["train", "persona", "--dataset", DATASET, "--set", *PERSONA]) == 0
        promote("persona", force=True, reason="test")
        build_indices(dataset=DATASET)
        keys = {"admin": create_key("ops", ["admin"]), "read": create_key("platform-read", ["read"])}
        raw, pseudonym = _pick_member(home)
    before = inventory(home)
    held_before = {f for f in before if holds(home / f, pseudonym)}
    port, log = free_port(), home / "server.log"
    repo = Path(__file__).resolve().parents[2]
    with open(log, "wb") as out:  # the real `bentoml serve`, as `tailor serve` runs it
        cmd, full_env = serve_command(port), {**os.environ, **env}
        proc = subprocess.Popen(cmd, cwd=repo, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def post(path: str, key: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {keys[key]}", "Content-Type": "application/json"}
        return requests.post(url + path, json.dumps({"member_id": raw}), headers=headers, timeout=60)

    try:
        wait_ready(proc, url, log, timeout_s=120)
        assert post("/persona", "read").json()["cold_start"] is False  # served from the trained model
        r = post("/erase", "admin")
        assert r.status_code == 200, r.text
        assert r.json()["member"] == pseudonym
        assert post("/persona", "read").json()["cold_start"] is True
    finally:
        stop(proc)
    return {"home": home, "env": env, "raw": raw, "pseudonym": pseudonym, "before": before, "held_before": held_before}


def test_erased_member_leaves_prepared_data_models_and_scores(erased, monkeypatch, capsys) -> None:
    home, gone, raw = erased["home"], erased["pseudonym"], erased["raw"]
    for k, v in erased["env"].items():
        monkeypatch.setenv(k, v)
    from datasets.erasure import erased_members
    from datasets.store import Dataset
    from tailor.cli import main

    assert erased_members(home) == {gone}  # the service's tombstone
    data = home / "data" / DATASET
    in_data = {f.split("/", 2)[2] for f in erased["held_before"] if f.startswith(f"data/{DATASET}/")}
    assert {"members.parquet", "exposures.parquet", "quarantine/events.parquet"} <= in_data, in_data
    assert any(f.startswith("events/part-") for f in in_data) and any(f.startswith("features/") for f in in_data)

    # a job run before any prepare: the dataset's reads leave the member out (logged), so models and scores do
    assert main(["train", "churn", "--dataset", DATASET, "--set", *CHURN]) == 0
    assert main(["score", "churn", "--dataset", DATASET, "--version", "1"]) == 0
    scores = pd.read_parquet(home / "scores" / "churn" / f"{DATASET}.parquet")
    assert len(scores) > 100 and gone not in set(scores["member_id"].astype(str))
    logged = capsys.readouterr().err  # the command's log (it replaces the root logger's handlers)
    assert f"{DATASET}/members: left out 1 rows of erased members" in logged, logged[-3000:]
    assert any(holds(p, gone) for p in data.rglob("*.parquet"))  # still in the files: nothing rewrote them yet

    # the same batch again: already loaded, and erased all the same
    assert main(["prepare", "canonical", "--path", str(home / "raw"), "--dataset", DATASET, "--append"]) == 0
    out = capsys.readouterr().out
    assert "already loaded" in out and "removed" in out, out
    assert [str(p.relative_to(data)) for p in data.rglob("*") if p.is_file() and holds(p, gone)] == []

    # a new batch with more of the member's events: counted as erased, never written
    other = next(m for m in pd.read_parquet(home / "raw" / "members.parquet")["member_id"].astype(str) if m != raw)
    batch = _new_batch(home, raw, other)
    assert main(["prepare", "canonical", "--path", str(batch), "--dataset", DATASET, "--append"]) == 0
    report = Dataset(DATASET).report()
    assert report["tables"]["events"]["quarantined"].get("erased") == 2
    assert report["tables"]["events"]["kept"] == 1

    # train and score after the erasure
    assert main(["train", "churn", "--dataset", DATASET, "--set", *CHURN]) == 0
    assert main(["score", "churn", "--dataset", DATASET, "--version", "2"]) == 0
    scores = pd.read_parquet(home / "scores" / "churn" / f"{DATASET}.parquet")
    assert len(scores) > 100 and gone not in set(scores["member_id"].astype(str))

    # search every output: the prepared data and scores whole, and every file written or changed since the erasure
    after = inventory(home)
    changed = {f for f, stamp in after.items() if erased["before"].get(f) != stamp}
    searched = changed | {f for f in after if f.startswith(("data/", "scores/"))}
    allowed = ("serving/events.db", "serving/audit.db", "server.log")  # the tombstone, the erasure's audit record
    leaks = sorted(f for f in searched if not f.startswith(allowed) and holds(home / f, gone))
    assert not leaks, f"the erased member is still in {leaks}"
    new_artifacts = [f for f in changed if f.startswith("mlartifacts/")]
    assert any(f.endswith(".parquet") or "model" in f for f in new_artifacts), new_artifacts[:10]  # churn was logged
    assert any(f.startswith("data/") for f in searched) and any(f.startswith("scores/") for f in searched)
    still = sorted(f for f in after if f not in searched and holds(home / f, gone))
    assert set(still) <= erased["held_before"], still  # only outputs made before the erasure
    print(f"\nsearched {len(searched)} files after the erasure: none holds {gone}; made before it and kept: {still}")
