"""What a `tailor` job prints: our own lines, a line per stage or epoch with its figures, and no third-party noise.

Tailor's loggers write `HH:MM:SS LEVEL name: message` lines to stderr through one handler. Third-party
libraries (Lightning, MLflow, alembic, Optuna, BentoML, ...) speak only when they warn, and the deprecation
warnings and product tips they raise are dropped wherever the library was imported from: the rules live on
our handler and on `warnings.showwarning`, which a library's own `logging` or `warnings` set-up at import
does not replace. Progress bars are for terminals only (tqdm is switched off in a log; the trainer factory
writes a line per epoch instead of Lightning's bar).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import TextIO

OURS = ("tailor", "datasets", "training", "serving", "__main__")
# Third-party log lines (warnings included) that say nothing to a Tailor user.
QUIET_LOGS = re.compile(
    "|".join(
        (
            r"Passing a Python object as `python_model`",  # mlflow: our pyfuncs are saved on purpose this way
            r"litlogger",
        )
    )
)
# Warnings that say nothing to a Tailor user: deprecations inside libraries, tips for other products,
# Lightning's hints about choices made on purpose (small epochs, no validation in the refit, CPU).
QUIET_WARNINGS = (
    r".*_pytree.*",
    r".*litlogger.*",
    r".*`eval_set`.*",
    r".*does not have many workers.*",
    r".*LeafSpec.*",
    r".*GPU available but not used.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*predict_proba.*",
    r".*smaller than the logging interval.*",
    r".*`validation_step` but have no `val_dataloader`.*",
)
_QUIET_WARNINGS = re.compile("|".join(QUIET_WARNINGS), re.DOTALL)


class _Console(logging.Filter):
    """Our lines at the chosen level; third-party lines only from WARNING up (all of them at DEBUG), minus chatter."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] in OURS:
            return True
        if record.levelno < logging.WARNING and not self.debug:
            return False
        return not QUIET_LOGS.search(record.getMessage())


_ROOT = Path(__file__).resolve().parents[1]  # the checkout, or site-packages of an installed wheel
_OUR_DIRS = tuple(str(_ROOT / name) + os.sep for name in OURS)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` minus third-party deprecations and known chatter (what passed the filters)."""
    if issubclass(category, DeprecationWarning | PendingDeprecationWarning):
        return
    if issubclass(category, FutureWarning) and not filename.startswith(_OUR_DIRS):
        return
    if _QUIET_WARNINGS.match(str(message)):
        return
    _STDLIB_SHOW(message, category, filename, lineno, file, line)


_STDLIB_SHOW = warnings.showwarning


def setup_output(level: str = "INFO") -> None:
    """Configure logging and warnings for a `tailor` command (idempotent)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(_Console(debug=level.upper() == "DEBUG"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # MLflow gives its loggers their own handler at import unless told not to: they reach ours instead
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported: not yet, by `tailor` commands
    quiet_warnings()


def quiet_warnings() -> None:
    """Silence the deprecation and tip warnings third-party code raises (ours still show)."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")  # subprocesses inherit it
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(?!tailor|training|serving|datasets)")
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    # a library may put its own filter first at import (Lightning shows its deprecations by default)
    warnings.showwarning = _show_warning
