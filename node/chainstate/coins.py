"""The UTXO set over the store: the coins, their cache and their running stats.

Job: hold the unspent outputs of the active chain (``c`` + outpoint) and their count, total and
order-independent hash (``S``, ``utxohash.UtxoStats``); work out, with ``consensus``'s
``connect_block``/``disconnect_block`` on a cache over the stored set, what one block changes;
write those changes into the chain's batch; and bring the read cache in line once it commits.

State owned: the ``c`` and ``S`` prefixes (``node.chainstate.schema``); a bounded read cache of
coins; the stats of the committed set (``stats``).

Invariants:
- The stored set changes only inside the chain's connect and disconnect batches (the read
  view refuses writes), so ``c``, ``S`` and the tip always describe the same chain.
- The cache holds only committed coins: ``committed`` is called after the batch has been
  written, never before, so a failed write leaves the cache as the store is.
- ``stats`` always equals the ``S`` record of the committed set.

Left to others: the rules themselves (``consensus``), which block connects when
(``node.chainstate.chain``), indexes of coins by address (``node.indexes.address``, which
follows the same changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from consensus import (
    Block,
    BlockUndo,
    Coin,
    CoinsViewCache,
    NetworkParams,
    OutPoint,
    UndoMismatchError,
    connect_block,
    disconnect_block,
)
from consensus.validation import BatchVerifier, SignatureVerifier
from node.chainstate import schema as k
from node.chainstate.errors import ChainstateError
from node.chainstate.utxohash import UtxoStats
from node.storage import KeyValueStore, WriteBatch

COIN_CACHE_SIZE = 500_000


@dataclass(frozen=True)
class UtxoSetInfo:
    height: int
    best_hash: bytes
    count: int
    total_amount: int
    hash: bytes


class StoredCoins:
    """The UTXO set in the store, behind a bounded read cache. Writes go through batches."""

    def __init__(self, store: KeyValueStore, cache_size: int) -> None:
        self._store = store
        self._cache: dict[OutPoint, Coin] = {}
        self._cache_size = cache_size

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        coin = self._cache.get(outpoint)
        if coin is None:
            raw = self._store.get(k.coin_key(outpoint.txid, outpoint.index))
            if raw is None:
                return None
            coin = Coin.deserialize(raw)
            self._remember(outpoint, coin)
        return coin

    def add_coin(self, outpoint: OutPoint, coin: Coin) -> None:
        raise RuntimeError("the stored UTXO set changes only through a chainstate batch")

    def spend_coin(self, outpoint: OutPoint) -> Coin | None:
        raise RuntimeError("the stored UTXO set changes only through a chainstate batch")

    def committed(self, changes: dict[OutPoint, Coin | None]) -> None:
        """Bring the cache in line with a batch that has just been committed."""
        for outpoint, coin in changes.items():
            if coin is None:
                self._cache.pop(outpoint, None)
            else:
                self._remember(outpoint, coin)

    def clear(self) -> None:
        self._cache.clear()

    def _remember(self, outpoint: OutPoint, coin: Coin) -> None:
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]
        self._cache[outpoint] = coin


@dataclass(frozen=True)
class CoinsUpdate:
    """What connecting or disconnecting one block does to the UTXO set, not yet written.

    ``changes`` maps each touched outpoint to its new coin (``None``: removed); ``gone`` holds
    the coin behind every ``None``; ``stats`` are the set's stats afterwards; ``undo`` is the
    block's undo data (made when connecting, read from the store when disconnecting).
    """

    undo: BlockUndo
    changes: dict[OutPoint, Coin | None]
    gone: dict[OutPoint, Coin]
    stats: UtxoStats

    @cached_property
    def encoded(self) -> dict[OutPoint, bytes]:
        """Each new coin of ``changes`` serialized, once: the ``c`` records and the address
        index's ``o`` records hold the same bytes."""
        return {op: coin.serialize() for op, coin in self.changes.items() if coin is not None}


