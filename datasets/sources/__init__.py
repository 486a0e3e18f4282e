"""Source adapters: each maps a raw dataset to the canonical tables (see base.RawTables)."""

from __future__ import annotations

import importlib

SOURCES = ("online_retail", "completejourney", "hillstrom", "ecommerce_churn", "yoochoose", "diginetica", "canonical")


def get(name: str):
    """The adapter module for a source name; each exposes `read(path, cfg) -> RawTables`."""
    if name not in SOURCES:
        raise ValueError(f"unknown source '{name}'; choose one of {', '.join(SOURCES)}")
    return importlib.import_module(f"datasets.sources.{name}")
