"""Kaggle "E Commerce Dataset" (A. Verma): one snapshot row per customer -> members with a churn label.

Category labels are unified ("Phone"/"Mobile" -> "Mobile Phone", "CC" -> "Credit Card",
"COD" -> "Cash on Delivery"); missing values stay missing. Gender and MaritalStatus are
personal attributes the project has no use for: they are not carried into members. There is
no date, no event log and no item table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from datasets import quarantine as q
from datasets.errors import check_rows
from datasets.settings import PrepareConfig
from datasets.sources.base import RawTables, numeric, read_csv

NUMERIC = {  # raw column -> member attribute
    "Tenure": "attr_tenure_months",
    "WarehouseToHome": "attr_warehouse_to_home",
    "HourSpendOnApp": "attr_hours_on_app",
    "NumberOfDeviceRegistered": "attr_devices_registered",
    "SatisfactionScore": "attr_satisfaction_score",
    "NumberOfAddress": "attr_addresses_on_file",
    "Complain": "attr_complained",
    "OrderAmountHikeFromlastYear": "attr_order_amount_hike_pct",
    "CouponUsed": "attr_coupons_used",
    "OrderCount": "attr_order_count",
    "DaySinceLastOrder": "attr_days_since_last_order",
    "CashbackAmount": "attr_cashback_amount",
}
CATEGORICAL = {
    "PreferredLoginDevice": ("attr_preferred_login_device", {"Phone": "Mobile Phone"}),
    "PreferredPaymentMode": ("attr_preferred_payment_mode", {"CC": "Credit Card", "COD": "Cash on Delivery"}),
    "PreferedOrderCat": ("attr_preferred_order_cat", {"Mobile": "Mobile Phone"}),
}
NOT_CARRIED = ("Gender", "MaritalStatus")
COLUMNS = ["CustomerID", "Churn", "CityTier", *NUMERIC, *CATEGORICAL]


def read(path: Path, cfg: PrepareConfig) -> RawTables:
    """Map ecommerce_churn.csv to members (label_churn + attr_*)."""
    df = read_csv(path, COLUMNS)
    name = path.name
    churn = numeric(df, "Churn", name)
    bad = churn.isna() | ~churn.isin([0.0, 1.0])
    check_rows(bad, "expects 0 or 1", file=name, column="Churn", values=df["Churn"])
    tier = numeric(df, "CityTier", name)
    members = pd.DataFrame(
        {
            "member_id": df["CustomerID"].str.strip().str.replace(r"\.0$", "", regex=True),
            "joined_at": pd.NaT,
            "tier": None,
            "points_balance": np.nan,
            "region": ("city_tier_" + tier.astype("Int64").astype("string")).astype(object),
            "age_band": None,
            "label_churn": churn,
        }
    )
    for raw, attr in NUMERIC.items():
        members[attr] = numeric(df, raw, name)
    for raw, (attr, fix) in CATEGORICAL.items():
        members[attr] = df[raw].str.strip().replace(fix)
    members[q.SOURCE_FILE] = df[q.SOURCE_FILE]
    members[q.SOURCE_ROW] = df[q.SOURCE_ROW]
    return RawTables(
        source="ecommerce_churn",
        events=lambda: iter(()),
        members=members,
        paths=[path],
        files={name: len(df)},
        id_namespace="ecommerce_churn",
    )
