"""The uplift frame of a prepared dataset: member features, the arm each member was randomized to, outcomes.

Only randomized exposures identify an incremental effect; a dataset without them (Complete Journey's
targeted coupons) is refused here with a clear error, and `propensity.py` models its response instead.
Hillstrom has three arms (mens, womens, no e-mail); any other dataset gets one arm per offer, its
control rows pooled into one control arm. arm_code comparison names the treated arms and the control arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from datasets.store import Dataset

CONTROL = "control"
HILLSTROM = {"hs_womens_email": "womens", "hs_mens_email": "mens", "hs_no_email": CONTROL}
OUTCOMES = ("visit", "conversion", "spend")
SEGMENTS = ["1) $0 - $100", "2) $100 - $200", "3) $200 - $350", "4) $350 - $500", "5) $500 - $750",
            "6) $750 - $1,000", "7) $1,000 +"]  # fmt: skip


@dataclass
class UpliftFrame:
    """One row per exposure: features, arm (CONTROL or a treated arm), outcomes (visit/conversion/spend)."""

    member_id: np.ndarray
    x: pd.DataFrame
    arm: np.ndarray
    group: np.ndarray  # randomization unit: rows of a comparison share it ("all" on Hillstrom, the offer elsewhere)
    outcomes: pd.DataFrame
    source: str

    @property
    def arms(self) -> list[str]:
        """Treated arms, sorted."""
        return sorted(a for a in np.unique(self.arm) if a != CONTROL)

    def comparisons(self) -> dict[str, list[str]]:
        """Name -> treated arms compared with the control arm: each arm alone, and any arm."""
        out = {f"{a}_vs_none": [a] for a in self.arms}
        if len(self.arms) > 1:
            out["any_vs_none"] = self.arms
        return out


def load_frame(dataset: Dataset) -> UpliftFrame:
    """The uplift frame of a prepared dataset; ValueError when it has no usable randomized exposures."""
    exp = dataset.table("exposures")
    name = dataset.name
    if exp.empty:
        raise ValueError(f"dataset '{name}' has no exposures: uplift needs randomized offer exposures")
    rnd = exp.loc[exp["randomized"].fillna(False).astype(bool)]
    if rnd.empty:
        raise ValueError(
            f"dataset '{name}' has no randomized exposures ({len(exp):,} targeted ones): the incremental effect "
            "of an offer is not identified; model the response propensity instead (training.uplift.propensity)"
        )
    members = dataset.table("members").drop_duplicates("member_id")
    rows = rnd.merge(members, on="member_id", how="left", validate="many_to_one").reset_index(drop=True)
    if set(rows["offer_id"].unique()) <= set(HILLSTROM):  # three arms, one shared control
        arm = rows["offer_id"].map(HILLSTROM).to_numpy(dtype=object)
    else:
        arm = np.where(rows["treated"].fillna(False).astype(bool), rows["offer_id"].astype(str), CONTROL)
    arm = np.asarray(arm, dtype=object)
    check_groups(arm != CONTROL, f"dataset '{name}'")
    outcomes = pd.DataFrame({"conversion": rows["outcome"].astype(float).to_numpy()})
    if "visit" in rows and rows["visit"].notna().any():
        outcomes.insert(0, "visit", rows["visit"].astype(float).to_numpy())
    outcomes["spend"] = rows["outcome_value"].astype(float).fillna(0.0).to_numpy()
    hillstrom = set(rows["offer_id"].unique()) <= set(HILLSTROM)
    group = np.full(len(rows), "all", dtype=object) if hillstrom else rows["offer_id"].astype(str).to_numpy(object)
    offers = None if hillstrom or rows["offer_id"].nunique() < 2 else rows["offer_id"].astype(str)
    x = features(rows, offers)
    return UpliftFrame(rows["member_id"].astype(str).to_numpy(), x, arm, group, outcomes, dataset.manifest["source"])


def features(rows: pd.DataFrame, offers: pd.Series | None = None) -> pd.DataFrame:
    """Numeric member features: numbers and flags as is, categories one-hot; the offer too when pooled."""
    out: dict[str, np.ndarray] = {}
    cats = ["region", "age_band", "tier", "attr_channel"]
    for col in [c for c in rows.columns if c.startswith("attr_")] + ["points_balance"]:
        if col == "attr_history_segment":
            out["history_segment"] = rows[col].map({s: k for k, s in enumerate(SEGMENTS)}).fillna(-1).to_numpy(float)
        elif col in cats or col not in rows:
            continue
        elif pd.api.types.is_bool_dtype(rows[col]) or pd.api.types.is_numeric_dtype(rows[col]):
            values = rows[col].astype(float)
            if values.notna().any():
                out[col.removeprefix("attr_")] = values.fillna(values.median()).to_numpy()
        elif rows[col].nunique() <= 20:
            cats.append(col)
    for col in cats:
        if col in rows and rows[col].notna().any():
            for v in sorted(rows[col].dropna().astype(str).unique()):
                out[f"{col.removeprefix('attr_')}={v}"] = (rows[col].astype(str) == v).to_numpy(float)
    if offers is not None:
        for v in sorted(offers.unique()):
            out[f"offer={v}"] = (offers == v).to_numpy(float)
    if not out:
        raise ValueError("members carry no usable attributes: nothing to learn heterogeneous uplift from")
    return pd.DataFrame(out).astype("float32")


def check_groups(treatment: np.ndarray, where: str) -> None:
    """Both treated and control rows must exist."""
    n_t = int(np.sum(treatment))
    if n_t == 0:
        raise ValueError(f"{where}: no treated rows (every exposure is control)")
    if n_t == len(treatment):
        raise ValueError(f"{where}: no control rows (every exposure is treated)")


def check_outcome(y: np.ndarray, where: str) -> None:
    """arm_code binary outcome needs both classes."""
    if np.unique(y).size < 2:
        raise ValueError(f"{where}: the outcome has a single class ({y[0]:g} for every row): nothing to learn")


@dataclass
class Split:
    """Row indices: fit (train minus validation), validation, and the held-out test half."""

    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def train(self) -> np.ndarray:
        return np.sort(np.r_[self.fit, self.val])


def split(frame: UpliftFrame, outcome: str, seed: int, test_size: float = 0.5, val_size: float = 0.2) -> Split:
    """Test half stratified on arm x outcome; validation (model selection, calibration) carved from the train half."""
    y = (frame.outcomes[outcome].to_numpy() > 0).astype(int)
    strata = pd.Series(frame.arm).astype(str) + "|" + pd.Series(y).astype(str)
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=strata)
    fit, val = train_test_split(train, test_size=val_size, random_state=seed, stratify=strata.iloc[train])
    return Split(np.sort(fit), np.sort(val), np.sort(test))


def comparison_rows(frame: UpliftFrame, idx: np.ndarray, treated_arms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rows of idx in the comparison, their 0/1 treatment): the treated arms and the control rows of their groups."""
    arm, group = frame.arm[idx], frame.group[idx]
    groups = np.unique(frame.group[np.isin(frame.arm, treated_arms)])
    keep = np.isin(arm, treated_arms) | ((arm == CONTROL) & np.isin(group, groups))
    return idx[keep], np.isin(arm[keep], treated_arms).astype(int)
