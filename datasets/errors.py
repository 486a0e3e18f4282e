"""Errors that name exactly what is wrong in the input: file, column, rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class DataValidationError(ValueError):
    """Input breaks the contract; nothing is written when this is raised."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        rows: Sequence[int] = (),
        values: Sequence[object] = (),
    ) -> None:
        self.file, self.column = file, column
        self.rows, self.values = list(rows)[:5], list(values)[:5]
        where = []
        if file:
            where.append(f"file {file}")
        if column:
            where.append(f"column '{column}'")
        if self.rows:
            shown = ", ".join(
                f"row {r} ({v!r})" if i < len(self.values) else f"row {r}"
                for i, (r, v) in enumerate(zip(self.rows, [*self.values, *[None] * 5], strict=False))
            )
            where.append(f"first bad rows: {shown}")
        super().__init__(f"{message}" + (f" [{'; '.join(where)}]" if where else ""))


def check_rows(bad, message: str, *, file: str | None = None, column: str | None = None, values=None) -> None:
    """Raise DataValidationError naming the first rows where `bad` (a boolean Series/array) holds."""
    mask = np.asarray(bad, dtype=bool)
    if mask.any():
        rows = np.flatnonzero(mask)
        shown = values.iloc[rows[:5]].tolist() if values is not None else []
        raise DataValidationError(message, file=file, column=column, rows=rows, values=shown)
