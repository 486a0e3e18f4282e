"""Where runtime state lives: everything under one folder, TAILOR_HOME (default ./var)."""

from __future__ import annotations

import os
from pathlib import Path


def tailor_home() -> Path:
    """The runtime folder; created on first use."""
    home = Path(os.environ.get("TAILOR_HOME", "var")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def data_dir(dataset: str) -> Path:
    """Folder of one prepared dataset: TAILOR_HOME/data/<dataset>."""
    return tailor_home() / "data" / dataset


def repo_root() -> Path:
    """The source checkout (configs/ lives here)."""
    return Path(__file__).resolve().parent.parent


def config_path(name: str) -> Path:
    """Path of configs/<name>.yaml, or `name` itself when it is a path."""
    p = Path(name)
    if p.suffix in {".yaml", ".yml"} and p.exists():
        return p
    return repo_root() / "configs" / f"{name}.yaml"
