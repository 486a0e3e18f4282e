"""An installed wheel works outside the checkout: `tailor --help`, and `tailor prepare` reads the wheel's configs.

The wheel is built from a copy of the sources (pip builds in the tree: build/ and *.egg-info stay out of the
checkout) and installed into a fresh venv that borrows this venv's site-packages for the dependencies through a
`.pth` file added after the install (so pip never sees this environment and the checkout is never on the path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "configs", "datasets", "training", "serving", "tailor")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, (
        f"{' '.join(map(str, cmd))} -> {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return out


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_checkout(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TAILOR_", "MLFLOW_"))}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("tailor-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], tmp_path, env)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib], tmp_path, env).stdout.strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"  # a working folder with no configs/ and no packages in it
    elsewhere.mkdir()
    env |= {"TAILOR_HOME": str(tmp_path / "home"), "TAILOR_PSEUDONYM_KEY": "k"}
    where = _run([str(python), "-c", _WHERE], elsewhere, env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # packages, configs, templates: the wheel's
    assert not any(Path(p).is_relative_to(REPO) for p in where)

    helped = _run([str(venv / "bin" / "tailor"), "--help"], elsewhere, env)
    assert "prepare" in helped.stdout and "serve" in helped.stdout
    fixture = REPO / "tests" / "fixtures" / "canonical"
    prepare = ["prepare", "canonical", "--path", str(fixture), "--dataset", "shop"]
    prepared = _run([str(venv / "bin" / "tailor"), *prepare], elsewhere, env)
    assert "prepared shop from canonical" in prepared.stdout, prepared.stdout
    assert (tmp_path / "home" / "data" / "shop" / "manifest.json").exists()
    assert not (elsewhere / "var").exists()


# Prints where the installed packages, configs and report templates are, after loading every config and template.
_WHERE = """
import datasets, serving, tailor, training
from datasets.config import load
from datasets.paths import configs_dir
from datasets.settings import PrepareConfig
from serving.config import ServingConfig
from serving.offers import load_catalogue
from serving.report.render import TEMPLATES, _env

load(PrepareConfig, "prepare"), ServingConfig.load(), load_catalogue()
assert (configs_dir() / "sweeps" / "persona.yaml").exists()
for name in ("member.html.j2", "overview.html.j2"):
    _env().get_template(name)
(TEMPLATES / "base.css").read_text()
print(datasets.__file__, serving.__file__, tailor.__file__, training.__file__, configs_dir(), TEMPLATES)
"""
