"""Planted tastes for the persona tests: members who buy from one favourite category (and style), known ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

N_CATS, PER_CAT, N_MEMBERS = 4, 25, 400


def planted(folder: Path, seed: int = 0, per_cat: int = PER_CAT, styles: int = 1, in_style: float = 0.9) -> Path:
    """Canonical files: each member buys only from one favourite category (m % N_CATS), items within it uniformly.

    With `styles` > 1 a category's items form `styles` equal blocks and each member also has a favourite block
    ((m // N_CATS) % styles): a share `in_style` of their purchases come from it, the rest from the whole category.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    ids = [(c, k) for c in range(N_CATS) for k in range(per_cat)]
    items = pd.DataFrame({"item_id": [f"c{c}-{k}" for c, k in ids], "category": [f"cat{c}" for c, _ in ids]})
    items["price"] = 10.0
    rows = []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    width = per_cat // styles
    for m in range(N_MEMBERS):
        fav, style = m % N_CATS, (m // N_CATS) % styles
        for _ in range(rng.integers(8, 20)):
            day = int(rng.integers(0, 180))
            if styles > 1 and rng.random() < in_style:
                k = style * width + rng.integers(0, width)
            else:
                k = rng.integers(0, per_cat)
            rows.append((f"M{m}", start + pd.Timedelta(days=day, hours=int(rng.integers(8, 20))), f"c{fav}-{k}"))
    ev = pd.DataFrame(rows, columns=["member_id", "ts", "item_id"]).assign(event_type="purchase", quantity=1.0,
                                                                           amount=10.0)  # fmt: skip
    ev.to_csv(folder / "events.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    return folder


QUICK = ["train.epochs=6", "data.n_cutoffs=6", "data.stride_days=10", "model.dim=16", "train.batch_size=128"]