class Coins:
    """The stored UTXO set and its stats."""

    prefixes = (k.P_COIN, k.K_STATS)

    def __init__(self, store: KeyValueStore, cache_size: int = COIN_CACHE_SIZE) -> None:
        self._store = store
        self.view = StoredCoins(store, cache_size)
        """The set as a read-only coins view (what consensus and the mempool read)."""
        self.stats = UtxoStats()

    def stored_stats(self) -> bytes | None:
        """The committed ``S`` record (``None`` in a database whose creation was cut short)."""
        return self._store.get(k.K_STATS)

    def load(self, raw_stats: bytes) -> None:
        """Take the stats of the committed set from its ``S`` record (at start-up)."""
        self.stats = UtxoStats.deserialize(raw_stats)

    def reset(self) -> None:
        """Forget the cache and the stats: the stored set is being rebuilt from nothing."""
        self.view.clear()
        self.stats = UtxoStats()

    @staticmethod
    def write_empty(batch: WriteBatch) -> None:
        """The ``S`` record of an empty set (a new database, or a reindex starting)."""
        batch.put(k.K_STATS, UtxoStats().serialize())

    def connect_block(
        self,
        block: Block,
        height: int,
        params: NetworkParams,
        verify: SignatureVerifier,
        batch_verify: BatchVerifier | None = None,
    ) -> CoinsUpdate:
        """Validate ``block`` at ``height`` against the set (``consensus.connect_block``: raises
        ``ValidationError``) and return its changes; nothing is written. Signatures go to
        ``batch_verify`` in one batch if given, else one by one to ``verify``."""
        pending = CoinsViewCache(self.view)
        undo = connect_block(block, height, pending, params, verify, batch_verify=batch_verify)
        stats = self.stats.copy()
        spent: dict[OutPoint, Coin] = {}
        for tx, coins in zip(block.txs[1:], undo.spent, strict=True):
            for txin, coin in zip(tx.inputs, coins, strict=True):
                spent[txin.prevout] = coin
                stats.remove(txin.prevout, coin)
        for tx in block.txs:
            txid = tx.txid()
            for index, out in enumerate(tx.outputs):
                stats.add(OutPoint(txid, index), Coin(out, height, tx.is_coinbase()))
        return CoinsUpdate(undo, pending.changes, spent, stats)

    def disconnect_block(self, block: Block, height: int, undo: BlockUndo) -> CoinsUpdate:
        """The changes that take ``block`` (the tip, at ``height``) back out of the set, from
        its undo data; ``ChainstateError`` if the undo data does not fit the set."""
        pending = CoinsViewCache(self.view)
        try:
            disconnect_block(block, undo, pending)
        except UndoMismatchError as err:
            raise ChainstateError(f"cannot disconnect {block.hash_hex()}: {err}") from err
        stats = self.stats.copy()
        removed: dict[OutPoint, Coin] = {}
        for tx in block.txs:
            txid = tx.txid()
            for index, out in enumerate(tx.outputs):
                outpoint = OutPoint(txid, index)
                coin = Coin(out, height, tx.is_coinbase())
                removed[outpoint] = coin
                stats.remove(outpoint, coin)
        for tx, coins in zip(block.txs[1:], undo.spent, strict=True):
            for txin, coin in zip(tx.inputs, coins, strict=True):
                stats.add(txin.prevout, coin)
        return CoinsUpdate(undo, pending.changes, removed, stats)

    @staticmethod
    def write(batch: WriteBatch, update: CoinsUpdate) -> None:
        """The ``c`` changes and the new ``S`` record, into the chain's batch."""
        for outpoint, coin in update.changes.items():
            key = k.coin_key(outpoint.txid, outpoint.index)
            if coin is None:
                batch.delete(key)
            else:
                batch.put(key, update.encoded[outpoint])
        batch.put(k.K_STATS, update.stats.serialize())

    def committed(self, update: CoinsUpdate) -> None:
        """The batch carrying ``update`` has been written: follow it in memory."""
        self.view.committed(update.changes)
        self.stats = update.stats
