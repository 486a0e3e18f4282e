"""The `tailor` command: light imports for --help, clear errors and exit codes on bad input."""

from __future__ import annotations

import subprocess
import sys

from tests.unit.test_prepare import row, write_retail

HEAVY = ("torch", "lightning", "mlflow", "pandas", "pyarrow", "bentoml", "faiss", "optuna")


def tailor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.cli", *args], capture_output=True, text=True, env=env)


def test_help_imports_nothing_heavy():
    code = (
        "import sys, training.cli as c\n"
        "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_every_command_has_help():
    for cmd in ("prepare", "features", "generate", "demo"):
        res = tailor(cmd, "--help")
        assert res.returncode == 0 and "usage: tailor" in res.stdout


def test_prepare_prints_report_and_bad_input_exits_2(tailor_home, tmp_path):
    import os

    env = dict(os.environ)
    good = write_retail(tmp_path / "good.csv.gz", [row(), row(CustomerID="")])
    res = tailor("prepare", "online_retail", "--path", str(good), "--dataset", "cli", env=env)
    assert res.returncode == 0, res.stderr
    assert "missing_member_id 1" in res.stdout and "events" in res.stdout
    bad = write_retail(tmp_path / "bad.csv.gz", [row(Quantity="lots")])
    res = tailor("prepare", "online_retail", "--path", str(bad), "--dataset", "cli2", env=env)
    assert res.returncode == 2
    assert "bad.csv.gz" in res.stderr and "'Quantity'" in res.stderr and "Traceback" not in res.stderr
    res = tailor("prepare", "nosuchsource", "--path", str(bad), env=env)
    assert res.returncode == 2 and "unknown source" in res.stderr
    res = tailor("prepare", "online_retail", "--path", str(tmp_path / "missing.csv"), env=env)
    assert res.returncode == 2 and "not found" in res.stderr
    res = tailor("prepare", "online_retail", "--path", str(good), "--set", "tiers.levels=[]", env=env)
    assert res.returncode == 2 and "tier levels" in res.stderr


def test_score_names_bad_times_and_missing_models(tailor_home):
    import os

    env = dict(os.environ)
    res = tailor("score", "--dataset", "nope", "--at", "yesterday", env=env)
    assert res.returncode == 2 and "not an ISO time: 'yesterday'" in res.stderr
    res = tailor("score", "--dataset", "nope", "--version", "3", env=env)  # members use the champions
    assert res.returncode == 2 and "--version applies to" in res.stderr and "Traceback" not in res.stderr
    for flag, value in (("--k", "0"), ("--chunk", "-5"), ("--chunk", "many")):
        res = tailor("score", "--dataset", "nope", flag, value, env=env)
        assert res.returncode == 2 and f"argument {flag}: must be a whole number of at least 1" in res.stderr
