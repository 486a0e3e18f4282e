"""Components some tests need besides Python packages: headless Chromium and PostgreSQL's server binaries.

Without one, its tests skip, unless its switch is on: TAILOR_REQUIRE_BROWSER=1 / TAILOR_REQUIRE_POSTGRES=1 (set by
`make test`, `make test-slow` and `make test-all`, hence by CI). Then the run stops at its start naming what is
missing (tests/conftest.py), and the tests that need it fail instead of skipping, so a green CI run means the browser
and PostgreSQL tests ran. `make browser` / `make postgres` install them (apt, as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SWITCHES = {"browser": "TAILOR_REQUIRE_BROWSER", "postgres": "TAILOR_REQUIRE_POSTGRES"}
WHAT = {
    "browser": "headless Chromium (`chromium` on PATH)",
    "postgres": "PostgreSQL's server binaries (pg_ctl, initdb)",
}
INSTALL = {
    "browser": "`make browser` (apt-get install chromium)",
    "postgres": "`make postgres` (apt-get install postgresql)",
}


def _missing(component: str) -> str:
    return f"{WHAT[component]} is missing ({SWITCHES[component]}=1 requires it): install it with {INSTALL[component]}"


def required(component: str) -> bool:
    """Whether the component's switch is on (1, true, yes or on)."""
    return os.environ.get(SWITCHES[component], "").strip().lower() in {"1", "true", "yes", "on"}


def chromium() -> str | None:
    """The Chromium binary, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def pg_ctl() -> str | None:
    """pg_ctl of a full server install (initdb beside it): pg_config's bindir, Debian's layout (newest), or PATH."""
    dirs: list[Path] = []
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30, check=True)
        dirs.append(Path(out.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    dirs += [Path(d) for d in sorted(debian, key=lambda d: int(Path(d).parent.name), reverse=True)]
    if found := shutil.which("pg_ctl"):
        dirs.append(Path(found).resolve().parent)
    for d in dirs:
        if os.access(d / "pg_ctl", os.X_OK) and os.access(d / "initdb", os.X_OK):
            return str(d / "pg_ctl")
    return None


FINDERS = {"browser": chromium, "postgres": pg_ctl}


def missing_required() -> list[str]:
    """One line per component whose switch is on but which is not installed."""
    return [_missing(c) for c in SWITCHES if required(c) and FINDERS[c]() is None]


def need(component: str, module: bool = False) -> str:
    """The component's path; without it, fail when its switch is on, else skip (the whole module if `module`)."""
    found = FINDERS[component]()
    if found is not None:
        return found
    if required(component):
        pytest.fail(_missing(component), pytrace=False)
    why = f"needs {WHAT[component]} ({INSTALL[component]}); {SWITCHES[component]}=1 fails instead of skipping"
    pytest.skip(why, allow_module_level=module)
