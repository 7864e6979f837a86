"""Public reads cost what they return, not the size of the block they sit in (issue 17, item 1).

``GET /tx/{txid}`` used to decode the transaction's whole block and its undo data, an address page
did so once per row, and the address summary once per recent coinbase. Now a confirmed
transaction is one ``t`` record (the transaction and the coins it spent), a block's summary and
pages come from its ``k`` and ``j`` records, and the immature balance from the ``i`` index.

Each test runs the real chainstate and ``Views`` on a real LevelDB store that records every key
and value it hands out, and checks that a lookup reads no block body (``b``) and no undo data
(``u``), and that the bytes it reads are the same whether the transaction sits in a block of 2
transactions or of 400 (a block ~60 times larger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from consensus import Block, OutPoint, Transaction, TxOut, block_subsidy, verify_merkle_proof
from node.api.views import TXS_PAGE, Views
from node.chainstate import Chainstate
from node.chainstate import schema as k
from node.mempool import ChainView, Mempool
from node.storage import LevelDBStore
from tests.helpers import REGTEST, ChainBuilder, Key, key, spend

FAR_FUTURE = 2**31
FEE = 1000
PAYER, PAYEE, OTHER, MINER = key(1), key(2), key(3), key(0)


class RecordingStore(LevelDBStore):
    """A LevelDB store that records the keys and counts the value bytes it returns."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.keys: list[bytes] = []
        self.value_bytes = 0

    def reset(self) -> None:
        self.keys.clear()
        self.value_bytes = 0

    def _get(self, key: bytes) -> bytes | None:
        value = super()._get(key)
        self.keys.append(key)
        self.value_bytes += len(value or b"")
        return value

    def _iterate(
        self, prefix: bytes, reverse: bool, after: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        for item in super()._iterate(prefix, reverse, after):
            self.keys.append(item[0])
            self.value_bytes += len(item[1])
            yield item

    def read_block_or_undo(self) -> list[bytes]:
        return [key for key in self.keys if key[:1] in (k.P_BLOCK, k.P_UNDO)]


class Node:
    """A chainstate and its views on a recording LevelDB store, fed by a ``ChainBuilder``."""

    def __init__(self, path: Path) -> None:
        self.store = RecordingStore(path)
        self.chain = ChainBuilder(miner=MINER)
        self.cs = Chainstate(self.store, REGTEST, clock=lambda: FAR_FUTURE, sync=False)
        view = ChainView.of(self.cs)
        self.mempool = Mempool(view, REGTEST, clock=lambda: FAR_FUTURE)
        self.views = Views(self.cs, self.mempool)

    def add(self, txs: Sequence[Transaction] = ()) -> Block:
        view = self.chain.view
        fees = sum(
            sum(view.coins[i.prevout].output.amount for i in tx.inputs) - tx.total_out()
            for tx in txs
        )
        block = self.chain.next_block(txs, fees=fees)
        self.chain.add(block)
        assert self.cs.process_block(block).status == "active"
        return block

    def grow(self, count: int) -> None:
        for _ in range(count):
            self.add()

    def fan_out(self, outputs: int, amount: int) -> list[tuple[OutPoint, TxOut, Key]]:
        """A block with one transaction spending a mature coinbase of the miner into
        ``outputs`` coins of ``amount`` for ``PAYER``; the coins."""
        height = self.chain.height - REGTEST.coinbase_maturity
        while self.chain.view.coins.get(self.chain.coinbase_coin(height)[0]) is None:
            height -= 1  # spent by an earlier fan-out
        cb = self.chain.coinbase_coin(height)
        tx = spend([cb], [TxOut(amount, PAYER.pubkey_hash)] * outputs)
        self.add([tx])
        return [(OutPoint(tx.txid(), n), tx.outputs[n], PAYER) for n in range(outputs)]


def pay(coin: tuple[OutPoint, TxOut, Key], to: Key) -> Transaction:
    return spend([coin], [TxOut(coin[1].amount - FEE, to.pubkey_hash)])


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "db")
    n.grow(REGTEST.coinbase_maturity + 5)
    yield n
    n.store.close()


def read_cost(node: Node, fn: Callable[..., Any], *args: object) -> tuple[Any, int, list[bytes]]:
    """What ``fn(*args)`` returns (in JSON terms, as the API serves it), the value bytes it read
    and the block or undo keys it read."""
    node.store.reset()
    result = msgspec.to_builtins(fn(*args))
    return result, node.store.value_bytes, node.store.read_block_or_undo()


def test_a_transaction_is_read_without_its_block(node: Node) -> None:
    coins = node.fan_out(420, 10_000_000)
    # The same kind of payment, alone in a small block and among 400 others in a large one.
    small_tx = pay(coins[0], PAYEE)
    small_block = node.add([small_tx, pay(coins[1], OTHER)])
    filler = [pay(c, OTHER) for c in coins[2:402]]
    big_tx = pay(coins[402], PAYEE)
    big_block = node.add([*filler[:200], big_tx, *filler[200:]])
    assert big_block.size() > 50 * small_block.size()

    small, small_bytes, small_bodies = read_cost(node, node.views.tx, small_tx.txid())
    big, big_bytes, big_bodies = read_cost(node, node.views.tx, big_tx.txid())
    assert small_bodies == [] and big_bodies == [], "a lookup read a block body or undo data"
    # The same shape of answer costs the same bytes, however large its block (give or take the
    # encoding of its position: 200 takes a byte more than 1).
    assert abs(big_bytes - small_bytes) <= 8
    assert big_bytes < 4 * big_tx.size() + 2_000 < big_block.size() // 20

    # The answer is what the block and undo data say (the old way, computed here).
    undo = node.cs.get_undo(big_block.hash())
    assert undo is not None
    position = big_block.txs.index(big_tx)
    spent = undo.spent[position - 1]
    assert big["fee"] == sum(c.output.amount for c in spent) - big_tx.total_out() == FEE
    assert [i["amount"] for i in big["inputs"]] == [c.output.amount for c in spent]
    assert big["status"]["block_hash"] == big_block.hash()[::-1].hex()
    assert big["size"] == big_tx.size()
    assert small["status"]["block_height"] == node.cs.height - 1
    # Its raw bytes and status too.
    node.store.reset()
    assert node.views.tx_raw(big_tx.txid()) == big_tx.serialize()
    assert msgspec.to_builtins(node.views.tx_status_of(big_tx.txid()))["confirmations"] == 1
    assert node.store.read_block_or_undo() == []


