"""The transaction index: where each active-chain transaction is, and what each block holds.

Job: for every transaction of the active chain, keep its block, position, canonical bytes and
the coins its inputs spent (``t``), so ``/tx/{txid}`` reads one record and neither the block nor
its undo data; for every active-chain block, the txid and wtxid at each position (``j``) and a
summary (``k``: transaction count, size, fees), so a block's page, its transaction pages and a
merkle proof need no decoding of the block.

State owned: the ``t``, ``j`` and ``k`` prefixes (formats in ``node.chainstate.schema`` and
``docs/PROTOCOL.md`` section 8).

Invariants:
- A ``t``, ``j`` or ``k`` record exists exactly for the transactions and blocks of the active
  chain: written in the batch that connects the block, deleted in the one that disconnects it.
- ``j`` is keyed by height: it describes the active chain's block at that height, so callers
  ask about a block only once they know it is on the active chain.

Left to others: joining a record's block hash with the block index (the ``Chainstate``
facade), spenders (``node.indexes.spender``), addresses (``node.indexes.address``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import msgpack

from consensus import Coin, Transaction, tx_fee
from node.indexes.base import BlockChange, u32
from node.storage import KeyValueStore, WriteBatch

P_TX = b"t"
"""``t`` + txid: msgpack [block hash, position, raw tx, spent coins]."""
P_BLOCK_SUMMARY = b"k"
"""``k`` + block hash: msgpack [tx_count, size, total_fees]."""
P_BLOCK_TX = b"j"
"""``j`` + height u32 + position u32: txid + wtxid."""


def tx_key(txid: bytes) -> bytes:
    return P_TX + txid


def block_summary_key(block_hash: bytes) -> bytes:
    return P_BLOCK_SUMMARY + block_hash


def block_tx_key(height: int, position: int) -> bytes:
    return P_BLOCK_TX + u32(height) + u32(position)


@dataclass(frozen=True)
class TxRecord:
    """One ``t`` record: an active-chain transaction, its block's hash, its position there and
    the coins its inputs spent (empty for a coinbase)."""

    block_hash: bytes
    position: int
    tx: Transaction
    spent: tuple[Coin, ...]


@dataclass(frozen=True)
class BlockSummary:
    """What ``/block/{hash}`` shows of an active-chain block's body, kept at connect."""

    tx_count: int
    size: int
    total_fees: int


class TxIndex:
    """Writer and reader of the ``t``, ``j`` and ``k`` records."""

    name = "tx"
    prefixes = (P_TX, P_BLOCK_TX, P_BLOCK_SUMMARY)

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store

    # --- writing (inside the chain's batch) ------------------------------------------------------

    def connect_block(self, batch: WriteBatch, change: BlockChange) -> None:
        block, height, undo = change.block, change.height, change.undo
        block_hash = block.hash()
        fees = 0
        for pos, tx in enumerate(block.txs):
            txid = tx.txid()
            spent = undo.spent[pos - 1] if pos > 0 else ()
            record = [block_hash, pos, tx.serialize(), [c.to_obj() for c in spent]]
            batch.put(tx_key(txid), msgpack.packb(record, use_bin_type=True))
            batch.put(block_tx_key(height, pos), txid + tx.wtxid())
            if pos > 0:
                fees += tx_fee(tx, spent)
        summary = [len(block.txs), block.size(), fees]
        batch.put(block_summary_key(block_hash), msgpack.packb(summary))

    def disconnect_block(self, batch: WriteBatch, change: BlockChange) -> None:
        block, height = change.block, change.height
        for pos, tx in enumerate(block.txs):
            batch.delete(tx_key(tx.txid()))
            batch.delete(block_tx_key(height, pos))
        batch.delete(block_summary_key(block.hash()))

    def maintain(self, height: int) -> None:
        del height  # nothing to do

    # --- reading ---------------------------------------------------------------------------------

    def get_location(self, txid: bytes) -> tuple[bytes, int] | None:
        """The hash of the active-chain block holding ``txid`` and its position there."""
        raw = self._store.get(tx_key(txid))
        if raw is None:
            return None
        block_hash, position = msgpack.unpackb(raw, raw=True)[:2]
        return block_hash, position

    def get_record(self, txid: bytes) -> TxRecord | None:
        """The ``t`` record of ``txid``: one read, whatever the size of its block."""
        raw = self._store.get(tx_key(txid))
        if raw is None:
            return None
        block_hash, position, raw_tx, spent = msgpack.unpackb(raw, raw=True)
        coins = tuple(Coin.from_obj(c) for c in spent)
        return TxRecord(block_hash, position, Transaction.deserialize(raw_tx), coins)

    def block_summary(self, block_hash: bytes) -> BlockSummary | None:
        """The ``k`` record of an active-chain block; ``None`` for a block off it."""
        raw = self._store.get(block_summary_key(block_hash))
        if raw is None:
            return None
        tx_count, size, fees = msgpack.unpackb(raw)
        return BlockSummary(tx_count, size, fees)

    def block_ids(self, height: int, start: int) -> Iterator[bytes]:
        """``txid + wtxid`` of each transaction of the active chain's block at ``height`` from
        position ``start`` on (a seek to ``start``)."""
        prefix = P_BLOCK_TX + u32(height)
        after = None if start <= 0 else block_tx_key(height, start - 1)
        return (ids for _, ids in self._store.iterate(prefix, after=after))
