"""Short mutation check: how many small code edits in the key modules the tests catch (issue 19).

Usage (from the repository root; it never edits the checkout it is started from):

    nice -n 10 .venv/bin/python experiments/mutation_check/run.py --rev 9bb6664 --label before
    nice -n 10 .venv/bin/python experiments/mutation_check/run.py --rev . --label after
    ... --modules offers metrics   (a subset)   --sample 30   (a random 30 mutants per module, for a quick look)

`--rev` is a git revision of this repository (exported with `git archive`) or a folder (copied without .git,
.venv and __pycache__): the code and the tests of that revision are copied into a scratch folder and every
mutant is applied there, one at a time. The mutants are made by this script (AST operator swaps, see
`mutants`), not by mutmut or cosmic-ray: those run a whole suite per mutant or need per-module config files,
and this one keeps the test selection explicit (SELECTION below).

For each module: the selected tests run once unmutated, traced, to learn which test executes which line and how
long it takes; tests that fail unmutated are left out (and reported). Then each mutant runs only the selected
tests that execute its line (fastest first, `-x`), in a child forked from a process that has already imported
the heavy libraries (numpy, pandas, torch, lightning, mlflow), so a mutant costs about a second plus its tests.
A mutant is killed when a test fails (or the tests cannot even be collected), survived when they all pass or when
no selected test executes its line ("not run"), timeout when the tests take more than 3x their unmutated time
+ 20 s. Share killed = (killed + timeout) / mutants.

Writes <out>/<label>/summary.md (the table), mutants.json (every mutant and its outcome) and survivors.md.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# Target module -> its files. training/uplift/ is every module of the package.
TARGETS: dict[str, list[str]] = {
    "metrics": ["training/metrics.py"],
    "prepare": ["datasets/prepare.py"],
    "offers": ["serving/offers.py"],
    "uplift": ["training/uplift/*.py"],
}

# The tests that exercise each module: unit tests and the integration tests that finish in seconds. A path that
# the revision does not have is skipped (and listed in the summary). Left out on purpose, for time: the uplift
# training test on planted segments (~100 s per run) and tests/integration/test_serving_state.py (a 40 s module
# fixture that trains three models); the serving tests over HTTP run the code in another process (no coverage).
SELECTION: dict[str, list[str]] = {
    "metrics": [
        "tests/unit/test_metrics.py",
        "tests/unit/test_baselines.py",
        "tests/unit/test_metrics_mutants.py",
    ],
    "prepare": [
        "tests/unit/test_prepare.py",
        "tests/unit/test_erasure.py",
        "tests/unit/test_sources.py",
        "tests/unit/test_canonical.py",
        "tests/unit/test_synthetic.py",
        "tests/unit/test_prepare_rules.py",
    ],
    "offers": [
        "tests/unit/test_offers_batch.py",
        "tests/unit/test_configs.py",
        "tests/unit/test_offers_rules.py",
    ],
    "uplift": [
        "tests/unit/test_uplift_metrics.py",
        "tests/unit/test_uplift_model.py",
        "tests/integration/test_uplift_train.py",
        "tests/unit/test_configs.py",
        "tests/unit/test_uplift_propensity.py",
        "tests/unit/test_uplift_data.py",
        "tests/unit/test_uplift_config.py",
        "tests/integration/test_uplift_job_logs.py",
    ],
}
DESELECT = ["tests/integration/test_uplift_train.py::test_planted_uplift_is_ranked_first"]

# Imported once by the parent so that every forked child starts with them loaded (never the project's own modules).
PRELOAD = [
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "scipy",
    "scipy.stats",
    "sklearn",
    "sklearn.metrics",
    "torch",
    "lightning",
    "lightning.pytorch",
    "mlflow",
    "mlflow.pyfunc",
    "pydantic",
    "yaml",
    "tqdm",
    "tqdm.auto",
    "hypothesis",
    "jinja2",
    "matplotlib",
    "matplotlib.pyplot",
    "implicit",
    "faiss",
    "optuna",
    "pytest",
    "_pytest.pytester",
]
PROJECT = ("datasets", "training", "serving", "tailor", "tests")


# ---------------------------------------------------------------------------------------------------- mutants


@dataclass
class Mutant:
    file: str
    line: int
    col: int
    op: str
    original: str
    mutated: str
    start: tuple[int, int]  # (line, byte column) of the replaced span in the original file
    end: tuple[int, int]
    text: str  # replacement text for the span
    cover: list[int]  # lines whose execution means the mutant ran
    status: str = ""
    killed_by: str = ""
    seconds: float = 0.0
    tests_run: int = 0

    @property
    def key(self) -> str:
        return f"{self.file}:{self.line}:{self.col}:{self.op}:{self.mutated}"


BINOP_SWAP = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitOr,
}
CMP_SWAP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
AUG_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr, ast.Mult: ast.Div}
LOG_NAMES = {"log", "logger", "logging", "warnings"}  # calls on these are messages, not behaviour
COSMETIC_KWARGS = {"desc", "unit", "leave", "disable", "help", "stacklevel"}  # tqdm, argparse, warnings
# Drawing calls (matplotlib): what they change is a picture, which no test can read.
DRAWING = {"Figure", "plot", "barh", "set", "set_yticks", "legend", "grid", "tight_layout", "add_subplot", "subplots"}


def _is_docstring(node: ast.AST, parent: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and parent is not None
        and bool(getattr(parent, "body", None))
        and parent.body[0] is node
    )


def _is_drawing(node: ast.AST) -> bool:
    f = node.func if isinstance(node, ast.Call) else None
    return (isinstance(f, ast.Attribute) and f.attr in DRAWING) or (isinstance(f, ast.Name) and f.id in DRAWING)


def _is_log_call(node: ast.AST) -> bool:
    f = node.func if isinstance(node, ast.Call) else None
    if isinstance(f, ast.Attribute):
        base = f.value
        while isinstance(base, ast.Attribute):
            base = base.value
        return isinstance(base, ast.Name) and base.id in LOG_NAMES
    return isinstance(f, ast.Name) and f.id == "print"


class _Collector:
    """Walks one module and lists its mutants (spans of the original text and their replacement)."""

    def __init__(self, rel: str, source: str):
        self.rel, self.source = rel, source
        self.lines = source.encode().splitlines(keepends=True)
        self.tree = ast.parse(source)
        self.out: list[Mutant] = []

    def run(self) -> list[Mutant]:
        self._visit(self.tree, None, None, skip=False)
        return self.out

    def seg(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source, node) or ast.unparse(node)

    def add(self, node: ast.AST, op: str, new: ast.AST | str, stmt: ast.AST | None, paren: bool = True) -> None:
        shown = new if isinstance(new, str) else ast.unparse(new)
        text = f"({shown})" if paren and not isinstance(new, str) else shown
        cover = set(range(node.lineno, node.end_lineno + 1))
        if stmt is not None:
            cover.add(stmt.lineno)
        self.out.append(
            Mutant(
                self.rel,
                node.lineno,
                node.col_offset,
                op,
                self.seg(node),
                shown,
                (node.lineno, node.col_offset),
                (node.end_lineno, node.end_col_offset),
                text,
                sorted(cover),
            )
        )

    def _visit(self, node: ast.AST, parent: ast.AST | None, stmt: ast.AST | None, skip: bool) -> None:
        if isinstance(node, ast.stmt):
            stmt = node
        if isinstance(node, ast.ImportFrom | ast.Import | ast.JoinedStr) or _is_docstring(node, parent):
            return
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Raise):
            skip = True  # error messages: the exception type and its condition are mutated elsewhere
        if isinstance(node, ast.Call) and (_is_log_call(node) or _is_drawing(node)):
            return  # messages and pictures: a log line or a plot's label changed or removed is no behaviour change
        if not skip:
            self._mutate(node, parent, stmt)
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment", "decorator_list"):
                continue
            if isinstance(node, ast.keyword) and node.arg in COSMETIC_KWARGS:
                continue
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, ast.AST):
                    self._visit(child, node, stmt, skip)

    def _mutate(self, node: ast.AST, parent: ast.AST | None, stmt: ast.AST | None) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAP:
            self.add(node, "binop", ast.BinOp(node.left, BINOP_SWAP[type(node.op)](), node.right), stmt)
            if isinstance(node.op, ast.Sub):
                self.add(node, "drop_term", node.left, stmt)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Not | ast.Invert):
            self.add(node, "unary", node.operand, stmt)
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in CMP_SWAP:
                    ops = list(node.ops)
                    ops[i] = CMP_SWAP[type(op)]()
                    self.add(node, "compare", ast.Compare(node.left, ops, node.comparators), stmt)
        elif isinstance(node, ast.BoolOp):
            self.add(
                node, "boolop", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values), stmt
            )
        elif isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                self.add(node, "const", ast.Constant(not v), stmt)
            elif isinstance(v, int | float) and not isinstance(v, complex):
                self.add(node, "const", ast.Constant(v + 1), stmt)
            elif isinstance(v, str) and not (isinstance(parent, ast.Expr)):
                self.add(node, "const", ast.Constant(f"XX{v}XX"), stmt)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
            other = "max" if node.func.id == "min" else "min"
            self.add(node.func, "minmax", other, stmt, paren=False)
        elif isinstance(node, ast.AugAssign) and type(node.op) in AUG_SWAP:
            new = ast.AugAssign(node.target, AUG_SWAP[type(node.op)](), node.value)
            self.add(node, "augassign", ast.unparse(new), stmt, paren=False)
        if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert) and not isinstance(
            node.test, ast.Compare | ast.BoolOp | ast.UnaryOp
        ):
            self.add(node.test, "negate", f"(not {self.seg(node.test)})", stmt, paren=False)
        if isinstance(node, ast.comprehension):
            for cond in node.ifs:
                if not isinstance(cond, ast.Compare | ast.BoolOp | ast.UnaryOp):
                    self.add(cond, "negate", f"(not {self.seg(cond)})", stmt, paren=False)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and not _is_log_call(node.value):
            if _is_drawing(node.value):
                return
            self.add(node, "drop_call", "pass", node, paren=False)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body[1:] if _is_docstring(node.body[0], node) else node.body
            if not body or body[0].lineno == node.lineno:
                return
            if all(isinstance(s, ast.Expr | ast.Pass) for s in body):
                return  # a stub
            first = body[0]
            indent = " " * first.col_offset
            self.out.append(
                Mutant(
                    self.rel,
                    first.lineno,
                    first.col_offset,
                    "early_return",
                    f"def {node.name}: ...",
                    f"def {node.name}: return None",
                    (first.lineno, 0),
                    (first.lineno, 0),
                    f"{indent}return None\n",
                    [first.lineno],
                )
            )


def apply(source: str, m: Mutant) -> str:
    """The module's text with one mutant applied (byte columns, as ast reports them)."""
    lines = source.encode().splitlines(keepends=True)
    (l0, c0), (l1, c1) = m.start, m.end
    before = b"".join(lines[: l0 - 1]) + lines[l0 - 1][:c0]
    after = lines[l1 - 1][c1:] + b"".join(lines[l1:])
    return (before + m.text.encode() + after).decode()


