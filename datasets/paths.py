"""Where the code and its configs are found (runtime state under TAILOR_HOME is `datasets.layout.Layout`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def repo_root() -> Path:
    """The folder holding the packages: the source checkout, or site-packages when installed."""
    return Path(__file__).resolve().parent.parent


def configs_dir() -> Path:
    """The configs/ folder: package data `datasets/configs` in an installed wheel, else the checkout's configs/.

    pyproject.toml maps the checkout's top-level configs/ onto the package `datasets.configs`, so a wheel
    carries the YAML files inside `datasets`; in the checkout (an editable install, or PYTHONPATH) that
    folder does not exist and the top-level one is read.
    """
    installed = resources.files(__package__) / "configs"
    if installed.is_dir():
        return Path(str(installed))
    return repo_root() / "configs"


def config_path(name: str) -> Path:
    """Path of configs/<name>.yaml, or `name` itself when it is a path."""
    p = Path(name)
    if p.suffix in {".yaml", ".yml"} and p.exists():
        return p
    return configs_dir() / f"{name}.yaml"
