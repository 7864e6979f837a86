"""Issue 21's bookkeeping, through ``tally-wallet`` against a real regtest node: ``label
ADDRESS|TXID TEXT`` (kept encrypted in the wallet file), ``history --csv`` (one row a
transaction, what the explorer API says, the transaction's label)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from consensus import COIN, get_params
from tests.functional.node_process import NodeProcess, address_of
from tests.functional.wallet_process import API, Wallets
from wallet.keys import RECEIVE, Account, mnemonic_to_seed

REGTEST = get_params("regtest")
BURN = address_of(b"\x00" * 19 + b"\x05")


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wallets]:
    base = tmp_path_factory.mktemp("labels")
    home = base / "home"
    home.mkdir()
    with NodeProcess(base / "node") as node:
        yield Wallets(node, home)


def test_labels_and_history_csv(w: Wallets) -> None:
    path = w.home / "books.json"
    data = w.ok("--wallet", str(path), "--node", w.node.url, "create")
    account = Account(mnemonic_to_seed(data["mnemonic"]), REGTEST)
    w.node.generate(1, account.address(RECEIVE, 0))
    w.node.generate(REGTEST.coinbase_maturity, BURN)
    sent = w.ok("--wallet", str(path), "send", BURN, "7.5", "--fee-rate", "2")
    w.node.generate(1, BURN)
    pending = w.ok("--wallet", str(path), "send", BURN, "1")

    assert w.ok("--wallet", str(path), "label", sent["txid"].upper(), "rent, March") == {
        "target": sent["txid"],
        "label": "rent, March",
    }
    w.ok("--wallet", str(path), "label", account.address(RECEIVE, 0), "mining")
    text = path.read_text()
    assert "rent" not in text and "mining" not in text and sent["txid"] not in text

    r = w.run("--wallet", str(path), "history", "--csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["date", "txid", "height", "confirmations", "amount", "fee", "label"]
    assert [row["txid"] for row in rows[:2]] == [pending["txid"], sent["txid"]]
    first, second = rows[0], rows[1]
    assert first["date"] == "" and first["height"] == "" and first["confirmations"] == "0"
    node_tx = w.node.get(f"{API}/tx/{sent['txid']}").json()
    when = datetime.fromtimestamp(node_tx["status"]["block_time"], UTC)
    assert second["date"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert int(second["height"]) == node_tx["status"]["block_height"]
    assert second["amount"] == f"-{(750_000_000 + sent['fee']) / COIN:.8f}"
    assert second["fee"] == f"{sent['fee'] / COIN:.8f}" and second["label"] == "rent, March"
    mined = rows[-1]
    assert mined["amount"] == "+50.00000000" and mined["fee"] == "" and mined["label"] == ""
    assert len(rows) == 3

    # an empty text removes a label; targets are checked
    w.ok("--wallet", str(path), "label", sent["txid"], "")
    rows = list(
        csv.DictReader(io.StringIO(w.run("--wallet", str(path), "history", "--csv").stdout))
    )
    assert rows[1]["label"] == ""
    line = w.fails("--wallet", str(path), "label", "not-a-thing", "x")
    assert "neither a txid nor an address" in line
    line = w.fails("--wallet", str(path), "label", BURN, "x" * 201)
    assert "at most 200 characters" in line