def mutants(root: Path, rel: str) -> list[Mutant]:
    """Every mutant of one file whose mutated text parses and differs from the original."""
    source = (root / rel).read_text()
    base = ast.dump(ast.parse(source))
    out = []
    for m in _Collector(rel, source).run():
        try:
            mutated = ast.dump(ast.parse(apply(source, m)))
        except SyntaxError:
            continue
        if mutated != base:
            out.append(m)
    return out


# ------------------------------------------------------------------------------------------------ test runs


class Tracer:
    """pytest plugin: per test, the lines of the target files it executes (its fixtures' lines included).

    Lines run by module or class bodies (imports) count for every test: whichever test imports a module first.
    Writes its result to `path` when the session ends (in the child, before it exits).
    """

    def __init__(self, files: list[str], path: Path):
        self.files, self.path = {str(Path(f).resolve()) for f in files}, path
        self.stack = ["<import>"]
        self.lines: dict[str, set[tuple[str, int]]] = {"<import>": set()}
        self.fixtures: dict[str, set[str]] = {}
        self.duration: dict[str, float] = {}
        self.failed: list[str] = []

    def _record(self, frame) -> None:
        bucket = self.stack[-1] if frame.f_code.co_flags & inspect.CO_OPTIMIZED else "<import>"
        self.lines.setdefault(bucket, set()).add((frame.f_code.co_filename, frame.f_lineno))

    def _local(self, frame, event, arg):
        if event == "line":
            self._record(frame)
        return self._local

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename in self.files:
            self._record(frame)
            return self._local
        return None

    def pytest_sessionstart(self, session):
        sys.settrace(self._global)
        threading.settrace(self._global)

    def pytest_sessionfinish(self, session):
        sys.settrace(None)
        threading.settrace(None)
        self.path.write_text(json.dumps(self.result(Path.cwd())))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.stack.append(item.nodeid)
        self.fixtures[item.nodeid] = set(item.fixturenames)
        t = time.perf_counter()
        try:
            return (yield)
        finally:
            self.duration[item.nodeid] = time.perf_counter() - t
            self.stack.pop()

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        self.stack.append(f"<fixture>{fixturedef.argname}")
        try:
            return (yield)
        finally:
            self.stack.pop()

    def pytest_runtest_logreport(self, report):
        if report.failed and report.nodeid not in self.failed:
            self.failed.append(report.nodeid)

    def result(self, root: Path) -> dict:
        def rel(lines):
            return sorted({f"{Path(f).relative_to(root)}:{n}" for f, n in lines})

        tests = {}
        for nodeid, fixtures in self.fixtures.items():
            lines = set(self.lines.get(nodeid, ()))
            for fx in fixtures:
                lines |= self.lines.get(f"<fixture>{fx}", set())
            tests[nodeid] = {"lines": rel(lines), "seconds": self.duration.get(nodeid, 0.0)}
        return {"tests": tests, "import": rel(self.lines["<import>"]), "failed": self.failed}


