"""Model registry: versions per family, the promotion gate on alias `champion`, and its history.

Every move of `champion` (promotion, forced promotion, rollback) and every refusal is appended to
TAILOR_HOME/registry/alias_history.jsonl, so one can tell which version served when; a rollback
replays that log as a stack (promote pushes, rollback pops) and restores the version below the top.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from mlflow.exceptions import MlflowException
from pydantic import Field

from datasets.config import Strict, load
from datasets.layout import Layout
from training.tracking import client, metric_key

ALIAS = "champion"


class GateMetric(Strict):
    """One metric of a family's promotion gate."""

    name: str
    higher_is_better: bool
    beat_baselines: bool


class FamilyGate(Strict):
    metrics: list[GateMetric] = Field(min_length=1)


class PromotionConfig(Strict):
    """configs/promotion.yaml: the gate of each family."""

    families: dict[str, FamilyGate]


@dataclass
class GateRow:
    metric: str
    candidate: float | None
    champion: float | None
    best_baseline: float | None
    baseline: str | None
    passed: bool
    note: str = ""


@dataclass
class Decision:
    """One promotion, refusal or rollback of a family's champion."""

    family: str
    action: str  # promote | refused | rollback
    version_to: int
    version_from: int | None
    run_id: str
    passed: bool | None  # the gate's verdict (None for a rollback)
    forced: bool = False
    reason: str | None = None
    who: str = ""
    at: str = ""
    rows: list[GateRow] = field(default_factory=list)

    @property
    def moved(self) -> bool:
        return self.action in ("promote", "rollback")


def gate_config(name: str = "promotion") -> PromotionConfig:
    """The promotion gates from configs/<name>.yaml."""
    return load(PromotionConfig, name)


def family_gate(family: str) -> FamilyGate:
    gates = gate_config().families
    if family not in gates:
        raise ValueError(f"unknown model family '{family}' (known: {', '.join(gates)})")
    return gates[family]


def _better(a: float, b: float, higher: bool) -> bool:
    return a > b if higher else a < b


def evaluate_gate(gate: FamilyGate, candidate: dict[str, float], champion: dict[str, float] | None) -> list[GateRow]:
    """Compare a candidate run's metrics with the champion's and with its own `baseline/*` figures."""
    rows = []
    for m in gate.metrics:
        key, hi = metric_key(m.name), m.higher_is_better
        cand = candidate.get(key)
        champ = None if champion is None else champion.get(key)
        bases = {
            k[len("baseline/") : -len(key) - 1]: v
            for k, v in candidate.items()
            if k.startswith("baseline/") and k.endswith(f"/{key}") and not math.isnan(v)
        }
        best = (max if hi else min)(bases, key=bases.get) if bases else None
        best_v = bases[best] if best else None
        notes = []
        if cand is None or math.isnan(cand):
            notes.append(f"candidate lacks {key}")
        elif champion is None:
            notes.append("no champion yet (promote the first version with --force)")
        elif champ is None or math.isnan(champ):
            notes.append(f"champion lacks {key}")
        elif not _better(cand, champ, hi):
            notes.append("does not beat the champion")
        if m.beat_baselines and cand is not None and not math.isnan(cand):
            if best_v is None:
                notes.append(f"no baseline/<name>/{key} logged")
            elif _better(best_v, cand, hi):
                notes.append(f"below baseline {best}")
        rows.append(GateRow(m.name, cand, champ, best_v, best, passed=not notes, note="; ".join(notes)))
    return rows


def history_path() -> Path:
    return Layout.from_env().alias_history


def _append(decision: Decision) -> None:
    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:  # one write per line: appends from several processes do not interleave
        f.write(json.dumps(asdict(decision), sort_keys=True) + "\n")


def alias_history(family: str, include_refused: bool = False) -> list[dict[str, Any]]:
    """Moves of `champion` for a family, oldest first (with refusals when asked)."""
    path = history_path()
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["family"] == family and (include_refused or r["action"] != "refused")]


def champion(family: str) -> tuple[int, str] | None:
    """(version, run_id) that alias `champion` points to, or None."""
    try:
        mv = client().get_model_version_by_alias(family, ALIAS)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return int(mv.version), mv.run_id


def register(run_id: str, family: str, model_uri: str | None = None) -> int:
    """Register the model logged by a run as a new version of `family`; returns the version."""
    import mlflow

    family_gate(family)
    c = client()
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered ..."; the job logs it
        mv = mlflow.register_model(model_uri or f"runs:/{run_id}/model", family)
    tags = c.get_run(run_id).data.tags
    for key in ("job", "git_sha", "data_fingerprint", "dataset", "config_hash"):
        if key in tags:
            c.set_model_version_tag(family, mv.version, key, tags[key])
    c.set_model_version_tag(family, mv.version, "run_id", run_id)
    return int(mv.version)


def _latest(family: str) -> int:
    versions = [int(v.version) for v in client().search_model_versions(f"name='{family}'")]
    if not versions:
        raise ValueError(f"no registered versions of '{family}'")
    return max(versions)


