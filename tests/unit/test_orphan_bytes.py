"""The orphan block pool is bounded in bytes, not only in count (issue 17, item 7, block half).

Forty orphan blocks of 996 KB posted to ``POST /block`` took a node from 48 to 398 MiB: the pool
held up to 200 decoded blocks (about 9 bytes of Python objects per serialized byte). Now it holds
blocks as their bytes, at most ``MAX_ORPHAN_BYTES`` of them, the oldest evicted first. Here large
orphans whose parent never comes fill the pool past that bound, memory is measured with
``tracemalloc`` while they are posted, and the newest orphan, whose parent is then delivered,
still connects.
"""

from __future__ import annotations

import tracemalloc

from consensus import MAX_BLOCK_SIZE, Block, OutPoint, TxOut, ValidationError
from consensus import errors as codes
from node.chainstate import Chainstate
from node.chainstate.chainstate import MAX_ORPHAN_BYTES
from node.storage import MemoryStore
from tests.helpers import REGTEST, ChainBuilder, key, mine_block, spend

FAR_FUTURE = 2**31
OUTPUTS = 10_000
"""Outputs of the one transaction in each large orphan: about 250 KB a block."""


def large_block(chain: ChainBuilder, prev_hash: bytes, height: int, salt: int) -> Block:
    """A valid block on ``prev_hash``: one transaction spending the coinbase at height 1 into
    ``OUTPUTS`` outputs (``salt`` makes each block different)."""
    coin = chain.coinbase_coin(1)
    each = 1000 + salt
    tx = spend([coin], [TxOut(each, key(2).pubkey_hash)] * OUTPUTS)
    fee = coin[1].amount - each * OUTPUTS
    return mine_block(
        prev_hash,
        height,
        [tx],
        REGTEST.genesis_time + height * 60,
        chain.miner.pubkey_hash,
        fees=fee,
    )


def test_orphans_are_bounded_in_bytes_and_the_newest_still_connects() -> None:
    assert MAX_ORPHAN_BYTES <= 8 * MAX_BLOCK_SIZE  # "a few MB"
    chain = ChainBuilder()
    chain.grow(REGTEST.coinbase_maturity + 1)
    cs = Chainstate(MemoryStore(), REGTEST, clock=lambda: FAR_FUTURE, sync=False)
    for block in chain.blocks[1:]:
        assert cs.process_block(block).status == "active"
    height = chain.height + 1
    parent = chain.next_block()  # withheld until the end
    missing = b"\x42" * 32  # a parent that never comes
    fillers = [large_block(chain, missing, height, salt) for salt in range(24)]
    newest = large_block(chain, parent.hash(), height + 1, 99)
    raws = [b.serialize() for b in [*fillers, newest]]
    size = len(raws[0])
    assert 200_000 < size < MAX_BLOCK_SIZE
    assert len(raws) * size > 1.4 * MAX_ORPHAN_BYTES  # well past the bound

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        peak_held = 0
        for raw in raws:
            # As POST /block does: a fresh copy of the bytes, decoded, then dropped.
            result = cs.process_block(Block.deserialize(bytes(bytearray(raw))))
            assert result.status == "orphan"
            assert cs.orphan_bytes() <= MAX_ORPHAN_BYTES
            peak_held = max(peak_held, tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    # What the pool holds stays near its bound in bytes (without the bound: ~60 MB here).
    assert peak_held < 1.25 * MAX_ORPHAN_BYTES + 200_000, peak_held
    assert cs.orphan_count() == MAX_ORPHAN_BYTES // size
    assert cs.orphan_bytes() == cs.orphan_count() * size

    # The oldest went first: the first filler is not waiting any more, the last ones are.
    assert cs.process_block(fillers[0]).status == "orphan"  # taken again, not a duplicate
    try:
        cs.process_block(fillers[-1])
    except ValidationError as err:
        assert err.code == codes.DUPLICATE
    else:
        raise AssertionError("the newest filler should still be waiting")

    # The parent comes: the newest orphan connects on it.
    assert cs.process_block(parent).status == "active"
    assert cs.tip.hash == newest.hash()
    assert cs.height == height + 1
    assert cs.get_coin(OutPoint(newest.txs[1].txid(), OUTPUTS - 1)) is not None
    # Its fillers wait on: the pool is still within its bound.
    assert 0 < cs.orphan_bytes() <= MAX_ORPHAN_BYTES


def test_the_count_bound_still_holds() -> None:
    chain = ChainBuilder()
    chain.grow(6)
    cs = Chainstate(MemoryStore(), REGTEST, clock=lambda: FAR_FUTURE, sync=False, max_orphans=3)
    for block in chain.blocks[2:]:
        assert cs.process_block(block).status == "orphan"
    assert cs.orphan_count() == 3
    assert cs.orphan_bytes() == sum(b.size() for b in chain.blocks[-3:])
