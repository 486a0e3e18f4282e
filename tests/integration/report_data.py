"""A small prepared synthetic dataset for the report tests, with raw ids kept to look members up by."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.integration.synthetic_home import prepare_synthetic


def make_report_dataset(home: Path, members: int = 300, seed: int = 3) -> pd.DataFrame:
    """Generate and prepare dataset 'syn' under `home` (TAILOR_HOME must point there); returns raw id -> pseudonym."""
    from datasets.pseudonym import load_key, pseudonymize_one
    from datasets.store import Dataset

    prepare_synthetic(home, members, seed=seed)
    raw = pd.read_parquet(home / "raw" / "members.parquet", columns=["member_id"])["member_id"].astype(str)
    ns = Dataset("syn").manifest["id_namespace"]
    key = load_key()
    return pd.DataFrame({"raw": raw, "pseudonym": [pseudonymize_one(r, key, ns) for r in raw]})


def write_churn_scores(home: Path, ids: pd.Series, seed: int = 0) -> Path:
    """A batch-scores file in the shape `tailor score churn` writes (member_id, p_churn, cutoff), for the overview."""
    rng = np.random.default_rng(seed)
    path = home / "scores" / "churn" / "syn.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"member_id": ids.to_numpy(), "p_churn": rng.beta(2, 5, len(ids)), "cutoff": "2026-01-01"}).to_parquet(
        path
    )
    return path
