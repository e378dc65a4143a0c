"""The built wheel carries its data and its command works when installed, away from the checkout.

Builds the wheel offline from a copy of the packages (nothing is written into the checkout), checks
that it ships every file of the dialogue suite, the demo catalog and the jieba lexicons, installs
it into a temp folder, and runs the console command from pyproject's ``[project.scripts]`` from a
temp working directory: ``eval dialogues`` must find its default suite inside the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _data_files() -> list[str]:
    """Files in the checkout an installed ``shopassist`` reads (paths inside the wheel)."""
    suite = REPO / "evals" / "data" / "dialogues"
    files = [p for p in suite.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    files += sorted((REPO / "retrieval" / "resources" / "lexicons").glob("*.dic"))
    files += [REPO / "shopassist" / "resources" / "demo_catalog.jsonl"]
    return sorted(p.relative_to(REPO).as_posix() for p in files)


def _packages() -> list[str]:
    """Top-level package folders, from pyproject's ``packages.find.include``."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({pattern.rstrip("*").rstrip(".").split(".")[0] for pattern in include})


def _entry_point() -> tuple[str, str]:
    """``(module, function)`` of the ``shopassist`` console command, as pyproject declares it."""
    module, _, function = PYPROJECT["project"]["scripts"]["shopassist"].partition(":")
    return module, function


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline (no build isolation, no index) from a copy of the sources."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in _packages():
        shutil.copytree(REPO / package, src / package, ignore=ignore)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    build = _run(
        [*pip_wheel, "-w", str(tmp / "dist"), str(src)],
        cwd=tmp,
        env=dict(os.environ),
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (found,) = (tmp / "dist").glob("shopassist-*.whl")
    return found


def test_the_wheel_ships_the_dialogue_suite_catalogs_and_lexicons(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _data_files()
    assert any(n.startswith("evals/data/dialogues/catalogs/") for n in expected)  # the checkout has them
    assert "evals/data/dialogues/labels.json" in expected
    missing = [n for n in expected if n not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    # every module of the checkout's packages (a folder without __init__.py would be left out)
    sources = [p for package in _packages() for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts]
    missing = [n for n in sorted(p.relative_to(REPO).as_posix() for p in sources) if n not in names]
    assert not missing, f"modules not in {wheel.name}: {missing}"
    module, _ = _entry_point()
    assert f"{module.replace('.', '/')}.py" in names or f"{module.replace('.', '/')}/__init__.py" in names


def test_the_installed_command_runs_the_packaged_dialogue_suite(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    work = tmp_path / "cwd"  # not the checkout, so `import evals` cannot pick up the sources
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(
        PYTHONPATH=str(site),
        SHOPASSIST_HOME=str(tmp_path / "home"),
        HF_HUB_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        PYTHONDONTWRITEBYTECODE="1",
    )
    module, function = _entry_point()

    where = _run(
        [sys.executable, "-c", f"import evals, retrieval, {module}; print(evals.__file__); print({module}.__file__)"],
        cwd=work,
        env=env,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr[-3000:]
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to(site.resolve()), f"imported from outside the wheel: {line}"

    command = f"import {module} as m; m.{function}()"
    result = _run(
        [sys.executable, "-c", command, "eval", "dialogues", "--no-llm", "--limit", "2", "--json"],
        cwd=work,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    report = json.loads(result.stdout)
    assert report["dialogues"] == 2 and len(report["per_dialogue"]) == 2
    assert report["turns"] >= 4  # every dialogue in the suite has 2 to 4 turns
    assert Path(report["suite"]).resolve().is_relative_to(site.resolve())  # the default suite is the packaged one
