"""The chainstate: stored blocks, the active chain, the UTXO set, undo data and the indexes.

Job: take blocks in any order, keep every valid one, and keep the active chain on the valid chain
with the most work, reorganising through undo data when another chain overtakes it. Rules come
from ``consensus``; this class decides where blocks go and writes the results.

Invariants:
- Connecting or disconnecting one block is one atomic, synced write batch that moves the UTXO
  set, the undo data, the indexes, the UTXO stats and the tip together (key schema in
  ``node.chainstate.schema``). A crash at any moment leaves a database that opens at a consistent
  tip; a reorganisation cut short is resumed at the next start.
- Start-up reads a handful of keys (version, network, tip, stats): its cost does not depend on the
  length of the chain. Block index entries are read on demand and cached.
- A stored body is always the one its header commits to (``check_block`` ran before it was
  stored; ``reindex`` checks every stored body again and drops any that is not).
- A *mutated* body (``ValidationError.mutated``: it does not match its header, SPEC 2.4) is
  dropped: not stored, not kept as an orphan, its hash never marked, so the genuine body is
  accepted when it comes. A block that breaks a rule its header commits to is stored as failed
  with its reject code (if its parent is known), and so is every block found to descend from it;
  neither is accepted again until ``reconsider_block``. A header without valid proof of work is
  not stored at all. ``invalidate_block`` marks a block by hand (Core's ``invalidateblock``).
- An index entry may lack its body (a failed header, a mark cleared by ``reconsider_block``, a
  body ``reindex`` dropped): the chain through it waits until the body is delivered.
- Equal work does not switch chains: the tip seen first stays.
- Orphans (parent unknown) wait in a bounded pool and are processed when their parent arrives.

Left to others: relaying, the mempool, mining and the clock's source (``clock`` is injected), the
signature cache (``verify`` is injected). Events go to subscribers after each commit.
Not thread-safe: one caller at a time (the node's event loop).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgpack

from consensus import (
    MAX_BLOCK_SIZE,
    Block,
    BlockUndo,
    BlockValidationResult,
    Coin,
    CoinsViewCache,
    NetworkParams,
    OutPoint,
    Transaction,
    UndoMismatchError,
    ValidationError,
    block_work,
    check_block,
    check_block_merkle_root,
    connect_block,
    disconnect_block,
    required_bits,
    verify_block_context,
    verify_header,
    verify_signature,
)
from consensus import errors as codes
from consensus.validation import SignatureVerifier
from node.chainstate import schema as k
from node.chainstate.blockindex import BlockIndexEntry, Status
from node.chainstate.events import BlockConnected, BlockDisconnected, ChainEvent, TipChanged
from node.chainstate.utxohash import UtxoStats
from node.state import state_owned
from node.storage import KeyValueStore, StorageError, WriteBatch

log = logging.getLogger(__name__)

MAX_ORPHANS = 200
"""Blocks kept while their parent is unknown; the oldest goes first."""
MAX_ORPHAN_BYTES = 4 * MAX_BLOCK_SIZE
"""Serialized bytes of the blocks kept while their parent is unknown (four blocks of the largest
size, 4 MB), whatever their count: the oldest goes first. Orphans are held as their bytes, so this
is what the pool holds in memory (plus a few hundred bytes of bookkeeping each)."""
INDEX_CACHE_SIZE = 50_000
COIN_CACHE_SIZE = 500_000
COMPACT_EVERY = 1_000
"""Every this many connected blocks, compact the address-UTXO range (see ``_connect``)."""


INVALIDATED_BY_HAND = "invalidated"
"""The ``reject_code`` of an index entry marked by ``invalidate_block`` (not a rule's code)."""


class ChainstateError(Exception):
    """The database cannot be used: another network's, another schema's, or corrupt."""


class UnknownBlockError(LookupError):
    """No block index entry has this hash."""


class GenesisBlockError(ValueError):
    """The genesis block cannot be invalidated: every chain starts there."""


@dataclass(frozen=True)
class AcceptResult:
    """What became of a block handed to ``process_block``.

    ``status`` is ``active`` (on the active chain now), ``side`` (stored on another chain) or
    ``orphan`` (parent unknown, kept in the orphan pool: reject code ``prev-blk-not-found``).
    """

    hash: bytes
    status: str
    height: int | None = None


@dataclass(frozen=True)
class AddressStats:
    """An address's active-chain totals: received, spent, and transactions touching it."""

    funded_sum: int
    spent_sum: int
    tx_count: int


@dataclass(frozen=True)
class ConfirmedTx:
    """An active-chain transaction, the coins its inputs spent (empty for a coinbase), its block
    and its position there: one ``t`` record (see ``node.chainstate.schema``)."""

    tx: Transaction
    spent: tuple[Coin, ...]
    entry: BlockIndexEntry
    position: int


@dataclass(frozen=True)
class BlockSummary:
    """What ``/block/{hash}`` shows of an active-chain block's body, kept at connect."""

    tx_count: int
    size: int
    total_fees: int


@dataclass(frozen=True)
class UtxoSetInfo:
    height: int
    best_hash: bytes
    count: int
    total_amount: int
    hash: bytes


class _StoredCoins:
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
        max_orphans: int = MAX_ORPHANS,
        max_orphan_bytes: int = MAX_ORPHAN_BYTES,
        sync: bool = True,
        upgrade: bool = False,
    ) -> None:
        """Open (or create) the chainstate in ``store``.

        ``upgrade=True`` (``tally-node reindex``) accepts a database of an older schema whose
        blocks this version reads (``schema.UPGRADABLE_BY_REINDEX``) and reindexes it at once;
        without it such a database is refused, unchanged, with a message saying what to do.
        """
        self.store = store
        self.params = params
        self._clock = clock
        self._verify = verify
        self._max_orphans = max_orphans
        self._max_orphan_bytes = max_orphan_bytes
        self._orphan_bytes = 0
        self._sync = sync
        self._coins = _StoredCoins(store, COIN_CACHE_SIZE)
        self._index_cache: dict[bytes, BlockIndexEntry] = {}
        # hash -> (parent hash, serialized block): bytes, not decoded objects (~9x the size)
        self._orphans: OrderedDict[bytes, tuple[bytes, bytes]] = OrderedDict()
        self._listeners: list[Callable[[ChainEvent], None]] = []
        self._tip: BlockIndexEntry | None = None
        self._stats = UtxoStats()
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
                batch.put(k.K_REINDEX, b"1")
                batch.put(k.K_VERSION, k.u32(k.SCHEMA_VERSION))
        if self.store.get(k.K_REINDEX) is not None:
            if not upgrading:
                log.warning("a reindex was interrupted; reindexing again")
            self.reindex()
            self.reindexed_at_open = True
            return
        if self.store.get(k.K_TIP) is None:
            log.warning("finishing an interrupted creation of the database")
            self._initialise_genesis()
        self._load_tip()
        pending = self.store.get(k.K_REORG)
        if pending is not None:
            log.warning("resuming an interrupted change of the active chain")
            candidates = [self.get_entry(pending[i : i + 32]) for i in range(0, len(pending), 32)]
            self._activate_best_chain([c for c in candidates if c is not None])

    def _initialise(self) -> None:
        log.info("creating a new %s chainstate", self.params.name)
        with self.store.write_batch(sync=self._sync) as batch:
            batch.put(k.K_VERSION, k.u32(k.SCHEMA_VERSION))
            batch.put(k.K_NETWORK, self.params.name.encode("ascii"))
            batch.put(k.K_SEQUENCE, k.u64(0))
            batch.put(k.K_STATS, UtxoStats().serialize())
        self._initialise_genesis()

    def _initialise_genesis(self) -> None:
        """Store (if need be) and connect the genesis block: the last steps of creation, safe to
        repeat after a crash, since nothing else is written before the tip exists."""
        genesis = self.params.genesis
        check_block(genesis, self.params)
        self._tip = None
        entry = self.get_entry(genesis.hash())
        if entry is None or not entry.have_data:
            entry = self._store_block(genesis, height=0, chainwork=block_work(genesis.header.bits))
        self._stats = UtxoStats()
        self._write_key(k.K_STATS, UtxoStats().serialize())
        self._connect(entry)

    def _load_tip(self) -> None:
        tip_hash = self.store.get(k.K_TIP)
        stats = self.store.get(k.K_STATS)
        if tip_hash is None or stats is None:
            raise ChainstateError("the database has no tip: run `tally-node reindex`")
        tip = self.get_entry(tip_hash)
        if tip is None:
            raise ChainstateError("the tip's block index entry is missing: the database is corrupt")
        self._tip = tip
        self._stats = UtxoStats.deserialize(stats)

    # --- reading --------------------------------------------------------------------------------

    @property
    def tip(self) -> BlockIndexEntry:
        assert self._tip is not None
        return self._tip

    @property
    def height(self) -> int:
        return self.tip.height

    def get_entry(self, block_hash: bytes) -> BlockIndexEntry | None:
        entry = self._index_cache.get(block_hash)
        if entry is None:
            raw = self.store.get(k.index_key(block_hash))
            if raw is None:
                return None
            entry = BlockIndexEntry.deserialize(block_hash, raw)
            self._cache_entry(entry)
        return entry

    def get_block(self, block_hash: bytes) -> Block | None:
        raw = self.store.get(k.block_key(block_hash))
        return None if raw is None else Block.deserialize(raw)

    def get_block_bytes(self, block_hash: bytes) -> bytes | None:
        return self.store.get(k.block_key(block_hash))

    def get_undo(self, block_hash: bytes) -> BlockUndo | None:
        raw = self.store.get(k.undo_key(block_hash))
        return None if raw is None else BlockUndo.deserialize(raw)

    def hash_at_height(self, height: int) -> bytes | None:
        """The active chain's block at ``height``."""
        if not 0 <= height <= self.height:
            return None
        return self.store.get(k.height_key(height))

    def in_active_chain(self, entry: BlockIndexEntry) -> bool:
        return self.hash_at_height(entry.height) == entry.hash

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self._coins.get_coin(outpoint)

    @property
    def coins(self) -> _StoredCoins:
        """The UTXO set as a read-only coins view (for the mempool)."""
        return self._coins

    def get_tx_location(self, txid: bytes) -> tuple[BlockIndexEntry, int] | None:
        """The active-chain block holding ``txid`` and the transaction's position in it."""
        raw = self.store.get(k.tx_key(txid))
        if raw is None:
            return None
        block_hash, position = msgpack.unpackb(raw, raw=True)[:2]
        entry = self.get_entry(block_hash)
        return None if entry is None else (entry, position)

    def get_confirmed_tx(self, txid: bytes) -> ConfirmedTx | None:
        """The active-chain transaction ``txid`` with the coins it spent: one read of its own
        ``t`` record, whatever the size of its block (the block is neither read nor decoded)."""
        raw = self.store.get(k.tx_key(txid))
        if raw is None:
            return None
        block_hash, position, raw_tx, spent = msgpack.unpackb(raw, raw=True)
        entry = self.get_entry(block_hash)
        if entry is None:
            return None
        coins = tuple(Coin.from_obj(c) for c in spent)
        return ConfirmedTx(Transaction.deserialize(raw_tx), coins, entry, position)

    def get_transaction(self, txid: bytes) -> tuple[Transaction, BlockIndexEntry, int] | None:
        found = self.get_confirmed_tx(txid)
        return None if found is None else (found.tx, found.entry, found.position)

    def block_summary(self, block_hash: bytes) -> BlockSummary | None:
        """Transaction count, size and fees of an active-chain block (one small read); ``None``
        for a block off the active chain."""
        raw = self.store.get(k.block_summary_key(block_hash))
        if raw is None:
            return None
        tx_count, size, fees = msgpack.unpackb(raw)
        return BlockSummary(tx_count, size, fees)

    def _block_ids(self, entry: BlockIndexEntry, start: int) -> Iterator[bytes]:
        """``txid + wtxid`` of each transaction of ``entry``'s block from position ``start`` on,
        from its ``j`` records (a seek to ``start``); nothing for a block off the active chain
        (the records are by height: they describe the active chain's block there)."""
        if not self.in_active_chain(entry):
            return iter(())
        prefix = k.P_BLOCK_TX + k.u32(entry.height)
        after = None if start <= 0 else k.block_tx_key(entry.height, start - 1)
        return (ids for _, ids in self.store.iterate(prefix, after=after))

    def block_txids(self, entry: BlockIndexEntry, start: int = 0) -> Iterator[bytes]:
        """The txids of an active-chain block from position ``start`` on, in block order (a
        seek to ``start``: earlier ones are not read); nothing for a block off it."""
        return (ids[:32] for ids in self._block_ids(entry, start))

    def block_wtxids(self, entry: BlockIndexEntry) -> list[bytes]:
        """The wtxids of an active-chain block in block order (the merkle tree's leaves), 64
        bytes read a transaction, nothing decoded; empty for a block off the active chain."""
        return [ids[32:] for ids in self._block_ids(entry, 0)]

    def immature_amount(self, pubkey_hash: bytes) -> int:
        """The address's coinbase outputs that cannot be spent in the next block yet.

        Reads the address's ``i`` entries newest first and stops at the first one old enough:
        the cost is the number of immature outputs, not the address's history. Such an output
        is unspent on the active chain by consensus (spending it would break maturity).
        """
        oldest = self.height - self.params.coinbase_maturity + 2
        total = 0
        for key, raw in self.store.iterate(k.P_IMMATURE + pubkey_hash, reverse=True):
            if k.read_u32(key[21:25]) < oldest:
                break
            total += k.read_u64(raw)
        return total

    def get_spender(self, outpoint: OutPoint) -> tuple[bytes, int] | None:
        """The active-chain transaction spending ``outpoint``, and its input index."""
        raw = self.store.get(k.spender_key(outpoint.txid, outpoint.index))
        if raw is None:
            return None
        txid, index = msgpack.unpackb(raw, raw=True)
        return txid, index

    def address_history(
        self, pubkey_hash: bytes, before: tuple[int, int] | None = None
    ) -> Iterator[tuple[bytes, int, int]]:
        """``(txid, height, position)`` of active-chain transactions touching the address,
        newest first, starting strictly before ``before`` = (height, position) if given."""
        prefix = k.P_ADDR_TX + pubkey_hash
        after = None if before is None else k.addr_tx_key(pubkey_hash, *before)
        for key, txid in self.store.iterate(prefix, reverse=True, after=after):
            yield txid, k.read_u32(key[21:25]), k.read_u32(key[25:29])

    def address_has_tx_at(self, pubkey_hash: bytes, height: int, position: int) -> bool:
        """Whether the active-chain transaction at ``height``/``position`` touches the address."""
        return self.store.get(k.addr_tx_key(pubkey_hash, height, position)) is not None

    def address_utxos(
        self, pubkey_hash: bytes, after: OutPoint | None = None
    ) -> Iterator[tuple[OutPoint, Coin]]:
        """The address's unspent outputs on the active chain, in (txid, index) byte order,
        starting strictly after ``after`` if given (a seek: earlier ones are not read)."""
        prefix = k.P_ADDR_UTXO + pubkey_hash
        cursor = None if after is None else k.addr_utxo_key(pubkey_hash, after.txid, after.index)
        for key, raw in self.store.iterate(prefix, after=cursor):
            yield OutPoint(key[21:53], k.read_u32(key[53:57])), Coin.deserialize(raw)

    def utxo_set_info(self) -> UtxoSetInfo:
        s = self._stats
        return UtxoSetInfo(self.height, self.tip.hash, s.count, s.total_amount, s.hash())

    def median_time_past(self, entry: BlockIndexEntry | None = None) -> int:
        """Median of the times of ``entry`` (default the tip) and its 10 predecessors."""
        entry = entry or self.tip
        times: list[int] = []
        cur: BlockIndexEntry | None = entry
        while cur is not None and len(times) < 11:
            times.append(cur.header.time)
            cur = self.get_entry(cur.prev_hash) if cur.height > 0 else None
        return sorted(times)[len(times) // 2]

    def block_locator(self) -> list[bytes]:
        """Hashes of the active chain from the tip back, densely then exponentially sparser,
        ending at genesis (Bitcoin's block locator)."""
        hashes: list[bytes] = []
        height = self.height
        step = 1
        while height > 0:
            found = self.hash_at_height(height)
            if found is not None:
                hashes.append(found)
            if len(hashes) >= 10:
                step *= 2
            height -= step
        hashes.append(self.params.genesis_hash)
        return hashes

    def headers_after(self, locator: list[bytes], stop: bytes, limit: int) -> list[bytes]:
        """Serialized headers of the active chain after the first locator hash found on it
        (genesis if none), up to ``limit`` or through ``stop``."""
        start = 0
        for block_hash in locator:
            entry = self.get_entry(block_hash)
            if entry is not None and self.in_active_chain(entry):
                start = entry.height + 1
                break
        out: list[bytes] = []
        for height in range(start, min(self.height, start + limit - 1) + 1):
            at_height = self.hash_at_height(height)
            entry = self.get_entry(at_height) if at_height else None
            if entry is None:
                break
            out.append(entry.header.serialize())
            if entry.hash == stop:
                break
        return out

    def next_block_bits(self) -> int:
        """The ``bits`` a block on top of the tip must carry."""
        tip = self.tip
        return required_bits(
            self.params,
            tip.height + 1,
            tip.header.bits,
            lambda h: self.ancestor(tip, h).header.time,
        )

    def ancestor(self, entry: BlockIndexEntry, height: int) -> BlockIndexEntry:
        """The ancestor of ``entry`` at ``height`` (``entry`` itself at its own height)."""
        if not 0 <= height <= entry.height:
            raise ValueError(f"no ancestor at height {height} below {entry.height}")
        cur = entry
        while cur.height > height:
            if self.hash_at_height(cur.height) == cur.hash:
                found = self.hash_at_height(height)
                assert found is not None
                result = self.get_entry(found)
                assert result is not None
                return result
            parent = self.get_entry(cur.prev_hash)
            if parent is None:
                raise ChainstateError(f"block index is missing the parent of {cur.hash.hex()}")
            cur = parent
        return cur

    def returned_blocks(self) -> list[tuple[bytes, Block]]:
        """The blocks that left the active chain since the mempool last took their transactions
        back (``forget_returned``), oldest first (by height), each with its record's key.

        The record is written in the batch that disconnects the block, so it survives any crash
        after the disconnection (a reorganisation resumed at start-up, before anyone subscribed,
        included); a block whose body ``reindex`` has since dropped is skipped."""
        found: list[tuple[bytes, Block]] = []
        for key, _ in self.store.iterate(k.P_RETURNED):
            block = self.get_block(key[-32:])
            if block is not None:
                found.append((key, block))
        return found

    def forget_returned(self, keys: list[bytes]) -> None:
        """Delete the records of ``returned_blocks`` whose transactions are now persisted
        elsewhere (the mempool calls this after writing what it took back)."""
        if keys:

            def write(batch: WriteBatch) -> None:
                for key in keys:
                    batch.delete(key)

            self._put_now(write)

    def orphan_count(self) -> int:
        return len(self._orphans)

    def has_orphan(self, block_hash: bytes) -> bool:
        """Whether the block waits in the orphan pool for its parent (its body is here)."""
        return block_hash in self._orphans

    def orphan_bytes(self) -> int:
        """Serialized bytes of the blocks in the orphan pool (at most ``max_orphan_bytes``)."""
        return self._orphan_bytes

    # --- events ---------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[ChainEvent], None]) -> None:
        """Call ``listener(event)`` after every committed change (see ``events``)."""
        self._listeners.append(listener)

    def _emit(self, event: ChainEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except StorageError:
                raise  # the node must stop: swallowing it would hide a disk failure
            except Exception:
                log.exception("a chainstate event subscriber failed on %s", type(event).__name__)

    # --- accepting blocks -----------------------------------------------------------------------

    def process_block(self, block: Block) -> AcceptResult:
        """Validate and store ``block``, then move the active chain if it now has more work.

        Raises ``ValidationError`` for a block that breaks a rule (``duplicate`` for one already
        stored). An orphan is not an error: it is kept and reported as ``status="orphan"``.
        The error's ``result`` says what it means for the hash: ``MUTATED`` (the body does not
        match the header: dropped, nothing stored or marked, the genuine body still welcome),
        ``CACHED_INVALID`` (marked before; nothing validated) or ``CONSENSUS`` (marked now).
        """
        block_hash = block.hash()
        known = self.get_entry(block_hash)
        if known is not None:
            if known.failed:
                if known.reject_code == INVALIDATED_BY_HAND:
                    raise ValidationError(
                        codes.DUPLICATE,
                        "block was invalidated by hand (POST /admin/reconsider undoes it)",
                        result=BlockValidationResult.CACHED_INVALID,
                    )
                raise ValidationError(
                    known.reject_code or codes.BAD_PREVBLK,
                    "block is known to be invalid",
                    result=BlockValidationResult.CACHED_INVALID,
                )
            if known.have_data:
                if known.better_than(self.tip):  # stored, but a crash came before it connected
                    self._activate_best_chain([known])
                raise ValidationError(codes.DUPLICATE, "block already stored")
        if block_hash in self._orphans:
            raise ValidationError(codes.DUPLICATE, "block already waiting for its parent")
        parent = self.get_entry(block.header.prev_hash)
        try:
            check_block(block, self.params)
        except ValidationError as err:
            if err.mutated:
                log.info("dropped a mutated body of block %s: %s", block.hash_hex(), err.code)
            elif err.code != codes.HIGH_HASH and parent is not None:
                # The header commits to this body, and it breaks a rule: the hash is invalid.
                # (A header without its proof of work costs nothing to make: not stored.)
                status = Status.FAILED | (Status.FAILED_CHILD if parent.failed else 0)
                self._store_failed_header(block, parent, status, err.code)
            raise
        if parent is None:
            self._add_orphan(block_hash, block)
            return AcceptResult(block_hash, "orphan")
        entry = self._accept(block, parent)
        candidates = [entry, *self._adopt_orphans(block_hash)]
        if known is not None:
            # Its header was known without a body: blocks stored on it wait for it.
            candidates += [e for e in self._stored_descendants(entry) if e.have_data]
        self._activate_best_chain(candidates)
        if self.in_active_chain(entry):
            return AcceptResult(block_hash, "active", entry.height)
        stored = self.get_entry(block_hash)
        if stored is not None and stored.failed:
            raise ValidationError(
                stored.reject_code or codes.BAD_PREVBLK, "block failed to connect"
            )
        return AcceptResult(block_hash, "side", entry.height)

    def _accept(self, block: Block, parent: BlockIndexEntry) -> BlockIndexEntry:
        """Contextual checks against the parent; store the block. Raises on failure."""
        header = block.header
        height = parent.height + 1
        if parent.failed:
            self._store_failed_header(block, parent, Status.FAILED_CHILD, codes.BAD_PREVBLK)
            raise ValidationError(codes.BAD_PREVBLK, "the parent block is invalid")
        try:
            verify_header(
                header,
                height,
                parent.header.bits,
                lambda h: self.ancestor(parent, h).header.time,
                self.params,
                int(self._clock()),
            )
            verify_block_context(block, height)
        except ValidationError as err:
            if err.code != codes.TIME_TOO_NEW:  # may become valid later: not marked
                self._store_failed_header(block, parent, Status.FAILED, err.code)
            raise
        return self._store_block(block, height, parent.chainwork + block_work(header.bits))

    def _store_block(self, block: Block, height: int, chainwork: int) -> BlockIndexEntry:
        sequence = self._next_sequence()
        entry = BlockIndexEntry(
            block.hash(), block.header, height, chainwork, Status.HAVE_DATA, sequence
        )

        def write(batch: WriteBatch) -> None:
            batch.put(k.block_key(entry.hash), block.serialize())
            batch.put(k.index_key(entry.hash), entry.serialize())
            batch.put(k.K_SEQUENCE, k.u64(sequence + 1))
            if self._tip is not None and entry.better_than(self._tip):
                # Connecting it is now pending: a crash before that is resumed at start-up.
                batch.put(k.K_REORG, entry.hash + self._tip.hash)

        # Not synced: LevelDB's log is append-only, so the synced batch that connects this
        # block (or any later synced write) makes this one durable too; a crash before that
        # loses only a block that was not connected yet, which peers send again.
        self._put_now(write, sync=False)
        self._cache_entry(entry)
        return entry

    def _store_failed_header(
        self, block: Block, parent: BlockIndexEntry, status: Status, code: str
    ) -> None:
        entry = BlockIndexEntry(
            block.hash(),
            block.header,
            parent.height + 1,
            parent.chainwork + block_work(block.header.bits),
            status,
            self._next_sequence(),
            code,
        )
        self._write_key(k.index_key(entry.hash), entry.serialize())
        self._cache_entry(entry)
        log.info("block %s at height %d is invalid: %s", block.hash_hex(), entry.height, code)

    def _next_sequence(self) -> int:
        raw = self.store.get(k.K_SEQUENCE)
        return 0 if raw is None else k.read_u64(raw)

    def _add_orphan(self, block_hash: bytes, block: Block) -> None:
        """Keep ``block``'s bytes until its parent comes; evict the oldest beyond either bound
        (count or bytes). The newest always stays: no block exceeds the byte bound alone."""
        raw = block.serialize()
        if len(raw) > self._max_orphan_bytes:
            log.info("orphan %s larger than the whole pool: not kept", block.hash_hex())
            return
        self._orphans[block_hash] = (block.header.prev_hash, raw)
        self._orphan_bytes += len(raw)
        while len(self._orphans) > self._max_orphans or self._orphan_bytes > self._max_orphan_bytes:
            self._orphan_bytes -= len(self._orphans.popitem(last=False)[1][1])
        log.debug(
            "kept orphan %s (%d waiting, %d bytes)",
            block.hash_hex(),
            len(self._orphans),
            self._orphan_bytes,
        )

    def _adopt_orphans(self, parent_hash: bytes) -> list[BlockIndexEntry]:
        """Accept every orphan that descends from ``parent_hash``; return their entries."""
        accepted: list[BlockIndexEntry] = []
        queue = [parent_hash]
        while queue:
            parent_hash = queue.pop()
            children = [h for h, (prev, _) in self._orphans.items() if prev == parent_hash]
            for child_hash in children:
                _, raw = self._orphans.pop(child_hash)
                self._orphan_bytes -= len(raw)
                child = Block.deserialize(raw)  # checked when it came (check_block)
                parent = self.get_entry(parent_hash)
                assert parent is not None
                try:
                    accepted.append(self._accept(child, parent))
                except ValidationError as err:
                    log.info("orphan %s rejected: %s", child.hash_hex(), err.code)
                    continue
                queue.append(child_hash)
        return accepted

    # --- choosing the active chain --------------------------------------------------------------

    def _activate_best_chain(self, candidates: list[BlockIndexEntry]) -> None:
        """Move the tip to the best valid chain among ``candidates`` and the current tip.

        Tries the best candidate; if a block on the way fails, it is marked and the next best
        (the old tip included) is tried, like Core's set of candidate tips; one whose chain lacks
        a body is passed over, unmarked. The candidates and the old tip are recorded in ``R``
        first, so a crash part-way is resumed at start-up. A tip marked invalid
        (``invalidate_block``) is disconnected first. Publishes one ``TipChanged`` if the tip
        moved or any block was disconnected.
        """
        old_tip = self.tip
        pool = {c.hash for c in candidates} | {old_tip.hash}
        disconnected = 0
        recorded = False
        while self._current(self.tip).failed:
            self._disconnect_tip()
            disconnected += 1
        while True:
            live = [
                e
                for e in (self.get_entry(h) for h in pool)
                if e is not None and e.have_data and not e.failed
            ]
            best = max(live, key=lambda e: (e.chainwork, -e.sequence), default=None)
            if best is None or not best.better_than(self.tip):
                break
            fork, path = self._path_from_fork(best)
            if path is None:
                pool.discard(best.hash)  # it descends from a failed block or lacks a body
                continue
            if not recorded:
                # unsynced: the first disconnect or connect batch, synced, carries it to disk
                self._write_key(
                    k.K_REORG, b"".join(pool - {old_tip.hash}) + old_tip.hash, sync=False
                )
                recorded = True
            depth = self.tip.height - fork.height
            if depth:
                log.info(
                    "reorganising: %d block(s) off the chain at height %d, %d on",
                    depth,
                    fork.height,
                    len(path),
                )
            while self.tip.hash != fork.hash:
                self._disconnect_tip()
                disconnected += 1
            for pos, entry in enumerate(path):
                try:
                    self._connect(entry)
                except ValidationError as err:
                    # A stored body matches its header (see the module's invariants), so this
                    # is a rule the header commits to: the hash is invalid.
                    self._mark_failed(entry, err.code, path[pos + 1 :])
                    break
        if recorded or self.store.get(k.K_REORG) is not None:
            self._write_key(k.K_REORG, None, sync=False)  # if lost, start-up finds no work
        if disconnected or self.tip.hash != old_tip.hash:
            self._emit(TipChanged(old_tip.hash, self.tip.hash, self.tip.height, disconnected))

    def _path_from_fork(
        self, candidate: BlockIndexEntry
    ) -> tuple[BlockIndexEntry, list[BlockIndexEntry] | None]:
        """The last common block of the active chain and ``candidate``, and the blocks from
        there to ``candidate`` (oldest first); ``None`` for a path through a failed block (now
        marked, with its descendants on the path) or through a block whose body is missing
        (left unmarked: the chain waits for that body)."""
        path: list[BlockIndexEntry] = []
        cur = candidate
        while not self.in_active_chain(cur):
            path.append(cur)
            parent = self.get_entry(cur.prev_hash)
            if parent is None:
                raise ChainstateError(f"block index is missing the parent of {cur.hash.hex()}")
            cur = parent
        path.reverse()
        for pos, entry in enumerate(path):
            if entry.failed:
                self._mark_failed(path[pos], entry.reject_code or codes.BAD_PREVBLK, path[pos:])
                return cur, None
            if not entry.have_data:
                return cur, None
        return cur, path

    def _mark_failed(
        self, entry: BlockIndexEntry, code: str, descendants: list[BlockIndexEntry]
    ) -> None:
        log.warning(
            "block %s at height %d is invalid: %s", entry.hash[::-1].hex(), entry.height, code
        )
        marked = [entry.with_status((entry.status | Status.FAILED) & ~Status.CONNECTED, code)]
        for child in descendants:
            if child.hash != entry.hash:
                marked.append(
                    child.with_status(child.status | Status.FAILED_CHILD, codes.BAD_PREVBLK)
                )

        def write(batch: WriteBatch) -> None:
            for e in marked:
                batch.put(k.index_key(e.hash), e.serialize())

        self._put_now(write)
        for e in marked:
            self._cache_entry(e)

    def _current(self, entry: BlockIndexEntry) -> BlockIndexEntry:
        """The latest stored state of ``entry`` (its status may have changed since it was read)."""
        return self.get_entry(entry.hash) or entry

    def _stored_descendants(self, entry: BlockIndexEntry) -> list[BlockIndexEntry]:
        """Every block index entry descending from ``entry`` (not itself), parents first.

        Reads the whole block index: for the rare paths only (the commands below, a body
        delivered for a header known without one), never for a block arriving normally.
        """
        children: dict[bytes, list[BlockIndexEntry]] = {}
        for key, raw in self.store.iterate(k.P_INDEX):
            found = BlockIndexEntry.deserialize(key[1:], raw)
            children.setdefault(found.prev_hash, []).append(found)
        out: list[BlockIndexEntry] = []
        queue = [entry.hash]
        while queue:
            for child in children.get(queue.pop(), []):
                if child.height > entry.height:  # the genesis is its own "parent": never loop
                    out.append(child)
                    queue.append(child.hash)
        return out

    # --- marking by hand (Core's invalidateblock / reconsiderblock) -----------------------------

    def invalidate_block(self, block_hash: bytes) -> None:
        """Mark ``block_hash`` and its descendants invalid; leave them if on the active chain.

        The mark and the record of the chains that may replace the active one go in one synced
        batch; then the active chain is disconnected to the block's parent and the most-work
        valid chain is activated (a crash part-way is resumed at start-up, as a reorg is).
        Raises ``UnknownBlockError`` for a hash without an index entry and
        ``GenesisBlockError`` for the genesis.
        """
        entry = self.get_entry(block_hash)
        if entry is None:
            raise UnknownBlockError(block_hash[::-1].hex())
        if entry.height == 0:
            raise GenesisBlockError("the genesis block cannot be invalidated")
        descendants = self._stored_descendants(entry)
        # A block already refused by a rule keeps that rule's code (a peer sending it again is
        # still at fault); only a mark made here says "invalidated".
        own = entry.reject_code if entry.status & Status.FAILED else ""
        marked = [
            entry.with_status(
                (entry.status | Status.FAILED) & ~Status.CONNECTED, own or INVALIDATED_BY_HAND
            )
        ]
        marked += [
            d.with_status(
                d.status | Status.FAILED_CHILD,
                d.reject_code if d.status & Status.FAILED else codes.BAD_PREVBLK,
            )
            for d in descendants
        ]
        active = self.in_active_chain(entry)
        below = {entry.hash} | {d.hash for d in descendants}
        candidates = self._valid_tips(exclude=below) if active else []
        old_tip = self.tip

        def write(batch: WriteBatch) -> None:
            for e in marked:
                batch.put(k.index_key(e.hash), e.serialize())
            if active:  # what start-up resumes if a crash comes before the chain has moved
                batch.put(k.K_REORG, b"".join(c.hash for c in candidates) + old_tip.hash)

        self._put_now(write)
        for e in marked:
            self._cache_entry(e)
        log.warning(
            "block %s at height %d invalidated by hand (%d descendant(s) with it)",
            entry.hash[::-1].hex(),
            entry.height,
            len(descendants),
        )
        if active:
            self._activate_best_chain(candidates)

    def reconsider_block(self, block_hash: bytes) -> None:
        """Clear the invalid marks of ``block_hash``, its descendants and its ancestors (as
        Core's ``reconsiderblock`` does), then activate the most-work valid chain.

        Blocks that really break a rule are validated again when their chain is tried, and
        marked again. Raises ``UnknownBlockError`` for a hash without an index entry.
        """
        entry = self.get_entry(block_hash)
        if entry is None:
            raise UnknownBlockError(block_hash[::-1].hex())
        family = [entry, *self._stored_descendants(entry)]
        cur = entry
        while cur.height > 0 and not self.in_active_chain(cur):  # the active chain is unmarked
            parent = self.get_entry(cur.prev_hash)
            if parent is None:
                raise ChainstateError(f"block index is missing the parent of {cur.hash.hex()}")
            family.append(parent)
            cur = parent
        cleared = [
            e.with_status(e.status & ~(Status.FAILED | Status.FAILED_CHILD), "")
            for e in family
            if e.failed
        ]
        candidates = [e for e in cleared if e.have_data] + [e for e in family if e.have_data]
        old_tip = self.tip

        def write(batch: WriteBatch) -> None:
            for e in cleared:
                batch.put(k.index_key(e.hash), e.serialize())
            if cleared:
                batch.put(k.K_REORG, b"".join(c.hash for c in candidates) + old_tip.hash)

        self._put_now(write)
        for e in cleared:
            self._cache_entry(e)
        if cleared:
            log.warning(
                "block %s at height %d reconsidered: %d mark(s) cleared",
                entry.hash[::-1].hex(),
                entry.height,
                len(cleared),
            )
        self._activate_best_chain([self._current(e) for e in candidates])

    def _valid_tips(self, exclude: set[bytes]) -> list[BlockIndexEntry]:
        """Stored, unmarked blocks with a body that no other such block builds on, outside
        ``exclude``: the tips of the chains that may become active (reads the whole index)."""
        entries: dict[bytes, BlockIndexEntry] = {}
        for key, raw in self.store.iterate(k.P_INDEX):
            e = BlockIndexEntry.deserialize(key[1:], raw)
            if e.have_data and not e.failed and e.hash not in exclude:
                entries[e.hash] = e
        parents = {e.prev_hash for e in entries.values() if e.height > 0}
        return [e for e in entries.values() if e.hash not in parents]

    # --- connecting and disconnecting -----------------------------------------------------------

    def _connect(self, entry: BlockIndexEntry) -> None:
        """Connect the stored block ``entry`` on top of the tip, in one synced batch."""
        block = self.get_block(entry.hash)
        if block is None:
            raise ChainstateError(f"block {entry.hash[::-1].hex()} has no stored body")
        pending = CoinsViewCache(self._coins)
        undo = connect_block(block, entry.height, pending, self.params, self._verify)
        stats = self._stats.copy()
        spent: dict[OutPoint, Coin] = {}
        for tx, coins in zip(block.txs[1:], undo.spent, strict=True):
            for txin, coin in zip(tx.inputs, coins, strict=True):
                spent[txin.prevout] = coin
                stats.remove(txin.prevout, coin)
        for tx in block.txs:
            txid = tx.txid()
            for index, out in enumerate(tx.outputs):
                stats.add(OutPoint(txid, index), Coin(out, entry.height, tx.is_coinbase()))
        connected = entry.with_status(entry.status | Status.CONNECTED)

        def write(batch: WriteBatch) -> None:
            self._write_coin_changes(batch, pending.changes, spent)
            batch.put(k.undo_key(entry.hash), undo.serialize())
            self._write_tx_indexes(batch, block, entry.height, undo, add=True)
            self._write_address_stats(batch, block, undo, add=True)
            batch.put(k.height_key(entry.height), entry.hash)
            batch.put(k.K_TIP, entry.hash)
            batch.put(k.K_STATS, stats.serialize())
            batch.put(k.index_key(entry.hash), connected.serialize())

        self._put_now(write)
        self._coins.committed(pending.changes)
        self._stats = stats
        self._tip = connected
        if entry.height % COMPACT_EVERY == 0 and entry.height:
            # Spent coins leave deletion markers that address_utxos() would step over until
            # LevelDB compacts them; doing it now keeps address queries flat as the chain grows.
            self.store.compact(k.P_ADDR_UTXO)
        self._cache_entry(connected)
        log.info("block %d connected: %s, %d tx", entry.height, block.hash_hex(), len(block.txs))
        self._emit(BlockConnected(block, entry.height, undo))

    def _disconnect_tip(self) -> None:
        """Disconnect the tip block, in one synced batch, using its undo data."""
        entry = self.tip
        if entry.height == 0:
            raise ChainstateError("cannot disconnect the genesis block")
        block = self.get_block(entry.hash)
        undo = self.get_undo(entry.hash)
        if block is None or undo is None:
            raise ChainstateError(f"block {entry.hash[::-1].hex()} lacks its body or undo data")
        pending = CoinsViewCache(self._coins)
        try:
            disconnect_block(block, undo, pending)
        except UndoMismatchError as err:
            raise ChainstateError(f"cannot disconnect {block.hash_hex()}: {err}") from err
        stats = self._stats.copy()
        removed: dict[OutPoint, Coin] = {}
        for tx in block.txs:
            txid = tx.txid()
            for index, out in enumerate(tx.outputs):
                outpoint = OutPoint(txid, index)
                coin = Coin(out, entry.height, tx.is_coinbase())
                removed[outpoint] = coin
                stats.remove(outpoint, coin)
        for tx, coins in zip(block.txs[1:], undo.spent, strict=True):
            for txin, coin in zip(tx.inputs, coins, strict=True):
                stats.add(txin.prevout, coin)
        parent = self.get_entry(entry.prev_hash)
        assert parent is not None

        def write(batch: WriteBatch) -> None:
            self._write_coin_changes(batch, pending.changes, removed)
            batch.delete(k.undo_key(entry.hash))
            self._write_tx_indexes(batch, block, entry.height, undo, add=False)
            self._write_address_stats(batch, block, undo, add=False)
            batch.delete(k.height_key(entry.height))
            batch.put(k.K_TIP, parent.hash)
            batch.put(k.K_STATS, stats.serialize())
            batch.put(k.returned_key(entry.height, entry.hash), b"")  # see returned_blocks

        self._put_now(write)
        self._coins.committed(pending.changes)
        self._stats = stats
        self._tip = parent
        log.info("block %d disconnected: %s", entry.height, block.hash_hex())
        self._emit(BlockDisconnected(block, entry.height, undo))

    @staticmethod
    def _write_coin_changes(
        batch: WriteBatch,
        changes: dict[OutPoint, Coin | None],
        gone: dict[OutPoint, Coin],
    ) -> None:
        """UTXO and address-UTXO entries; ``gone`` holds the coins behind ``None`` changes."""
        for outpoint, coin in changes.items():
            key = k.coin_key(outpoint.txid, outpoint.index)
            if coin is None:
                old = gone[outpoint]
                batch.delete(key)
                batch.delete(k.addr_utxo_key(old.output.pubkey_hash, outpoint.txid, outpoint.index))
            else:
                raw = coin.serialize()
                batch.put(key, raw)
                batch.put(
                    k.addr_utxo_key(coin.output.pubkey_hash, outpoint.txid, outpoint.index), raw
                )

    def address_stats(self, pubkey_hash: bytes) -> AddressStats:
        """Totals over the address's whole active-chain history (one read)."""
        raw = self.store.get(k.addr_stats_key(pubkey_hash))
        if raw is None:
            return AddressStats(0, 0, 0)
        funded, spent, count = msgpack.unpackb(raw)
        return AddressStats(funded, spent, count)

    def _write_address_stats(
        self, batch: WriteBatch, block: Block, undo: BlockUndo, *, add: bool
    ) -> None:
        """Add (or, disconnecting, subtract) the block's effect on each address's totals."""
        sign = 1 if add else -1
        delta: dict[bytes, list[int]] = {}
        for pos, tx in enumerate(block.txs):
            touched: set[bytes] = set()
            for out in tx.outputs:
                delta.setdefault(out.pubkey_hash, [0, 0, 0])[0] += out.amount
                touched.add(out.pubkey_hash)
            if pos > 0:
                for coin in undo.spent[pos - 1]:
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
                    k.addr_stats_key(pkh),
                    msgpack.packb([new.funded_sum, new.spent_sum, new.tx_count]),
                )
            else:
                batch.delete(k.addr_stats_key(pkh))

    @staticmethod
    def _write_tx_indexes(
        batch: WriteBatch, block: Block, height: int, undo: BlockUndo, *, add: bool
    ) -> None:
        """Transaction (with its bytes and spent coins), spender, address-history,
        immature-coinbase, block-position and block-summary entries of ``block``, added or
        removed."""
        block_hash = block.hash()
        fees = 0
        for pos, tx in enumerate(block.txs):
            txid = tx.txid()
            spent = undo.spent[pos - 1] if pos > 0 else ()
            addresses = {out.pubkey_hash for out in tx.outputs}
            addresses.update(c.output.pubkey_hash for c in spent)
            if add:
                record = [block_hash, pos, tx.serialize(), [c.to_obj() for c in spent]]
                batch.put(k.tx_key(txid), msgpack.packb(record, use_bin_type=True))
                batch.put(k.block_tx_key(height, pos), txid + tx.wtxid())
                for pkh in addresses:
                    batch.put(k.addr_tx_key(pkh, height, pos), txid)
                for n, txin in enumerate(tx.inputs if pos > 0 else ()):
                    batch.put(
                        k.spender_key(txin.prevout.txid, txin.prevout.index),
                        msgpack.packb([txid, n], use_bin_type=True),
                    )
                if pos == 0:
                    for n, out in enumerate(tx.outputs):
                        batch.put(k.immature_key(out.pubkey_hash, height, n), k.u64(out.amount))
                else:
                    fees += sum(c.output.amount for c in spent) - tx.total_out()
            else:
                batch.delete(k.tx_key(txid))
                batch.delete(k.block_tx_key(height, pos))
                for pkh in addresses:
                    batch.delete(k.addr_tx_key(pkh, height, pos))
                for txin in tx.inputs if pos > 0 else ():
                    batch.delete(k.spender_key(txin.prevout.txid, txin.prevout.index))
                if pos == 0:
                    for n, out in enumerate(tx.outputs):
                        batch.delete(k.immature_key(out.pubkey_hash, height, n))
        if add:
            summary = [len(block.txs), block.size(), fees]
            batch.put(k.block_summary_key(block_hash), msgpack.packb(summary))
        else:
            batch.delete(k.block_summary_key(block_hash))

    def _put_now(self, write: Callable[[WriteBatch], None], *, sync: bool | None = None) -> None:
        """One atomic batch; synced unless ``sync=False`` (see ``_store_block``)."""
        with self.store.write_batch(sync=self._sync if sync is None else sync) as batch:
            write(batch)

    def _write_key(self, key: bytes, value: bytes | None, *, sync: bool | None = None) -> None:
        """Put (or, for ``None``, delete) one key in its own batch."""
        with self.store.write_batch(sync=self._sync if sync is None else sync) as batch:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)

    def _cache_entry(self, entry: BlockIndexEntry) -> None:
        if len(self._index_cache) >= INDEX_CACHE_SIZE:
            del self._index_cache[next(iter(self._index_cache))]
        self._index_cache[entry.hash] = entry

    # --- reindex --------------------------------------------------------------------------------

    def reindex(self) -> None:
        """Rebuild the UTXO set, undo data, indexes and tip from the stored blocks.

        Every block on the chains it connects is validated again; blocks once found invalid stay
        marked. Every stored body is checked against its header first, and one that does not
        match (``ValidationError.mutated``: a body no current node stores, but a disk or an old
        bug might have) is dropped with its own mark, its header kept, so the genuine body is
        accepted when a peer sends it. The most-work valid chain becomes active. Interrupted,
        it starts over at the next open (the ``X`` key marks it in progress).
        """
        log.info("reindex: wiping the chainstate")
        self._write_key(k.K_REINDEX, b"1")
        for prefix in k.DERIVED_PREFIXES:
            self._delete_prefix(prefix)
        entries: list[BlockIndexEntry] = []
        with self.store.write_batch(sync=False) as batch:
            for key, raw in self.store.iterate(k.P_INDEX):
                entry = BlockIndexEntry.deserialize(key[1:], raw)
                if entry.have_data:
                    problem = self._stored_body_problem(entry)
                    if problem is not None:
                        log.warning(
                            "reindex: dropped the stored body of block %s at height %d: %s",
                            entry.hash[::-1].hex(),
                            entry.height,
                            problem,
                        )
                        batch.delete(k.block_key(entry.hash))
                        # Its own mark came from that body; a mark inherited from a parent stays.
                        inherited = entry.status & Status.FAILED_CHILD
                        status = entry.status & ~(
                            Status.HAVE_DATA | Status.CONNECTED | Status.FAILED
                        )
                        batch.put(
                            key,
                            entry.with_status(
                                status, codes.BAD_PREVBLK if inherited else ""
                            ).serialize(),
                        )
                        continue
                    # Forget "connected", keep "failed": a block refused once stays refused.
                    entry = entry.with_status(entry.status & ~Status.CONNECTED)
                    batch.put(key, entry.serialize())
                    entries.append(entry)
        self._index_cache.clear()
        self._coins.clear()
        self._stats = UtxoStats()
        self._tip = None
        genesis = next((e for e in entries if e.height == 0), None)
        if genesis is None or genesis.hash != self.params.genesis_hash:
            raise ChainstateError("the stored blocks do not include this network's genesis")
        self._write_key(k.K_STATS, UtxoStats().serialize())
        self._connect(genesis)
        self._activate_best_chain([e for e in entries if not e.failed])
        self._write_key(k.K_REINDEX, None)
        log.info("reindex: done at height %d", self.height)

    def _stored_body_problem(self, entry: BlockIndexEntry) -> str | None:
        """Why the stored body of ``entry`` is not the block its header commits to, if it is not."""
        raw = self.store.get(k.block_key(entry.hash))
        if raw is None:
            return "no body stored"
        try:
            block = Block.deserialize(raw)
            if block.hash() != entry.hash:
                return "the body is another block's"
            check_block_merkle_root(block)
        except ValidationError as err:
            return f"{err.code} ({err.message})"
        return None

    def _delete_prefix(self, prefix: bytes, chunk: int = 10_000) -> None:
        while True:
            keys = [key for key, _ in _take(self.store.iterate(prefix), chunk)]
            if not keys:
                return
            with self.store.write_batch(sync=False) as batch:
                for key in keys:
                    batch.delete(key)


def _take(items: Iterator[tuple[bytes, bytes]], n: int) -> Iterator[tuple[bytes, bytes]]:
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item
