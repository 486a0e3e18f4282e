"""Imports flow one way: tailor > training | serving > datasets (the contracts in pyproject.toml)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = {"tailor": 3, "training": 2, "serving": 2, "datasets": 1}


def _imports(path: Path) -> set[str]:
    """Top-level packages a module imports, inside functions too (where the old circle hid)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def wrong_imports() -> list[str]:
    """Every import that goes up a layer or sideways, and every Lightning/Optuna import in serving."""
    wrong = []
    for package, level in LAYERS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            found = _imports(path)
            for target in found & LAYERS.keys():
                sideways = target != package and LAYERS[target] == level
                if LAYERS[target] > level or sideways:
                    wrong.append(f"{path.relative_to(ROOT)} imports {target}")
            if package == "serving" and found & {"lightning", "optuna"}:
                wrong.append(f"{path.relative_to(ROOT)} imports Lightning or Optuna")
    return wrong


def test_every_import_goes_down_a_layer() -> None:
    # In a fresh interpreter: CPython 3.11's ast.parse can fail with "AST constructor recursion depth mismatch"
    # in a process where an earlier test hit a RecursionError (python/cpython#106905).
    code = "from tests.unit.test_architecture import wrong_imports; print('\\n'.join(wrong_imports()))"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "", res.stdout


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    res = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_the_checks_catch_a_wrong_import(tmp_path: Path) -> None:
    """The AST check sees an import hidden inside a function (the form the old serving -> training circle took)."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from training.tracking import client\n    return client\n")
    assert _imports(bad) == {"training"}
