"""Member x item purchase interactions for a time window, and the temporal evaluation protocol.

`protocol(dataset, test_days, val_days)` gives two tasks on the protocol's split
(`datasets.split.protocol_split`, the one the outcome models use too): validation (train before
the validation cutoff, target = the validation window, which ends at the test cutoff) and test
(train on everything before the test cutoff, target = the test window). The catalogue is the
set of items seen in a task's training data; ground-truth items unseen in training get ids
>= n_items, so they can never be hit but still count in the denominators.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from datasets.split import ProtocolSplit, TemporalSplit, before_mask, check_before, check_in_window, protocol_split
from datasets.store import Dataset

DAY = 86400.0


@dataclass
class Interactions:
    """Purchases before `cutoff`: index maps, a CSR of counts, last purchase times, the raw events."""

    member_ids: np.ndarray  # index -> member id
    item_ids: np.ndarray  # index -> item id (the catalogue)
    counts: sp.csr_matrix  # float32, purchase occasions (distinct timestamps) per (member, item)
    last_ts: sp.csr_matrix  # float64 epoch seconds of the last purchase, same pattern as `counts`
    events: pd.DataFrame  # columns m, i (int32 indices), t (epoch seconds): one row per occasion
    cutoff: pd.Timestamp
    member_index: dict[str, int] = field(init=False, repr=False)
    item_index: dict[str, int] = field(init=False, repr=False)
    cache: dict = field(init=False, repr=False, default_factory=dict)  # shared work of models fit on it

    def __post_init__(self) -> None:
        self.member_index = {m: k for k, m in enumerate(self.member_ids)}
        self.item_index = {m: k for k, m in enumerate(self.item_ids)}

    @property
    def n_members(self) -> int:
        return len(self.member_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def t_cutoff(self) -> float:
        """The cutoff in epoch seconds."""
        return self.cutoff.timestamp()

    def binary(self) -> sp.csr_matrix:
        """The 0/1 member x item matrix (float32)."""
        x = self.counts.copy()
        x.data[:] = 1.0
        return x

    @classmethod
    def from_events(cls, purchases: pd.DataFrame, cutoff: pd.Timestamp) -> Interactions:
        """Build from purchase events (member_id, item_id, ts, tz-aware) strictly before `cutoff`."""
        df = purchases.loc[before_mask(purchases, cutoff), ["member_id", "item_id", "ts"]]
        check_before(df, cutoff)
        df = df.drop_duplicates()
        members = np.sort(df["member_id"].unique())
        items = np.sort(df["item_id"].unique())
        m = np.searchsorted(members, df["member_id"].to_numpy()).astype(np.int32)
        i = np.searchsorted(items, df["item_id"].to_numpy()).astype(np.int32)
        t = ((df["ts"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(np.float64)
        events = pd.DataFrame({"m": m, "i": i, "t": t})
        shape = (len(members), len(items))
        g = events.groupby(["m", "i"], sort=True)["t"].agg(["size", "max"]).reset_index()
        rows, cols = g["m"].to_numpy(), g["i"].to_numpy()
        counts = sp.csr_matrix((g["size"].to_numpy(np.float32), (rows, cols)), shape=shape)
        last = sp.csr_matrix((g["max"].to_numpy(np.float64), (rows, cols)), shape=shape)
        return cls(members, items, counts, last, events, cutoff)


@dataclass
class Task:
    """A train set, the members to evaluate, and their ground truth (item index sets)."""

    name: str
    train: Interactions  # purchases before split.cutoff
    split: TemporalSplit  # target window [split.cutoff, split.end)
    members: np.ndarray  # train member indices of the evaluated members (active in the window)
    truth: list[np.ndarray]  # per evaluated member: distinct items bought in the window

    @property
    def start(self) -> pd.Timestamp:
        return self.split.cutoff

    @property
    def end(self) -> pd.Timestamp:
        return self.split.end

    def history(self, member_idx: np.ndarray) -> sp.csr_matrix:
        """Rows of the training matrix: the items each member already bought."""
        return self.train.counts[member_idx]

    def new_truth(self) -> list[np.ndarray]:
        """Ground truth without the member's history (new-to-member items)."""
        hist = self.train.counts
        out = []
        for m, t in zip(self.members, self.truth, strict=True):
            seen = hist.indices[hist.indptr[m] : hist.indptr[m + 1]]
            out.append(np.setdiff1d(t, seen, assume_unique=True))
        return out


def purchases(dataset: str | Dataset) -> pd.DataFrame:
    """The purchase events (member_id, item_id, ts) of a prepared dataset."""
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    ev = ds.table("events", columns=["member_id", "ts", "event_type", "item_id", "quantity"])
    ok = (ev["event_type"] == "purchase") & ev["item_id"].notna() & ~(ev["quantity"] <= 0)
    return ev.loc[ok, ["member_id", "item_id", "ts"]].reset_index(drop=True)


def make_task(name: str, events: pd.DataFrame, split: TemporalSplit) -> Task:
    """Train on events before the split's cutoff; truth = distinct items per train member bought in its window."""
    train = Interactions.from_events(events, split.cutoff)
    win = events.loc[split.window_mask(events), ["member_id", "item_id", "ts"]]
    check_in_window(win, split.cutoff, split.end)
    win = win[["member_id", "item_id"]].drop_duplicates()
    win = win[win["member_id"].isin(train.member_index)]
    unseen = np.sort(win.loc[~win["item_id"].isin(train.item_index), "item_id"].unique())
    codes = {it: train.n_items + k for k, it in enumerate(unseen)}
    codes.update(train.item_index)
    win = win.assign(m=win["member_id"].map(train.member_index), i=win["item_id"].map(codes)).sort_values(["m", "i"])
    grouped = win.groupby("m", sort=True)["i"]
    members = np.array(list(grouped.groups.keys()), dtype=np.int64)
    truth = [g.to_numpy(np.int64) for _, g in grouped]
    return Task(name, train, split, members, truth)


def protocol_tasks(events: pd.DataFrame, split: ProtocolSplit) -> tuple[Task, Task]:
    """(validation task, test task) of purchase events on the protocol's split."""
    return make_task("val", events, split.val), make_task("test", events, split.test)


def protocol(dataset: str | Dataset, test_days: float, val_days: float) -> tuple[Task, Task]:
    """(validation task, test task): test = the last `test_days` up to the last purchase, validation = the
    `val_days` before (`datasets.split.protocol_split`)."""
    ev = purchases(dataset)
    return protocol_tasks(ev, protocol_split(ev["ts"].max(), test_days, val_days))
