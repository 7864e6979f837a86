"""The chainstate facade: one object for stored blocks, the active chain, the UTXO set, undo
data and the explorer indexes of one network in one key-value store.

Job: open (or create) the database, check its version and network, and run a reindex if one is
due; then hand each call to the part that owns it. The parts:

- ``blockstore.BlockStore``: block bodies and undo data (``b``, ``u``);
- ``chain.Chain``: the block index, the orphan pool, activation and reorganisation, events
  (``h``, ``Q``, ``H``, ``T``, ``R``, ``D``);
- ``coins.Coins``: the UTXO set and its stats (``c``, ``S``);
- the index writers of ``node.indexes`` (transactions, spenders, addresses), given to the
  constructor (``indexes``, by default ``default_indexes``), each adding its writes to the
  chain's own connect and disconnect batches;
- ``reindex``: rebuilding all derived keys from the stored blocks (``X``).

State owned: the ``V`` (schema version) and ``N`` (network) keys; the prefixes of all the
others are registered in ``schema.REGISTRY`` with their owners.

Invariants (kept by the parts, stated here for the callers):
- Connecting or disconnecting one block is one atomic, synced write batch that moves the UTXO
  set, the undo data, the indexes, the UTXO stats and the tip together. A crash at any moment
  leaves a database that opens at a consistent tip; a reorganisation cut short is resumed at
  the next start.
- Start-up reads a handful of keys (version, network, tip, stats): its cost does not depend on the
  length of the chain. Block index entries are read on demand and cached.
- A node opens only a database of its own schema version and network (``ChainstateError``
  otherwise, nothing written), except that ``upgrade=True`` upgrades an older schema whose
  blocks it reads by reindexing.
- A stored body is always the one its header commits to (``check_block`` ran before it was
  stored; ``reindex`` checks every stored body again and drops any that is not).

Left to others: relaying, the mempool, mining and the clock's source (``clock`` is injected), the
signature cache (``verify`` is injected; ``batch_verify``, given, checks a block's signatures in
one batch on the node's signature pool). Events go to subscribers after each commit.
Not thread-safe: one caller at a time (the node's state thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

from consensus import (
    Block,
    BlockUndo,
    Coin,
    NetworkParams,
    OutPoint,
    Transaction,
    verify_signature,
)
from consensus.validation import BatchVerifier, SignatureVerifier
from node.chainstate import reindex as rebuild
from node.chainstate import schema as k
from node.chainstate.blockindex import BlockIndexEntry
from node.chainstate.blockstore import BlockStore
from node.chainstate.chain import (
    INDEX_CACHE_SIZE,
    INVALIDATED_BY_HAND,
    MAX_ORPHAN_BYTES,
    MAX_ORPHANS,
    AcceptResult,
    Chain,
)
from node.chainstate.coins import COIN_CACHE_SIZE, Coins, StoredCoins, UtxoSetInfo
from node.chainstate.errors import ChainstateError, GenesisBlockError, UnknownBlockError
from node.chainstate.events import ChainEvent
from node.indexes import (
    AddressIndex,
    AddressStats,
    BlockSummary,
    IndexWriter,
    SpenderIndex,
    TxIndex,
    default_indexes,
)
from node.indexes.address import COMPACT_EVERY
from node.state import state_owned
from node.storage import KeyValueStore

__all__ = [
    "COIN_CACHE_SIZE",
    "COMPACT_EVERY",
    "INDEX_CACHE_SIZE",
    "INVALIDATED_BY_HAND",
    "MAX_ORPHANS",
    "MAX_ORPHAN_BYTES",
    "AcceptResult",
    "AddressStats",
    "BlockSummary",
    "Chainstate",
    "ChainstateError",
    "ConfirmedTx",
    "GenesisBlockError",
    "UnknownBlockError",
    "UtxoSetInfo",
]

log = logging.getLogger(__name__)

_Index = TypeVar("_Index", TxIndex, SpenderIndex, AddressIndex)


@dataclass(frozen=True)
class ConfirmedTx:
    """An active-chain transaction, the coins its inputs spent (empty for a coinbase), its block
    and its position there: one ``t`` record (see ``node.indexes.tx``)."""

    tx: Transaction
    spent: tuple[Coin, ...]
    entry: BlockIndexEntry
    position: int


@state_owned
class Chainstate:
    """Blocks, the active chain and the UTXO set of one network, in one key-value store."""

    def __init__(
        self,
        store: KeyValueStore,
        params: NetworkParams,
        *,
        clock: Callable[[], float] = time.time,
        verify: SignatureVerifier = verify_signature,
        batch_verify: BatchVerifier | None = None,
        max_orphans: int = MAX_ORPHANS,
        max_orphan_bytes: int = MAX_ORPHAN_BYTES,
        sync: bool = True,
        upgrade: bool = False,
        indexes: Sequence[IndexWriter] | None = None,
    ) -> None:
        """Open (or create) the chainstate in ``store``.

        ``upgrade=True`` (``tally-node reindex``) accepts a database of an older schema whose
        blocks this version reads (``schema.UPGRADABLE_BY_REINDEX``) and reindexes it at once;
        without it such a database is refused, unchanged, with a message saying what to do.
        ``indexes`` are the index writers kept in the chain's batches (the one place they are
        chosen): ``node.indexes.default_indexes(store)`` unless given.
        """
        self.store = store
        self.params = params
        self._sync = sync
        self._blocks = BlockStore(store)
        self._coins = Coins(store, COIN_CACHE_SIZE)
        self._indexes = tuple(default_indexes(store) if indexes is None else indexes)
        self._chain = Chain(
            store,
            params,
            self._blocks,
            self._coins,
            self._indexes,
            clock=clock,
            verify=verify,
            batch_verify=batch_verify,
            max_orphans=max_orphans,
            max_orphan_bytes=max_orphan_bytes,
            sync=sync,
        )
        self.reindexed_at_open = False
        """True if opening ran a reindex (an upgrade, or one a crash interrupted)."""
        self._open(upgrade)

    # --- start-up -------------------------------------------------------------------------------

    def _open(self, upgrade: bool) -> None:
        version = self.store.get(k.K_VERSION)
        upgrading = False
        if version is None:
            self._initialise()
        elif len(version) != 4:
            raise ChainstateError("the schema version key is corrupt: not a Tally database?")
        elif k.read_u32(version) != k.SCHEMA_VERSION:
            found = k.read_u32(version)
            if not (upgrade and found in k.UPGRADABLE_BY_REINDEX):
                raise ChainstateError(k.schema_mismatch_message(found))
            upgrading = True
        network = (self.store.get(k.K_NETWORK) or b"").decode("ascii", "replace")
        if network != self.params.name:
            raise ChainstateError(
                f"this data directory holds the {network!r} network, not {self.params.name!r}"
            )
        if upgrading:
            log.warning(
                "upgrading the chainstate from schema %d to %d: reindexing",
                k.read_u32(version or b""),
                k.SCHEMA_VERSION,
            )
            # One batch: a crash after it finds the new version with a reindex in progress.
            with self.store.write_batch(sync=self._sync) as batch:
                rebuild.mark_started(batch)
                batch.put(k.K_VERSION, k.u32(k.SCHEMA_VERSION))
        if rebuild.in_progress(self.store):
            if not upgrading:
                log.warning("a reindex was interrupted; reindexing again")
            self.reindex()
            self.reindexed_at_open = True
            return
        if self.store.get(k.K_TIP) is None:
            log.warning("finishing an interrupted creation of the database")
            self._chain.initialise_genesis()
        self._chain.load_tip()
        self._chain.resume()

    def reload(self) -> None:
        """Read the chainstate again from its store, whose contents were replaced underneath
        (a devnet revert, ``node.snapshots``), as opening does: every in-memory cache, the tip,
        the UTXO stats and the orphan pool are dropped first. Subscribers stay subscribed and
        hear nothing of the jump (no block was connected or disconnected)."""
        self._chain.forget_state()
        self._chain.forget_orphans()
        self.reindexed_at_open = False
        self._open(upgrade=False)

    def _initialise(self) -> None:
        log.info("creating a new %s chainstate", self.params.name)
        with self.store.write_batch(sync=self._sync) as batch:
            batch.put(k.K_VERSION, k.u32(k.SCHEMA_VERSION))
            batch.put(k.K_NETWORK, self.params.name.encode("ascii"))
            batch.put(k.K_SEQUENCE, k.u64(0))
            self._coins.write_empty(batch)
        self._chain.initialise_genesis()

    def _index(self, kind: type[_Index]) -> _Index:
        for index in self._indexes:
            if isinstance(index, kind):
                return index
        raise LookupError(f"this chainstate keeps no {kind.name} index")

    # --- the chain ------------------------------------------------------------------------------

    @property
    def tip(self) -> BlockIndexEntry:
        return self._chain.tip

    @property
    def height(self) -> int:
        return self._chain.height

    def get_entry(self, block_hash: bytes) -> BlockIndexEntry | None:
        return self._chain.get_entry(block_hash)

    def hash_at_height(self, height: int) -> bytes | None:
        """The active chain's block at ``height``."""
        return self._chain.hash_at_height(height)

    def in_active_chain(self, entry: BlockIndexEntry) -> bool:
        return self._chain.in_active_chain(entry)

    def median_time_past(self, entry: BlockIndexEntry | None = None) -> int:
        """Median time past of ``entry`` (default the tip): see ``Chain.median_time_past``."""
        return self._chain.median_time_past(entry)

    def block_locator(self) -> list[bytes]:
        """Hashes of the active chain from the tip back, densely then exponentially sparser,
        ending at genesis (Bitcoin's block locator)."""
        return self._chain.block_locator()

    def headers_after(self, locator: list[bytes], stop: bytes, limit: int) -> list[bytes]:
        """Serialized headers of the active chain after the first locator hash found on it
        (genesis if none), up to ``limit`` or through ``stop``."""
        return self._chain.headers_after(locator, stop, limit)

    def next_block_bits(self) -> int:
        """The ``bits`` a block on top of the tip must carry."""
        return self._chain.next_block_bits()

    def ancestor(self, entry: BlockIndexEntry, height: int) -> BlockIndexEntry:
        """The ancestor of ``entry`` at ``height`` (``entry`` itself at its own height)."""
        return self._chain.ancestor(entry, height)

    def returned_blocks(self) -> list[tuple[bytes, Block]]:
        """The blocks that left the active chain since the mempool last took their transactions
        back, oldest first, each with its record's key (see ``Chain.returned_blocks``)."""
        return self._chain.returned_blocks()

    def forget_returned(self, keys: list[bytes]) -> None:
        """Delete the records of ``returned_blocks`` whose transactions are now persisted
        elsewhere (the mempool calls this after writing what it took back)."""
        self._chain.forget_returned(keys)

    def orphan_count(self) -> int:
        return self._chain.orphan_count()

    def has_orphan(self, block_hash: bytes) -> bool:
        """Whether the block waits in the orphan pool for its parent (its body is here)."""
        return self._chain.has_orphan(block_hash)

    def orphan_bytes(self) -> int:
        """Serialized bytes of the blocks in the orphan pool (at most ``max_orphan_bytes``)."""
        return self._chain.orphan_bytes()

    def subscribe(self, listener: Callable[[ChainEvent], None]) -> None:
        """Call ``listener(event)`` after every committed change (see ``events``)."""
        self._chain.subscribe(listener)

    def process_block(self, block: Block) -> AcceptResult:
        """Validate and store ``block``, then move the active chain if it now has more work
        (see ``Chain.process_block`` for what is raised and kept)."""
        return self._chain.process_block(block)

    def deferred_sync(self) -> AbstractContextManager[None]:
        """Blocks processed inside are made durable by one synced write on leaving
        (``Chain.deferred_sync``)."""
        return self._chain.deferred_sync()

    def invalidate_block(self, block_hash: bytes) -> None:
        """Mark ``block_hash`` and its descendants invalid (Core's ``invalidateblock``)."""
        self._chain.invalidate_block(block_hash)

    def reconsider_block(self, block_hash: bytes) -> None:
        """Clear the invalid marks of ``block_hash``, its descendants and its ancestors, then
        activate the most-work valid chain (Core's ``reconsiderblock``)."""
        self._chain.reconsider_block(block_hash)

    def reindex(self) -> None:
        """Rebuild the UTXO set, undo data, indexes and tip from the stored blocks (see
        ``node.chainstate.reindex``)."""
        rebuild.reindex(self._chain)

    # --- blocks and undo data -------------------------------------------------------------------

    def get_block(self, block_hash: bytes) -> Block | None:
        return self._blocks.get_block(block_hash)

    def get_block_bytes(self, block_hash: bytes) -> bytes | None:
        return self._blocks.get_block_bytes(block_hash)

    def get_undo(self, block_hash: bytes) -> BlockUndo | None:
        return self._blocks.get_undo(block_hash)

    # --- the UTXO set ---------------------------------------------------------------------------

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self._coins.view.get_coin(outpoint)

    @property
    def coins(self) -> StoredCoins:
        """The UTXO set as a read-only coins view (for the mempool)."""
        return self._coins.view

    def utxo_set_info(self) -> UtxoSetInfo:
        s = self._coins.stats
        return UtxoSetInfo(self.height, self.tip.hash, s.count, s.total_amount, s.hash())

    # --- the indexes ----------------------------------------------------------------------------

    def get_tx_location(self, txid: bytes) -> tuple[BlockIndexEntry, int] | None:
        """The active-chain block holding ``txid`` and the transaction's position in it."""
        found = self._index(TxIndex).get_location(txid)
        if found is None:
            return None
        entry = self.get_entry(found[0])
        return None if entry is None else (entry, found[1])

    def get_confirmed_tx(self, txid: bytes) -> ConfirmedTx | None:
        """The active-chain transaction ``txid`` with the coins it spent: one read of its own
        ``t`` record, whatever the size of its block (the block is neither read nor decoded)."""
        record = self._index(TxIndex).get_record(txid)
        if record is None:
            return None
        entry = self.get_entry(record.block_hash)
        if entry is None:
            return None
        return ConfirmedTx(record.tx, record.spent, entry, record.position)

    def get_transaction(self, txid: bytes) -> tuple[Transaction, BlockIndexEntry, int] | None:
        found = self.get_confirmed_tx(txid)
        return None if found is None else (found.tx, found.entry, found.position)

    def block_summary(self, block_hash: bytes) -> BlockSummary | None:
        """Transaction count, size and fees of an active-chain block (one small read); ``None``
        for a block off the active chain."""
        return self._index(TxIndex).block_summary(block_hash)

    def _block_ids(self, entry: BlockIndexEntry, start: int) -> Iterator[bytes]:
        """``txid + wtxid`` of each transaction of ``entry``'s block from position ``start`` on,
        from its ``j`` records (a seek to ``start``); nothing for a block off the active chain
        (the records are by height: they describe the active chain's block there)."""
        if not self.in_active_chain(entry):
            return iter(())
        return self._index(TxIndex).block_ids(entry.height, start)

    def block_txids(self, entry: BlockIndexEntry, start: int = 0) -> Iterator[bytes]:
        """The txids of an active-chain block from position ``start`` on, in block order (a
        seek to ``start``: earlier ones are not read); nothing for a block off it."""
        return (ids[:32] for ids in self._block_ids(entry, start))

    def block_wtxids(self, entry: BlockIndexEntry) -> list[bytes]:
        """The wtxids of an active-chain block in block order (the merkle tree's leaves), 64
        bytes read a transaction, nothing decoded; empty for a block off the active chain."""
        return [ids[32:] for ids in self._block_ids(entry, 0)]

    def get_spender(self, outpoint: OutPoint) -> tuple[bytes, int] | None:
        """The active-chain transaction spending ``outpoint``, and its input index."""
        return self._index(SpenderIndex).get_spender(outpoint)

    def address_stats(self, pubkey_hash: bytes) -> AddressStats:
        """Totals over the address's whole active-chain history (one read)."""
        return self._index(AddressIndex).address_stats(pubkey_hash)

    def immature_amount(self, pubkey_hash: bytes) -> int:
        """The address's coinbase outputs that cannot be spent in the next block yet.

        Reads the address's ``i`` entries newest first and stops at the first one old enough:
        the cost is the number of immature outputs, not the address's history. Such an output
        is unspent on the active chain by consensus (spending it would break maturity).
        """
        index = self._index(AddressIndex)
        return index.immature_amount(pubkey_hash, self.height, self.params.coinbase_maturity)

    def address_history(
        self, pubkey_hash: bytes, before: tuple[int, int] | None = None
    ) -> Iterator[tuple[bytes, int, int]]:
        """``(txid, height, position)`` of active-chain transactions touching the address,
        newest first, starting strictly before ``before`` = (height, position) if given."""
        return self._index(AddressIndex).history(pubkey_hash, before)

    def address_has_tx_at(self, pubkey_hash: bytes, height: int, position: int) -> bool:
        """Whether the active-chain transaction at ``height``/``position`` touches the address."""
        return self._index(AddressIndex).has_tx_at(pubkey_hash, height, position)

    def address_utxos(
        self, pubkey_hash: bytes, after: OutPoint | None = None
    ) -> Iterator[tuple[OutPoint, Coin]]:
        """The address's unspent outputs on the active chain, in (txid, index) byte order,
        starting strictly after ``after`` if given (a seek: earlier ones are not read)."""
        return self._index(AddressIndex).utxos(pubkey_hash, after)
