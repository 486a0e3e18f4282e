"""Result tables as GitHub markdown (benchmarks write these into their results files)."""

from __future__ import annotations

import pandas as pd


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub markdown table: floats to 4 places (fit seconds to 1), `|` in cells escaped."""

    def cell(col: str, v: object) -> str:
        if isinstance(v, float):
            return f"{v:.1f}" if col == "fit_s" else f"{v:.4f}"
        return str(v).replace("|", "/")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(c, r[c]) for c in frame.columns) + " |" for _, r in frame.iterrows()]
    return "\n".join(lines)