class FirstFailure:
    """pytest plugin: the first test that failed (the one that killed the mutant)."""

    def __init__(self, path: str):
        self.path = path

    def pytest_runtest_logreport(self, report):
        if report.failed and not os.path.exists(self.path):
            Path(self.path).write_text(report.nodeid)

    def pytest_collectreport(self, report):
        if report.failed and not os.path.exists(self.path):
            Path(self.path).write_text(f"(collection) {report.nodeid}")


def forked(args: list[str], plugins: list, timeout: float, log: str = os.devnull) -> tuple[int | None, float]:
    """pytest.main(args) in a forked child of its own process group; (exit code, or None on timeout; seconds)."""
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child
        rc = 3
        try:
            os.setpgid(0, 0)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            rc = int(pytest.main(args, plugins=plugins))
        except BaseException:  # the child must always leave through os._exit
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc)
    deadline = t + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # leftovers of the child (servers, workers)
            return rc, time.perf_counter() - t
        if time.perf_counter() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None, time.perf_counter() - t
        time.sleep(0.02)


PYTEST_ARGS = ["-q", "-p", "no:xdist", "-p", "no:cacheprovider", "-p", "no:randomly", "-W", "ignore"]


def _covered(m: Mutant, tests: dict, imported: set[str], kills: Counter) -> list[str]:
    """The selected tests that execute the mutant's line; the ones that killed most mutants so far first, then the
    fastest (module-level code runs at import: every test)."""
    lines = {f"{m.file}:{n}" for n in m.cover}
    hit = list(tests) if lines & imported else [t for t, info in tests.items() if lines & info["line_set"]]
    return sorted(hit, key=lambda t: (-kills[t], tests[t]["seconds"]))


