"""UCI Online Retail (Chen et al. 2012): one CSV of invoice lines -> events, items, members.

Cancellation invoices (prefix C), non-product stock codes and guest rows (no CustomerID)
are quarantined with their reason; timestamps are UK local time, converted to UTC.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from datasets import quarantine as q
from datasets.schema import to_utc
from datasets.settings import PrepareConfig
from datasets.sources.base import RawTables, numeric, read_csv

COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
TIMEZONE = "Europe/London"


def read(path: Path, cfg: PrepareConfig) -> RawTables:
    """Map the Online Retail CSV (plain or gzipped) to canonical frames."""
    df = read_csv(path, COLUMNS)
    name = path.name
    qty = numeric(df, "Quantity", name)
    price = numeric(df, "UnitPrice", name)
    ts = to_utc(df["InvoiceDate"], table="events", column="InvoiceDate", file=name, tz=TIMEZONE)
    customer = df["CustomerID"].str.strip().str.replace(r"\.0$", "", regex=True)
    stock = df["StockCode"].str.strip()
    events = pd.DataFrame(
        {
            "member_id": customer,
            "ts": ts,
            "event_type": "purchase",
            "item_id": stock,
            "quantity": qty,
            "amount": (qty * price).round(2),
            "channel": "online",
            "session_id": df["InvoiceNo"].str.strip(),
            "query": None,
            q.SOURCE_FILE: df[q.SOURCE_FILE],
            q.SOURCE_ROW: df[q.SOURCE_ROW],
        }
    )
    q.flag(events, df["InvoiceNo"].str.upper().str.startswith("C").fillna(False), "cancellation")
    codes = {c.upper() for c in cfg.non_product_codes}
    q.flag(events, stock.str.upper().isin(codes).fillna(False), "non_product_code")
    q.flag(events, price <= 0, "non_positive_price")
    events.loc[events[q.REASON] == "cancellation", "event_type"] = "return"

    ok = events[q.REASON].isna()
    items = _items(df.loc[ok], price[ok])
    members = _members(df.loc[ok & customer.notna()], customer[ok & customer.notna()])
    return RawTables(
        source="online_retail",
        events=lambda: iter([events]),
        members=members,
        items=items,
        paths=[path],
        files={name: len(df)},
        timezone=TIMEZONE,
        events_rows_hint=len(df),
        id_namespace="online_retail",
    )


def _items(lines: pd.DataFrame, price: pd.Series) -> pd.DataFrame:
    """One row per stock code: the most common description and the median unit price."""
    g = pd.DataFrame({"item_id": lines["StockCode"].str.strip(), "title": lines["Description"], "price": price})
    title = g.dropna(subset=["title"]).groupby("item_id")["title"].agg(lambda s: s.value_counts().index[0])
    out = g.groupby("item_id").agg(price=("price", "median")).join(title)
    # The source has no category: the stock code's 3-digit family is the closest grouping.
    out["category"] = "family_" + out.index.str.slice(0, 3)
    out["subcategory"] = None
    out["brand"] = None
    return out.reset_index()


def _members(lines: pd.DataFrame, customer: pd.Series) -> pd.DataFrame:
    """One row per customer: region = the country of most of their lines; nothing personal."""
    region = (
        pd.DataFrame({"member_id": customer, "region": lines["Country"]})
        .groupby("member_id")["region"]
        .agg(lambda s: s.value_counts().index[0])
    )
    return pd.DataFrame(
        {
            "member_id": region.index,
            "joined_at": pd.NaT,
            "tier": None,
            "points_balance": None,
            "region": region.to_numpy(),
            "age_band": None,
        }
    )
