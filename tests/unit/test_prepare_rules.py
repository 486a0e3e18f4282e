"""`tailor prepare` rule by rule on small canonical folders (cases the mutation check found unchecked, issue 19).

Each cleaning rule at its edge (quantity on returns and carts, the time window's ends, blank ids), session ids
pseudonymized, what the report and the manifest say, members derived from events with their join date and
tiers, the small tables' quarantine, an append against stored rows, and the row accounting failing loudly.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import datasets.prepare as prep
from datasets.membership import derive_tiers
from datasets.prepare import prepare
from datasets.store import Dataset

EVENT_COLS = ["member_id", "ts", "event_type", "item_id", "quantity", "amount", "session_id"]


def write(folder: Path, **tables: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return folder


def ev(member: str, ts: str, kind: str = "purchase", item: str = "I1", qty="1", amount="10", session="") -> dict:
    return dict(zip(EVENT_COLS, [member, ts, kind, item, qty, amount, session], strict=True))


ITEMS = [{"item_id": f"I{i}", "category": "c", "price": "5"} for i in (1, 2, 3)]


def test_each_event_rule_at_its_edge(tailor_home, prepare_cfg, tmp_path) -> None:
    soon = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=12)).isoformat()  # max_future_days is 1
    late = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=3)).isoformat()
    rows = [
        ev("A", "2025-01-01T10:00:00Z", qty="1", amount="0.5"),  # one item, a small price: kept
        ev("A", "2025-01-02T10:00:00Z", "return", qty="0", amount=""),
        ev("A", "2025-01-03T10:00:00Z", "cart", qty="-1", amount=""),
        ev("A", "2025-01-04T10:00:00Z", "view", qty="0", amount=""),  # views carry no quantity rule
        ev("A", "", "view"),
        ev("A", "1990-01-01T00:00:00Z", "view"),  # exactly ts_min: kept
        ev("A", "1989-12-31T23:59:59Z", "view"),
        ev("A", soon, "view"),
        ev("A", late, "view"),
        ev("   ", "2025-01-05T10:00:00Z", "view"),  # blank after stripping
        ev("A", "2025-01-06T10:00:00Z", "purchase", qty="1", amount="0"),
    ]
    folder = write(tmp_path / "in", events=rows, items=ITEMS)
    report = prepare("canonical", folder, prepare_cfg, dataset="d")
    assert report["tables"]["events"] == {
        "rows_in": 11,
        "kept": 4,
        "quarantined": {
            "non_positive_quantity": 2,
            "missing_ts": 1,
            "ts_out_of_range": 2,
            "missing_member_id": 1,
            "non_positive_price": 1,
        },
    }
    ds = Dataset("d")
    kept = ds.table("events")
    assert sorted(kept["ts"].dt.year) == [1990, 2025, 2025, pd.Timestamp(soon).year]
    side = ds.quarantine("events")
    blank = side.loc[side["reason"] == "missing_member_id"]
    assert blank["member_id"].isna().all()  # no pseudonym made up for a blank id


def test_session_ids_are_pseudonymized_apart_from_member_ids(tailor_home, prepare_cfg, tmp_path) -> None:
    rows = [
        ev("A", "2025-01-01T10:00:00Z", "view", session="s1"),
        ev("A", "2025-01-01T10:01:00Z", "view", session="s1"),
        ev("B", "2025-01-01T10:02:00Z", "view", session="A"),  # a session id equal to a member id
        ev("B", "2025-01-01T10:03:00Z", "view", session=""),
    ]
    prepare("canonical", write(tmp_path / "in", events=rows, items=ITEMS), prepare_cfg, dataset="d")
    kept = Dataset("d").table("events").sort_values("ts")
    sessions = kept["session_id"].tolist()
    assert sessions[0] == sessions[1] and sessions[0] not in ("s1", None) and pd.isna(sessions[3])
    assert sessions[2] != "A" and sessions[2] != kept["member_id"].iloc[0]  # member A's pseudonym


def test_report_and_manifest_say_what_was_written(tailor_home, prepare_cfg, tmp_path) -> None:
    rows = [ev(m, f"2025-01-{d:02d}T10:00:00Z") for d, m in enumerate("ABCDEFGHIJ", start=1)]
    rows.append(ev("A", "", "view"))  # no time: quarantined, still a row in
    folder = write(tmp_path / "in", events=rows, items=ITEMS)
    cfg = prepare_cfg.model_copy(update={"rows_per_partition": 4})
    report = prepare("canonical", folder, cfg, dataset="d")
    ds = Dataset("d")
    m = ds.manifest
    assert report["dataset"] == m["dataset"] == "d" and report["source"] == m["source"] == "canonical"
    assert report["files"] == {"events.csv": 11, "items.csv": 3}
    assert m["batches"] == [{"id": report["batch"], "source": "canonical", "files": report["files"]}]
    assert json.loads((ds.path / "report.json").read_text()) == report
    assert m["n_partitions"] == 3  # ceil(11 rows in / 4)
    assert 1 < len(list((ds.path / "events").glob("part-*.parquet"))) <= 3
    assert pd.Timestamp(m["ts_min"]) == pd.Timestamp("2025-01-01T10:00:00Z")
    assert pd.Timestamp(m["ts_max"]) == pd.Timestamp("2025-01-10T10:00:00Z")
    assert m["rows"] == {"events": 10} and m["tier_rules"] == cfg.tiers.model_dump()
    again = prepare("canonical", folder, cfg, dataset="d", append=True)
    assert again == {"dataset": "d", "status": "already_loaded", "batch": report["batch"]}


def test_members_from_events_get_their_first_event_and_derived_tiers(tailor_home, prepare_cfg, tmp_path) -> None:
    members = [{"member_id": "A", "joined_at": "2020-05-01T00:00:00Z"}, {"member_id": "B", "joined_at": ""}]
    rows = [
        ev("B", "2025-02-01T10:00:00Z", amount="300"),
        ev("B", "2025-01-15T10:00:00Z", amount="300"),
        ev("C", "2025-03-01T10:00:00Z", "view"),
        ev("C", "2025-02-20T10:00:00Z", "view"),
        ev("A", "2025-03-02T10:00:00Z", amount="2500"),  # the very last event decides A's tier
    ]
    folder = write(tmp_path / "in", events=rows, members=members, items=ITEMS)
    report = prepare("canonical", folder, prepare_cfg, dataset="d")
    assert report["tables"]["members"]["derived_from_events"] == 1
    ds = Dataset("d")
    assert not ds.manifest["has_tiers"]
    got = ds.table("members").sort_values("joined_at").reset_index(drop=True)
    assert got["joined_at"].tolist() == [
        pd.Timestamp("2020-05-01T00:00:00Z"),  # A: its own date
        pd.Timestamp("2025-01-15T10:00:00Z"),  # B: blank, its first event
        pd.Timestamp("2025-02-20T10:00:00Z"),  # C: not in members.csv, its first event
    ]
    assert got["tier"].iloc[:2].tolist() == ["gold", "silver"] and pd.isna(got["tier"].iloc[2])  # C bought nothing
    assert got["points_balance"].tolist()[:2] == [2500.0, 600.0] and pd.isna(got["points_balance"].iloc[2])
    events = ds.table("events")
    as_of = events["ts"].max() + pd.Timedelta(microseconds=1)
    tiers = derive_tiers(events, prepare_cfg.tiers, as_of).set_index("member_id")["tier"]
    assert got.set_index("member_id")["tier"].dropna().to_dict() == tiers.to_dict()


def test_small_tables_quarantine_their_bad_rows(tailor_home, prepare_cfg, tmp_path) -> None:
    items = [
        {"item_id": "I1", "category": "c", "price": "5"},
        {"item_id": "I2", "category": "c", "price": "0"},
        {"item_id": "", "category": "c", "price": "5"},
        {"item_id": "I1", "category": "d", "price": "6"},
    ]
    members = [{"member_id": m, "region": "north"} for m in ("A", "  ", "A", "B")]
    exposures = [
        {"member_id": "A", "offer_id": "O1", "treated": "true", "ts": "2025-01-01T00:00:00Z"},
        {"member_id": "A", "offer_id": "O1", "treated": "true", "ts": "2025-01-01T00:00:00Z"},
        {"member_id": "B", "offer_id": "O1", "treated": "false", "ts": "2025-01-01T00:00:00Z"},
    ]
    folder = write(
        tmp_path / "in", events=[ev("A", "2025-01-01T10:00:00Z")], members=members, items=items, exposures=exposures
    )
    report = prepare("canonical", folder, prepare_cfg, dataset="d")
    t = report["tables"]
    assert t["items"] == {
        "rows_in": 4,
        "kept": 1,
        "quarantined": {"non_positive_price": 1, "missing_item_id": 1, "duplicate_item_id": 1},
    }
    assert t["members"]["kept"] == 2
    assert t["members"]["quarantined"] == {"missing_member_id": 1, "duplicate_member_id": 1}
    assert t["exposures"] == {"rows_in": 3, "kept": 2, "quarantined": {"duplicate": 1}}
    ds = Dataset("d")
    assert sorted(ds.quarantine("items")["reason"]) == ["duplicate_item_id", "missing_item_id", "non_positive_price"]
    assert sorted(ds.quarantine("members")["reason"]) == ["duplicate_member_id", "missing_member_id"]
    assert ds.quarantine("exposures")["reason"].tolist() == ["duplicate"]
    assert ds.table("items")["item_id"].tolist() == ["I1"] and ds.table("items")["category"].tolist() == ["c"]


def test_an_append_keeps_the_stored_quarantine_and_dedupes_against_stored_rows(
    tailor_home, prepare_cfg, tmp_path
) -> None:
    exposure = {"member_id": "A", "offer_id": "O1", "treated": "true", "ts": "2025-01-01T00:00:00Z"}
    first = write(
        tmp_path / "b1",
        events=[ev("A", "2025-01-01T10:00:00Z"), ev("A", "", "view")],
        items=ITEMS,
        exposures=[exposure, {**exposure, "member_id": "B", "treated": "false"}],
    )
    prepare("canonical", first, prepare_cfg, dataset="d")
    second = write(
        tmp_path / "b2",
        events=[ev("A", "2025-02-01T10:00:00Z"), ev("B", "2025-02-02T10:00:00Z")],
        items=ITEMS,
        exposures=[exposure, {**exposure, "offer_id": "O2"}],
    )
    report = prepare("canonical", second, prepare_cfg, dataset="d", append=True)
    assert report["tables"]["exposures"] == {"rows_in": 2, "kept": 1, "quarantined": {"duplicate": 1}}
    ds = Dataset("d")
    assert sorted(ds.quarantine("events")["reason"]) == ["missing_ts"]  # batch 1's, carried over
    assert ds.quarantine("exposures")["reason"].tolist() == ["duplicate"]
    exp = ds.table("exposures")
    assert len(exp) == 3 and sorted(exp["offer_id"]) == ["O1", "O1", "O2"]
    joined = ds.table("members").set_index("member_id")["joined_at"]
    assert sorted(joined) == [pd.Timestamp("2025-01-01T10:00:00Z"), pd.Timestamp("2025-02-02T10:00:00Z")]
    assert len(ds.table("events")) == 3 and len(ds.table("items")) == 3


def test_rows_counted_but_not_written_fail_the_run(tailor_home, prepare_cfg, tmp_path, monkeypatch) -> None:
    folder = write(tmp_path / "in", events=[ev("A", "2025-01-01T10:00:00Z"), ev("A", "", "view")], items=ITEMS)
    real = prep.write_parquet

    def drop_quarantine_rows(df: pd.DataFrame, path: Path, *args, **kwargs):
        return real(df.iloc[:0] if "quarantine" in str(path) else df, path, *args, **kwargs)

    monkeypatch.setattr(prep, "write_parquet", drop_quarantine_rows)
    with pytest.raises(AssertionError, match=r"events: quarantine counted \{'missing_ts': 1\} but written \{\}"):
        prepare("canonical", folder, prepare_cfg, dataset="d")
    assert not (tailor_home / "data" / "d").exists()  # nothing written


def test_row_accounting_checks_fail_loudly(tmp_path) -> None:
    prep._check_conservation({"tables": {"items": {"rows_in": 2, "kept": 1, "quarantined": {"x": 1}}}})
    with pytest.raises(AssertionError, match="row accounting broken for items"):
        prep._check_conservation({"tables": {"items": {"rows_in": 3, "kept": 1, "quarantined": {"x": 1}}}})
    stage = tmp_path / "stage"
    (stage / "quarantine").mkdir(parents=True)
    pd.DataFrame({"item_id": ["a", "b"]}).to_parquet(stage / "items.parquet")
    pd.DataFrame({"reason": ["x", "y", "y"]}).to_parquet(stage / "quarantine" / "items.parquet")
    ok = {"tables": {"items": {"rows_in": 5, "kept": 2, "quarantined": {"x": 1, "y": 2, "erased": 4}}}}
    prep._check_written(stage, ok, {}, {})
    carried = {"tables": {"items": {"rows_in": 2, "kept": 1, "quarantined": {"y": 1}}}}
    prep._check_written(stage, carried, {"items": 1}, {"items": Counter({"x": 1, "y": 1})})
    with pytest.raises(AssertionError, match="items: 3 rows counted as kept but 2 written"):
        prep._check_written(stage, {"tables": {"items": {**ok["tables"]["items"], "kept": 3}}}, {}, {})
    with pytest.raises(AssertionError, match=r"quarantine counted \{'x': 1, 'y': 1\} but written \{'x': 1, 'y': 2\}"):
        prep._check_written(stage, {"tables": {"items": {"kept": 2, "quarantined": {"x": 1, "y": 1}}}}, {}, {})


def test_a_member_listed_after_their_events_joined_at_the_first_event(tailor_home, prepare_cfg, tmp_path) -> None:
    prepare("canonical", write(tmp_path / "b1", events=[ev("B", "2025-01-01T10:00:00Z", "view")]), prepare_cfg, "d")
    later = write(
        tmp_path / "b2",
        events=[ev("A", "2025-02-01T10:00:00Z", "view")],
        members=[{"member_id": "B", "joined_at": "", "region": "north"}],  # listed now, no join date
    )
    prepare("canonical", later, prepare_cfg, dataset="d", append=True)
    members = Dataset("d").table("members").set_index("region")
    assert members.loc["north", "joined_at"] == pd.Timestamp("2025-01-01T10:00:00Z")
