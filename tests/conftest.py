"""Shared fixtures: an isolated TAILOR_HOME per test, the prepare config, fixture paths.

At the session's start, a component that a switch requires (TAILOR_REQUIRE_BROWSER, TAILOR_REQUIRE_POSTGRES;
`make test` sets both) but that is not installed stops the run with one clear error (tests/components.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_sessionstart(session: pytest.Session) -> None:
    from tests.components import missing_required

    if problems := missing_required():
        raise pytest.UsageError("required test components are missing:\n  " + "\n  ".join(problems))


@pytest.fixture
def tailor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TAILOR_HOME with a fixed pseudonymization key."""
    home = tmp_path / "home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.setenv("TAILOR_PSEUDONYM_KEY", "test-key")
    return home


@pytest.fixture
def prepare_cfg():
    from datasets.config import load
    from datasets.settings import PrepareConfig

    return load(PrepareConfig, "prepare")
