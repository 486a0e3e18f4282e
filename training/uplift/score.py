"""`tailor score uplift --dataset D`: the registered uplift model's scores for every member -> the ranker's file.

Writes `TAILOR_HOME/scores/uplift/<dataset>.parquet`: member_id (pseudonymized, as stored), one float column
per `<comparison>/<outcome>` exactly as `predict_frame` names them (e.g. `womens_vs_none/visit`), and model,
version, cutoff. Serving reads it with `load_scores("uplift", ...)` when `version` is the uplift champion's,
and an offer whose `uplift_key` names one of the columns is ranked by uplift (EIV = u x value - cost).

The member features are `training.uplift.data.features` of the members table, the function training used.
Two differences from training, both deliberate: medians that fill missing numbers are the members' own, and
a one-hot column whose value no member carries is 0. A model trained on pooled offers (an `offer=<id>`
column per offer) is asked once per offer: a one-offer comparison with that offer set, a several-offer one
(any_vs_none) as the mean of its offers' uplifts, each with its own offer set.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from datasets.split import dataset_end
from datasets.store import Dataset, write_parquet
from training.outcomes.pyfunc import _load_registered, score_path
from training.uplift.data import features
from training.uplift.model import Ensemble
from training.uplift.pyfunc import predict_frame

CHUNK = 200_000
OFFER = "offer="


def score_uplift(dataset: str, version: int | None = None, alias: str = "champion", chunk: int = CHUNK) -> pd.DataFrame:
    """Score every member of `dataset` with a registered uplift version (default: the champion); write Parquet."""
    inner, mv = _load_registered("uplift", alias, version)
    ds = Dataset(dataset)
    t0 = time.perf_counter()
    members = ds.table("members").drop_duplicates("member_id").reset_index(drop=True)
    if members.empty:
        raise ValueError(f"dataset '{ds.name}' has no members to score")
    x = member_features(members, inner.meta, _where(mv, ds.name))
    out = uplift_scores(inner.ensemble, inner.meta, x, chunk)
    out.insert(0, "member_id", members["member_id"].astype(str).to_numpy(dtype=object))
    out = out.assign(model="uplift", version=int(mv.version), cutoff=_cutoff(ds))
    path = score_path("uplift", ds.name)
    write_parquet(out, path)
    secs = time.perf_counter() - t0
    print(f"scored {len(out):,} members of {ds.name} with uplift v{mv.version} in {secs:.1f} s -> {path}")
    return out


def member_features(members: pd.DataFrame, meta: dict, where: str = "the model") -> pd.DataFrame:
    """The model's input columns for each member (the `offer=` columns left 0); ValueError naming what lacks."""
    try:
        x = features(members)
    except ValueError:
        x = pd.DataFrame(index=members.index)
    x = x.set_axis(members.index)
    need = [c for c in meta["features"] if not c.startswith(OFFER)]
    missing = []
    for c in [c for c in need if c not in x.columns]:
        raw = _raw(members, c.split("=", 1)[0]) if "=" in c else None
        if raw is None:  # a number, or a category the members do not carry at all
            missing.append(c)
        else:  # a category value no member has (0), or one past features()' 20-value limit
            x[c] = (members[raw].astype(str) == c.split("=", 1)[1]).to_numpy(np.float32)
    if missing:
        raise ValueError(
            f"{where} was trained on member features this dataset's members lack: {_short(missing)} "
            f"(they carry: {_short(list(x.columns)) or 'no usable attributes'}); an uplift model can only score "
            "members described like the ones it was trained on: train one on this dataset (`tailor train uplift`)"
        )
    return x.reindex(columns=meta["features"], fill_value=0.0).astype("float32")


def uplift_scores(ensemble: Ensemble, meta: dict, x: pd.DataFrame, chunk: int = CHUNK) -> pd.DataFrame:
    """One float column per `<comparison>/<outcome>` (as `predict_frame`), predicted `chunk` rows at a time."""
    parts = [_predict(ensemble, meta, x.iloc[i : i + chunk]) for i in range(0, len(x), max(chunk, 1))]
    names = [f"{c}/{o}" for c in meta["comparisons"] for o in ensemble.shape.outcomes]
    out = pd.concat(parts) if parts else pd.DataFrame(columns=names, dtype="float64")
    return out[names].reset_index(drop=True)


def _predict(ensemble: Ensemble, meta: dict, x: pd.DataFrame) -> pd.DataFrame:
    offers = [c for c in meta["features"] if c.startswith(OFFER)]
    if not offers:  # one shared population (Hillstrom): one pass answers every comparison
        return predict_frame(ensemble, meta, x)
    cols = {}
    for name, arms in meta["comparisons"].items():
        each = []
        for arm in arms:
            if OFFER + arm not in offers:
                raise ValueError(f"uplift model has no '{OFFER}{arm}' feature for the arm of comparison '{name}'")
            xa = x.copy()
            xa[offers] = 0.0
            xa[OFFER + arm] = 1.0
            each.append(predict_frame(ensemble, meta | {"comparisons": {name: [arm]}}, xa))
        for c in each[0].columns:
            cols[c] = sum(e[c] for e in each) / len(each)
    return pd.DataFrame(cols, index=x.index)


def _raw(members: pd.DataFrame, base: str) -> str | None:
    """The members column a one-hot feature's prefix comes from (`features` drops the `attr_` prefix)."""
    for c in (base, f"attr_{base}"):
        if c in members.columns and members[c].notna().any():
            return c
    return None


def _short(columns: list[str]) -> str:
    """Feature names with one-hot columns grouped: `region=Rural|Urban`."""
    groups: dict[str, list[str]] = {}
    for c in columns:
        base, _, value = c.partition("=")
        groups.setdefault(base, []).append(value)
    return ", ".join(b if values == [""] else f"{b}={'|'.join(values)}" for b, values in groups.items())


def _where(mv, dataset: str) -> str:
    from training.tracking import client

    try:
        trained = client().get_run(mv.run_id).data.tags.get("dataset", "?")
    except Exception:  # only for the message
        trained = "?"
    return f"uplift v{mv.version} (trained on dataset '{trained}', scoring '{dataset}')"


def _cutoff(ds: Dataset) -> pd.Timestamp | None:
    try:
        return dataset_end(ds)
    except ValueError:
        return None


def score_family(family: str, dataset: str, version: int | None = None, chunk: int | None = None) -> pd.DataFrame:
    """`tailor score uplift`: the family interface's entry point."""
    return score_uplift(dataset, version=version, chunk=chunk or CHUNK)
