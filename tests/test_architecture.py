"""The import graph of ``emulator`` and ``runtime_api``, read from the source: no module imports, directly or through
others, a module that imports it back, and ``runtime_api`` never imports ``emulator``.

Every import counts as a tie, wherever it is written: at the top, inside a function (deferred), or under
``if TYPE_CHECKING:``. A circle is broken by moving what both sides need below them (a Protocol, a data type).
"""

from __future__ import annotations

import ast
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emulator", "runtime_api")


@dataclass(frozen=True)
class Tie:
    importer: str
    imported: str
    line: int


def _modules(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    """Every module of the packages: its dotted name, its file, and whether it is a package's ``__init__``."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join(parts)] = (path, is_package)
    return modules


def _ties(modules: dict[str, tuple[Path, bool]]) -> list[Tie]:
    def known(name: str) -> str | None:
        """The most specific module of ours that ``name`` names (``a.b.Class`` is ``a.b``)."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    ties = []
    for module, (path, is_package) in modules.items():
        package = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                # `from package import module` ties to that module; `from module import name` to the module.
                targets = [
                    f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names
                ]
            for target in targets:
                imported = known(target)
                if imported is not None and imported != module:
                    ties.append(Tie(module, imported, node.lineno))
    return ties


def _circles(ties: list[Tie]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    graph: dict[str, set[str]] = {}
    for tie in ties:
        graph.setdefault(tie.importer, set()).add(tie.imported)
        graph.setdefault(tie.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def _describe(circle: list[str], ties: list[Tie]) -> str:
    members = set(circle)
    inside = sorted({(t.importer, t.imported, t.line) for t in ties if t.importer in members and t.imported in members})
    return "\n".join([" <-> ".join(circle), *(f"    {a} imports {b} (line {line})" for a, b, line in inside)])


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package):
    ties = _ties(_modules())
    circles = [c for c in _circles(ties) if c[0].split(".")[0] == package]
    assert not circles, f"import circles in {package}/:\n" + "\n".join(_describe(c, ties) for c in circles)


def test_runtime_api_never_imports_the_engine():
    ties = [t for t in _ties(_modules()) if t.importer.startswith("runtime_api") and t.imported.startswith("emulator")]
    assert not ties, "\n".join(f"{t.importer} imports {t.imported} (line {t.line})" for t in ties)


def test_the_reader_finds_a_circle_however_the_import_is_written(tmp_path):
    """The check itself: a deferred import and one under TYPE_CHECKING close a circle as surely as a plain one."""
    package = tmp_path / "emulator"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n")
    (package / "d.py").write_text("from . import a\n")  # outside the circle: it imports, nothing imports it back
    (tmp_path / "runtime_api").mkdir()
    (tmp_path / "runtime_api" / "__init__.py").write_text("")
    assert _circles(_ties(_modules(tmp_path))) == [["emulator.a", "emulator.c", "emulator.sub.b"]]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("emulator.freezer", "emulator.engine.freezer"),
        ("emulator.freezer.cgroup", "emulator.engine.freezer.cgroup"),
        ("emulator.lifecycle", "emulator.engine.lifecycle"),
        ("emulator.function", "emulator.engine.pool"),
        ("emulator.async_invoke", "emulator.sources.async_invoke"),
        ("emulator.sam", "emulator.config.sam"),
    ],
)
def test_a_module_that_moved_imports_by_its_old_name_and_says_where_it_went(old, new, monkeypatch):
    for name in [n for n in sys.modules if n == old or n.startswith(old + ".")]:
        monkeypatch.delitem(sys.modules, name)
    parent = old.rpartition(".")[0]
    if parent != "emulator" and parent not in sys.modules:
        # The parent's own warning comes first when the child is the first of its names imported in this process.
        with pytest.warns(DeprecationWarning, match=f"{parent} moved to "):
            importlib.import_module(parent)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}: import it from there"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_public_names_stay_where_users_import_them():
    """The names the README and users' tests import keep their places (``emulator``'s own names load lazily)."""
    import emulator
    from emulator import harness, server, testing
    from emulator.config import FunctionConfig, ServerConfig
    from emulator.errors import ConfigError, LambdaFreezeError
    from emulator.proxy import TOXICS, WhileFrozen

    assert emulator.FunctionConfig is FunctionConfig and emulator.ServerConfig is ServerConfig
    assert emulator.ConfigError is ConfigError and emulator.LambdaFreezeError is LambdaFreezeError
    assert emulator.Emulator is server.Emulator and emulator.LambdaFreeze is harness.LambdaFreeze
    assert testing.EmulatorThread.__module__ == "emulator.testing"
    assert TOXICS["while_frozen"] is WhileFrozen


def test_serve_loads_only_what_serving_needs():
    """`lambda-freeze serve` imports no HTTP client, template reader, scenario runner, fault proxy, OpenAPI document,
    package metadata or Node.js helpers unless a function or a command asks for them (each costs its start
    milliseconds)."""
    import subprocess
    import sys

    code = (
        "import sys, emulator.cli, emulator.server\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    unwanted = {
        "urllib.request", "http.client", "yaml", "importlib.metadata", "emulator.config.cloudformation",
        "emulator.config.sam", "emulator.scenario", "emulator.proxy", "runtime_api.openapi", "emulator.reload",
        "boto3", "botocore", "moto", "emulator.engine.node_ric", "emulator.engine.node_dependencies",
        "emulator.invoke_command",
    }
    assert sorted(loaded & unwanted) == []
