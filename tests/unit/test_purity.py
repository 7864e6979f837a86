"""``consensus`` is pure (SPEC 1): no I/O, no clock, no asyncio, no storage, no networking.

Two checks: a static one (every import in every ``consensus/*.py``, at any depth, relative ones
resolved, and no call of the ``open`` builtin) and a dynamic one (importing ``consensus`` in a fresh
interpreter pulls in none of the node's heavy dependencies, not even transitively).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSENSUS = ROOT / "consensus"

FORBIDDEN = (
    "node",
    "wallet",
    "asyncio",
    "plyvel",
    "aiohttp",
    "time",
    "socket",
    "subprocess",
    "random",
    "threading",
    "multiprocessing",
    "urllib",
    "http",
    "requests",
    "logging.config",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "datetime",
    "select",
    "signal",
)
NOT_IMPORTED_AT_RUNTIME = ("plyvel", "aiohttp", "asyncio", "node", "wallet")


def is_forbidden(module: str, forbidden: tuple[str, ...] = FORBIDDEN) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` (the code of ``module``) imports, anywhere in its tree.

    ``from X import y`` counts as importing ``X`` and ``X.y`` (``y`` may be a submodule);
    relative imports are resolved against ``module``'s package.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                keep = len(package) - (node.level - 1)
                if keep < 0:
                    raise ImportError(f"relative import beyond the top level in {module}")
                base = [*package[:keep], *(node.module.split(".") if node.module else [])]
            else:
                base = node.module.split(".") if node.module else []
            if base:
                found.add(".".join(base))
            found.update(".".join([*base, alias.name]) for alias in node.names if alias.name != "*")
    return found


def dynamic_imports_and_open(source: str) -> list[str]:
    """Calls of ``open``, ``__import__`` and ``importlib.import_module`` (they escape the check)."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("open", "__import__", "exec", "eval"):
            problems.append(f"line {node.lineno}: {func.id}(...)")
        if isinstance(func, ast.Attribute) and func.attr == "import_module":
            problems.append(f"line {node.lineno}: import_module(...)")
    return problems


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    bad = sorted(m for m in imported_modules(source, module, is_package) if is_forbidden(m))
    return [f"imports {m}" for m in bad] + dynamic_imports_and_open(source)


def consensus_files() -> list[Path]:
    files = sorted(CONSENSUS.rglob("*.py"))
    assert len(files) >= 12, files
    return files


def module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


@pytest.mark.parametrize("path", consensus_files(), ids=lambda p: p.name)
def test_consensus_module_is_pure(path: Path) -> None:
    name, is_package = module_name(path)
    problems = violations(path.read_text(encoding="utf-8"), name, is_package)
    assert not problems, f"{path.relative_to(ROOT)}: {problems}"


def test_checker_sees_the_real_imports() -> None:
    """Guard against a checker that finds nothing at all."""
    seen: set[str] = set()
    for path in consensus_files():
        name, is_package = module_name(path)
        seen |= imported_modules(path.read_text(encoding="utf-8"), name, is_package)
    assert {"msgpack", "hashlib", "consensus.errors", "coincurve"} <= seen


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import time", "consensus.x", ["imports time"]),
        ("import os, socket", "consensus.x", ["imports socket"]),
        ("from time import time", "consensus.x", ["imports time", "imports time.time"]),
        ("import urllib.request", "consensus.x", ["imports urllib.request"]),
        ("import logging.config", "consensus.x", ["imports logging.config"]),
        ("from logging import config", "consensus.x", ["imports logging.config"]),
        ("def f():\n    import asyncio\n", "consensus.x", ["imports asyncio"]),
        ("class C:\n    def m(self):\n        from http import client\n", "consensus.x",
         ["imports http", "imports http.client"]),
        ("if False:\n    import plyvel\n", "consensus.x", ["imports plyvel"]),
        ("try:\n    import aiohttp\nexcept ImportError:\n    pass\n", "consensus.x",
         ["imports aiohttp"]),
        ("from .. import node", "consensus.x", ["imports node"]),
        ("from ..wallet import keys", "consensus.x", ["imports wallet", "imports wallet.keys"]),
        ("from .. import node", "consensus", ["imports node"]),
        ("from . import node", "consensus", []),  # that is consensus.node
        ("data = open('f').read()", "consensus.x", ["line 1: open(...)"]),
        ("m = __import__('time')", "consensus.x", ["line 1: __import__(...)"]),
        ("import importlib\nm = importlib.import_module('x')", "consensus.x",
         ["line 2: import_module(...)"]),
        ("import logging\nimport os.path\nimport timeit\nfrom . import tx", "consensus.x", []),
        ("from .tx import Transaction\nimport iomod\nimport nodes", "consensus.x", []),
    ],
)  # fmt: skip
def test_checker_catches_violations(source: str, module: str, expected: list[str]) -> None:
    is_package = module == "consensus"
    assert violations(source, module, is_package) == expected


def test_relative_imports_resolve_to_consensus() -> None:
    assert imported_modules("from .tx import A\nfrom . import pow", "consensus.block") == {
        "consensus.tx",
        "consensus.tx.A",
        "consensus",
        "consensus.pow",
    }


def test_importing_consensus_pulls_in_no_node_dependencies() -> None:
    code = "import consensus, sys; print(sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = ast.literal_eval(result.stdout.strip())
    assert "consensus" in modules and "consensus.validation" in modules
    leaked = sorted(m for m in modules if is_forbidden(m, NOT_IMPORTED_AT_RUNTIME))
    assert not leaked, f"importing consensus loaded {leaked}"


def package_files(name: str) -> list[Path]:
    return sorted((ROOT / name).rglob("*.py"))


@pytest.mark.parametrize(
    ("package", "other"), [("node", "wallet"), ("wallet", "node")], ids=["node", "wallet"]
)
def test_node_and_wallet_never_import_each_other(package: str, other: str) -> None:
    """SPEC 1: the wallet talks to a node over HTTP only; neither imports the other."""
    files = package_files(package)
    assert files, f"no files in {package}/"
    offenders = []
    for path in files:
        name, is_package = module_name(path)
        imported = imported_modules(path.read_text(), name, is_package)
        offenders += [f"{path.name}: {m}" for m in imported if is_forbidden(m, (other,))]
    assert offenders == []


def test_client_imports_consensus_only() -> None:
    """SPEC 1: the SDK (``client/``) imports ``consensus`` of this project, never the node or the
    wallet, so an application can use it without either."""
    files = package_files("client")
    assert files, "no files in client/"
    offenders = []
    for path in files:
        name, is_package = module_name(path)
        imported = imported_modules(path.read_text(), name, is_package)
        offenders += [
            f"{path.name}: {m}" for m in imported if is_forbidden(m, ("node", "wallet", "tests"))
        ]
    assert offenders == []


def test_client_check_sees_a_violation() -> None:
    source = "from node.api import views\nimport consensus\n"
    imported = imported_modules(source, "client.x")
    assert sorted(m for m in imported if is_forbidden(m, ("node", "wallet"))) == [
        "node.api",
        "node.api.views",
    ]
