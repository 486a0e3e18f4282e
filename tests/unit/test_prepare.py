"""The prepare pipeline: conservation of rows, determinism, idempotent atomic appends, privacy."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.errors import DataValidationError
from datasets.prepare import prepare
from datasets.store import Dataset
from tests.retail import row, write_retail

DIRTY = {
    "cancellation": row(InvoiceNo="C536379", Quantity="-1"),
    "missing_member_id": row(CustomerID=""),
    "non_product_code": row(StockCode="POST"),
    "non_positive_price": row(UnitPrice="0"),
    "non_positive_quantity": row(Quantity="-3"),
    "ts_out_of_range": row(InvoiceDate="1980-01-01 10:00:00"),
}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_dirty_kind_is_quarantined_with_its_reason(tailor_home, prepare_cfg, tmp_path):
    rows = [row(CustomerID=str(12000 + i), StockCode=f"2{i:04d}") for i in range(5)]
    rows += [*DIRTY.values(), rows[0]]  # the last one is an exact duplicate
    report = prepare("online_retail", write_retail(tmp_path / "r.csv.gz", rows), prepare_cfg, dataset="t")
    ev = report["tables"]["events"]
    assert ev["rows_in"] == len(rows) == ev["kept"] + sum(ev["quarantined"].values())
    assert ev["kept"] == 5
    assert ev["quarantined"] == {**{k: 1 for k in DIRTY}, "duplicate": 1}
    side = Dataset("t").quarantine("events")
    assert sorted(side["reason"]) == sorted([*DIRTY, "duplicate"])
    assert side["source_row"].notna().all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["clean", *DIRTY, "dup"]), min_size=1, max_size=40))
def test_quarantine_conserves_rows(tailor_home, prepare_cfg, tmp_path, kinds):
    """Every row read is in the kept table or in the quarantine file with its reason: counted in the files."""
    rows: list[list[str]] = []
    reasons: list[str | None] = []  # what each row must become, worked out here (None: kept)
    for i, kind in enumerate(kinds):
        if kind == "dup" and rows:
            rows.append(rows[-1])  # a copy of a dirty row keeps that row's reason; of a clean row, it is a duplicate
            reasons.append(reasons[-1] if reasons[-1] not in (None, "duplicate") else "duplicate")
        elif kind in DIRTY:
            rows.append(DIRTY[kind])
            reasons.append(kind)
        else:
            rows.append(row(CustomerID=str(13000 + i % 7), StockCode=f"3{i:04d}"))
            reasons.append(None)
    report = prepare("online_retail", write_retail(tmp_path / "p.csv.gz", rows), prepare_cfg, dataset="p")
    ds = Dataset("p")
    kept, side = ds.table("events"), ds.quarantine("events").reindex(columns=["reason", "source_row"])
    expected = Counter(r for r in reasons if r is not None)
    assert len(kept) == reasons.count(None)
    assert Counter(side["reason"]) == expected
    assert sorted(side["source_row"]) == [i for i, r in enumerate(reasons) if r is not None]
    assert len(kept) + len(side) == len(rows)  # written rows, not the report's arithmetic
    ev = report["tables"]["events"]
    assert ev["rows_in"] == len(rows) and ev["kept"] == len(kept) and ev["quarantined"] == dict(expected)
    assert not kept.duplicated().any()
    assert (kept["amount"] > 0).all() and kept["member_id"].notna().all()


def test_rerun_is_byte_identical(tailor_home, prepare_cfg, tmp_path):
    rows = [row(CustomerID=str(12000 + i), StockCode=f"2{i:04d}") for i in range(30)] + list(DIRTY.values())
    path = write_retail(tmp_path / "r.csv.gz", rows)
    prepare("online_retail", path, prepare_cfg, dataset="d")
    first = snapshot(tailor_home / "data" / "d")
    prepare("online_retail", path, prepare_cfg, dataset="d")
    assert snapshot(tailor_home / "data" / "d") == first


def test_append_is_idempotent_and_dedupes_against_stored_rows(tailor_home, prepare_cfg, tmp_path):
    day1 = [row(CustomerID=str(12000 + i), StockCode=f"2{i:04d}") for i in range(10)]
    day2 = [*day1[-3:], row(CustomerID="12999", InvoiceDate="2011-01-06 09:00:00", StockCode="22222")]
    prepare("online_retail", write_retail(tmp_path / "d1.csv.gz", day1), prepare_cfg, dataset="a")
    rep = prepare("online_retail", write_retail(tmp_path / "d2.csv.gz", day2), prepare_cfg, dataset="a", append=True)
    assert rep["tables"]["events"]["kept"] == 1
    assert rep["tables"]["events"]["quarantined"] == {"duplicate": 3}
    ds = Dataset("a")
    assert len(ds.table("events")) == 11 and len(ds.manifest["batches"]) == 2
    assert len(ds.table("members")) == 11
    before = snapshot(ds.path)
    again = prepare("online_retail", tmp_path / "d2.csv.gz", prepare_cfg, dataset="a", append=True)
    assert again["status"] == "already_loaded"
    assert snapshot(ds.path) == before


def test_failed_batch_leaves_dataset_untouched(tailor_home, prepare_cfg, tmp_path):
    prepare("online_retail", write_retail(tmp_path / "ok.csv.gz", [row()]), prepare_cfg, dataset="f")
    before = snapshot(tailor_home / "data" / "f")
    bad = write_retail(tmp_path / "bad.csv.gz", [row(CustomerID="12001"), row(InvoiceDate="not a date")])
    with pytest.raises(DataValidationError) as err:
        prepare("online_retail", bad, prepare_cfg, dataset="f", append=True)
    msg = str(err.value)
    assert "bad.csv.gz" in msg and "InvoiceDate" in msg and "row 1" in msg and "not a date" in msg
    assert snapshot(tailor_home / "data" / "f") == before
    assert [p.name for p in (tailor_home / "data").iterdir()] == ["f"]  # no staging left behind


@pytest.mark.parametrize(
    ("change", "column"),
    [
        ({"Quantity": "six"}, "Quantity"),
        ({"UnitPrice": "2,55x"}, "UnitPrice"),
        ({"InvoiceDate": "31/31/2011"}, "InvoiceDate"),
    ],
)
def test_bad_values_name_file_column_and_row(tailor_home, prepare_cfg, tmp_path, change, column):
    path = write_retail(tmp_path / "x.csv.gz", [row(), row(**change)])
    with pytest.raises(DataValidationError) as err:
        prepare("online_retail", path, prepare_cfg, dataset="x")
    assert "x.csv.gz" in str(err.value) and f"'{column}'" in str(err.value) and "row 1" in str(err.value)
    assert not (tailor_home / "data" / "x").exists()


def test_raw_ids_never_reach_outputs(tailor_home, prepare_cfg, tmp_path):
    ids = [str(17000 + i) for i in range(20)]
    rows = [row(CustomerID=i, StockCode=f"2{n:04d}") for n, i in enumerate(ids)] + [DIRTY["non_product_code"]]
    prepare("online_retail", write_retail(tmp_path / "r.csv.gz", rows), prepare_cfg, dataset="priv")
    ds = Dataset("priv")
    frames = [ds.table(t) for t in ("members", "events")] + [ds.quarantine("events")]
    text = "\n".join(f.astype(str).to_csv() for f in frames)
    assert not any(i in text for i in ids)
    assert set(ds.table("members")["member_id"].str.slice(0, 2)) == {"m_"}


def test_key_file_is_created_private_and_reused(tmp_path, monkeypatch):
    from datasets.pseudonym import load_key, pseudonymize

    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))
    monkeypatch.delenv("TAILOR_PSEUDONYM_KEY", raising=False)
    key = load_key()
    keyfile = tmp_path / "secrets" / "pseudonym.key"
    assert keyfile.stat().st_mode & 0o777 == 0o600
    assert load_key() == key
    a = pseudonymize(pd.Series(["1", "2", None]), key)
    monkeypatch.setenv("TAILOR_PSEUDONYM_KEY", "other")
    b = pseudonymize(pd.Series(["1", "2", None]), load_key())
    assert a.iloc[0] != b.iloc[0] and pd.isna(a.iloc[2])


def test_erased_members_leave_every_table_and_the_quarantine(tailor_home, prepare_cfg, tmp_path):
    """After an erasure (a tombstone in the serving store), prepare drops the member's rows and keeps none of them."""
    import sqlite3

    from datasets.erasure import store_path
    from datasets.pseudonym import load_key, pseudonymize_one

    day1 = [row(CustomerID=str(12000 + i), StockCode=f"2{i:04d}") for i in range(5)]
    day1.append(row(CustomerID="12001", Quantity="-1", StockCode="29999"))  # a quarantined row of the same member
    prepare("online_retail", write_retail(tmp_path / "d1.csv.gz", day1), prepare_cfg, dataset="e")
    gone = pseudonymize_one("12001", load_key(), Dataset("e").manifest["id_namespace"])
    assert gone in set(Dataset("e").table("events")["member_id"])
    path = store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE tombstones (member_id TEXT PRIMARY KEY, erased_at TEXT NOT NULL)")
        con.execute("INSERT INTO tombstones VALUES (?, '2026-01-01T00:00:00Z')", (gone,))
    day2 = [row(CustomerID="12001", InvoiceDate="2011-01-07 10:00:00", StockCode="23333"), row(CustomerID="12777")]
    rep = prepare("online_retail", write_retail(tmp_path / "d2.csv.gz", day2), prepare_cfg, dataset="e", append=True)
    assert rep["tables"]["events"]["quarantined"].get("erased") == 1  # the new row is counted, not kept
    ds = Dataset("e")
    for table in ("events", "members"):
        assert gone not in set(ds.table(table)["member_id"].astype(str))
    q = ds.quarantine("events")
    assert gone not in set(q.get("member_id", pd.Series(dtype=str)).astype(str))
    assert len(ds.table("members")) == 5  # 12000, 12002-12004 and the new 12777
    fresh = prepare("online_retail", tmp_path / "d1.csv.gz", prepare_cfg, dataset="e2")  # a rebuild honours it too
    assert fresh["tables"]["events"]["quarantined"].get("erased") == 2
    assert gone not in set(Dataset("e2").table("events")["member_id"])