def _who() -> str:
    try:
        return os.environ.get("TAILOR_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def promote(family: str, version: int | None = None, force: bool = False, reason: str | None = None) -> Decision:
    """Move `champion` to a version when it passes the gate (or when forced, with a reason)."""
    gate = family_gate(family)
    if force and not (reason and reason.strip()):
        raise ValueError("--force needs --reason: say why the gate is overridden")
    c = client()
    version = version or _latest(family)
    try:
        mv = c.get_model_version(family, str(version))
    except MlflowException as exc:
        raise ValueError(f"'{family}' has no version {version}") from exc
    current = champion(family)
    if current and current[0] == int(version):
        raise ValueError(f"version {version} of '{family}' is already the champion")
    champ_metrics = c.get_run(current[1]).data.metrics if current else None
    rows = evaluate_gate(gate, c.get_run(mv.run_id).data.metrics, champ_metrics)
    passed = all(r.passed for r in rows)
    action = "promote" if passed or force else "refused"
    frm = current[0] if current else None
    d = Decision(
        family, action, int(version), frm, mv.run_id, passed, force and not passed, reason, _who(), _now(), rows
    )
    tags = {"gate.passed": str(passed).lower(), "gate.at": d.at, "gate.table": json.dumps([asdict(r) for r in rows])}
    if d.moved:
        c.set_registered_model_alias(family, ALIAS, str(version))
        tags |= {"promotion.at": d.at, "promotion.by": d.who, "promotion.from_version": str(d.version_from)}
        tags |= {"promotion.forced": str(d.forced).lower(), "promotion.reason": reason or ""}
    for k, v in tags.items():
        c.set_model_version_tag(family, str(version), k, v[:5000])
    _append(d)
    return d


def rollback(family: str, reason: str | None = None) -> Decision:
    """Point `champion` back at the version it served before the current one."""
    family_gate(family)
    stack: list[int] = []
    for r in alias_history(family):
        if r["action"] == "rollback" and stack:
            stack.pop()
        elif r["action"] == "promote":
            stack.append(r["version_to"])
    current = champion(family)
    if current is None:
        raise ValueError(f"'{family}' has no champion: nothing to roll back")
    if not stack or stack[-1] != current[0]:
        raise ValueError(f"alias history of '{family}' does not end at the champion v{current[0]}: set it by hand")
    if len(stack) < 2:
        raise ValueError(f"nothing to roll back to: v{current[0]} is the first champion of '{family}' in the history")
    c = client()
    target = stack[-2]
    try:
        mv = c.get_model_version(family, str(target))
    except MlflowException as exc:
        raise ValueError(f"previous champion v{target} of '{family}' no longer exists") from exc
    d = Decision(family, "rollback", target, current[0], mv.run_id, None, reason=reason, who=_who(), at=_now())
    c.set_registered_model_alias(family, ALIAS, str(target))
    c.set_model_version_tag(family, str(target), "rollback.at", d.at)
    c.set_model_version_tag(family, str(target), "rollback.from_version", str(current[0]))
    _append(d)
    return d


def _v(version: int | str | None) -> str:
    return "none" if version is None else f"v{version}"


def _fmt(v: float | None, name: str | None = None) -> str:
    return ("-" if v is None else f"{v:.4f}") + (f" ({name})" if name else "")


def print_decision(decision: Decision, file: TextIO | None = None) -> None:
    """Print the verdict and the gate table: metric, candidate, champion, best baseline, pass/fail."""
    d, out = decision, file or sys.stdout
    verdict = {"promote": "PROMOTED", "refused": "REFUSED", "rollback": "ROLLED BACK"}[d.action]
    extra = f" (forced: {d.reason})" if d.forced else ""
    print(f"{d.family}: champion {_v(d.version_from)} -> v{d.version_to}: {verdict}{extra}", file=out)
    table = [("metric", "candidate", "champion", "best baseline", "result")]
    for r in d.rows:
        result = "pass" if r.passed else f"{'forced past' if d.forced else 'FAIL'}: {r.note}"
        table.append((r.metric, _fmt(r.candidate), _fmt(r.champion), _fmt(r.best_baseline, r.baseline), result))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table if d.rows else []:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def print_models(last: int = 5, file: TextIO | None = None) -> None:
    """Registered models, their versions, the champion and the last decisions."""
    out, c = file or sys.stdout, client()
    models = c.search_registered_models()
    if not models:
        print("no registered models", file=out)
    for m in models:
        champ = m.aliases.get(ALIAS)
        print(f"{m.name}: champion {_v(champ)}", file=out)
        for v in sorted(c.search_model_versions(f"name='{m.name}'"), key=lambda v: int(v.version)):
            gate = {"true": "gate passed", "false": "gate refused"}.get(v.tags.get("gate.passed", ""), "not evaluated")
            gate += " (forced in)" if v.tags.get("promotion.forced") == "true" else ""
            at = datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).isoformat(timespec="seconds")
            mark = "*" if str(champ) == str(v.version) else " "
            print(f" {mark} v{v.version}  run {v.run_id}  {at}  {gate}", file=out)
        for r in alias_history(m.name, include_refused=True)[-last:]:
            note = f" forced: {r['reason']}" if r.get("forced") else ""
            moved = f"{_v(r['version_from'])} -> v{r['version_to']}"
            print(f"   {r['at']} {r['action']} {moved} by {r['who']}{note}", file=out)
