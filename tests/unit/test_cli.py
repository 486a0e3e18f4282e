"""The `tailor` command: light imports for --help, clear errors and exit codes on bad input."""

from __future__ import annotations

import subprocess
import sys

from tests.retail import row, write_retail

HEAVY = ("torch", "lightning", "mlflow", "pandas", "pyarrow", "bentoml", "faiss", "optuna")


def tailor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tailor", *args], capture_output=True, text=True, env=env)


def test_help_imports_nothing_heavy():
    code = (
        "import sys, tailor.cli as c\n"
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


def test_one_command_tree_and_errors_print_once(tailor_home):
    """serve, keys and audit are ordinary subcommands; a bad argument or bad input is one line and exit code 2."""
    import os

    env = dict(os.environ)
    for cmd in (("serve",), ("keys",), ("keys", "create"), ("audit",), ("score",), ("sweep",)):
        res = tailor(*cmd, "--help")
        assert res.returncode == 0 and f"usage: tailor {' '.join(cmd)}" in res.stdout, cmd
    res = tailor("train", "nosuchfamily", "--dataset", "x", env=env)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "invalid choice: 'nosuchfamily'" in res.stderr
    res = tailor("keys", "revoke", "nobody", env=env)
    assert res.returncode == 2 and res.stderr == "error: no live key named 'nobody'\n"
    res = tailor("train", "churn", "--dataset", "nope", env=env)  # bad input deep in a job: one line, no log echo
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
    assert res.stderr.startswith("error: no prepared dataset at") and "Traceback" not in res.stderr


def test_erase_counts_on_a_dry_run_and_rewrites_with_apply(tailor_home, tmp_path):
    import os

    import pandas as pd

    from datasets.pseudonym import load_key, pseudonymize_one
    from datasets.store import Dataset
    from serving.events import EventStore

    env = dict(os.environ)
    raw = write_retail(tmp_path / "r.csv.gz", [row(), row(CustomerID="12345", InvoiceNo="536366")])
    assert tailor("prepare", "online_retail", "--path", str(raw), "--dataset", "er", env=env).returncode == 0
    gone = pseudonymize_one("12345", load_key(), Dataset("er").manifest.get("id_namespace", ""))
    EventStore(tailor_home).erase(gone)  # what the service's /erase writes
    events = tailor_home / "data" / "er" / "events"
    before = {p.name: p.read_bytes() for p in events.glob("*.parquet")}
    dry = tailor("erase", "--dataset", "er", env=env)
    assert dry.returncode == 0 and "would remove 2 rows" in dry.stdout, dry.stdout
    assert "members.parquet" in dry.stdout and "--apply" in dry.stdout
    assert {p.name: p.read_bytes() for p in events.glob("*.parquet")} == before  # a dry run writes nothing
    done = tailor("erase", "--dataset", "er", "--apply", env=env)
    assert done.returncode == 0 and "removed 2 rows" in done.stdout, done.stdout
    left = pd.concat([pd.read_parquet(p) for p in events.glob("*.parquet")])
    assert gone not in set(left["member_id"]) and len(left) == 1
    assert gone not in set(pd.read_parquet(tailor_home / "data" / "er" / "members.parquet")["member_id"])
    missing = tailor("erase", "--dataset", "nope", env=env)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "nope" in missing.stderr
