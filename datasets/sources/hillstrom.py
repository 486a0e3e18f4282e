"""Hillstrom MineThatData e-mail challenge (2008): one randomised send -> members, offers, exposures.

Each customer (member_id "hs-<0-based data row>", matching `_source_row`) gets one exposure:
offer "hs_mens_email" or "hs_womens_email" (treated) or "hs_no_email" (the control arm,
treated=False). The control arm has no offers row: "no e-mail" is the absence of an offer and
must never be ranked or served as one. There is no calendar date (exposure ts is null) and
no event log; the zip_code typo "Surburban" is read as "Suburban".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from datasets import quarantine as q
from datasets.errors import check_rows
from datasets.settings import PrepareConfig
from datasets.sources.base import RawTables, numeric, read_csv

COLUMNS = [
    "recency",
    "history_segment",
    "history",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
    "treatment",
    "conversion",
    "visit",
    "spend",
]
ARMS = {"Mens E-Mail": "hs_mens_email", "Womens E-Mail": "hs_womens_email", "No E-Mail": "hs_no_email"}
CONTROL = "No E-Mail"


def read(path: Path, cfg: PrepareConfig) -> RawTables:
    """Map hillstrom.csv to members, the two e-mail offers and one exposure per customer."""
    df = read_csv(path, COLUMNS)
    name = path.name
    num = {
        c: numeric(df, c, name)
        for c in ("recency", "history", "mens", "womens", "newbie", "conversion", "visit", "spend")
    }
    flags = {c: _binary(df, num[c], c, name) for c in ("mens", "womens", "newbie", "conversion", "visit")}
    arm = df["treatment"].str.strip()
    _check_values(df, arm, "treatment", name)
    member = "hs-" + df[q.SOURCE_ROW].astype(str)
    trace = {q.SOURCE_FILE: df[q.SOURCE_FILE], q.SOURCE_ROW: df[q.SOURCE_ROW]}
    members = pd.DataFrame(
        {
            "member_id": member,
            "joined_at": pd.NaT,
            "tier": None,
            "points_balance": np.nan,
            "region": df["zip_code"].str.strip().replace({"Surburban": "Suburban"}),
            "age_band": None,
            "attr_recency_months": num["recency"],
            "attr_history_spend": num["history"],
            "attr_history_segment": df["history_segment"],
            "attr_mens": flags["mens"],
            "attr_womens": flags["womens"],
            "attr_newbie": flags["newbie"],
            "attr_channel": df["channel"],
            **trace,
        }
    )
    exposures = pd.DataFrame(
        {
            "member_id": member,
            "offer_id": arm.map(ARMS),
            "ts": pd.NaT,
            "treated": (arm != CONTROL).to_numpy(),
            "outcome": num["conversion"],
            "outcome_value": num["spend"],
            "randomized": True,
            "visit": num["visit"],
            **trace,
        }
    )
    offers = pd.DataFrame(
        {
            "offer_id": ["hs_mens_email", "hs_womens_email"],
            "kind": "email",
            "scope": None,
            "value": np.nan,
            "cost": np.nan,
            "eligible_tiers": None,
            "eligible_segments": None,
            "valid_from": pd.NaT,
            "valid_to": pd.NaT,
            "budget": np.nan,
            "title": ["Mens E-Mail", "Womens E-Mail"],
            q.SOURCE_FILE: name,
            q.SOURCE_ROW: -1,
        }
    )
    return RawTables(
        source="hillstrom",
        events=lambda: iter(()),
        members=members,
        offers=offers,
        exposures=exposures,
        paths=[path],
        files={name: len(df)},
        id_namespace="hillstrom",
    )


def _binary(df: pd.DataFrame, values: pd.Series, column: str, file: str) -> pd.Series:
    """A 0/1 column as booleans; anything else is an error naming the rows."""
    bad = ~values.isin([0.0, 1.0])
    check_rows(bad, "expects 0 or 1", file=file, column=column, values=df[column])
    return values == 1.0


def _check_values(df: pd.DataFrame, arm: pd.Series, column: str, file: str) -> None:
    """Every row must name one of the three arms."""
    bad = ~arm.isin(list(ARMS))
    check_rows(bad, f"expects one of {list(ARMS)}", file=file, column=column, values=df[column])