def test_an_address_page_reads_only_its_rows(node: Node) -> None:
    coins = node.fan_out(440, 10_000_000)
    # PAYEE is paid 30 times in a block of 31 transactions...
    first = [pay(c, PAYEE) for c in coins[:30]]
    node.add(first)
    # ...then 30 more times among 380 payments to someone else.
    second = [pay(c, PAYEE) for c in coins[30:60]]
    filler = [pay(c, OTHER) for c in coins[60:440]]
    big = node.add([*filler[:190], *second, *filler[190:]])
    assert big.size() > 10 * len(first) * first[0].size()

    pkh = PAYEE.pubkey_hash
    # Page 1: 25 rows from the big block; page 2 continues from the last row shown.
    page1, bytes1, bodies1 = read_cost(node, node.views.address_txs, pkh, None)
    assert [t["txid"] for t in page1] == [t.txid()[::-1].hex() for t in reversed(second)][:TXS_PAGE]
    last = bytes.fromhex(page1[-1]["txid"])[::-1]
    page2, _, bodies2 = read_cost(node, node.views.address_txs, pkh, last)
    assert len(page2) == TXS_PAGE
    # Page 3: 25 rows from the small block.
    last = bytes.fromhex(page2[-1]["txid"])[::-1]
    page3, _, bodies3 = read_cost(node, node.views.address_txs, pkh, last)
    assert len(page3) == 10
    assert bodies1 == bodies2 == bodies3 == []
    # 25 rows read about 25 transactions' bytes, not the block's (~60 KB of filler).
    assert bytes1 < TXS_PAGE * (4 * first[0].size() + 300)
    assert bytes1 < big.size() // 4
    # The summary reads no block either (its immature total comes from the ``i`` index).
    summary, _, bodies = read_cost(node, node.views.address_summary, "x", pkh)
    assert bodies == []
    assert summary["chain_stats"]["tx_count"] == 60


def test_block_summary_and_pages_read_no_body(node: Node) -> None:
    coins = node.fan_out(60, 10_000_000)
    txs = [pay(c, OTHER) for c in coins]
    block = node.add(txs)
    fees = FEE * len(txs)
    summary, _, bodies = read_cost(node, node.views.block, block.hash())
    assert bodies == []
    assert summary["tx_count"] == 61 and summary["size"] == block.size()
    assert summary["total_fees"] == fees
    page, _, bodies = read_cost(node, node.views.block_txs, block.hash(), 50)
    assert bodies == []
    assert [t["txid"] for t in page] == [t.txid()[::-1].hex() for t in block.txs[50:]]
    txids, _, bodies = read_cost(node, node.views.block_txids, block.hash())
    assert bodies == [] and txids == [t.txid()[::-1].hex() for t in block.txs]
    # A merkle proof reads the leaves (wtxids) from the block's records, and proves the wtxid.
    tx = block.txs[37]
    proof, leaves_bytes, bodies = read_cost(node, node.views.merkle_proof, tx.txid())
    assert bodies == [] and proof["pos"] == 37
    assert leaves_bytes < 64 * len(block.txs) + 1_000  # the leaves and one t record
    branch = [bytes.fromhex(h)[::-1] for h in proof["merkle"]]
    assert verify_merkle_proof(tx.wtxid(), 37, branch, block.header.merkle_root)


def test_immature_balance_from_its_index_across_a_disconnect(node: Node) -> None:
    """The miner's immature total: the coinbases of the last maturity-1 blocks, read from the
    ``i`` index, right after connects and after a block is disconnected."""
    pkh = MINER.pubkey_hash

    def expected() -> int:
        oldest = node.cs.height - REGTEST.coinbase_maturity + 2
        return sum(block_subsidy(h, REGTEST) for h in range(max(1, oldest), node.cs.height + 1))

    assert node.views._immature(pkh) == expected() > 0
    node.store.reset()
    node.views.address_summary("x", pkh)
    assert node.store.read_block_or_undo() == []
    # Only the immature entries (and one mature one, where the scan stops) are read.
    immature_reads = [key for key in node.store.keys if key[:1] == k.P_IMMATURE]
    assert len(immature_reads) <= REGTEST.coinbase_maturity
    tip = node.cs.tip.hash
    node.cs.invalidate_block(tip)
    assert node.views._immature(pkh) == expected()
    node.cs.reconsider_block(tip)
    assert node.cs.tip.hash == tip
    assert node.views._immature(pkh) == expected()
    # A coinbase paying someone else leaves the miner's total alone.
    assert node.views._immature(OTHER.pubkey_hash) == 0
