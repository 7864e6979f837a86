"""The API answers as docs/API.md says (issue 17, item 11), against a real node.

- ``after_txid`` naming a transaction that is not the address's answers 404 (it used to page on
  from that transaction's place in the chain, showing a page that belongs to no cursor).
- Integer parameters take ASCII digits only: ``/block-height/٣٣`` (Arabic-Indic digits, which
  Python's ``int`` accepts) used to answer 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from client.http import Client
from consensus import COIN, OutPoint, TxOut
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key, spend

API = "/api/v1"
A0, A1 = address_of(key(0).pubkey_hash), address_of(key(1).pubkey_hash)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(Path(tmp_path_factory.mktemp("api-doc")) / "n") as n:
        n.generate(3, A0)
        n.generate(2, A1)
        yield n


def test_after_txid_of_another_address_is_404(node: NodeProcess) -> None:
    mine = node.get(f"{API}/address/{A0}/txs").json()
    theirs = node.get(f"{API}/address/{A1}/txs").json()
    assert len(mine) == 3 and len(theirs) == 2
    # Positive control: a cursor of this address pages on.
    page = node.get(f"{API}/address/{A0}/txs?after_txid={mine[0]['txid']}")
    assert page.status == 200 and [t["txid"] for t in page.json()] == [t["txid"] for t in mine[1:]]
    foreign = node.get(f"{API}/address/{A0}/txs?after_txid={theirs[0]['txid']}")
    assert foreign.status == 404, foreign.body
    assert foreign.json()["error"]["code"] == "not-found"


@pytest.mark.parametrize(
    "path",
    [
        "/block-height/\u0663",  # Arabic-Indic 3
        "/block-height/\uff11",  # full-width 1
        "/block-height/1_0",
        "/block-height/+1",
        "/block-height/%201",
        "/blocks?start_height=\u0662",
        "/block-height/" + "9" * 40,
    ],
)
def test_integers_are_ascii_digits(node: NodeProcess, path: str) -> None:
    from urllib.parse import quote

    answer = node.get(API + quote(path, safe="/?=%"))
    assert answer.status == 400, (path, answer.body)
    assert answer.json()["error"]["code"] == "bad-request"


def test_ascii_integers_still_work(node: NodeProcess) -> None:
    assert node.get(f"{API}/block-height/3").status == 200
    assert node.get(f"{API}/blocks?start_height=2").json()[0]["height"] == 2


# --- paging (issue 17, item 11: one answer held 37,000 outputs, 5 MB) --------------------------


def test_utxos_come_in_pages_that_join_up_and_the_wallet_reads_them_all(
    tmp_path: Path,
) -> None:
    """1,500 confirmed outputs and 2 unconfirmed ones to one address: pages of ``UTXO_PAGE``
    (1,000) that join without gap or repeat, confirmed first, then an empty page; the wallet's
    client follows the pages to all 1,502."""
    owner, payee = key(10), key(11)
    payee_address = address_of(payee.pubkey_hash)
    with NodeProcess(tmp_path / "paging") as n:
        [first, *_] = n.generate(101, address_of(owner.pubkey_hash))
        block = n.get(f"{API}/block/{first}/txids").json()
        coinbase_txid = bytes.fromhex(block[0])[::-1]
        coin = (OutPoint(coinbase_txid, 0), TxOut(50 * COIN, owner.pubkey_hash), owner)
        fan = spend(
            [coin],
            [TxOut(COIN // 100, payee.pubkey_hash)] * 1500
            + [TxOut(50 * COIN - 1500 * (COIN // 100) - 100_000, owner.pubkey_hash)],
        )
        assert n.post_raw(f"{API}/tx", fan.serialize()).status == 200
        n.generate(1, address_of(owner.pubkey_hash))
        change = (OutPoint(fan.txid(), 1500), fan.outputs[1500], owner)
        pooled = spend(
            [change],
            [TxOut(COIN, payee.pubkey_hash)] * 2
            + [TxOut(change[1].amount - 2 * COIN - 10_000, owner.pubkey_hash)],
        )
        assert n.post_raw(f"{API}/tx", pooled.serialize()).status == 200

        pages, cursor = [], ""
        while True:
            page = n.get(f"{API}/address/{payee_address}/utxo{cursor}").json()
            pages.append(page)
            if not page:
                break
            cursor = f"?after={page[-1]['txid']}:{page[-1]['index']}"
        assert [len(p) for p in pages] == [1000, 502, 0]
        outputs = [(u["txid"], u["index"]) for p in pages for u in p]
        assert len(set(outputs)) == 1502
        assert [u["confirmations"] > 0 for p in pages for u in p] == [True] * 1500 + [False] * 2
        assert sorted(outputs[:1500]) == outputs[:1500]
        everything = [u for p in pages for u in p]
        assert msgspec.to_builtins(Client(n.url).address_utxos(payee_address)) == everything


def test_utxo_cursor_pages_through_confirmed_then_unconfirmed(node: NodeProcess) -> None:
    everything = node.get(f"{API}/address/{A0}/utxo").json()
    assert len(everything) == 3
    keys = [f"{u['txid']}:{u['index']}" for u in everything]
    # Confirmed outputs come in (txid, index) order of the txid's internal bytes.
    assert everything == sorted(
        everything, key=lambda u: (bytes.fromhex(u["txid"])[::-1], u["index"])
    )
    for i, cursor in enumerate(keys):
        page = node.get(f"{API}/address/{A0}/utxo?after={cursor}").json()
        assert [f"{u['txid']}:{u['index']}" for u in page] == keys[i + 1 :]


@pytest.mark.parametrize("after", ["xyz", "00" * 32, "00" * 32 + ":x", "00" * 32 + ":-1", ":1"])
def test_a_bad_utxo_cursor_is_400(node: NodeProcess, after: str) -> None:
    answer = node.get(f"{API}/address/{A0}/utxo?after={after}")
    assert answer.status == 400 and answer.json()["error"]["code"] == "bad-request"


def test_mempool_txids_cursor(node: NodeProcess) -> None:
    assert node.get(f"{API}/mempool/txids").json() == []
    missing = node.get(f"{API}/mempool/txids?after_txid={'00' * 32}")
    assert missing.status == 404 and missing.json()["error"]["code"] == "not-found"
