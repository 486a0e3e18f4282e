"""Canonical schema checks: timestamps, types, enums, and errors that name the culprit."""

from __future__ import annotations

import pandas as pd
import pytest

from datasets.errors import DataValidationError
from datasets.schema import conform, empty, to_utc


def test_offsets_across_dst_and_naive_values_parse_to_utc():
    got = to_utc(pd.Series(["2024-03-01T10:00:00+01:00", "2024-07-01T10:00:00+02:00", "2024-07-01 10:00:00", None]))
    assert got.tolist()[:3] == [
        pd.Timestamp("2024-03-01 09:00", tz="UTC"),
        pd.Timestamp("2024-07-01 08:00", tz="UTC"),
        pd.Timestamp("2024-07-01 10:00", tz="UTC"),
    ]
    assert pd.isna(got.iloc[3])


def test_local_clock_is_converted_including_the_dst_fold():
    got = to_utc(pd.Series(["2011-07-01 12:00:00", "2011-10-30 01:30:00"]), tz="Europe/London")
    assert got.tolist() == [pd.Timestamp("2011-07-01 11:00", tz="UTC"), pd.Timestamp("2011-10-30 01:30", tz="UTC")]


def test_unparseable_timestamp_names_column_and_rows():
    with pytest.raises(DataValidationError) as err:
        to_utc(pd.Series(["2024-01-01", "yesterday", "2024-01-02", "soon"]), table="events", column="ts", file="f.csv")
    assert err.value.rows == [1, 3] and "f.csv" in str(err.value) and "'ts'" in str(err.value)


def test_conform_rejects_unknown_event_type_and_missing_columns():
    frame = pd.DataFrame(
        {
            "member_id": ["a"],
            "ts": ["2024-01-01"],
            "event_type": ["teleport"],
            "item_id": ["i"],
            "quantity": [1],
            "amount": [1.0],
            "channel": ["web"],
            "session_id": [None],
            "query": [None],
        }
    )
    with pytest.raises(DataValidationError, match="event_type"):
        conform("events", frame, file="e.csv")
    with pytest.raises(DataValidationError, match="missing required column"):
        conform("events", frame.drop(columns=["ts"]), file="e.csv")


def test_empty_tables_have_the_canonical_columns():
    assert list(empty("offers").columns)[:3] == ["offer_id", "kind", "scope"]
    assert len(empty("events")) == 0
