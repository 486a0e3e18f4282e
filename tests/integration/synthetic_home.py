"""A prepared synthetic dataset for integration tests: `tailor generate` then `tailor prepare canonical`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def prepare_synthetic(home: Path, members: int, seed: int = 3, events_per_member: int = 30,
                      overrides: Sequence[str] = (), dataset: str = "syn") -> None:  # fmt: skip
    """Generate `members` synthetic members under `home/raw` and prepare them as `dataset` (TAILOR_HOME = home)."""
    from datasets.config import load
    from datasets.prepare import prepare
    from datasets.settings import PrepareConfig
    from datasets.synthetic import run_generate

    run_generate(members, seed=seed, out=home / "raw", overrides=[f"events_per_member={events_per_member}", *overrides])
    prepare("canonical", home / "raw", load(PrepareConfig, "prepare"), dataset=dataset)
