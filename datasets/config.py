"""YAML configs from configs/, overridable from the command line (`--set a.b=value`).

Every config model derives from `Strict`: a key the model does not know is an error, so a misspelt
key fails at load instead of being ignored. A setting lives in one place: when its YAML sets a key,
the model gives that field no default (tests/unit/test_configs.py holds every model to this).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict

from datasets.paths import config_path

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of the config models: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


def load_yaml(name: str | Path) -> dict[str, Any]:
    """Read configs/<name>.yaml (or a path) into a dict."""
    path = config_path(str(name))
    if not path.exists():
        raise FileNotFoundError(f"config not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a mapping at the top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides; values are parsed as YAML (numbers, lists, booleans)."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}' must look like key.path=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def load(model: type[M], name: str | Path, overrides: Iterable[str] = ()) -> M:
    """Load, override and validate a config in one step."""
    return model.model_validate(apply_overrides(load_yaml(name), overrides))
