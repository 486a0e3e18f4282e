"""The persona model as an MLflow pyfunc: purchase history in, member vectors out.

Serving loads this with `mlflow.pyfunc.load_model(...).unwrap_python_model()` (it never imports
`training` itself) and uses `encode`; the class needs only torch and the plain module (no
Lightning). `predict` takes purchase rows (member_id, item_id, ts, plus
optional region/age_band) and returns one vector per member: a member's vector is always
computed from the history given, so new events refresh it without retraining (fold-in),
and a member with no known items gets a vector from attributes alone (cold start).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from training.persona.data import Catalogue, histories
from training.persona.model import PersonaNet, PersonaShape


class PersonaPyfunc(mlflow.pyfunc.PythonModel):
    """Encoder + item table, loaded from the run's artifacts."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        folder = Path(context.artifacts["persona"])
        self.folder = folder  # vectors.parquet (every member's vector at training) is read from here on demand
        meta = json.loads((folder / "meta.json").read_text())
        self.net = PersonaNet(PersonaShape(**meta["shape"]))
        self.net.load_state_dict(torch.load(folder / "net.pt", weights_only=True))
        self.net.eval()
        self.items = pd.read_parquet(folder / "items.parquet")
        self.item_index = {it: k for k, it in enumerate(self.items["item_id"])}
        self.vocab = meta["vocab"]
        self.max_len = meta["max_len"]

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Member vectors (member_id, vector) from purchase rows; `params['at']` is the reference time."""
        at = pd.Timestamp((params or {}).get("at") or model_input["ts"].max(), tz="UTC")
        return self.encode(model_input, at)

    def encode(self, rows: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
        """Vectors (member_id, vector) of every member in `rows` (member_id, item_id, ts, region, age_band)."""
        return encode_history(self.net, self.items, self.item_index, self.vocab, rows, at, self.max_len)


def encode_history(
    net: PersonaNet,
    items: pd.DataFrame,
    item_index: dict,
    vocab: dict,
    rows: pd.DataFrame,
    at: pd.Timestamp,
    max_len: int,
) -> pd.DataFrame:
    """Vectors of every member in `rows` from their purchases before `at` (unknown items are skipped)."""
    rows = rows.assign(ts=pd.to_datetime(rows["ts"], utc=True))
    members = np.sort(rows["member_id"].astype(str).unique())
    code = np.fromiter((item_index.get(x, -1) for x in rows["item_id"]), dtype=np.int64, count=len(rows))
    keep = (code >= 0) & (rows["ts"] < at).to_numpy()
    known = rows.loc[keep]
    m = np.searchsorted(members, known["member_id"].astype(str).to_numpy())
    events = pd.DataFrame({"m": m, "i": code[keep], "t": known["ts"].astype("int64").to_numpy() / 1e6})
    inter = SimpleNamespace(events=events, n_items=len(items))  # what `histories` reads of an Interactions
    attrs = rows.drop_duplicates("member_id").set_index(rows.drop_duplicates("member_id")["member_id"].astype(str))
    region = _lookup(attrs, "region", members, vocab["region"])
    age = _lookup(attrs, "age_band", members, vocab["age_band"])
    h = histories(inter, at.timestamp(), np.arange(len(members)), max_len)
    vec = encode_padded(net, {**h, "region": region, "age": age}, len(items))
    return pd.DataFrame({"member_id": members, "vector": list(vec)})


def encode_padded(net: PersonaNet, arrays: dict[str, np.ndarray], n_items: int, batch: int = 4096) -> np.ndarray:
    """(n, d) float32 member vectors, encoded in batches of similar history length with the padding cut off.

    Padding is masked out of the encoder, so cutting it changes nothing but the work: most members
    hold a few items of a `max_len`-long row.
    """
    hist = arrays["hist"]
    lengths = (hist != n_items).sum(1)
    order = np.argsort(lengths, kind="stable")
    out = np.empty((len(hist), net.shape.dim), dtype=np.float32)
    with torch.no_grad():
        for lo in range(0, len(order), batch):
            idx = order[lo : lo + batch]
            n = max(1, int(lengths[idx].max()))
            t = {k: torch.as_tensor(np.ascontiguousarray(v[idx][:, :n] if k in ("hist", "hist_feats") else v[idx]))
                 for k, v in arrays.items()}  # fmt: skip
            out[idx] = net.encode(t["hist"], t["hist_feats"], t["member_feats"], t["region"], t["age"]).numpy()
    return out


def _lookup(attrs: pd.DataFrame, column: str, members: np.ndarray, vocab: list[str]) -> np.ndarray:
    """Codes of an attribute (0 = unknown), with the vocabulary the model was trained on."""
    if column not in attrs.columns:
        return np.zeros(len(members), dtype=np.int64)
    codes = {v: k + 1 for k, v in enumerate(vocab)}
    return attrs[column].reindex(members).map(codes).fillna(0).astype(np.int64).to_numpy()


def save_artifacts(folder: Path, net: PersonaNet, cat: Catalogue, item_ids: np.ndarray, max_len: int) -> Path:
    """Write what the pyfunc and serving need: weights, shape, vocabularies, item table with vectors."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "net.pt")
    with torch.no_grad():
        v = net.item_vectors(torch.as_tensor(cat.category), torch.as_tensor(cat.price_band)).numpy()
        b = net.item_bias.numpy()
    pd.DataFrame({"item_id": item_ids, "category_code": cat.category, "price_band": cat.price_band,
                  "repeat_rate": cat.repeat_rate, "bias": b, "vector": list(v.astype(np.float32))}).to_parquet(
        folder / "items.parquet", index=False)  # fmt: skip
    meta = {"shape": net.shape.to_dict(), "max_len": max_len, "vocab": cat.vocab}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder
