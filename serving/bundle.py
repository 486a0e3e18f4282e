"""What serving loads from the registry and TAILOR_HOME: the persona bundle, batch scores, champions.

Every model comes through MLflow: the persona is the family's registered pyfunc
(`mlflow.pyfunc.load_model(...).unwrap_python_model()`: weights, item table, the encoder), so
serving never imports `training`; it needs only the registry. Churn/propensity/uplift scores come
from the batch-score Parquet (`tailor score FAMILY`) when it was written by the current champion;
otherwise they are None.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from datasets.layout import Layout

log = logging.getLogger(__name__)
ALIAS = "champion"


def registry(layout: Layout) -> MlflowClient:
    """A client on the layout's tracking and registry store; `models:/` URIs resolve there too."""
    uri = layout.tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def champion_version(family: str, layout: Layout | None = None) -> int | None:
    """The champion version of a family, or None (no registry, no model, no alias)."""
    layout = Layout.of(layout)
    if not layout.tracking_uri.startswith("sqlite:///") or layout.mlflow_db.exists():
        try:
            return int(registry(layout).get_model_version_by_alias(family, ALIAS).version)
        except MlflowException as exc:
            log.info("no %s champion: %s", family, exc.message)
    return None


def champions(layout: Layout | None = None) -> list[Any]:
    """The champion ModelVersion of every registered model family that has one, by name."""
    layout = Layout.of(layout)
    if layout.tracking_uri.startswith("sqlite:///") and not layout.mlflow_db.exists():
        return []
    c = registry(layout)
    found = []
    for m in sorted(c.search_registered_models(), key=lambda m: m.name):
        if ALIAS in (m.aliases or {}):
            found.append(c.get_model_version_by_alias(m.name, ALIAS))
    return found


@dataclass
class PersonaBundle:
    """A persona version as served: the family's pyfunc (loaded through MLflow) and its members' vectors."""

    version: int
    model: Any  # the registered pyfunc's python model: net, items, vocab, max_len, encode(rows, at), folder
    vectors: pd.DataFrame  # member_id, vector (from the model's artifacts; emptied once batch vectors are served)

    @property
    def net(self) -> Any:
        return self.model.net

    @property
    def items(self) -> pd.DataFrame:  # item_id, category_code, price_band, repeat_rate, bias, vector
        return self.model.items

    @items.setter
    def items(self, frame: pd.DataFrame) -> None:  # the snapshot trims the vector column once it is indexed
        self.model.items = frame

    @property
    def vocab(self) -> dict:
        return self.model.vocab

    @property
    def max_len(self) -> int:
        return self.model.max_len

    @property
    def dim(self) -> int:
        return int(self.net.shape.dim)

    def encode(self, rows: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
        """Vectors (member_id, vector) of the members in `rows` from their purchases before `at`."""
        return self.model.encode(rows, at)


def load_persona(version: int | None = None, layout: Layout | None = None) -> PersonaBundle:
    """The persona model `version` (default: the champion) from the registry."""
    layout = Layout.of(layout)
    version = version or champion_version("persona", layout)
    if version is None:
        raise ValueError("no persona champion: train one (`tailor train persona`) and promote it")
    registry(layout)
    model = mlflow.pyfunc.load_model(f"models:/persona/{version}").unwrap_python_model()
    path = model.folder / "vectors.parquet"
    vectors = pd.read_parquet(path) if path.exists() else pd.DataFrame({"member_id": [], "vector": []})
    vectors["member_id"] = vectors["member_id"].astype(str)
    return PersonaBundle(int(version), model, vectors)


@dataclass
class MemberVectors:
    """Persona vectors of the served members: row k of `matrix` belongs to `ids[k]`."""

    ids: np.ndarray  # (n,) str
    matrix: np.ndarray  # (n, dim) float32; while served, an index.ScaledRows view (rows by [k] only)
    source: str  # "batch <cutoff>" (tailor score) or "model" (computed at training)

    def rows(self) -> dict[str, int]:
        return {m: k for k, m in enumerate(self.ids)}


def member_vectors(
    bundle: PersonaBundle, dataset: str, erased: set[str] = frozenset(), layout: Layout | None = None
) -> MemberVectors:
    """The members' vectors: `tailor score`'s batch file when this persona version wrote it, else the model's own.

    The batch file holds every member of the dataset refolded at the data's end, so a dataset
    other than the one the model was trained on (or one appended to since) is served fresh.
    """
    import pyarrow.parquet as pq

    path = Layout.of(layout).member_scores(dataset)
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


def load_scores(family: str, dataset: str, version: int | None, layout: Layout | None = None) -> pd.DataFrame | None:
    """Batch scores of `family` (index member_id) written by champion `version`, else None."""
    path = Layout.of(layout).scores(family, dataset)
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
