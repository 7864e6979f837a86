"""The dependency direction inside ``node/`` (issue 19, acceptance 2).

Layers, from the top: the composition root and the commands (``node.service``, ``node.cli``,
``node.devnet``) build everything; ``node.api`` and ``node.p2p`` depend on the service's narrow
interfaces (``node.interfaces``), never on the concrete service; below them the state:
``node.mempool``, ``node.chainstate``, ``node.indexes``, over ``node.storage``; ``node.state``
(who owns the state) is below everything. So:

- ``node.storage`` imports nothing of the node but ``node.state``;
- ``node.indexes`` and ``node.chainstate`` import only the state layers below them (never the
  mempool, P2P, the API or the service);
- ``node.mempool`` reads the chain through its own ``ChainView`` and chain events only;
- ``node.p2p`` never imports ``node.api`` or the service;
- ``node.api`` never imports the service, the command line or the devnet.

Every import counts (module level or inside a function; ``imported_modules`` walks the whole
tree), so an import moved into a function to dodge a cycle still fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_import_cycles import find_modules
from tests.unit.test_purity import imported_modules

TOP = ("node.service", "node.cli", "node.devnet")

# package (or module) -> the node modules it may import besides its own
ALLOWED: dict[str, tuple[str, ...]] = {
    "node.state": (),
    "node.storage": ("node.state",),
    "node.indexes": ("node.storage", "node.state"),
    "node.chainstate": ("node.indexes", "node.storage", "node.state"),
    "node.mempool": ("node.chainstate.events", "node.storage", "node.state"),
}
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "node.p2p": ("node.api", *TOP),
    "node.api": TOP,
    "node.miner": ("node.api", "node.p2p", *TOP),
    "node.fees": ("node.api", "node.p2p", *TOP),
    "node.events": ("node.api", "node.p2p", "node.miner", *TOP),
}


def imports_of_node(name: str, path: Path) -> set[str]:
    found = imported_modules(path.read_text(), name, is_package=path.name == "__init__.py")
    return {m for m in found if m == "node" or m.startswith("node.")}


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(modules: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in sorted(modules.items()):
        imports = imports_of_node(name, path)
        for layer, allowed in ALLOWED.items():
            if not within(name, layer):
                continue
            for target in sorted(imports):
                if within(target, layer) or target == "node":
                    continue
                if not any(within(target, a) for a in allowed):
                    problems.append(f"{name} imports {target} ({layer} may import {allowed})")
        for layer, forbidden in FORBIDDEN.items():
            if not within(name, layer):
                continue
            problems += [
                f"{name} imports {target} ({layer} must not import {', '.join(forbidden)})"
                for target in sorted(imports)
                if any(within(target, f) for f in forbidden)
            ]
    return problems


def test_the_layers_of_node_point_one_way() -> None:
    modules = find_modules(packages=("node",))
    assert {"node.service", "node.api.app", "node.chainstate.chain", "node.storage.kv"} <= set(
        modules
    )
    problems = violations(modules)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "source", "wrong"),
    [
        ("node.p2p.relay", "def f():\n    from node.api.app import make_app\n", "node.api.app"),
        ("node.storage.kv", "import node.mempool\n", "node.mempool"),
        ("node.chainstate.chain", "from node.mempool import Mempool\n", "node.mempool"),
        ("node.api.views", "from node import service\n", "node.service"),
    ],
)
def test_a_wrong_import_is_caught(tmp_path: Path, module: str, source: str, wrong: str) -> None:
    """The check itself: a planted import against the direction fails it."""
    path = tmp_path / "planted.py"
    path.write_text(source)
    problems = violations({module: path})
    assert any(wrong in p for p in problems), problems
