"""No import cycle anywhere (issue "Node internals", acceptance 2).

Every module of ``consensus``, ``node``, ``wallet`` (and ``client`` when it exists) is read with
``ast`` (nothing is imported); its imports, at module level and inside functions alike, become
edges of a graph between those modules. Imports under ``if TYPE_CHECKING:`` are left out (they
never run). ``from pkg import name`` is an edge to the submodule ``pkg.name`` when there is one,
else to ``pkg``; relative imports are resolved against the importing module's package. The graph
must have no cycle: each strongly connected component of more than one module (or a module
importing itself) is reported with its edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("consensus", "node", "wallet", "client")

Graph = Mapping[str, Iterable[str]]


def find_modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file under each package that exists."""
    modules: dict[str, Path] = {}
    for package in packages:
        if not (root / package / "__init__.py").is_file():
            continue
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: Iterable[str]) -> None:
        self.package = module.split(".") if is_package else module.split(".")[:-1]
        self.module = module
        self.known = set(known)
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # only the ``else`` of ``if TYPE_CHECKING`` runs
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            keep = len(self.package) - (node.level - 1)
            if keep < 0:
                raise ImportError(f"relative import beyond the top level in {self.module}")
            base = [*self.package[:keep], *(node.module.split(".") if node.module else [])]
        else:
            base = node.module.split(".") if node.module else []
        name = ".".join(base)
        for alias in node.names:
            sub = f"{name}.{alias.name}"
            self.found.add(sub if alias.name != "*" and sub in self.known else name)


def imports_of(source: str, module: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """The modules of ``known`` that ``source`` (the code of ``module``) imports, anywhere in its
    tree except under ``if TYPE_CHECKING:``."""
    visitor = _Imports(module, is_package, known)
    visitor.visit(ast.parse(source))
    return visitor.found & visitor.known


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = find_modules(root, packages)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        graph[name] = imports_of(path.read_text(encoding="utf-8"), name, is_package, modules)
    return graph


def cycles(graph: Graph) -> list[list[tuple[str, str]]]:
    """The edges of each cycle of ``graph``: one list per strongly connected component of more
    than one node (or a node with an edge to itself), edges sorted (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    edges = {n: sorted(set(graph.get(n, ()))) for n in graph}
    for targets in list(edges.values()):
        for t in targets:
            edges.setdefault(t, [])
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            while i < len(targets) and targets[i] in index:
                if targets[i] in on_stack:
                    low[node] = min(low[node], index[targets[i]])
                i += 1
            if i < len(targets):
                work.append((node, i + 1))
                work.append((targets[i], 0))
                continue
            if low[node] == index[node]:
                component = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.add(top)
                    if top == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    found = []
    for component in components:
        inner = sorted((a, b) for a in component for b in edges[a] if b in component)
        if len(component) > 1 or inner:
            found.append(inner)
    return sorted(found)


def describe(found: list[list[tuple[str, str]]]) -> str:
    return "\n".join(
        f"cycle {n}: " + ", ".join(f"{a} -> {b}" for a, b in edges)
        for n, edges in enumerate(found, 1)
    )


# --- the project ---------------------------------------------------------------------------------


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (an edge A -> B: A imports B):\n" + describe(found)


def test_the_walk_sees_the_real_imports() -> None:
    """Guard against a walk that finds nothing: known edges of each kind are there."""
    graph = import_graph()
    assert len(graph) >= 50, sorted(graph)
    assert "wallet.cli_offline" in graph["wallet.cli"]  # from wallet import cli_offline
    assert "wallet.keystore" in graph["wallet.cli"]
    assert "consensus" in graph["wallet.cli"]  # from consensus import NETWORKS (a name)
    assert "consensus.policy" in graph["wallet.coinselect"]
    assert "wallet.model" in graph["wallet.spending"]
    assert "wallet.service" not in graph["wallet.spending"]  # only under ``if TYPE_CHECKING:``


# --- the checker ---------------------------------------------------------------------------------


def test_cycles_finds_a_synthetic_cycle() -> None:
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": set(),
        "e": {"e"},
        "f": {"g"},
        "g": {"f"},
        "h": {"a"},
    }
    assert cycles(graph) == [
        [("a", "b"), ("b", "c"), ("c", "a")],
        [("e", "e")],
        [("f", "g"), ("g", "f")],
    ]
    assert "a -> b" in describe(cycles(graph))
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_cycles_handles_a_long_chain() -> None:
    """Iterative: a chain longer than the recursion limit, closed into one cycle."""
    n = 5000
    graph = {f"m{i}": {f"m{i + 1}"} for i in range(n)}
    assert cycles(graph) == []
    graph[f"m{n}"] = {"m0"}
    (edges,) = cycles(graph)
    assert len(edges) == n + 1


def test_imports_are_collected_as_the_rules_say(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from .a import X\n",
        "pkg/a.py": "X = 1\n",
        "pkg/b.py": "from pkg import a, X\nimport os\n",
        "pkg/c.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg.d import Y\nelse:\n    import pkg.a\n"
            "def f():\n    from . import d\n"
        ),
        "pkg/d.py": "import typing\nif typing.TYPE_CHECKING:\n    import pkg.c\n",
        "pkg/sub/__init__.py": "from .. import b\nfrom . import e\nfrom .e import *\n",
        "pkg/sub/e.py": "from ...pkg import a\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ["pkg", "absent"])
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": set(),
        "pkg.b": {"pkg.a", "pkg"},
        "pkg.c": {"pkg.a", "pkg.d"},
        "pkg.d": set(),
        "pkg.sub": {"pkg.b", "pkg.sub.e"},
        "pkg.sub.e": {"pkg.a"},
    }
    assert cycles(graph) == []
    (tmp_path / "pkg/a.py").write_text("def f():\n    from pkg.sub import e\n")
    assert describe(cycles(import_graph(tmp_path, ["pkg"]))) == (
        "cycle 1: pkg.a -> pkg.sub.e, pkg.sub.e -> pkg.a"
    )
