"""What serving loads from the registry and TAILOR_HOME: the persona bundle, batch scores, its config.

The persona bundle is read from the registered model's own artifact folder (weights, item table
with vectors, persona vectors of all members) and the plain torch module, never Lightning.
Churn/propensity/uplift scores come from the batch-score Parquet (`tailor score FAMILY`) when it was
written by the current champion; otherwise they are None (their pyfuncs need Lightning to load).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch

from datasets.config import load_yaml
from datasets.paths import tailor_home

log = logging.getLogger(__name__)
FAMILIES = ("persona", "churn", "propensity", "uplift")


def serving_config(name: str = "serving") -> dict:
    """configs/serving.yaml as a dict."""
    return load_yaml(name)


def champion_version(family: str) -> int | None:
    """The champion version of a family, or None (no registry, no model, no alias)."""
    from training.registry import champion

    try:
        found = champion(family)
    except Exception as exc:
        log.info("no %s champion: %s", family, exc)
        return None
    return found[0] if found else None


@dataclass
class PersonaBundle:
    version: int
    net: torch.nn.Module
    items: pd.DataFrame  # item_id, category_code, price_band, repeat_rate, bias, vector
    vectors: pd.DataFrame  # member_id, vector
    vocab: dict
    max_len: int

    @property
    def dim(self) -> int:
        return int(self.net.shape.dim)


def load_persona(version: int | None = None) -> PersonaBundle:
    """The persona model `version` (default: the champion) from its registered artifacts."""
    from training.persona.model import PersonaNet, PersonaShape
    from training.tracking import client

    client()  # points both the tracking and the registry URI at this TAILOR_HOME (models:/ URIs use the registry)
    version = version or champion_version("persona")
    if version is None:
        raise ValueError("no persona champion: train one (`tailor train persona`) and promote it")
    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/persona/{version}"))
    folder = next(p.parent for p in root.rglob("meta.json") if (p.parent / "net.pt").exists())
    meta = json.loads((folder / "meta.json").read_text())
    net = PersonaNet(PersonaShape(**meta["shape"]))
    net.load_state_dict(torch.load(folder / "net.pt", weights_only=True))
    net.eval()
    vectors = pd.read_parquet(folder / "vectors.parquet")
    vectors["member_id"] = vectors["member_id"].astype(str)
    return PersonaBundle(int(version), net, pd.read_parquet(folder / "items.parquet"), vectors, meta["vocab"],
                         meta["max_len"])  # fmt: skip


@dataclass
class MemberVectors:
    """Persona vectors of the served members: row k of `matrix` belongs to `ids[k]`."""

    ids: np.ndarray  # (n,) str
    matrix: np.ndarray  # (n, dim) float32; while served, an index.ScaledRows view (rows by [k] only)
    source: str  # "batch <cutoff>" (tailor score) or "model" (computed at training)

    def rows(self) -> dict[str, int]:
        return {m: k for k, m in enumerate(self.ids)}


def member_vectors(bundle: PersonaBundle, dataset: str, erased: set[str] = frozenset()) -> MemberVectors:
    """The members' vectors: `tailor score`'s batch file when this persona version wrote it, else the model's own.

    The batch file holds every member of the dataset refolded at the data's end, so a dataset
    other than the one the model was trained on (or one appended to since) is served fresh.
    """
    import pyarrow.parquet as pq

    from serving.batch import members_path

    path = members_path(dataset)
    if path.exists():
        meta = json.loads(pq.read_schema(path).metadata[b"tailor"])
        if meta["versions"].get("persona") == bundle.version:
            t = pq.read_table(path, columns=["member_id", "vector"])
            ids = t.column("member_id").to_numpy(zero_copy_only=False).astype(object)
            flat = t.column("vector").combine_chunks().flatten().to_numpy()
            mat = flat.reshape(len(ids), bundle.dim).astype(np.float32, copy=False)
            keep = ~np.isin(ids, list(erased)) if erased else np.ones(len(ids), bool)
            return MemberVectors(ids[keep], np.ascontiguousarray(mat[keep]), f"batch {meta['cutoff']}")
        log.warning("member vectors at %s are from persona v%s, not v%s: run `tailor score --dataset %s`", path,
                    meta["versions"].get("persona"), bundle.version, dataset)  # fmt: skip
    vec = bundle.vectors.loc[~bundle.vectors["member_id"].isin(erased)]
    mat = np.stack(vec["vector"].to_numpy()).astype(np.float32) if len(vec) else np.zeros((0, bundle.dim), np.float32)
    return MemberVectors(vec["member_id"].to_numpy(dtype=object), mat, "model")


def load_scores(family: str, dataset: str, version: int | None) -> pd.DataFrame | None:
    """Batch scores of `family` (index member_id) written by champion `version`, else None."""
    path = tailor_home() / "scores" / family / f"{dataset}.parquet"
    if version is None or not path.exists():
        return None
    frame = pd.read_parquet(path)
    if "version" in frame.columns and not (frame["version"] == version).all():
        log.warning("%s scores at %s are not from champion v%s: run `tailor score %s`", family, path, version, family)
        return None
    return frame.assign(member_id=frame["member_id"].astype(str)).set_index("member_id")


def score_of(table, member: str, column: str) -> float | None:
    """One member's score from a `snapshot.Rows` table, or None when unknown (no table, member or value)."""
    v = None if table is None else table.value(member, column)
    return None if v is None or not np.isfinite(v) else float(v)
