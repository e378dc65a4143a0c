#!/usr/bin/env python3
"""Import-layer contract: every import in the project goes downward (stdlib ``ast`` only).

Walks every ``.py`` file under the packages (shopassist, retrieval, ranking, assistant, ui,
evals) and under ``benchmarks/`` and ``scripts/``, collects every import -- module level, inside
functions, under ``if TYPE_CHECKING:``, relative ones, and ``importlib.import_module("x")`` /
``__import__("x")`` with a literal name -- and maps the importing and the imported module to a
layer by longest module-prefix match (``assistant.llm.client`` is in ``assistant.llm``, not in
``assistant``). A module may import only from its own layer or lower ones, and:

* the two rank-1 layers, ``retrieval`` and ``assistant.llm``, must not import each other;
* ``ui.cli`` is a leaf: nothing but ``ui.cli`` itself imports it (benchmarks and scripts included);
* no private name (one leading underscore) is read from another module: not imported
  (``from X import _y``), not read as an attribute (``obj._y`` other than ``self``/``cls``).

Imports of modules outside the table (stdlib, third party) are not checked.

    python scripts/check_layers.py [ROOT]

prints one line per violation (``file:line: module imports upward: X (layer A) -> Y (layer B)``)
and exits 1, or prints a one-line OK summary and exits 0. ``tests/test_layers.py`` runs it too.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

# The layer table, bottom to top: (rank, layer, module prefixes). A module may import from its own
# rank or a lower one; a module's layer is the one with the longest prefix that matches it.
LAYERS: list[tuple[int, str, tuple[str, ...]]] = [
    # 0 core: domain models, config/settings, errors, text helpers, machine facts, packaged resources
    (0, "core", ("shopassist",)),
    # 1 the two back-ends: search over the catalog, and the LLM client; independent (see SEPARATE)
    (1, "retrieval", ("retrieval",)),
    (1, "assistant.llm", ("assistant.llm",)),
    # 2 ranking (learned ranker, sessions, knowledge) over retrieval's results
    (2, "ranking", ("ranking",)),
    # 3 the assistant: agent, rules, facets, state, tools... (all of assistant but .llm and .stack)
    (3, "assistant", ("assistant",)),
    # 4 the one composition root that wires catalog, retriever, ranker, LLM and agent together
    (4, "assistant.stack", ("assistant.stack",)),
    # 5 offline evaluations (dialogue suite, retrieval, sessions, replay, eval all)
    (5, "evals", ("evals",)),
    # 6 the front-ends: chat UI (ui.app) and HTTP API (ui.api)
    (6, "ui", ("ui",)),
    # 7 the command line: a leaf (see LEAVES)
    (7, "ui.cli", ("ui.cli",)),
    # top: developer tools, may import anything but ui.cli
    (8, "tools", ("benchmarks", "scripts")),
]

# Layers of the same rank that must not import each other (in either direction).
SEPARATE: frozenset[frozenset[str]] = frozenset({frozenset({"retrieval", "assistant.llm"})})

# Layers that no module outside them may import.
LEAVES: frozenset[str] = frozenset({"ui.cli"})

# What the checker walks, relative to the repository root.
PACKAGES: tuple[str, ...] = ("shopassist", "retrieval", "ranking", "assistant", "ui", "evals")
TOOL_DIRS: tuple[str, ...] = ("benchmarks", "scripts")

_RANK = {name: rank for rank, name, _ in LAYERS}
_PREFIXES = sorted(
    ((prefix, name) for _, name, prefixes in LAYERS for prefix in prefixes),
    key=lambda item: -len(item[0].split(".")),
)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str
    importer_layer: str
    imported_layer: str
    kind: str  # "upward", "across" (SEPARATE), "leaf" (LEAVES) or "private"

    def __str__(self) -> str:
        if self.kind == "private":
            return (
                f"{self.path}:{self.line}: module reads a private name of another: {self.importer} -> {self.imported}"
            )
        verb = {"upward": "imports upward", "across": "imports across", "leaf": "imports a leaf"}[self.kind]
        return (
            f"{self.path}:{self.line}: module {verb}: "
            f"{self.importer} (layer {_RANK[self.importer_layer]} {self.importer_layer}) -> "
            f"{self.imported} (layer {_RANK[self.imported_layer]} {self.imported_layer})"
        )


def layer_of(module: str) -> str | None:
    """The layer of ``module`` by longest dotted-prefix match, or None outside the table."""
    for prefix, name in _PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return name
    return None


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """Dotted module name of a file under ``root``, and whether it is a package ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    return ".".join([*package, *([target] if target else [])])


