"""The chain: the block index, the orphan pool, and which chain is active.

Job: take blocks in any order, keep every valid one, and keep the active chain on the valid chain
with the most work, reorganising through undo data when another chain overtakes it. Rules come
from ``consensus``; this module decides where blocks go and commits each connect and disconnect
as one batch, into which the UTXO set (``coins``), the block store and every index writer
(``node.indexes``) add their own writes.

State owned: the block index (``h``, cached), the block sequence counter (``Q``), the active
chain (``H`` by height, ``T`` its tip), the record of a change of the active chain in progress
(``R``), the records of disconnected blocks the mempool has not taken back (``D``), the orphan
pool (in memory), the subscribers to chain events.

Invariants:
- Connecting or disconnecting one block is one atomic, synced write batch that moves the UTXO
  set, the undo data, the indexes, the UTXO stats and the tip together. A crash at any moment
  leaves a database that opens at a consistent tip; a change of the active chain cut short is
  resumed at the next start (``R``).
- A *mutated* body (``ValidationError.mutated``: it does not match its header, SPEC 2.4) is
  dropped: not stored, not kept as an orphan, its hash never marked, so the genuine body is
  accepted when it comes. A block that breaks a rule its header commits to is stored as failed
  with its reject code (if its parent is known), and so is every block found to descend from it;
  neither is accepted again until ``reconsider_block``. A header without valid proof of work is
  not stored at all. ``invalidate_block`` marks a block by hand (Core's ``invalidateblock``).
- An index entry may lack its body (a failed header, a mark cleared by ``reconsider_block``, a
  body ``reindex`` dropped): the chain through it waits until the body is delivered.
- Equal work does not switch chains: the tip seen first stays.
- Orphans (parent unknown) wait in a pool bounded in count and bytes, processed when their
  parent arrives.
- Events go to subscribers only after the batch that made them true has been committed.

Left to others: opening the database and its version (the ``Chainstate`` facade), rebuilding
(``reindex``), the UTXO set's contents (``coins``), bodies and undo data on disk
(``blockstore``), explorer indexes (``node.indexes``), relaying, the mempool, mining, the
clock's source (``clock`` is injected) and the signature cache (``verify`` is injected, and
``batch_verify``, which verifies a block's signatures together on the node's signature pool,
before the connect batch is written: a bad one means no batch at all).
Not thread-safe: one caller at a time.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from consensus import (
    MAX_BLOCK_SIZE,
    Block,
    BlockValidationResult,
    NetworkParams,
    ValidationError,
    block_work,
    check_block,
    required_bits,
    verify_block_context,
    verify_header,
    verify_signature,
)
from consensus import errors as codes
from consensus.pow import MEDIAN_TIME_SPAN, median_time_past
from consensus.validation import BatchVerifier, SignatureVerifier
from node.chainstate import schema as k
from node.chainstate.blockindex import BlockIndexEntry, Status
from node.chainstate.blockstore import BlockStore
from node.chainstate.coins import Coins
from node.chainstate.errors import ChainstateError, GenesisBlockError, UnknownBlockError
from node.chainstate.events import BlockConnected, BlockDisconnected, ChainEvent, TipChanged
from node.indexes import BlockChange, IndexWriter
from node.storage import KeyValueStore, StorageError, WriteBatch

log = logging.getLogger(__name__)

MAX_ORPHANS = 200
"""Blocks kept while their parent is unknown; the oldest goes first."""
MAX_ORPHAN_BYTES = 4 * MAX_BLOCK_SIZE
"""Serialized bytes of the blocks kept while their parent is unknown (four blocks of the largest
size, 4 MB), whatever their count: the oldest goes first. Orphans are held as their bytes, so this
is what the pool holds in memory (plus a few hundred bytes of bookkeeping each)."""
INDEX_CACHE_SIZE = 50_000

INVALIDATED_BY_HAND = "invalidated"
"""The ``reject_code`` of an index entry marked by ``invalidate_block`` (not a rule's code)."""


@dataclass(frozen=True)
class AcceptResult:
    """What became of a block handed to ``process_block``.

    ``status`` is ``active`` (on the active chain now), ``side`` (stored on another chain) or
    ``orphan`` (parent unknown, kept in the orphan pool: reject code ``prev-blk-not-found``).
    """

    hash: bytes
    status: str
    height: int | None = None


class Chain:
    """The block index and the active chain of one network, over one key-value store."""

    def __init__(
        self,
        store: KeyValueStore,
        params: NetworkParams,
        blocks: BlockStore,
        coins: Coins,
        indexes: Sequence[IndexWriter],
        *,
        clock: Callable[[], float] = time.time,
        verify: SignatureVerifier = verify_signature,
        batch_verify: BatchVerifier | None = None,
        max_orphans: int = MAX_ORPHANS,
        max_orphan_bytes: int = MAX_ORPHAN_BYTES,
        sync: bool = True,
    ) -> None:
        self.store = store
        self.params = params
        self.blocks = blocks
        self.coins = coins
        self.indexes = tuple(indexes)
        self.sync = sync
        self._clock = clock
        self._verify = verify
        self._batch_verify = batch_verify
        self._max_orphans = max_orphans
        self._max_orphan_bytes = max_orphan_bytes
        self._orphan_bytes = 0
        self._index_cache: dict[bytes, BlockIndexEntry] = {}
        # hash -> (parent hash, serialized block): bytes, not decoded objects (~9x the size)
        self._orphans: OrderedDict[bytes, tuple[bytes, bytes]] = OrderedDict()
        self._listeners: list[Callable[[ChainEvent], None]] = []
        self._tip: BlockIndexEntry | None = None

    # --- start-up and reset ---------------------------------------------------------------------

    def initialise_genesis(self) -> None:
        """Store (if need be) and connect the genesis block: the last steps of creation, safe to
        repeat after a crash, since nothing else is written before the tip exists."""
        genesis = self.params.genesis
        check_block(genesis, self.params)
        self._tip = None
        entry = self.get_entry(genesis.hash())
        if entry is None or not entry.have_data:
            entry = self._store_block(genesis, height=0, chainwork=block_work(genesis.header.bits))
        self.coins.reset()
        self._put_now(self.coins.write_empty)
        self.connect_block(entry)

    def load_tip(self) -> None:
        """Read the tip and the UTXO stats (a handful of keys, whatever the chain's length)."""
        tip_hash = self.store.get(k.K_TIP)
        stats = self.coins.stored_stats()
        if tip_hash is None or stats is None:
            raise ChainstateError("the database has no tip: run `tally-node reindex`")
        tip = self.get_entry(tip_hash)
        if tip is None:
            raise ChainstateError("the tip's block index entry is missing: the database is corrupt")
        self._tip = tip
        self.coins.load(stats)

    def resume(self) -> None:
        """Finish a change of the active chain that a crash cut short (recorded in ``R``)."""
        pending = self.store.get(k.K_REORG)
        if pending is not None:
            log.warning("resuming an interrupted change of the active chain")
            candidates = [self.get_entry(pending[i : i + 32]) for i in range(0, len(pending), 32)]
            self.activate_best_chain([c for c in candidates if c is not None])

    def forget_state(self) -> None:
        """Drop every cache and the tip (a reindex is about to rebuild them)."""
        self._index_cache.clear()
        self.coins.reset()
        self._tip = None

    def forget_orphans(self) -> None:
        """Empty the orphan pool (the store's contents were replaced: a revert)."""
        self._orphans.clear()
        self._orphan_bytes = 0

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

    def hash_at_height(self, height: int) -> bytes | None:
        """The active chain's block at ``height``."""
        if not 0 <= height <= self.height:
            return None
        return self.store.get(k.height_key(height))

    def in_active_chain(self, entry: BlockIndexEntry) -> bool:
        return self.hash_at_height(entry.height) == entry.hash

    def median_time_past(self, entry: BlockIndexEntry | None = None) -> int:
        """Median of the times of ``entry`` (default the tip) and its predecessors, over the
        span ``consensus.pow.median_time_past`` uses (``MEDIAN_TIME_SPAN`` blocks)."""
        entry = entry or self.tip
        newest_first: list[int] = []
        cur: BlockIndexEntry | None = entry
        while cur is not None and len(newest_first) < MEDIAN_TIME_SPAN:
            newest_first.append(cur.header.time)
            cur = self.get_entry(cur.prev_hash) if cur.height > 0 else None
        return median_time_past(newest_first[::-1])

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
            block = self.blocks.get_block(key[-32:])
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
                    self.activate_best_chain([known])
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
        self.activate_best_chain(candidates)
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
            self.blocks.put_block(batch, block)
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

    def activate_best_chain(self, candidates: list[BlockIndexEntry]) -> None:
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
            self.disconnect_tip()
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
                self.disconnect_tip()
                disconnected += 1
            for pos, entry in enumerate(path):
                try:
                    self.connect_block(entry)
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
            self.activate_best_chain(candidates)

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
        self.activate_best_chain([self._current(e) for e in candidates])

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

    def connect_block(self, entry: BlockIndexEntry) -> None:
        """Connect the stored block ``entry`` on top of the tip, in one synced batch."""
        block = self.blocks.get_block(entry.hash)
        if block is None:
            raise ChainstateError(f"block {entry.hash[::-1].hex()} has no stored body")
        update = self.coins.connect_block(
            block, entry.height, self.params, self._verify, self._batch_verify
        )
        change = BlockChange(
            block, entry.height, update.undo, update.changes, update.gone, update.encoded
        )
        connected = entry.with_status(entry.status | Status.CONNECTED)

        def write(batch: WriteBatch) -> None:
            self.coins.write(batch, update)
            self.blocks.put_undo(batch, entry.hash, update.undo)
            for index in self.indexes:
                index.connect_block(batch, change)
            batch.put(k.height_key(entry.height), entry.hash)
            batch.put(k.K_TIP, entry.hash)
            batch.put(k.index_key(entry.hash), connected.serialize())

        self._put_now(write)
        self.coins.committed(update)
        self._tip = connected
        for index in self.indexes:
            index.maintain(entry.height)
        self._cache_entry(connected)
        log.info("block %d connected: %s, %d tx", entry.height, block.hash_hex(), len(block.txs))
        self._emit(BlockConnected(block, entry.height, update.undo))

    def disconnect_tip(self) -> None:
        """Disconnect the tip block, in one synced batch, using its undo data."""
        entry = self.tip
        if entry.height == 0:
            raise ChainstateError("cannot disconnect the genesis block")
        block = self.blocks.get_block(entry.hash)
        undo = self.blocks.get_undo(entry.hash)
        if block is None or undo is None:
            raise ChainstateError(f"block {entry.hash[::-1].hex()} lacks its body or undo data")
        update = self.coins.disconnect_block(block, entry.height, undo)
        change = BlockChange(block, entry.height, undo, update.changes, update.gone, update.encoded)
        parent = self.get_entry(entry.prev_hash)
        assert parent is not None

        def write(batch: WriteBatch) -> None:
            self.coins.write(batch, update)
            self.blocks.delete_undo(batch, entry.hash)
            for index in self.indexes:
                index.disconnect_block(batch, change)
            batch.delete(k.height_key(entry.height))
            batch.put(k.K_TIP, parent.hash)
            batch.put(k.returned_key(entry.height, entry.hash), b"")  # see returned_blocks

        self._put_now(write)
        self.coins.committed(update)
        self._tip = parent
        log.info("block %d disconnected: %s", entry.height, block.hash_hex())
        self._emit(BlockDisconnected(block, entry.height, undo))

    @contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Inside, every batch is written unsynced; on leaving, one synced write makes them all
        durable at once. LevelDB's log is append-only and each batch atomic, so a power cut in
        between loses a suffix of whole batches: the chain it leaves is one it had, and the lost
        blocks are fetched again. For a run of downloaded blocks (sync), as Core flushes during
        initial block download: one fsync a chunk instead of one a block."""
        if not self.sync:
            yield
            return
        self.sync = False
        try:
            yield
        finally:
            self.sync = True
            # Any synced write flushes the log up to it; the sequence counter is rewritten as is.
            raw = self.store.get(k.K_SEQUENCE)
            if raw is not None:
                self._write_key(k.K_SEQUENCE, raw, sync=True)

    def _put_now(self, write: Callable[[WriteBatch], None], *, sync: bool | None = None) -> None:
        """One atomic batch; synced unless ``sync=False`` (see ``_store_block``)."""
        with self.store.write_batch(sync=self.sync if sync is None else sync) as batch:
            write(batch)

    def _write_key(self, key: bytes, value: bytes | None, *, sync: bool | None = None) -> None:
        """Put (or, for ``None``, delete) one key in its own batch."""
        with self.store.write_batch(sync=self.sync if sync is None else sync) as batch:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)

    def _cache_entry(self, entry: BlockIndexEntry) -> None:
        if len(self._index_cache) >= INDEX_CACHE_SIZE:
            del self._index_cache[next(iter(self._index_cache))]
        self._index_cache[entry.hash] = entry
