"""The spender index: which active-chain transaction spends each spent output.

Job: keep, for every output spent on the active chain, the spending transaction's txid and the
input index that spends it (``s``), so an explorer can follow a coin forward in one read.

State owned: the ``s`` prefix (format in ``node.chainstate.schema``).

Invariants: an ``s`` record exists exactly for the outputs spent by the active chain's
transactions; it is written in the batch that connects the spending block and deleted in the
one that disconnects it. By consensus an output is spent at most once on one chain, so a key is
never written twice by one block.

Left to others: whether the output exists or is still unspent (``node.chainstate.coins``),
transactions (``node.indexes.tx``), addresses (``node.indexes.address``).
"""

from __future__ import annotations

import msgpack

from consensus import OutPoint
from node.indexes.base import BlockChange, u32
from node.storage import KeyValueStore, WriteBatch

P_SPENDER = b"s"
"""``s`` + txid + index u32: msgpack [spending txid, input index]."""


def spender_key(txid: bytes, index: int) -> bytes:
    return P_SPENDER + txid + u32(index)


class SpenderIndex:
    """Writer and reader of the ``s`` records."""

    name = "spender"
    prefixes = (P_SPENDER,)

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store

    def connect_block(self, batch: WriteBatch, change: BlockChange) -> None:
        for tx in change.block.txs[1:]:
            txid = tx.txid()
            for n, txin in enumerate(tx.inputs):
                batch.put(
                    spender_key(txin.prevout.txid, txin.prevout.index),
                    msgpack.packb([txid, n], use_bin_type=True),
                )

    def disconnect_block(self, batch: WriteBatch, change: BlockChange) -> None:
        for tx in change.block.txs[1:]:
            for txin in tx.inputs:
                batch.delete(spender_key(txin.prevout.txid, txin.prevout.index))

    def maintain(self, height: int) -> None:
        del height  # nothing to do

    def get_spender(self, outpoint: OutPoint) -> tuple[bytes, int] | None:
        """The active-chain transaction spending ``outpoint``, and its input index."""
        raw = self._store.get(spender_key(outpoint.txid, outpoint.index))
        if raw is None:
            return None
        txid, index = msgpack.unpackb(raw, raw=True)
        return txid, index
