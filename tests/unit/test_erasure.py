"""Erasure reaches the prepared data: at prepare (a batch already loaded too), with `apply_erasure`, and on read.

Tombstones are written the way the service writes them (`serving.events.EventStore.erase`), never by hand.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from datasets import erasure
from datasets.prepare import prepare
from datasets.pseudonym import load_key, pseudonymize_one
from datasets.store import Dataset
from tests.retail import row, write_retail

GONE = "12001"


def _files_holding(folder: Path, needle: str) -> list[str]:
    """Every file under `folder` whose bytes contain `needle` (Parquet pages are compressed: read those)."""
    hits = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        if p.suffix == ".parquet":
            text = pq.read_table(p).to_pandas().astype(str).to_csv()
            if needle in text:
                hits.append(str(p.relative_to(folder)))
        elif needle.encode() in p.read_bytes():
            hits.append(str(p.relative_to(folder)))
    return hits


@pytest.fixture
def loaded(tailor_home, prepare_cfg, tmp_path) -> dict:
    """Dataset `e`: five members, one of them (12001) with a quarantined row and an exposure-free history."""
    day1 = [row(CustomerID=str(12000 + i), StockCode=f"2{i:04d}") for i in range(5)]
    day1.append(row(CustomerID=GONE, Quantity="-1", StockCode="29999"))  # quarantined: a cancellation
    path = write_retail(tmp_path / "d1.csv.gz", day1)
    prepare("online_retail", path, prepare_cfg, dataset="e")
    ds = Dataset("e")
    gone = pseudonymize_one(GONE, load_key(), ds.manifest["id_namespace"])
    assert _files_holding(ds.path, gone)  # in events, members and the quarantine
    return {"path": path, "gone": gone, "folder": ds.path}


def _erase(gone: str) -> None:
    """What the service's /erase does to the store: delete the member's live rows, write the tombstone."""
    from serving.events import EventStore

    store = EventStore()
    try:
        store.erase(gone)
    finally:
        store.close()


def test_prepare_of_a_batch_already_loaded_erases(loaded, prepare_cfg) -> None:
    _erase(loaded["gone"])
    before = Dataset("e").manifest
    out = prepare("online_retail", loaded["path"], prepare_cfg, dataset="e", append=True)
    assert out["status"] == "already_loaded" and out["erasure"]["status"] == "erased"
    removed = {"events/part-00000.parquet": 1, "members.parquet": 1, "quarantine/events.parquet": 1}
    assert out["erasure"]["rows"] == removed
    assert _files_holding(loaded["folder"], loaded["gone"]) == []
    ds = Dataset("e")
    assert len(ds.table("events")) == 4 and len(ds.table("members")) == 4
    assert ds.manifest["rows"]["events"] == 4 and ds.manifest["fingerprint"] != before["fingerprint"]
    assert ds.manifest["erasure"] == {"tombstones": 1, "digest": erasure.digest({loaded["gone"]})}
    assert ds.erased == frozenset()  # cleaned against every tombstone: reads skip the check
    again = prepare("online_retail", loaded["path"], prepare_cfg, dataset="e", append=True)
    assert "erasure" not in again  # nothing pending any more


def test_a_new_batch_erases_stored_rows_and_its_own(loaded, prepare_cfg, tmp_path) -> None:
    _erase(loaded["gone"])
    day2 = [row(CustomerID=GONE, InvoiceDate="2011-01-07 10:00:00", StockCode="23333"), row(CustomerID="12777")]
    rep = prepare("online_retail", write_retail(tmp_path / "d2.csv.gz", day2), prepare_cfg, dataset="e", append=True)
    assert rep["tables"]["events"]["quarantined"] == {"erased": 1}  # counted, never written
    assert _files_holding(loaded["folder"], loaded["gone"]) == []
    assert Dataset("e").manifest["erasure"]["tombstones"] == 1


def test_reads_leave_out_members_erased_since_the_last_prepare(loaded, caplog) -> None:
    _erase(loaded["gone"])
    ds = Dataset("e")
    assert ds.erased == {loaded["gone"]}
    assert _files_holding(loaded["folder"], loaded["gone"])  # still in the files ...
    with caplog.at_level(logging.WARNING, logger="datasets.store"):
        events = ds.table("events")
        members = ds.table("members", ["joined_at"])  # without member_id: filtered all the same
        side = ds.quarantine("events")
        parts = ds.event_parts()
    assert loaded["gone"] not in set(events["member_id"])  # ... but no reader sees them
    assert len(events) == 4 and list(members.columns) == ["joined_at"] and len(members) == 4
    assert loaded["gone"] not in set(side["member_id"].astype(str))
    raw = pd.concat(pd.read_parquet(p) for p in parts)  # what a job reading the part files directly gets
    assert loaded["gone"] not in set(raw["member_id"]) and len(raw) == 4
    assert all(loaded["folder"] not in p.parents for p in parts)  # a temporary copy of the part
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "e/events/part-00000.parquet: left out 1 rows of erased members" in logged
    assert "e/members: left out 1 rows" in logged and "e/quarantine/events: left out 1 rows" in logged


def test_apply_erasure_rewrites_every_file_atomically(loaded, monkeypatch) -> None:
    from datasets.features import run_features

    run_features("e")  # derived files under the dataset hold members too
    _erase(loaded["gone"])
    dry = erasure.apply_erasure("e", dry_run=True)
    features = next(k for k in dry["rows"] if k.startswith("features/"))
    assert dry["status"] == "dry_run"
    assert set(dry["rows"]) == {"events/part-00000.parquet", "members.parquet", "quarantine/events.parquet", features}
    assert _files_holding(loaded["folder"], loaded["gone"])  # a dry run changes nothing

    def broken(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as mp:  # a failure half-way leaves the dataset as it was
        before = {p: p.read_bytes() for p in loaded["folder"].rglob("*") if p.is_file()}
        mp.setattr(erasure, "write_without", broken)
        with pytest.raises(OSError, match="disk full"):
            erasure.apply_erasure("e")
        assert {p: p.read_bytes() for p in loaded["folder"].rglob("*") if p.is_file()} == before
        assert not list(loaded["folder"].parent.glob(".e.staging-*"))
    out = erasure.apply_erasure("e")
    assert out["status"] == "erased" and out["rows"] == dry["rows"]
    assert _files_holding(loaded["folder"], loaded["gone"]) == []
    assert len(pd.read_parquet(next(loaded["folder"].glob("features/*.parquet")))) == 4
    assert erasure.apply_erasure("e")["status"] == "nothing_to_erase"


def test_a_member_of_another_dataset_only_stamps_the_manifest(loaded) -> None:
    _erase("m_0000000000000000")
    out = erasure.apply_erasure("e")
    assert out["status"] == "nothing_to_erase" and out["rows"] == {}
    assert Dataset("e").manifest["erasure"]["tombstones"] == 1 and Dataset("e").erased == frozenset()
