"""Shared fixtures: an isolated TAILOR_HOME per test, the prepare config, fixture paths."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


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
