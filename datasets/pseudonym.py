"""Keyed pseudonymization of member ids at ingestion (HMAC-SHA256, truncated).

The key comes from TAILOR_PSEUDONYM_KEY or from TAILOR_HOME/secrets/pseudonym.key, created
on first use with owner-only permissions. Without the key, ids cannot be linked back.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

import numpy as np
import pandas as pd
import pyarrow as pa

from datasets.layout import Layout

PREFIX = "m_"
_LEN = 16  # hex chars: 64 bits, collision-free in practice below ~10^8 members


def load_key() -> bytes:
    """The pseudonymization key: from the environment, else a key file made on first use."""
    env = os.environ.get("TAILOR_PSEUDONYM_KEY")
    if env:
        return env.encode()
    path = Layout.from_env().pseudonym_key
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def pseudonymize_one(raw_id: str, key: bytes, namespace: str = "") -> str:
    """Pseudonym of one raw id; `namespace` keeps ids of different sources apart."""
    digest = hmac.new(key, f"{namespace}\x1f{raw_id}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:_LEN]


def pseudonymize(raw_ids: pd.Series, key: bytes, namespace: str = "") -> pd.Series:
    """Pseudonymize a column, hashing each distinct id once; missing ids stay missing."""
    codes, uniques = pd.factorize(raw_ids.astype("string"), use_na_sentinel=True)
    table = pa.array([*(pseudonymize_one(str(u), key, namespace) for u in uniques), None], type=pa.string())
    taken = table.take(pa.array(np.where(codes < 0, len(uniques), codes)))
    return pd.Series(pd.arrays.ArrowExtensionArray(taken), index=raw_ids.index).astype("string[pyarrow]")


def pseudonymize_fast(values: pd.Series, key: bytes, namespace: str, prefix: str = "s_") -> pd.Series:
    """Keyed hash (BLAKE2b, 64 bits) of a high-cardinality column such as sessions.

    Session ids can carry a guest's raw identity (a session is the guest), so they are
    keyed too; each distinct value is hashed once.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mac_key = hashlib.sha256(key + b"\x1f" + namespace.encode()).digest()[:32]
    hashed = [prefix + hashlib.blake2b(str(u).encode(), key=mac_key, digest_size=8).hexdigest() for u in uniques]
    table = pa.array([*hashed, None], type=pa.string())
    taken = table.take(pa.array(np.where(codes < 0, len(hashed), codes)))
    return pd.Series(pd.arrays.ArrowExtensionArray(taken), index=values.index).astype("string[pyarrow]")