def _named_in_table(module: str, known: frozenset[str]) -> bool:
    return module in known or any(prefix == module for prefix, _ in _PREFIXES)


def imports_of(
    source: str, module: str, *, is_package: bool = False, known: frozenset[str] = frozenset(), filename: str = "<src>"
) -> list[tuple[int, str]]:
    """Every import in ``source`` as ``(line, imported module)``, in order, wherever it sits.

    ``from X import Y`` counts as importing ``X.Y`` when that is a module (in ``known``, or named
    in the layer table, e.g. ``from assistant import llm``) and as importing ``X`` otherwise.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.append((node.lineno, sub if alias.name != "*" and _named_in_table(sub, known) else base))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            arg = node.args[0]
            if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return sorted(set(found))


def violation_of(importer: str, imported: str) -> tuple[str, str, str] | None:
    """``(kind, importer layer, imported layer)`` when importing ``imported`` breaks the contract."""
    src, dst = layer_of(importer), layer_of(imported)
    if src is None or dst is None or src == dst:
        return None
    if dst in LEAVES:
        return "leaf", src, dst
    if _RANK[dst] > _RANK[src]:
        return "upward", src, dst
    if frozenset({src, dst}) in SEPARATE:
        return "across", src, dst
    return None


def private_reads(source: str, module: str, filename: str = "<src>") -> list[tuple[int, str]]:
    """``(line, what)`` for each private name (one leading underscore) this module reads from
    another: ``from X import _y`` of a project module, or ``obj._y`` on anything but
    ``self``/``cls``/``super()``. A module's private names are its own business."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level and layer_of(node.module):
            for alias in node.names:
                if _is_private(alias.name) and node.module != module:
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            found.append((node.lineno, f"{ast.unparse(owner)[:60]}.{node.attr}"))
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def check_source(
    source: str,
    module: str,
    *,
    path: str = "<src>",
    is_package: bool = False,
    known: frozenset[str] = frozenset(),
) -> list[Violation]:
    """The contract violations in one module's source."""
    out = []
    for line, imported in imports_of(source, module, is_package=is_package, known=known, filename=path):
        found = violation_of(module, imported)
        if found:
            kind, src, dst = found
            out.append(Violation(path, line, module, imported, src, dst, kind))
    for line, name in private_reads(source, module, filename=path):
        layer = layer_of(module) or "tools"
        out.append(Violation(path, line, module, name, layer, layer, "private"))
    return out


def project_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for top in (*PACKAGES, *TOOL_DIRS):
        folder = root / top
        if folder.is_dir():
            files.extend(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(files)


@dataclass(frozen=True)
class Report:
    violations: list[Violation]
    files: int
    imports: int  # imports of project modules (the ones the contract is about)


def check_tree(root: Path) -> Report:
    """Check every project file under ``root``."""
    root = Path(root)
    files = project_files(root)
    names = {path: module_name(path, root) for path in files}
    known = frozenset(name for name, _ in names.values())
    violations: list[Violation] = []
    internal = 0
    for path in files:
        module, is_package = names[path]
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        found = imports_of(source, module, is_package=is_package, known=known, filename=rel)
        internal += sum(1 for _, imported in found if layer_of(imported) is not None)
        violations.extend(check_source(source, module, path=rel, is_package=is_package, known=known))
    return Report(violations, len(files), internal)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    report = check_tree(root)
    for violation in report.violations:
        print(violation)
    if report.violations:
        print(f"check_layers: {len(report.violations)} violation(s) in {report.files} files", file=sys.stderr)
        return 1
    print(f"check_layers: OK, {report.files} files, {report.imports} project imports, {len(LAYERS)} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
