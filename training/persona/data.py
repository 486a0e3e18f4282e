"""Training examples for the persona model: (history before a cutoff -> items bought after it).

Examples come from several pseudo-cutoffs inside the training period, each exactly like the
evaluation protocol: the history strictly before the cutoff, the distinct items bought in
the following window as targets. Every array here is built from events before the task's
cutoff only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from training.interactions import DAY, Interactions

PAD_TARGET = -1


@dataclass
class Catalogue:
    """Per-item attributes (aligned with the task's item index) and per-member attributes."""

    category: np.ndarray  # (n_items,) int
    price_band: np.ndarray  # (n_items,) int
    repeat_rate: np.ndarray  # (n_items,) float: share of the item's buyers who bought it again
    region: np.ndarray  # (n_members,) int, 0 = unknown
    age: np.ndarray  # (n_members,) int, 0 = unknown
    n_categories: int
    n_regions: int
    n_age_bands: int
    vocab: dict[str, list[str]]  # code k + 1 <-> vocab[name][k]; saved with the model for serving

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "category": torch.as_tensor(self.category, dtype=torch.long),
            "price_band": torch.as_tensor(self.price_band, dtype=torch.long),
            "repeat_rate": torch.as_tensor(self.repeat_rate, dtype=torch.float32),
        }


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes with 0 for missing/unknown, and the vocabulary (code k + 1 = vocab[k])."""
    codes, uniques = pd.factorize(values.astype("string"), sort=True)
    return (codes + 1).astype(np.int64), [str(u) for u in uniques]


def catalogue(
    inter: Interactions, items: pd.DataFrame, members: pd.DataFrame, unit_price: pd.Series, n_bands: int = 3
) -> Catalogue:
    """Item category/price band and member region/age codes for the task's index maps.

    `unit_price` (item_id -> median paid unit price before the cutoff) gives price bands as
    within-category terciles, so no price from after the cutoff is used.
    """
    meta = items.set_index("item_id").reindex(inter.item_ids)
    cat, cat_vocab = _codes(meta["category"].reset_index(drop=True))
    price = unit_price.reindex(inter.item_ids).to_numpy()
    frame = pd.DataFrame({"cat": cat, "price": price})
    pct = frame.groupby("cat")["price"].rank(pct=True).to_numpy()
    band = np.where(np.isnan(pct), 0, 1 + np.minimum((pct * n_bands).astype(int), n_bands - 1))
    counts = inter.counts
    buyers = np.bincount(counts.indices, minlength=inter.n_items)
    again = np.bincount(counts.indices[counts.data >= 2], minlength=inter.n_items)
    repeat_rate = (again / np.maximum(buyers, 1)).astype(np.float32)
    mem = members.set_index("member_id").reindex(inter.member_ids).reset_index(drop=True)
    region, regions = _codes(mem["region"])
    age, ages = _codes(mem["age_band"])
    vocab = {"category": cat_vocab, "region": regions, "age_band": ages}
    return Catalogue(cat, band.astype(np.int64), repeat_rate, region, age, len(cat_vocab) + 1, len(regions) + 1,
                     len(ages) + 1, vocab)  # fmt: skip


def histories(inter: Interactions, at: float, member_idx: np.ndarray, max_len: int) -> dict[str, np.ndarray]:
    """Padded histories of `member_idx` from purchases strictly before epoch second `at`."""
    ev = inter.events
    ev = ev.loc[(ev["t"] < at) & ev["m"].isin(member_idx)]
    g = ev.groupby(["m", "i"], sort=False)["t"].agg(["size", "min", "max"]).reset_index()
    g = g.sort_values(["m", "max"], ascending=[True, False], kind="stable")
    g["pos"] = g.groupby("m").cumcount()
    g = g.loc[g["pos"] < max_len]
    row = pd.Series(np.arange(len(member_idx)), index=member_idx)
    r, p = row.loc[g["m"]].to_numpy(), g["pos"].to_numpy()
    n = len(member_idx)
    hist = np.full((n, max_len), inter.n_items, dtype=np.int64)
    feats = np.zeros((n, max_len, 4), dtype=np.float32)
    since_last = (at - g["max"].to_numpy()) / DAY
    since_first = (at - g["min"].to_numpy()) / DAY
    gap = np.where(g["size"] > 1, (g["max"] - g["min"]).to_numpy() / DAY / np.maximum(g["size"] - 1, 1), np.nan)
    hist[r, p] = g["i"].to_numpy()
    feats[r, p, 0] = np.log1p(g["size"].to_numpy())
    feats[r, p, 1] = np.log1p(since_last)
    feats[r, p, 2] = np.log1p(since_first)
    feats[r, p, 3] = np.nan_to_num(np.log1p(since_last / np.maximum(gap, 1.0)), nan=0.0)
    per = ev.groupby("m")["t"].agg(["nunique", "min", "max"]).reindex(member_idx)
    member_feats = np.stack(
        [
            np.log1p(per["nunique"].fillna(0).to_numpy()),
            np.log1p(((at - per["max"]) / DAY).fillna(3650).to_numpy()),
            np.log1p(((at - per["min"]) / DAY).fillna(0).to_numpy()),
        ],
        axis=1,
    ).astype(np.float32)
    return {"hist": hist, "hist_feats": feats, "member_feats": member_feats}


def examples(
    inter: Interactions,
    cat: Catalogue,
    n_cutoffs: int,
    window_days: float,
    max_len: int,
    max_targets: int = 64,
    stride_days: float | None = None,
) -> dict[str, np.ndarray]:
    """Examples from pseudo-cutoffs c_j = cutoff - window - j * stride: history before c_j, targets in
    [c_j, c_j + window). Every target window ends at or before the cutoff."""
    parts = []
    ev = inter.events
    stride = stride_days or window_days
    for j in range(n_cutoffs):
        start = inter.t_cutoff - (window_days + j * stride) * DAY
        win = ev.loc[(ev["t"] >= start) & (ev["t"] < start + window_days * DAY), ["m", "i"]].drop_duplicates()
        if win.empty:
            continue
        members = np.sort(win["m"].unique())
        h = histories(inter, start, members, max_len)
        targets = np.full((len(members), max_targets), PAD_TARGET, dtype=np.int64)
        win = win.sort_values(["m", "i"])
        win["pos"] = win.groupby("m").cumcount()
        win = win.loc[win["pos"] < max_targets]
        targets[np.searchsorted(members, win["m"].to_numpy()), win["pos"].to_numpy()] = win["i"].to_numpy()
        parts.append({**h, "targets": targets, "region": cat.region[members], "age": cat.age[members]})
    if not parts:
        raise ValueError("no training examples: no purchases inside the pseudo-cutoff windows before the cutoff")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


class ExampleSet(torch.utils.data.Dataset):
    """Tensor view of `examples` for a DataLoader."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = {k: torch.as_tensor(v) for k, v in arrays.items()}

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return {k: v[idx] for k, v in self.arrays.items()}


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of ranks (0, 1 unless torch.distributed is initialised)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class LengthBuckets(torch.utils.data.Sampler):
    """Batches of similar history length (less padding), in random order; deterministic per seed.

    Under torch.distributed every rank draws the same global batches (same seed) and takes its
    share of each, `batch[rank::world]`: every rank makes the same number of steps (no rank waits
    on a missing all-reduce) and together they see exactly the single-process batch, so DDP's
    averaged gradient is that batch's (up to the per-rank means). `rank`/`world` override.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int = 0,
        span: int = 50,
        rank: int | None = None,
        world: int | None = None,
    ) -> None:
        self.lengths, self.batch_size, self.span = np.asarray(lengths), batch_size, span
        self.rng = np.random.default_rng(seed)
        self.rank, self.world = rank, world

    def __iter__(self):
        rank, world = _rank_and_world()
        rank = rank if self.rank is None else self.rank
        world = world if self.world is None else self.world
        for batch in self._global():
            # a batch smaller than the world: a rank without a share repeats one example of it
            yield batch[rank::world] or [batch[rank % len(batch)]]

    def _global(self):
        order = self.rng.permutation(len(self.lengths))
        mega = self.batch_size * self.span
        batches = []
        for s in range(0, len(order), mega):
            chunk = order[s : s + mega]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[b : b + self.batch_size].tolist() for b in range(0, len(chunk), self.batch_size)]
        for k in self.rng.permutation(len(batches)):
            yield batches[k]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)
