"""The canonical source: a platform's own data in the canonical schema (CSV or Parquet folders)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from datasets.errors import DataValidationError
from datasets.prepare import prepare
from datasets.sources import canonical
from datasets.store import Dataset
from tests.conftest import FIXTURES

EXAMPLE = FIXTURES / "canonical"


def copy_example(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    shutil.copytree(EXAMPLE, folder)
    return folder


def edit_events(folder: Path, row: int, column: str, value: str) -> None:
    df = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False)
    df.loc[row, column] = value
    df.to_csv(folder / "events.csv", index=False)


def test_example_prepares_with_lists_tiers_and_one_quarantined_guest(tailor_home, prepare_cfg):
    report = prepare("canonical", EXAMPLE, prepare_cfg, dataset="example")
    ev = report["tables"]["events"]
    assert ev == {"rows_in": 29, "kept": 28, "quarantined": {"missing_member_id": 1}}
    ds = Dataset("example")
    assert ds.manifest["has_tiers"] and ds.manifest["timezone"] == "UTC"
    members = ds.table("members")
    assert len(members) == 10 and members["member_id"].str.startswith("m_").all()
    assert sorted(members["tier"].unique()) == ["base", "gold", "platinum", "silver"]  # the source's own tiers
    assert members["attr_newsletter"].notna().all()
    offers = ds.table("offers").set_index("offer_id")
    assert list(offers.loc["OF2", "scope"]) == ["electronics", "home"]
    assert list(offers.loc["OF3", "eligible_segments"]) == ["loyal", "vip"]
    events = ds.table("events")
    first = events.loc[events["query"] == "running shoes", "ts"].iloc[0]
    assert first == pd.Timestamp("2025-03-01 08:15:00", tz="UTC")  # the +01:00 offset is honoured
    side = ds.quarantine("events")
    assert side["source_file"].tolist() == ["events.csv"] and side["source_row"].tolist() == [28]


def test_parquet_parts_stream_in_chunks_with_rows_numbered_per_file(tailor_home, prepare_cfg, tmp_path):
    folder = copy_example(tmp_path)
    events = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False, na_values=[""])
    (folder / "events.csv").unlink()
    (folder / "events").mkdir()
    events.iloc[:20].to_csv(folder / "events" / "a.csv.gz", index=False)
    typed = events.iloc[20:].assign(
        ts=pd.to_datetime(events["ts"].iloc[20:], utc=True), amount=lambda d: d.amount.astype(float)
    )
    typed.to_parquet(folder / "events" / "b.parquet", index=False)
    raw = canonical.read(folder, prepare_cfg.model_copy(update={"chunk_rows": 3}))
    assert raw.events_rows_hint == 29
    chunks = list(raw.events())
    assert max(len(c) for c in chunks) == 3
    rows = pd.concat(chunks)
    assert rows.groupby("_source_file")["_source_row"].agg(list).to_dict() == {
        "events/a.csv.gz": list(range(20)),
        "events/b.parquet": list(range(9)),
    }
    cfg = prepare_cfg.model_copy(update={"chunk_rows": 4})
    assert prepare("canonical", folder, cfg, dataset="parts")["tables"]["events"]["kept"] == 28


@pytest.mark.parametrize(
    ("row", "column", "value", "expect"),
    [
        (3, "ts", "next tuesday", ["events.csv", "'ts'", "row 3", "next tuesday"]),
        (5, "event_type", "teleport", ["events.csv", "'event_type'", "row 5", "teleport"]),
        (7, "amount", "12,5O", ["events.csv", "'amount'", "row 7", "12,5O"]),
        (2, "quantity", "two", ["'quantity'", "row 2"]),
    ],
)
def test_bad_values_name_file_column_and_row(tailor_home, prepare_cfg, tmp_path, row, column, value, expect):
    folder = copy_example(tmp_path)
    edit_events(folder, row, column, value)
    with pytest.raises(DataValidationError) as err:
        prepare("canonical", folder, prepare_cfg, dataset="bad")
    for text in expect:
        assert text in str(err.value)
    assert not (tailor_home / "data" / "bad").exists()  # nothing written


def test_missing_required_column_is_named(prepare_cfg, tmp_path):
    folder = copy_example(tmp_path)
    pd.read_csv(folder / "events.csv", dtype=str).drop(columns=["event_type"]).to_csv(
        folder / "events.csv", index=False
    )
    with pytest.raises(DataValidationError, match=r"missing required column.*event_type.*events\.csv"):
        canonical.read(folder, prepare_cfg)


def test_missing_optional_column_is_filled_with_nulls(tailor_home, prepare_cfg, tmp_path):
    folder = copy_example(tmp_path)
    pd.read_csv(folder / "events.csv", dtype=str).drop(columns=["query", "discount"]).to_csv(
        folder / "events.csv", index=False
    )
    prepare("canonical", folder, prepare_cfg, dataset="noquery")
    assert Dataset("noquery").table("events")["query"].isna().all()


def test_empty_folder_and_folder_without_events_or_members_fail(prepare_cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="no events or members"):
        canonical.read(tmp_path / "empty", prepare_cfg)
    (tmp_path / "items_only").mkdir()
    shutil.copy(EXAMPLE / "items.csv", tmp_path / "items_only" / "items.csv")
    with pytest.raises(DataValidationError, match="no events or members"):
        canonical.read(tmp_path / "items_only", prepare_cfg)
    with pytest.raises(DataValidationError, match="folder"):
        canonical.read(EXAMPLE / "events.csv", prepare_cfg)


def test_table_given_twice_is_an_error(prepare_cfg, tmp_path):
    folder = copy_example(tmp_path)
    pd.read_csv(folder / "items.csv").to_parquet(folder / "items.parquet")
    with pytest.raises(DataValidationError, match="more than once"):
        canonical.read(folder, prepare_cfg)


def test_personal_columns_are_dropped_logged_and_never_stored(tailor_home, prepare_cfg, tmp_path, caplog):
    folder = copy_example(tmp_path)
    members = pd.read_csv(folder / "members.csv", dtype=str)
    members["email"] = [f"person{i}@example.com" for i in range(len(members))]
    members["attr_phone_number"] = "+44 7700 900123"
    members.to_csv(folder / "members.csv", index=False)
    events = pd.read_csv(folder / "events.csv", dtype=str)
    events["Customer Name"] = "Jane Doe"
    events.to_csv(folder / "events.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="datasets.sources.canonical"):
        prepare("canonical", folder, prepare_cfg, dataset="private")
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "email" in warned and "attr_phone_number" in warned and "customer_name" in warned
    out = tailor_home / "data" / "private"
    for path in out.rglob("*.parquet"):
        table = pq.read_table(path)
        assert not {"email", "attr_phone_number", "customer_name"} & set(table.column_names), path
        text = table.to_pandas().astype(str).to_csv()
        assert "example.com" not in text and "Jane Doe" not in text and "7700" not in text, path


def test_is_personal_matches_words_not_substrings():
    assert canonical.is_personal("email") and canonical.is_personal("Customer_E-mail")
    assert canonical.is_personal("home_address") and canonical.is_personal("zip")
    assert not canonical.is_personal("zipper_size") and not canonical.is_personal("region")
