"""``Chainstate.deferred_sync``: the blocks a sync chunk connects are made durable by one synced
write at the end instead of one a block, and outside it every connect is synced as before."""

from __future__ import annotations

from node.chainstate import Chainstate
from node.storage import MemoryStore, WriteBatch
from tests.helpers import REGTEST, ChainBuilder


class CountingStore(MemoryStore):
    """A memory store that counts the batches committed with ``sync=True``."""

    def __init__(self) -> None:
        super().__init__()
        self.synced = 0

    def _new_batch(self, sync: bool) -> WriteBatch:
        if sync:
            self.synced += 1
        return super()._new_batch(sync)


def chain_of(count: int) -> ChainBuilder:
    builder = ChainBuilder()
    builder.grow(count)
    return builder


def test_inside_one_synced_write_for_the_whole_chunk() -> None:
    builder = chain_of(20)
    store = CountingStore()
    chain = Chainstate(store, REGTEST)
    store.synced = 0
    with chain.deferred_sync():
        for block in builder.blocks[1:]:
            chain.process_block(block)
    assert chain.tip.height == 20
    assert store.synced == 1


def test_outside_every_connect_is_synced() -> None:
    builder = chain_of(20)
    store = CountingStore()
    chain = Chainstate(store, REGTEST)
    store.synced = 0
    for block in builder.blocks[1:]:
        chain.process_block(block)
    assert chain.tip.height == 20
    assert store.synced >= 20


def test_an_error_inside_still_syncs_what_was_connected() -> None:
    builder = chain_of(5)
    store = CountingStore()
    chain = Chainstate(store, REGTEST)
    store.synced = 0
    try:
        with chain.deferred_sync():
            for block in builder.blocks[1:]:
                chain.process_block(block)
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert store.synced == 1
    assert chain.tip.height == 5
    # and afterwards connects are synced again
    builder.grow(1)
    chain.process_block(builder.blocks[-1])
    assert chain.tip.height == 6
    assert store.synced >= 2
