"""Reindex: rebuild everything derived from the stored blocks.

Job: wipe the derived keys (``schema.DERIVED_PREFIXES``: the tip, the UTXO set and its stats,
undo data, heights, every index), check every stored body against its header, and connect the
chains again from the genesis, so the UTXO set, the undo data and each index writer's records
are rebuilt by the very code that keeps them at connect. Also the way an older schema
(``schema.UPGRADABLE_BY_REINDEX``) is upgraded.

State owned: the ``X`` key, present while a reindex is in progress: a reindex interrupted by a
crash starts over at the next open.

Invariants:
- Blocks once found invalid stay marked (their status is kept; "connected" is forgotten).
- A stored body that does not match its header (``ValidationError.mutated``: none a current
  node stores, but a disk or an old bug might have) is dropped with its own mark, its header
  kept, so the genuine body is accepted when a peer sends it; a mark inherited from a parent
  stays.
- The most-work valid chain becomes active, as ``Chain.activate_best_chain`` chooses it.
- Keys that are not derived (blocks, the block index, ``Q``, ``D``, the mempool's, bans) are
  kept.

Left to others: choosing and connecting chains (``node.chainstate.chain``), what each index
writes (``node.indexes``), deciding when to reindex (the ``Chainstate`` facade at open, or
``tally-node reindex``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from consensus import Block, ValidationError, check_block_merkle_root
from consensus import errors as codes
from node.chainstate import schema as k
from node.chainstate.blockindex import BlockIndexEntry, Status
from node.chainstate.chain import Chain
from node.chainstate.errors import ChainstateError
from node.storage import KeyValueStore, WriteBatch

log = logging.getLogger(__name__)

DELETE_CHUNK = 10_000
"""Keys deleted per (unsynced) batch while wiping a derived prefix."""


def mark_started(batch: WriteBatch) -> None:
    """Record in ``batch`` that a reindex is in progress (``X``)."""
    batch.put(k.K_REINDEX, b"1")


def in_progress(store: KeyValueStore) -> bool:
    """Whether a reindex was started and has not finished (a crash cut it short)."""
    return store.get(k.K_REINDEX) is not None


def reindex(chain: Chain) -> None:
    """Rebuild the UTXO set, undo data, indexes and tip of ``chain`` from the stored blocks
    (see the module's invariants)."""
    store = chain.store
    log.info("reindex: wiping the chainstate")
    with store.write_batch(sync=chain.sync) as batch:
        mark_started(batch)
    for prefix in k.DERIVED_PREFIXES:
        _delete_prefix(store, prefix)
    entries: list[BlockIndexEntry] = []
    with store.write_batch(sync=False) as batch:
        for key, raw in store.iterate(k.P_INDEX):
            entry = BlockIndexEntry.deserialize(key[1:], raw)
            if entry.have_data:
                problem = stored_body_problem(chain, entry)
                if problem is not None:
                    log.warning(
                        "reindex: dropped the stored body of block %s at height %d: %s",
                        entry.hash[::-1].hex(),
                        entry.height,
                        problem,
                    )
                    chain.blocks.delete_block(batch, entry.hash)
                    # Its own mark came from that body; a mark inherited from a parent stays.
                    inherited = entry.status & Status.FAILED_CHILD
                    status = entry.status & ~(Status.HAVE_DATA | Status.CONNECTED | Status.FAILED)
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
    chain.forget_state()
    genesis = next((e for e in entries if e.height == 0), None)
    if genesis is None or genesis.hash != chain.params.genesis_hash:
        raise ChainstateError("the stored blocks do not include this network's genesis")
    with store.write_batch(sync=chain.sync) as batch:
        chain.coins.write_empty(batch)
    chain.connect_block(genesis)
    chain.activate_best_chain([e for e in entries if not e.failed])
    with store.write_batch(sync=chain.sync) as batch:
        batch.delete(k.K_REINDEX)
    log.info("reindex: done at height %d", chain.height)


def stored_body_problem(chain: Chain, entry: BlockIndexEntry) -> str | None:
    """Why the stored body of ``entry`` is not the block its header commits to, if it is not."""
    raw = chain.blocks.get_block_bytes(entry.hash)
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


def _delete_prefix(store: KeyValueStore, prefix: bytes, chunk: int = DELETE_CHUNK) -> None:
    while True:
        keys = [key for key, _ in _take(store.iterate(prefix), chunk)]
        if not keys:
            return
        with store.write_batch(sync=False) as batch:
            for key in keys:
                batch.delete(key)


def _take(items: Iterator[tuple[bytes, bytes]], n: int) -> Iterator[tuple[bytes, bytes]]:
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item
