"""Fixtures shared by the integration tests: prepared homes of planted data."""

from __future__ import annotations

import pytest

from tests.integration.planted_tastes import planted


def _prepared(home, raw, dataset: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAILOR_HOME", str(home))
        mp.setenv("TAILOR_PSEUDONYM_KEY", "k")
        from datasets.config import load
        from datasets.prepare import prepare
        from datasets.settings import PrepareConfig

        prepare("canonical", raw, load(PrepareConfig, "prepare"), dataset=dataset)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A home (its path) holding `planted`: each member buys from one favourite category."""
    home = tmp_path_factory.mktemp("home")
    _prepared(home, planted(home / "raw"), "planted")
    return str(home)


@pytest.fixture(scope="module")
def styled(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A home holding `styled`: planted tastes with a favourite style (10 of the category's 40 items) per member."""
    home = tmp_path_factory.mktemp("styled")
    _prepared(home, planted(home / "raw", per_cat=40, styles=4), "styled")
    return str(home)
