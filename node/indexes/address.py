"""The address index: each address's history, unspent coins, totals and recent coinbases.

Job: answer address queries by reading only what they return: the transactions touching an
address, newest first (``a``); its unspent coins in outpoint order (``o``); its totals received
and spent and its transaction count (``A``, one read); its coinbase outputs by height (``i``),
so the immature balance reads only the outputs of the last ``coinbase_maturity`` blocks.

State owned: the ``a``, ``o``, ``A`` and ``i`` prefixes (formats in ``node.chainstate.schema``).

Invariants:
- Every record describes the active chain and moves in the chain's connect or disconnect
  batch. ``o`` mirrors the UTXO set (``c``) coin for coin: it follows the very changes the batch
  makes to ``c`` (``BlockChange.coins``), so the two never disagree.
- An ``A`` record exists exactly for addresses with at least one active-chain transaction.
- ``i`` entries are not pruned when they mature (one small key per coinbase output); the
  immature balance stops reading at the first mature one.
- Spent coins leave deletion markers in ``o`` that LevelDB steps over until it compacts them:
  ``maintain`` compacts the range every ``COMPACT_EVERY`` connected blocks, after the connect
  has been committed, so address queries stay flat as the chain grows.

Left to others: the UTXO set itself (``node.chainstate.coins``), transactions
(``node.indexes.tx``), spenders (``node.indexes.spender``), the tip height and coinbase
maturity (passed in by the caller).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import msgpack

from consensus import Coin, OutPoint
from node.indexes.base import BlockChange, read_u32, read_u64, u32, u64
from node.storage import KeyValueStore, WriteBatch

P_ADDR_TX = b"a"
"""``a`` + pubkey_hash + height u32 + position u32: txid touching the address."""
P_ADDR_UTXO = b"o"
"""``o`` + pubkey_hash + txid + index u32: unspent coin of the address (``Coin`` encoding)."""
P_ADDR_STATS = b"A"
"""``A`` + pubkey_hash: msgpack [funded_sum, spent_sum, tx_count]."""
P_IMMATURE = b"i"
"""``i`` + pubkey_hash + height u32 + output index u32: coinbase output amount, u64 BE."""

COMPACT_EVERY = 1_000
"""Every this many connected blocks, compact the address-UTXO range (see ``maintain``)."""


def addr_tx_key(pubkey_hash: bytes, height: int, position: int) -> bytes:
    return P_ADDR_TX + pubkey_hash + u32(height) + u32(position)


def addr_utxo_key(pubkey_hash: bytes, txid: bytes, index: int) -> bytes:
    return P_ADDR_UTXO + pubkey_hash + txid + u32(index)


def addr_stats_key(pubkey_hash: bytes) -> bytes:
    return P_ADDR_STATS + pubkey_hash


def immature_key(pubkey_hash: bytes, height: int, index: int) -> bytes:
    return P_IMMATURE + pubkey_hash + u32(height) + u32(index)


@dataclass(frozen=True)
class AddressStats:
    """An address's active-chain totals: received, spent, and transactions touching it."""

    funded_sum: int
    spent_sum: int
    tx_count: int


