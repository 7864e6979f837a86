"""The node-side pieces of the devnet toolkit (SPEC 6), without processes: the shifted clock and
what follows it, clearing the mempool, and a block built on a parent that is not the tip.

- ``NodeClock`` is the wall clock plus an offset: ``set``, ``advance``, the offset kept in
  ``<datadir>/clock.json`` and read back, a file it cannot use ignored;
- one ``NodeClock`` given to the chainstate and the mempool moves both: a block more than 2 hours
  ahead is ``time-too-new`` until the clock is advanced, then accepted; entry times follow it, and
  advancing it by the expiry expires the entries;
- ``Mempool.clear`` empties the pool, its orphans and its persisted copy (a restart brings
  nothing back);
- ``build_block_on`` on a block back in the chain gives a block the chainstate takes on a side
  branch: the required bits, the coinbase height, a time above that parent's median time past.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consensus import Block, ValidationError, median_time_past_at
from consensus import errors as codes
from node.chainstate import Chainstate
from node.clock import CLOCK_FILE, NodeClock
from node.mempool import ChainView, Mempool
from node.miner.template import build_block_on, build_template
from node.storage import MemoryStore
from tests.helpers import REGTEST, key, mine_block, solve
from tests.unit.test_mempool import base, out, pay

WALL = 1_900_000_000.0
PAYOUT = key(7)


class Wall:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = WALL

    def __call__(self) -> float:
        return self.now


def test_set_and_advance_shift_a_running_clock() -> None:
    wall = Wall()
    clock = NodeClock(wall)
    assert (clock(), clock.offset) == (WALL, 0)
    clock.advance(7200)
    assert clock.now() == WALL + 7200
    wall.now += 10  # it keeps running
    assert clock.now() == WALL + 7210
    clock.set(2_000_000_000)
    assert clock.now() == 2_000_000_000
    assert clock.offset == 2_000_000_000 - (WALL + 10)
    clock.set_offset(0)
    assert clock() == wall.now


def test_the_offset_is_kept_in_the_datadir(tmp_path: Path) -> None:
    clock = NodeClock(Wall())
    clock.load(tmp_path)
    assert clock.offset == 0 and not (tmp_path / CLOCK_FILE).exists()
    clock.advance(86_400)
    assert json.loads((tmp_path / CLOCK_FILE).read_text()) == {"offset": 86_400}
    again = NodeClock(Wall())
    again.load(tmp_path)
    assert again.now() == WALL + 86_400
    unkept = NodeClock(Wall())  # without ``load``: nothing read, nothing written
    unkept.advance(5)
    assert json.loads((tmp_path / CLOCK_FILE).read_text()) == {"offset": 86_400}


@pytest.mark.parametrize(
    "text", ["", "not json", "[]", '{"offset": "60"}', '{"offset": true}', '{"offset": 1e99}']
)
def test_a_file_it_cannot_use_leaves_the_clock_unshifted(tmp_path: Path, text: str) -> None:
    (tmp_path / CLOCK_FILE).write_text(text)
    clock = NodeClock(Wall())
    clock.load(tmp_path)
    assert clock.offset == 0
    clock.advance(60)  # and the next change replaces it
    assert json.loads((tmp_path / CLOCK_FILE).read_text()) == {"offset": 60}


def test_the_chainstate_and_the_mempool_follow_one_clock() -> None:
    blocks = base().blocks
    tip_time = blocks[-1].header.time
    wall = Wall()
    wall.now = float(tip_time)
    clock = NodeClock(wall)
    chain = Chainstate(MemoryStore(), REGTEST, clock=clock, sync=False)
    for block in blocks[1:]:
        chain.process_block(block)
    pool = Mempool(ChainView.of(chain), REGTEST, clock=clock)
    chain.subscribe(pool.on_chain_event)

    ahead = mine_block(
        chain.tip.hash, chain.height + 1, [], tip_time + 7200 + 60, PAYOUT.pubkey_hash
    )
    with pytest.raises(ValidationError) as info:
        chain.process_block(ahead)
    assert info.value.code == codes.TIME_TOO_NEW
    clock.advance(7200)
    assert chain.process_block(ahead).status == "active"

    # A template made on the shifted clock carries its time.
    template = build_template(chain, pool, PAYOUT.pubkey_hash, now=clock.now() + 300)
    assert template.block.header.time == tip_time + 7200 + 300

    tx = pay([base().coins[0]], 1_000)
    pool.accept(tx)
    entry = pool.get(tx.txid())
    assert entry is not None and entry.time == clock()
    clock.advance(pool.policy.expiry_seconds + 1)
    assert pool.expire() == [tx.txid()]


def test_clear_empties_the_pool_its_orphans_and_its_store() -> None:
    store = MemoryStore()
    chain = Chainstate(store, REGTEST, clock=lambda: 2**31, sync=False)
    for block in base().blocks[1:]:
        chain.process_block(block)
    pool = Mempool(ChainView.of(chain), REGTEST, store=store, clock=lambda: WALL)
    coins = base().coins
    parent = pay([coins[0]], 1_000)
    orphan = pay([out(parent)], 1_000)  # its parent not in the pool
    pool.accept(pay([coins[1]], 1_000))
    pool.accept(pay([coins[2]], 1_000))
    assert pool.accept(orphan).status == "orphan"
    assert pool.clear() == 2
    assert (len(pool), pool.total_bytes, pool.orphan_count(), pool.orphan_bytes()) == (0, 0, 0, 0)
    reopened = Mempool(ChainView.of(chain), REGTEST, store=store, clock=lambda: WALL)
    assert reopened.load() == 0
    pool.accept(parent)  # the orphan was forgotten: nothing adopted
    assert len(pool) == 1


def test_a_block_built_on_a_parent_back_in_the_chain() -> None:
    blocks = base().blocks
    chain = Chainstate(MemoryStore(), REGTEST, clock=lambda: 2**31, sync=False)
    for block in blocks[1:]:
        chain.process_block(block)
    fork = chain.ancestor(chain.tip, chain.height - 2)

    def time_at(height: int) -> int:
        return chain.ancestor(fork, height).header.time

    mtp = median_time_past_at(fork.height + 1, time_at)
    template = build_block_on(
        REGTEST,
        fork.hash,
        fork.height + 1,
        fork.header.bits,
        time_at,
        PAYOUT.pubkey_hash,
        now=0,  # a clock far behind: the time is still above the median
        extra_nonce=5,
    )
    header = template.block.header
    assert header.prev_hash == fork.hash and header.time == mtp + 1
    assert header.bits == REGTEST.pow_limit_bits
    assert template.block.txs[0].inputs[0].signature[:4] == (fork.height + 1).to_bytes(4, "little")
    block = Block(solve(header, REGTEST), template.block.txs)
    result = chain.process_block(block)
    assert (result.status, result.height) == ("side", fork.height + 1)
