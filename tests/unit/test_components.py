"""A component the tests need (Chromium, PostgreSQL) that is missing fails the run when its switch is on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import components

REPO = Path(__file__).parents[2]


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(components, "FINDERS", {"browser": lambda: None, "postgres": lambda: None})
    for switch in components.SWITCHES.values():
        monkeypatch.delenv(switch, raising=False)


def outcome(component: str) -> tuple[str, str]:
    """("skip" | "fail" | "found", message) of `need(component)`; a skip is caught, so it cannot skip this test."""
    try:
        return "found", components.need(component)
    except pytest.skip.Exception as e:
        return "skip", str(e)
    except pytest.fail.Exception as e:
        return "fail", str(e)


def test_a_missing_component_skips_without_its_switch_and_fails_with_it(nothing_installed, monkeypatch) -> None:
    assert components.missing_required() == []
    kind, why = outcome("browser")
    assert kind == "skip" and "TAILOR_REQUIRE_BROWSER=1 fails instead" in why
    monkeypatch.setenv("TAILOR_REQUIRE_BROWSER", "1")
    kind, why = outcome("browser")
    assert kind == "fail" and "headless Chromium" in why and "is missing" in why and "`make browser`" in why
    assert outcome("postgres")[0] == "skip"  # the other switch is off
    monkeypatch.setenv("TAILOR_REQUIRE_POSTGRES", "true")
    assert outcome("postgres")[0] == "fail"
    assert [line.split(" is missing")[0] for line in components.missing_required()] == [
        components.WHAT["browser"],
        components.WHAT["postgres"],
    ]
    monkeypatch.setenv("TAILOR_REQUIRE_POSTGRES", "0")
    assert not components.required("postgres")


def test_an_installed_component_is_found() -> None:
    pg_ctl = components.need("postgres")  # skips when PostgreSQL is not installed (fails under its switch)
    assert pg_ctl == components.pg_ctl() and Path(pg_ctl).with_name("initdb").exists()


def test_the_run_stops_at_its_start_when_a_required_component_is_missing(tmp_path: Path) -> None:
    """What `make test` does where Chromium is missing: pytest exits 4 naming it, before running anything."""
    bin_dir = tmp_path / "bin"  # a PATH without chromium
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir), "TAILOR_REQUIRE_BROWSER": "1", "TAILOR_REQUIRE_POSTGRES": "0"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "tests/unit/test_schema.py"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == pytest.ExitCode.USAGE_ERROR, out.stdout + out.stderr
    assert "required test components are missing" in out.stderr and "make browser" in out.stderr
    assert "passed" not in out.stdout