class AddressIndex:
    """Writer and reader of the ``a``, ``o``, ``A`` and ``i`` records."""

    name = "address"
    prefixes = (P_ADDR_TX, P_ADDR_UTXO, P_ADDR_STATS, P_IMMATURE)

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store

    # --- writing (inside the chain's batch) ------------------------------------------------------

    def connect_block(self, batch: WriteBatch, change: BlockChange) -> None:
        self._write_utxos(batch, change)
        block, height = change.block, change.height
        for pos, tx in enumerate(block.txs):
            txid = tx.txid()
            for pkh in self._addresses(change, pos):
                batch.put(addr_tx_key(pkh, height, pos), txid)
        for n, out in enumerate(block.txs[0].outputs):
            batch.put(immature_key(out.pubkey_hash, height, n), u64(out.amount))
        self._write_stats(batch, change, sign=1)

    def disconnect_block(self, batch: WriteBatch, change: BlockChange) -> None:
        self._write_utxos(batch, change)
        block, height = change.block, change.height
        for pos in range(len(block.txs)):
            for pkh in self._addresses(change, pos):
                batch.delete(addr_tx_key(pkh, height, pos))
        for n, out in enumerate(block.txs[0].outputs):
            batch.delete(immature_key(out.pubkey_hash, height, n))
        self._write_stats(batch, change, sign=-1)

    def maintain(self, height: int) -> None:
        """Compact ``o`` every ``COMPACT_EVERY`` blocks (a hint to the store, see above)."""
        if height % COMPACT_EVERY == 0 and height:
            self._store.compact(P_ADDR_UTXO)

    @staticmethod
    def _addresses(change: BlockChange, pos: int) -> set[bytes]:
        """The addresses transaction ``pos`` of the block pays or spends from."""
        tx = change.block.txs[pos]
        found = {out.pubkey_hash for out in tx.outputs}
        if pos > 0:
            found.update(c.output.pubkey_hash for c in change.undo.spent[pos - 1])
        return found

    @staticmethod
    def _write_utxos(batch: WriteBatch, change: BlockChange) -> None:
        """The ``o`` side of each change the batch makes to the UTXO set."""
        for outpoint, coin in change.coins.items():
            if coin is None:
                old = change.gone[outpoint]
                batch.delete(addr_utxo_key(old.output.pubkey_hash, outpoint.txid, outpoint.index))
            else:
                batch.put(
                    addr_utxo_key(coin.output.pubkey_hash, outpoint.txid, outpoint.index),
                    change.encoded[outpoint],
                )

    def _write_stats(self, batch: WriteBatch, change: BlockChange, *, sign: int) -> None:
        """Add (``sign=1``) or subtract (``-1``) the block's effect on each address's totals."""
        delta: dict[bytes, list[int]] = {}
        for pos, tx in enumerate(change.block.txs):
            touched: set[bytes] = set()
            for out in tx.outputs:
                delta.setdefault(out.pubkey_hash, [0, 0, 0])[0] += out.amount
                touched.add(out.pubkey_hash)
            if pos > 0:
                for coin in change.undo.spent[pos - 1]:
                    delta.setdefault(coin.output.pubkey_hash, [0, 0, 0])[1] += coin.output.amount
                    touched.add(coin.output.pubkey_hash)
            for pkh in touched:
                delta[pkh][2] += 1
        for pkh, (funded, spent, count) in delta.items():
            old = self.address_stats(pkh)
            new = AddressStats(
                old.funded_sum + sign * funded,
                old.spent_sum + sign * spent,
                old.tx_count + sign * count,
            )
            if new.tx_count:
                batch.put(
                    addr_stats_key(pkh),
                    msgpack.packb([new.funded_sum, new.spent_sum, new.tx_count]),
                )
            else:
                batch.delete(addr_stats_key(pkh))

    # --- reading ---------------------------------------------------------------------------------

    def address_stats(self, pubkey_hash: bytes) -> AddressStats:
        """Totals over the address's whole active-chain history (one read)."""
        raw = self._store.get(addr_stats_key(pubkey_hash))
        if raw is None:
            return AddressStats(0, 0, 0)
        funded, spent, count = msgpack.unpackb(raw)
        return AddressStats(funded, spent, count)

    def immature_amount(self, pubkey_hash: bytes, tip_height: int, maturity: int) -> int:
        """The address's coinbase outputs that cannot be spent in the block after
        ``tip_height``: its ``i`` entries newest first, up to the first old enough."""
        oldest = tip_height - maturity + 2
        total = 0
        for key, raw in self._store.iterate(P_IMMATURE + pubkey_hash, reverse=True):
            if read_u32(key[21:25]) < oldest:
                break
            total += read_u64(raw)
        return total

    def history(
        self, pubkey_hash: bytes, before: tuple[int, int] | None = None
    ) -> Iterator[tuple[bytes, int, int]]:
        """``(txid, height, position)`` of active-chain transactions touching the address,
        newest first, starting strictly before ``before`` = (height, position) if given."""
        prefix = P_ADDR_TX + pubkey_hash
        after = None if before is None else addr_tx_key(pubkey_hash, *before)
        for key, txid in self._store.iterate(prefix, reverse=True, after=after):
            yield txid, read_u32(key[21:25]), read_u32(key[25:29])

    def has_tx_at(self, pubkey_hash: bytes, height: int, position: int) -> bool:
        """Whether the active-chain transaction at ``height``/``position`` touches the address."""
        return self._store.get(addr_tx_key(pubkey_hash, height, position)) is not None

    def utxos(
        self, pubkey_hash: bytes, after: OutPoint | None = None
    ) -> Iterator[tuple[OutPoint, Coin]]:
        """The address's unspent outputs on the active chain, in (txid, index) byte order,
        starting strictly after ``after`` if given (a seek: earlier ones are not read)."""
        prefix = P_ADDR_UTXO + pubkey_hash
        cursor = None if after is None else addr_utxo_key(pubkey_hash, after.txid, after.index)
        for key, raw in self._store.iterate(prefix, after=cursor):
            yield OutPoint(key[21:53], read_u32(key[53:57])), Coin.deserialize(raw)
