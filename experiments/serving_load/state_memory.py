"""Load time and memory of the serving state in one process, and what each part of it holds.

    TAILOR_PSEUDONYM_KEY=serving-load python experiments/serving_load/state_memory.py --home /tmp/serving_load

Loads `ServingState` (what the BentoML worker holds) from a benchmark home, prints the process's RSS
after imports and after the load, then drops the snapshot's parts one at a time (collecting and
handing freed pages back to the system after each) and prints how much RSS each drop returned:
an attribution of the worker's memory, part by part.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import time
from pathlib import Path


def rss_gib() -> float:
    """Resident set size of this process (GiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True, help="TAILOR_HOME of a served dataset (e.g. run.py's)")
    ap.add_argument("--dataset", default="large")
    a = ap.parse_args()
    os.environ["TAILOR_HOME"] = a.home
    from serving.state import ServingState  # torch, faiss, mlflow, pandas

    print(f"after imports: {rss_gib():.2f} GiB")
    t0 = time.perf_counter()
    state = ServingState.load(dataset=a.dataset)
    print(f"state loaded in {time.perf_counter() - t0:.1f} s: {rss_gib():.2f} GiB")
    s = state._snap
    libc = ctypes.CDLL("libc.so.6")
    gc.unfreeze()
    gc.callbacks.clear()  # the service's slow-collection log: every collection below walks the whole state
    parts = {
        "scores (churn, propensity, uplift)": lambda: s.scores.clear(),
        "features": lambda: s.feats.cols.clear(),
        "attributes": lambda: s.attrs.cols.clear(),
        "member index (HNSW, with the unit vectors)": lambda: (setattr(s.members, "index", None),
                                                              setattr(s.vectors, "matrix", None)),
        "purchase histories": lambda: setattr(s, "history", None),
        "member ids and their position dict": lambda: (s.vec_rows.clear(), setattr(s.vectors, "ids", None),
                                                       setattr(s.members, "ids", None), setattr(s.feats, "ids", None),
                                                       setattr(s.attrs, "ids", None)),
        "items (index, matrix, lookups)": lambda: (setattr(s, "items", None), setattr(s, "item_mat", None),
                                                   setattr(s, "item_index", None), setattr(s, "category_of", None),
                                                   setattr(s, "category", None)),
        "persona model and item table": lambda: setattr(s, "persona", None),
    }  # fmt: skip
    for name, drop in parts.items():
        before = rss_gib()
        drop()
        gc.collect()
        libc.malloc_trim(0)
        print(f"  {name:<45} {(before - rss_gib()) * 1024:7.0f} MB")
    print(f"left (interpreter, libraries, allocator): {rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
