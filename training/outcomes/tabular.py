"""Member feature tables -> float/int tensors for OutcomeNet, with every statistic taken from training rows.

Numeric columns: median imputation (plus a missing-indicator column when training had NaN),
signed log1p for heavy-tailed columns (|skew| above a threshold on train), then standardization.
Categorical columns: a vocabulary of values seen at least `min_count` times in train; code 0 is
unknown or missing. With `n_bins` > 0 each numeric column also gets a categorical twin, its
train-quantile bin (code 0 = missing): an embedding per bin lets an MLP fit step-like effects
that trees find easily (Gorishniy et al. 2022, "On Embeddings for Numerical Features").
The fitted state is a JSON-able dict, saved beside the model weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

MISSING_SUFFIX, BIN_SUFFIX = "__missing", "__bin"
STATE = ("numeric", "categorical", "median", "indicators", "log", "mean", "std", "vocab", "edges")


@dataclass
class TabularData:
    """Model inputs: standardized numerics and categorical codes (0 = unknown), row-aligned."""

    numeric: np.ndarray  # float32, n x d
    categorical: np.ndarray  # int64, n x c
    cardinalities: list[int]  # codes per categorical column, unknown included
    numeric_names: list[str] = field(default_factory=list)  # output columns (indicators included)
    numeric_sources: list[str] = field(default_factory=list)  # input column behind each output column
    categorical_names: list[str] = field(default_factory=list)
    categorical_sources: list[str] = field(default_factory=list)  # input column behind each categorical column

    def __len__(self) -> int:
        return len(self.numeric)

    def subset(self, idx: np.ndarray) -> TabularData:
        """The rows at `idx` (positions or a boolean mask)."""
        return replace(self, numeric=self.numeric[idx], categorical=self.categorical[idx])

    @property
    def input_columns(self) -> list[str]:
        """Input column names (numeric then categorical), as permutation importance reports them."""
        return list(dict.fromkeys(self.numeric_sources + self.categorical_sources))


def signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _check_columns(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> None:
    for col in [*numeric, *categorical]:
        if col not in df.columns:
            raise ValueError(f"column {col!r} is required but missing from the frame")
    for col in numeric:
        if not (pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col])):
            raise ValueError(f"numeric column {col!r} has non-numeric dtype {df[col].dtype}")


def _as_float(s: pd.Series) -> np.ndarray:
    """Float64 values with pd.NA and +-inf as NaN."""
    x = pd.to_numeric(s, errors="raise").astype("float64").to_numpy(na_value=np.nan, copy=True)
    x[~np.isfinite(x)] = np.nan
    return x


def _as_str(s: pd.Series) -> pd.Series:
    """Category labels as strings, missing kept as NaN (so 1 and "1" are one value)."""
    return s.astype(object).where(s.notna()).map(lambda v: v if pd.isna(v) else str(v))


class Preprocessor:
    """Fit on training rows, then turn any frame with the same columns into TabularData."""

    def __init__(self, min_count: int = 1, skew_threshold: float = 2.0, n_bins: int = 0) -> None:
        self.min_count, self.skew_threshold, self.n_bins = min_count, skew_threshold, n_bins
        self.numeric: list[str] = []
        self.categorical: list[str] = []
        self.median: dict[str, float] = {}
        self.indicators: list[str] = []  # numeric columns that had NaN in train
        self.log: list[str] = []  # numeric columns given signed log1p
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}
        self.vocab: dict[str, list[str]] = {}
        self.edges: dict[str, list[float]] = {}  # inner quantile-bin edges per numeric column (n_bins > 0)

    def fit(self, df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Preprocessor:
        """Learn imputation, transforms, scales and vocabularies from `df` (training rows only)."""
        _check_columns(df, numeric, categorical)
        self.numeric, self.categorical = list(numeric), list(categorical)
        for col in numeric:
            x = _as_float(df[col])
            seen = x[~np.isnan(x)]
            self.median[col] = float(np.median(seen)) if len(seen) else 0.0
            if np.isnan(x).any():
                self.indicators.append(col)
            skew = float(pd.Series(seen).skew()) if len(seen) > 2 else 0.0
            if np.isfinite(skew) and abs(skew) > self.skew_threshold:
                self.log.append(col)
            z = self._shape(col, x)
            std = float(z.std())
            self.mean[col], self.std[col] = float(z.mean()), std if std > 0 else 1.0
            if self.n_bins > 0 and len(seen):
                inner = np.quantile(seen, np.linspace(0, 1, self.n_bins + 1)[1:-1])
                self.edges[col] = sorted({float(e) for e in inner})
        for col in categorical:
            counts = _as_str(df[col]).value_counts(dropna=True)
            self.vocab[col] = sorted(str(v) for v in counts.index[counts >= self.min_count])
        return self

    def _shape(self, col: str, x: np.ndarray) -> np.ndarray:
        """Impute then (for heavy-tailed columns) signed log1p; standardization comes after."""
        z = np.where(np.isnan(x), self.median[col], x)
        return signed_log1p(z) if col in self.log else z

    def transform(self, df: pd.DataFrame) -> TabularData:
        """Apply the fitted steps; unseen categories and missing values get code 0."""
        if not self.std and self.numeric:
            raise RuntimeError("Preprocessor.transform before fit")
        _check_columns(df, self.numeric, self.categorical)
        cols, names, sources = [], [], []
        for col in self.numeric:
            x = _as_float(df[col])
            cols.append((self._shape(col, x) - self.mean[col]) / self.std[col])
            names.append(col)
            sources.append(col)
            if col in self.indicators:
                cols.append(np.isnan(x).astype(np.float64))
                names.append(col + MISSING_SUFFIX)
                sources.append(col)
        numeric = np.stack(cols, 1).astype(np.float32) if cols else np.zeros((len(df), 0), np.float32)
        codes = []
        for col in self.categorical:
            lookup = {v: i + 1 for i, v in enumerate(self.vocab[col])}
            codes.append(_as_str(df[col]).map(lambda v, lk=lookup: lk.get(v, 0)).to_numpy(dtype=np.int64))
        cards = [len(self.vocab[c]) + 1 for c in self.categorical]
        cat_names, cat_sources = list(self.categorical), list(self.categorical)
        for col, edges in self.edges.items():
            x = _as_float(df[col])
            codes.append(np.where(np.isnan(x), 0, np.searchsorted(edges, x, side="right") + 1).astype(np.int64))
            cards.append(len(edges) + 2)
            cat_names.append(col + BIN_SUFFIX)
            cat_sources.append(col)
        categorical = np.stack(codes, 1) if codes else np.zeros((len(df), 0), np.int64)
        return TabularData(numeric, categorical, cards, names, sources, cat_names, cat_sources)

    def fit_transform(self, df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> TabularData:
        return self.fit(df, numeric, categorical).transform(df)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fitted state."""
        return {k: getattr(self, k) for k in ("min_count", "skew_threshold", "n_bins", *STATE)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        pre = cls(d["min_count"], d["skew_threshold"], d.get("n_bins", 0))
        for k in STATE:
            setattr(pre, k, d[k])
        return pre
