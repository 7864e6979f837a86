"""Issue 21 acceptance 3, through ``tally-wallet`` against a real regtest node.

``sendall`` leaves the wallet at 0 with exactly one output paid; ``--subtract-fee`` pays the
amount minus the fee; ``--from`` spends exactly the named coin; a frozen coin is never spent (not
by ``send``, ``sendall`` nor ``--from``) and ``balance`` shows it apart; ``cpfp`` makes a low-fee
parent confirm with its child in the next block, the two together paying the rate asked; a fee
above ``--max-fee`` (or its default, 0.1 TLY) is refused before signing with the fee and why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consensus import COIN, get_params
from tests.functional.node_process import NodeProcess, address_of
from tests.functional.wallet_process import API, Wallets
from wallet.keys import RECEIVE, Account, mnemonic_to_seed

REGTEST = get_params("regtest")
BURN = address_of(b"\x00" * 19 + b"\x03")


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wallets]:
    base = tmp_path_factory.mktemp("spending")
    home = base / "home"
    home.mkdir()
    with NodeProcess(base / "node") as node:
        yield Wallets(node, home)


def funded(w: Wallets, name: str, coins: int) -> tuple[Path, Account]:
    path = w.home / f"{name}.json"
    data = w.ok("--wallet", str(path), "--node", w.node.url, "create")
    account = Account(mnemonic_to_seed(data["mnemonic"]), REGTEST)
    w.node.generate(coins, account.address(RECEIVE, 0))
    w.node.generate(REGTEST.coinbase_maturity, BURN)
    return path, account


def utxos(w: Wallets, path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = w.ok("--wallet", str(path), "utxos")
    return rows


def tx(w: Wallets, txid: str) -> dict[str, Any]:
    data: dict[str, Any] = w.node.get(f"{API}/tx/{txid}").json()
    return data


def test_freeze_from_subtract_fee_and_max_fee(w: Wallets) -> None:
    alice, _ = funded(w, "alice", 4)
    bob = w.create("bob")
    bob_address = w.ok("--wallet", str(bob), "address")["address"]
    coins = utxos(w, alice)
    assert len(coins) == 4 and all(c["amount"] == 50 * COIN for c in coins)
    a, b = (f"{c['txid']}:{c['index']}" for c in coins[:2])

    frozen = w.ok("--wallet", str(alice), "freeze", a)
    assert frozen == {"outpoint": a, "amount": 50 * COIN, "frozen": True}
    balance = w.ok("--wallet", str(alice), "balance")
    assert balance["frozen"] == 50 * COIN and balance["confirmed"] == 200 * COIN
    assert "frozen (in the above)" in w.run("--wallet", str(alice), "balance").stdout
    assert [u["frozen"] for u in utxos(w, alice)].count(True) == 1
    # never selected: 160 TLY needs all four coins, only three may be spent
    assert "not enough funds" in w.fails("--wallet", str(alice), "send", bob_address, "160")
    for _ in range(3):
        dry = w.ok("--wallet", str(alice), "send", bob_address, "120", "--dry-run")
        assert a not in {f"{i['txid']}:{i['index']}" for i in dry["inputs"]}
    line = w.fails("--wallet", str(alice), "send", bob_address, "1", "--from", a)
    assert "frozen" in line

    # --from: exactly the named coin
    sent = w.ok("--wallet", str(alice), "send", bob_address, "1", "--from", b, "--fee-rate", "2")
    assert [f"{i['txid']}:{i['index']}" for i in sent["inputs"]] == [b]
    assert [i["txid"] for i in tx(w, sent["txid"])["inputs"]] == [b.split(":")[0]]
    assert "not an unspent coin" in w.fails(
        "--wallet", str(alice), "send", bob_address, "1", "--from", "00" * 32 + ":0"
    )
    assert "not a coin" in w.fails("--wallet", str(alice), "send", bob_address, "1", "--from", "x")

    # --subtract-fee: the payee gets the amount minus the fee
    sub = w.ok(
        "--wallet", str(alice), "send", bob_address, "5", "--subtract-fee", "--fee-rate", "3"
    )
    paid = [o for o in sub["outputs"] if not o["change"]]
    assert [o["amount"] for o in paid] == [5 * COIN - sub["fee"]]
    assert 3 * sub["size"] <= sub["fee"] <= 3 * (sub["size"] + 8)
    node_tx = tx(w, sub["txid"])
    assert node_tx["fee"] == sub["fee"] and node_tx["size"] == sub["size"]
    assert (
        sum(i["amount"] for i in node_tx["inputs"]) - sum(o["amount"] for o in node_tx["outputs"])
        == sub["fee"]
    )

    # --max-fee: refused before signing, with the fee and the reason; nothing reaches the node
    before = set(w.mempool())
    line = w.fails(
        "--wallet", str(alice), "send", bob_address, "1", "--fee-rate", "50", "--max-fee", "0.0001"
    )
    assert "the fee would be" in line and "above --max-fee 0.00010000 TLY" in line
    assert "bytes at 50 base units per byte" in line and "nothing was signed" in line
    line = w.fails("--wallet", str(alice), "send", bob_address, "1", "--fee-rate", "100000")
    assert "above --max-fee 0.10000000 TLY" in line  # the default
    line = w.fails(
        "--wallet", str(alice), "bump-fee", sub["txid"], "--fee-rate", "40", "--max-fee", "0.00001"
    )
    assert "above --max-fee" in line
    assert set(w.mempool()) == before

    # unfreeze: the coin may be spent again
    w.ok("--wallet", str(alice), "unfreeze", a)
    assert w.ok("--wallet", str(alice), "balance")["frozen"] == 0
    assert "not frozen" in w.fails("--wallet", str(alice), "unfreeze", a)
    again = w.ok("--wallet", str(alice), "send", bob_address, "1", "--from", a)
    assert [f"{i['txid']}:{i['index']}" for i in again["inputs"]] == [a]
    w.node.generate(1, BURN)


def test_cpfp_and_sendall(w: Wallets) -> None:
    payer, _ = funded(w, "payer", 2)
    carol = w.create("carol")
    carol_address = w.ok("--wallet", str(carol), "address")["address"]
    parent = w.ok("--wallet", str(payer), "send", carol_address, "3", "--fee-rate", "1")
    assert parent["fee"] == parent["size"]  # the lowest rate the node relays

    # the child: the parent's output to carol, paying for both at 6 units a byte
    child = w.ok("--wallet", str(carol), "cpfp", parent["txid"], "--fee-rate", "6")
    assert [(i["txid"], i["amount"]) for i in child["inputs"]] == [(parent["txid"], 3 * COIN)]
    assert len(child["outputs"]) == 1
    together = parent["fee"] + child["fee"]
    assert (
        6 * (parent["size"] + child["size"]) <= together <= 6 * (parent["size"] + child["size"]) + 6
    )
    assert set(w.mempool()) >= {parent["txid"], child["txid"]}
    block = w.node.generate(1, BURN)[0]
    for txid in (parent["txid"], child["txid"]):
        status = w.node.get(f"{API}/tx/{txid}/status").json()
        assert status["confirmed"] and status["block_hash"] == block
    line = w.fails("--wallet", str(carol), "cpfp", parent["txid"])
    assert "already confirmed" in line
    line = w.fails("--wallet", str(carol), "cpfp", child["txid"], "--max-fee", "0")
    assert "is zero" in line  # a cap of 0 would refuse every transaction

    # sendall: one output, the fee from the amount, the wallet ends at 0
    carol_before = w.ok("--wallet", str(carol), "balance")["total"]
    swept = w.ok("--wallet", str(carol), "sendall", BURN, "--fee-rate", "2")
    assert [(o["address"], o["amount"]) for o in swept["outputs"]] == [
        (BURN, carol_before - swept["fee"])
    ]
    assert swept["fee"] >= 2 * swept["size"]
    assert len(tx(w, swept["txid"])["outputs"]) == 1
    w.node.generate(1, BURN)
    assert w.ok("--wallet", str(carol), "balance")["total"] == 0
    assert "nothing to sweep" in w.fails("--wallet", str(carol), "sendall", BURN)

    # a frozen coin stays when everything else is swept
    coins = utxos(w, payer)
    keep = max(coins, key=lambda c: c["amount"])
    outpoint = f"{keep['txid']}:{keep['index']}"
    w.ok("--wallet", str(payer), "freeze", outpoint)
    w.ok("--wallet", str(payer), "sendall", BURN)
    w.node.generate(1, BURN)
    left = w.ok("--wallet", str(payer), "balance")
    assert left["total"] == left["frozen"] == keep["amount"]
    assert [f"{u['txid']}:{u['index']}" for u in utxos(w, payer)] == [outpoint]
