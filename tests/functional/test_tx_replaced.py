"""A replaced transaction stays findable for a while (issue 15 point 7; SPEC 3.5), on a real node.

After RBF (or ``tally-wallet bump-fee``) the original txid used to be a 404. Now
``GET /api/v1/tx/{txid}`` answers 200 with the transaction and ``status: {confirmed: false,
replaced_by: <txid>}``, ``/tx/{txid}/status`` answers that status, ``/raw`` and ``/outspends``
work, ``/search`` finds it. If the replacement was replaced in turn, ``replaced_by`` names the
direct replacer. The wallet's history and the explorer rely on exactly this shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from client.http import Client
from consensus import Block, OutPoint, Transaction, TxOut
from node.api.openapi import openapi_document
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key, spend
from wallet.service import Wallet, WalletError

API = "/api/v1"
K0, K1 = key(0), key(1)
A0 = address_of(K0.pubkey_hash)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    n = NodeProcess(tmp_path_factory.mktemp("replaced") / "n")
    n.start()
    try:
        n.generate(105, A0)
        yield n
    finally:
        n.stop()


def coinbase_coin(node: NodeProcess, height: int) -> tuple[OutPoint, TxOut, Any]:
    h = node.get(f"{API}/block-height/{height}").body.decode()
    cb = Block.deserialize(node.get(f"{API}/block/{h}/raw").body).txs[0]
    return OutPoint(cb.txid(), 0), cb.outputs[0], K0


def paying(coin: tuple[OutPoint, TxOut, Any], fee: int) -> Transaction:
    return spend([coin], [TxOut(coin[1].amount - fee, K1.pubkey_hash)])


def submit(node: NodeProcess, tx: Transaction) -> str:
    r = node.post_raw(API + "/tx", tx.serialize())
    assert r.status == 200, r.body
    txid: str = r.json()["txid"]
    return txid


def display(tx: Transaction) -> str:
    return tx.txid()[::-1].hex()


def validate(schema_name: str, value: Any) -> None:
    """``value`` matches the OpenAPI document's component ``schema_name``."""
    doc = openapi_document()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    jsonschema_rs.validator_for(schema).validate(value)


def test_a_replaced_transaction_answers_with_its_replacer(node: NodeProcess) -> None:
    coin = coinbase_coin(node, 1)
    a, b, c = paying(coin, 1_000), paying(coin, 5_000), paying(coin, 20_000)
    submit(node, a)
    assert node.get(f"{API}/tx/{display(a)}").json()["status"]["confirmed"] is False
    submit(node, b)  # replaces a

    r = node.get(f"{API}/tx/{display(a)}")
    assert r.status == 200, r.body
    tx = r.json()
    assert tx["txid"] == display(a)
    assert tx["status"] == {"confirmed": False, "replaced_by": display(b)}
    assert tx["fee"] == 1_000
    assert tx["inputs"][0]["address"] == A0 and tx["inputs"][0]["amount"] == coin[1].amount
    validate("Transaction", tx)
    status = node.get(f"{API}/tx/{display(a)}/status")
    assert status.status == 200
    assert status.json() == {"confirmed": False, "replaced_by": display(b)}
    validate("TxStatus", status.json())
    assert node.get(f"{API}/tx/{display(a)}/raw").body == a.serialize()
    assert node.get(f"{API}/tx/{display(a)}/merkle-proof").status == 404
    assert node.get(f"{API}/tx/{display(a)}/outspends").json() == [{"spent": False}]
    assert node.get(f"{API}/search?q={display(a)}").json() == {"type": "tx", "id": display(a)}

    submit(node, c)  # replaces b: a still names b, its direct replacer
    assert node.get(f"{API}/tx/{display(a)}/status").json()["replaced_by"] == display(b)
    assert node.get(f"{API}/tx/{display(b)}/status").json() == {
        "confirmed": False,
        "replaced_by": display(c),
    }
    assert node.get(f"{API}/tx/{display(c)}/status").json()["confirmed"] is False
    assert "replaced_by" not in node.get(f"{API}/tx/{display(c)}/status").json()

    node.generate(1, A0)  # c is confirmed; a and b stay remembered as replaced
    assert node.get(f"{API}/tx/{display(c)}/status").json()["confirmed"] is True
    assert node.get(f"{API}/tx/{display(a)}/status").json()["replaced_by"] == display(b)
    assert node.get(f"{API}/tx/{display(b)}/status").json()["replaced_by"] == display(c)


def test_an_unknown_txid_is_still_a_404(node: NodeProcess) -> None:
    r = node.get(f"{API}/tx/{'ab' * 32}")
    assert r.status == 404 and r.json()["error"]["code"] == "not-found"
    assert node.get(f"{API}/tx/{'ab' * 32}/status").status == 404


def test_replaced_descendants_name_the_replacer_too(node: NodeProcess) -> None:
    coin = coinbase_coin(node, 2)
    parent = spend([coin], [TxOut(coin[1].amount - 1_000, K0.pubkey_hash)])
    child = paying((OutPoint(parent.txid(), 0), parent.outputs[0], K0), 1_000)
    submit(node, parent)
    submit(node, child)
    replacement = paying(coin, 50_000)
    submit(node, replacement)
    for gone in (parent, child):
        status = node.get(f"{API}/tx/{display(gone)}/status").json()
        assert status == {"confirmed": False, "replaced_by": display(replacement)}


def test_the_wallet_stops_waiting_for_a_replaced_transaction(node: NodeProcess) -> None:
    """``tally-wallet send --wait`` polls ``/tx/{txid}/status``: a replaced transaction used to
    be a 404 ("no longer known"); with ``replaced_by`` the wait must end too, naming it, rather
    than poll an unconfirmed status forever."""
    coin = coinbase_coin(node, 3)
    original, replacement = paying(coin, 1_000), paying(coin, 9_000)
    submit(node, original)
    submit(node, replacement)
    wallet = object.__new__(Wallet)  # only its node client is used by ``wait``
    wallet._client = Client(node.url)
    with pytest.raises(WalletError, match=f"replaced by {display(replacement)}"):
        wallet.wait(display(original), 1, lambda n: None, poll=0.01)
