"""Quarantine: dirty but recoverable rows go to a side table with their reason.

Rows are flagged, never dropped: for every table, rows in = rows kept + rows quarantined.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REASON = "_reason"  # working column that adapters and cleaning fill in
SOURCE_ROW = "_source_row"  # 0-based data row of the raw file, kept for tracing
SOURCE_FILE = "_source_file"
QTY_EVENTS = ("purchase", "return", "cart")  # event types whose quantity must be positive
# the field each event rule checks (the serving API names it in a rejection)
EVENT_RULE_FIELDS = {"ts_out_of_range": "ts", "non_positive_quantity": "quantity", "non_positive_price": "amount"}


def flag(frame: pd.DataFrame, mask: pd.Series | np.ndarray, reason: str) -> int:
    """Give `reason` to rows in `mask` that have no reason yet; returns how many."""
    if REASON not in frame.columns:
        frame[REASON] = pd.Series(pd.NA, index=frame.index, dtype="string")
    mask = np.asarray(mask, dtype=bool) & frame[REASON].isna().to_numpy()
    frame.loc[mask, REASON] = reason
    return int(mask.sum())


def flag_event_values(frame: pd.DataFrame, ts_min: pd.Timestamp, ts_max: pd.Timestamp) -> None:
    """The value rules events follow wherever they arrive (`tailor prepare`, the service's ingestion).

    Times outside [ts_min, ts_max] are `ts_out_of_range`; a purchase, return or cart with quantity <= 0 is
    `non_positive_quantity`; a purchase with amount <= 0 is `non_positive_price`. `ts` holds UTC timestamps.
    """
    ts, etype = frame["ts"], frame["event_type"]
    qty = pd.to_numeric(frame["quantity"], errors="coerce")
    amount = pd.to_numeric(frame["amount"], errors="coerce")
    flag(frame, (ts < ts_min) | (ts > ts_max), "ts_out_of_range")
    flag(frame, etype.isin(QTY_EVENTS) & (qty <= 0), "non_positive_quantity")
    flag(frame, (etype == "purchase") & (amount <= 0), "non_positive_price")


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept rows, quarantined rows); quarantined rows keep their reason."""
    if REASON not in frame.columns:
        return frame, frame.iloc[0:0].assign(**{REASON: pd.Series(dtype="string")})
    bad = frame[REASON].notna().to_numpy()
    return frame.loc[~bad].drop(columns=[REASON]), frame.loc[bad]


def to_side_table(table: str, quarantined: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Quarantined rows of one table in the side-table layout: table, reason, source, row, fields."""
    out = pd.DataFrame(
        {
            "table": table,
            "reason": quarantined[REASON].astype("string"),
            "source_file": quarantined.get(SOURCE_FILE, pd.Series("", index=quarantined.index)).astype("string"),
            "source_row": quarantined.get(SOURCE_ROW, pd.Series(-1, index=quarantined.index)).astype("int64"),
        }
    )
    for col in columns:
        if col in quarantined.columns:
            values = quarantined[col]
            out[col] = values.astype("string") if not pd.api.types.is_float_dtype(values.dtype) else values
    return out.reset_index(drop=True)


def counts(frame: pd.DataFrame) -> dict[str, int]:
    """Quarantined rows by reason, most frequent first."""
    if REASON not in frame.columns:
        return {}
    vc = frame[REASON].dropna().value_counts()
    return {str(k): int(v) for k, v in vc.items()}
