"""Issue 21 acceptance 1: the network comes from the node; the node URL stays in the wallet file.

Against a real regtest node: ``create`` and ``restore`` without ``--network`` make regtest
wallets; a ``--network`` the node disagrees with is a one-line error that writes nothing; after
``create``, ``balance`` needs only ``--wallet`` (or ``TALLY_WALLET``); ``TALLY_NODE`` (and the older
``TALLY_NODE_URL``) name the node; the default wallet file is named after the node's network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from consensus import get_params
from tests.functional.node_process import NodeProcess
from tests.functional.wallet_process import Wallets
from wallet.keys import RECEIVE, Account, mnemonic_to_seed

REGTEST = get_params("regtest")
MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wallets]:
    base = tmp_path_factory.mktemp("setup")
    home = base / "home"
    home.mkdir()
    with NodeProcess(base / "node") as node:
        yield Wallets(node, home)


def test_create_takes_the_network_from_the_node_and_remembers_it(w: Wallets) -> None:
    path = w.home / "a.json"
    data = w.ok("--wallet", str(path), "--node", w.node.url, "create")
    assert data["network"] == "regtest" and data["derivation_path"] == "m/44'/1'/0'"
    assert data["node"] == w.node.url
    assert json.loads(path.read_text())["node"] == w.node.url
    # later commands need only --wallet ...
    address = Account(mnemonic_to_seed(data["mnemonic"]), REGTEST).address(RECEIVE, 0)
    w.node.generate(1, address)
    balance = w.ok("--wallet", str(path), "balance")
    assert balance["immature"] == 50 * 10**8 and balance["height"] >= 1
    # ... or only TALLY_WALLET
    assert w.ok("balance", env=w.env(TALLY_WALLET=str(path))) == balance
    info = w.ok("info", env=w.env(TALLY_WALLET=str(path)))
    assert info["node"]["url"] == w.node.url and info["node"]["reachable"] is True
    assert info["keystore"]["version"] == 2


def test_a_network_the_node_disagrees_with_is_one_line(w: Wallets) -> None:
    for command, stdin in (("create", ""), ("restore", MNEMONIC)):
        path = w.home / f"mismatch-{command}.json"
        r = w.run(
            "--wallet", str(path), "--node", w.node.url, "--network", "main", command, stdin=stdin
        )
        assert r.returncode == 1, r.stderr
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and "on the regtest network, not main" in lines[0], r.stderr
        assert not path.exists()
    # TALLY_NETWORK is a choice a new wallet's node must agree with too ...
    path = w.home / "mismatch-env.json"
    line = w.fails(
        "--wallet", str(path), "--node", w.node.url, "create", env=w.env(TALLY_NETWORK="main")
    )
    assert "on the regtest network, not main" in line and not path.exists()
    # ... but it does not lock an existing wallet of another network
    existing = w.create("existing")
    assert w.ok("--wallet", str(existing), "balance", env=w.env(TALLY_NETWORK="main"))["total"] == 0
    # agreeing is fine
    path = w.home / "agree.json"
    assert (
        w.ok("--wallet", str(path), "--node", w.node.url, "--network", "regtest", "create")[
            "network"
        ]
        == "regtest"
    )


def test_restore_takes_the_network_from_the_node(w: Wallets) -> None:
    path = w.home / "restored.json"
    data = w.ok("--wallet", str(path), "--node", w.node.url, "restore", stdin=MNEMONIC + "\n")
    assert data["network"] == "regtest" and data["scanned"] is True
    assert w.ok("--wallet", str(path), "balance")["total"] == 0


def test_environment_names_the_node_and_the_default_file(w: Wallets, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    for variable in ("TALLY_NODE", "TALLY_NODE_URL"):
        path = tmp_path / f"{variable}.json"
        env = w.env(TALLY_NODE=None, TALLY_NODE_URL=None)
        env[variable] = w.node.url
        assert w.ok("--wallet", str(path), "create", env=env)["network"] == "regtest"
        assert w.ok("--wallet", str(path), "balance", env=w.env())["total"] == 0
    # no --wallet: the default file is named after the node's network, not main's
    env = w.env(HOME=str(home))
    data = w.ok("--node", w.node.url, "create", env=env)
    assert data["wallet"] == str(home / ".tally" / "wallet-regtest.json")
    assert (home / ".tally" / "wallet-regtest.json").exists()
    assert not (home / ".tally" / "wallet-main.json").exists()


def test_an_unreachable_node_on_create_is_one_line(w: Wallets, tmp_path: Path) -> None:
    from tests.functional.node_process import free_port

    path = tmp_path / "x.json"
    url = f"http://127.0.0.1:{free_port()}"
    line = w.fails("--wallet", str(path), "--node", url, "create")
    assert f"cannot reach the node at {url}" in line and "--network" in line
    assert not path.exists()


def test_a_version_1_file_is_upgraded_by_the_first_command(w: Wallets, tmp_path: Path) -> None:
    from tests.unit.test_wallet_keystore_v2 import version_1_file

    path = tmp_path / "old.json"
    version_1_file(path, "correct horse battery staple")
    assert json.loads(path.read_text())["version"] == 1
    assert w.ok("--wallet", str(path), "--node", w.node.url, "balance")["total"] == 0
    data = json.loads(path.read_text())
    assert data["version"] == 2 and "node" not in data  # --node is for that command only
    address = w.ok("--wallet", str(path), "--node", w.node.url, "address")["address"]
    assert address == Account(mnemonic_to_seed(MNEMONIC), REGTEST).address(RECEIVE, 0)