def check_module(
    name: str, root: Path, out: Path, sample: int | None, seed: int, resume: bool = False, coverage_only: bool = False
) -> dict:
    pytest_args = [*PYTEST_ARGS, f"--basetemp={root / '.pytest-tmp'}"]  # emptied by each run, shared by none
    files = sorted({str(p.relative_to(root)) for pat in TARGETS[name] for p in root.glob(pat)})
    files = [f for f in files if not f.endswith("__init__.py") or (root / f).read_text().strip()]
    selection = [t for t in SELECTION[name] if (root / t.split("::")[0]).exists()]
    missing = [t for t in SELECTION[name] if t not in selection]
    deselect = [a for d in DESELECT if d.split("::")[0] in selection for a in ("--deselect", d)]
    print(f"\n== {name}: {', '.join(files)}\n   tests: {', '.join(selection)}", flush=True)
    started = time.perf_counter()
    # 1. the unmutated run, traced
    tracer = Tracer([str(root / f) for f in files], out / f"{name}.trace.json")
    rc, secs = forked([*pytest_args, *selection, *deselect], [tracer], timeout=3600, log=str(out / f"{name}.log"))
    trace = json.loads((out / f"{name}.trace.json").read_text())
    tests = {t: v for t, v in trace["tests"].items() if t not in trace["failed"]}
    for info in tests.values():
        info["line_set"] = set(info["lines"])
    imported = set(trace["import"])
    print(f"   unmutated run: {len(trace['tests'])} tests, {len(trace['failed'])} failing, {secs:.0f} s (rc {rc})")
    # 2. the mutants
    ms = [m for f in files for m in mutants(root, f)]
    if sample and len(ms) > sample:
        ms = sorted(random.Random(seed).sample(ms, sample), key=lambda m: (m.file, m.line, m.col))
    originals = {f: (root / f).read_text() for f in files}
    flag = out / "first_failure.txt"
    kills: Counter = Counter()
    progress = out / f"{name}.jsonl"  # one line per mutant done: --resume goes on from there
    done = {}
    if resume and progress.exists():
        done = {d["key"]: d for d in map(json.loads, progress.read_text().splitlines())}
    elif progress.exists():
        progress.unlink()
    try:
        for i, m in enumerate(ms, 1):
            if m.key in done:
                for attr in ("status", "killed_by", "seconds", "tests_run"):
                    setattr(m, attr, done[m.key][attr])
                kills[m.killed_by] += 1
                continue
            run = _covered(m, tests, imported, kills)
            m.tests_run = len(run)
            if not run:
                m.status = "not run"
            elif coverage_only:
                m.status = "survived"  # not tried
            else:
                (root / m.file).write_text(apply(originals[m.file], m))
                flag.unlink(missing_ok=True)
                budget = 3 * sum(tests[t]["seconds"] for t in run) + 20
                rc, m.seconds = forked([*pytest_args, "-x", *run], [FirstFailure(str(flag))], timeout=budget)
                (root / m.file).write_text(originals[m.file])
                m.killed_by = flag.read_text() if flag.exists() else ""
                kills[m.killed_by] += 1
                m.status = "timeout" if rc is None else "survived" if rc == 0 else "killed"
            with progress.open("a") as f:
                f.write(json.dumps(asdict(m) | {"key": m.key}) + "\n")
            if i % 25 == 0 or i == len(ms):
                print(f"   {i}/{len(ms)} mutants, {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        for f, text in originals.items():
            (root / f).write_text(text)
    counts = {s: sum(m.status == s for m in ms) for s in ("killed", "survived", "not run", "timeout")}
    return {
        "module": name,
        "files": files,
        "tests": selection,
        "deselected": deselect[1::2],
        "missing_tests": missing,
        "failing_unmutated": trace["failed"],
        "n_tests": len(tests),
        "mutants": len(ms),
        **counts,
        "share_killed": (counts["killed"] + counts["timeout"]) / max(len(ms), 1),
        "seconds": time.perf_counter() - started,
        "list": [asdict(m) | {"key": m.key} for m in ms],
    }


# --------------------------------------------------------------------------------------------------- scratch


def materialize(rev: str, dest: Path) -> str:
    """Copy a revision (git rev of REPO, or a folder) into dest; returns what was copied, for the report."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    src = Path(rev)
    skip = {".git", ".venv", "__pycache__", "var", "build", "mlruns", ".hypothesis", "node_modules"}
    if src.is_dir():
        src = src.resolve()
        with tempfile.TemporaryFile() as buf:
            with tarfile.open(fileobj=buf, mode="w") as tar:
                tar.add(src, arcname=".", filter=lambda ti: None if Path(ti.name).name in skip else ti)
            buf.seek(0)
            with tarfile.open(fileobj=buf) as tar:
                tar.extractall(dest, filter="data")
        what = f"working tree {src}"
        with contextlib.suppress(subprocess.CalledProcessError):
            head = subprocess.run(
                ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
            what += f" (HEAD {head} plus uncommitted changes)"
        return what
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", sha], capture_output=True, check=True).stdout
    with tempfile.TemporaryFile() as buf:
        buf.write(archive)
        buf.seek(0)
        with tarfile.open(fileobj=buf) as tar:
            tar.extractall(dest, filter="data")
    return f"git revision {sha}"


def summary_table(results: list[dict]) -> str:
    head = "| module | mutants | killed | survived | of which not run | timeout | share killed | tests | time |\n"
    head += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    rows = []
    for r in results:
        survived = r["survived"] + r["not run"]
        rows.append(
            f"| {r['module']} | {r['mutants']} | {r['killed']} | {survived} | {r['not run']} | {r['timeout']} | "
            f"{100 * r['share_killed']:.1f}% | {r['n_tests']} | {r['seconds'] / 60:.1f} min |"
        )
    return head + "\n".join(rows) + "\n"


def survivors_md(results: list[dict]) -> str:
    out = []
    for r in results:
        left = [m for m in r["list"] if m["status"] in ("survived", "not run")]
        out.append(f"## {r['module']}: {len(left)} surviving\n")
        for m in left:
            tag = " (no selected test runs this line)" if m["status"] == "not run" else ""
            out.append(f"- `{m['file']}:{m['line']}` {m['op']}: `{m['original']}` -> `{m['mutated']}`{tag}")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default=".", help="git revision of this repository, or a folder (default: .)")
    ap.add_argument("--label", help="name of the results folder (default: from --rev)")
    ap.add_argument("--modules", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    ap.add_argument("--scratch", type=Path, help="where the revision is copied (default: a new temporary folder)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--sample", type=int, help="at most this many mutants per module, drawn at random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="only list the mutants (no tests run)")
    ap.add_argument("--coverage-only", action="store_true", help="only find the mutants no selected test executes")
    ap.add_argument("--resume", action="store_true", help="keep the outcomes of an interrupted run's mutants")
    args = ap.parse_args(argv)
    label = args.label or ("worktree" if Path(args.rev).is_dir() else args.rev)
    out = (args.out / label).resolve()
    out.mkdir(parents=True, exist_ok=True)
    scratch = (args.scratch or Path(tempfile.mkdtemp(prefix="mutation-check-"))).resolve()
    if scratch == REPO or REPO in scratch.parents or (scratch / ".git").exists():
        sys.exit(f"refusing to mutate {scratch}: give a scratch folder outside the repository")
    copied = materialize(args.rev, scratch)
    print(f"{copied} -> {scratch}", flush=True)
    if args.list:
        for name in args.modules:
            files = sorted(str(p.relative_to(scratch)) for pat in TARGETS[name] for p in scratch.glob(pat))
            ms = [m for f in files for m in mutants(scratch, f)]
            print(f"{name}: {len(ms)} mutants")
            for m in ms:
                print(f"  {m.file}:{m.line} {m.op}: {m.original!r} -> {m.mutated!r}")
        return 0
    # The scratch copy shadows the installed (editable) package, here and in any subprocess a test starts.
    os.chdir(scratch)
    sys.path.insert(0, str(scratch))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(scratch), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc must never stand in for a mutated file
    sys.dont_write_bytecode = True
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            __import__(name)
    with contextlib.suppress(ImportError):  # property tests: the same examples every run, no shrinking
        from hypothesis import Phase, settings

        settings.register_profile(
            "mutation-check", derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate]
        )
        settings.load_profile("mutation-check")
    leaked = [m for m in sys.modules if m.split(".")[0] in PROJECT]
    if leaked:
        sys.exit(f"a preloaded library imported the project's own modules ({leaked[:5]}): they would not be mutated")
    started = time.perf_counter()
    results = [
        check_module(name, scratch, out, args.sample, args.seed, args.resume, args.coverage_only)
        for name in args.modules
    ]
    table = summary_table(results)
    lines = [f"# Mutation check: {label}", "", f"Code and tests: {copied}.", ""]
    lines += [f"Total time {(time.perf_counter() - started) / 60:.1f} min on {os.cpu_count()} CPUs.", "", table]
    for r in results:
        lines.append(f"- {r['module']}: {', '.join(r['files'])}; tests: {', '.join(r['tests'])}")
        if r["deselected"]:
            lines.append(f"  - deselected: {', '.join(r['deselected'])}")
        if r["missing_tests"]:
            lines.append(f"  - not in this revision: {', '.join(r['missing_tests'])}")
        if r["failing_unmutated"]:
            lines.append(f"  - failing unmutated (left out): {', '.join(r['failing_unmutated'])}")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "survivors.md").write_text(survivors_md(results))
    (out / "mutants.json").write_text(json.dumps(results, indent=1))
    print("\n" + table + f"\nresults in {out}")
    if not args.scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
