"""Online Retail rows for data-layer tests: a clean line, changed field by field, written as the gzipped CSV."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
CLEAN = ["536365", "85123A", "WHITE HANGING HEART", "6", "2011-01-05 08:26:00", "2.55", "17850", "United Kingdom"]


def write_retail(path: Path, rows: list[list[str]]) -> Path:
    """An Online Retail CSV (gzipped like the original)."""
    with gzip.open(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def row(**changes: str) -> list[str]:
    """The clean line with some fields changed."""
    base = dict(zip(HEADER, CLEAN, strict=True))
    base.update(changes)
    return [base[h] for h in HEADER]
