"""The import-layer contract (scripts/check_layers.py) holds for the whole project, and it bites."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check_layers.py"


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layers"] = module
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def test_project_has_no_layer_violations() -> None:
    report = checker.check_tree(REPO)
    assert report.files > 50  # it really walked the packages, benchmarks and scripts
    assert report.imports > 100
    if report.violations:
        pytest.fail("imports break the layer contract:\n" + "\n".join(map(str, report.violations)), pytrace=False)


def test_script_exits_with_the_report() -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), str(REPO)], capture_output=True, text=True, timeout=60)
    lines = run.stdout.splitlines()
    if run.returncode == 0:
        assert len(lines) == 1 and lines[0].startswith("check_layers: OK")
    else:
        assert run.returncode == 1 and lines and all(" module imports " in line for line in lines), run.stdout


def test_layer_table_longest_prefix() -> None:
    assert checker.layer_of("shopassist.models") == "core"
    assert checker.layer_of("retrieval.search") == "retrieval"
    assert checker.layer_of("assistant.llm.client") == "assistant.llm"
    assert checker.layer_of("assistant.llmish") == "assistant"  # whole components only
    assert checker.layer_of("assistant.agent") == "assistant"
    assert checker.layer_of("assistant.stack") == "assistant.stack"
    assert checker.layer_of("ui.cli") == "ui.cli"
    assert checker.layer_of("ui.api") == "ui"
    assert checker.layer_of("scripts.check_layers") == "tools"
    assert checker.layer_of("json") is None


def _kinds(source: str, module: str, **kwargs) -> list[tuple[int, str, str]]:
    return [(v.line, v.kind, v.imported) for v in checker.check_source(source, module, **kwargs)]


def test_catches_an_upward_import_inside_a_function() -> None:
    source = "import json\nfrom shopassist.models import Product\n\ndef f():\n    from ranking.ranker import Ranker\n"
    found = checker.check_source(source, "retrieval.search", path="retrieval/search.py")
    assert [(v.line, v.kind, v.imported) for v in found] == [(5, "upward", "ranking.ranker")]
    assert str(found[0]) == (
        "retrieval/search.py:5: module imports upward: "
        "retrieval.search (layer 1 retrieval) -> ranking.ranker (layer 2 ranking)"
    )


def test_catches_core_importing_anything_above_it() -> None:
    source = "if True:\n    import assistant.agent\nimport importlib\nimportlib.import_module('ui.app')\n"
    assert _kinds(source, "shopassist.config") == [(2, "upward", "assistant.agent"), (4, "upward", "ui.app")]


def test_retrieval_and_llm_stay_apart() -> None:
    assert _kinds("from assistant.llm import open_llm\n", "retrieval.search") == [(1, "across", "assistant.llm")]
    assert _kinds("from assistant import llm\n", "retrieval.search") == [(1, "across", "assistant.llm")]
    assert _kinds("from retrieval import Catalog\n", "assistant.llm.client") == [(1, "across", "retrieval")]
    # and the LLM package may not reach up into the rest of assistant
    assert _kinds("from assistant.state import X\n", "assistant.llm.client") == [(1, "upward", "assistant.state")]
    # ranking may use retrieval; the assistant may use the LLM
    assert _kinds("from retrieval import Catalog\n", "ranking.ranker") == []
    assert _kinds("from assistant.llm import open_llm\n", "assistant.agent") == []


def test_relative_imports_are_resolved() -> None:
    assert _kinds("from ..agent import ShoppingAgent\n", "assistant.llm.client") == [(1, "upward", "assistant.agent")]
    assert _kinds("from . import parsing\n", "assistant.llm", is_package=True) == []
    assert _kinds("from .stack import build\n", "assistant.agent") == [(1, "upward", "assistant.stack")]


def test_cli_is_a_leaf_and_stack_is_the_composition_root() -> None:
    for importer in ("ui.app", "scripts.tool", "benchmarks.bench_agent", "evals.all"):
        assert [k for _, k, _ in _kinds("from ui.cli import main\n", importer)] == ["leaf"], importer
    assert _kinds("from ui.cli import main\n", "ui.cli") == []
    assert _kinds("from ui import cli\n", "benchmarks.common") == [(1, "leaf", "ui.cli")]
    assert _kinds("from assistant.stack import build\n", "ui.cli") == []
    assert _kinds("from ui.api import create_app\n", "ui.cli") == []
    assert _kinds("from assistant.stack import build\n", "evals.dialogues") == []
    assert _kinds("from evals.dialogues import run\n", "assistant.stack") == [(1, "upward", "evals.dialogues")]
    # tools may import anything else
    assert _kinds("import ui.app, evals.all, assistant.stack\n", "scripts.x") == []


def test_main_exits_1_on_a_violating_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ranking").mkdir()
    (tmp_path / "ranking" / "__init__.py").write_text("")
    (tmp_path / "ranking" / "bad.py").write_text("def f():\n    import ui.app\n")
    (tmp_path / "shopassist").mkdir()
    (tmp_path / "shopassist" / "__init__.py").write_text("from shopassist import models\n")
    assert checker.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out == "ranking/bad.py:2: module imports upward: ranking.bad (layer 2 ranking) -> ui.app (layer 6 ui)\n"
    (tmp_path / "ranking" / "bad.py").write_text("import retrieval\n")
    assert checker.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("check_layers: OK, 3 files")


def test_private_names_of_another_module_are_caught_but_own_and_self_are_not() -> None:
    source = (
        "from retrieval.catalog import _Mirror\n"
        "def f(catalog):\n"
        "    return catalog._mirror\n"
        "class A:\n"
        "    def g(self):\n"
        "        return self._x, super()._y\n"
    )
    found = checker.check_source(source, "assistant.agent", path="assistant/agent.py")
    assert sorted((v.kind, v.imported) for v in found) == [
        ("private", "catalog._mirror"),
        ("private", "retrieval.catalog._Mirror"),
    ]
    assert "reads a private name" in str(found[0])
