"""Chain selection by cumulative work, not by height (SPEC 2.2), through the real chainstate.

Every other chainstate test runs on regtest, where all blocks carry the same bits, so "most
work" and "most blocks" agree there. These chains (``tests.workchain``) retarget every 4 blocks:
a branch mined 1 s a block has, at height 4, a block worth 4 times a ``pow_limit`` block. With
the genesis shared, work by height (``block_work`` summed, computed here independently):

=========  ==  ==  ==  ==  ==  ==  ==  ==  ==
height      0   1   2   3   4   5   6   7   8
fast (F)    2   4   6   8  16
slow (S)    2   4   6   8  10  12  14  16  18
=========  ==  ==  ==  ==  ==  ==  ==  ==  ==

So F at height 4 beats S at height 6 (shorter, more work), ties S at 7 (the tip seen first
stays) and loses to S at 8. Each test runs on the memory store and on LevelDB; a "reopen" closes
the LevelDB directory and opens it again.

What each test catches (each was checked by making the change in node/chainstate/ and seeing
it fail): the best chain chosen by height instead of work; work accumulated as +1 a block;
the equal-work tie-break (lower ``sequence`` wins) reversed in ``BlockIndexEntry.better_than``
or in the choice among candidates in ``_activate_best_chain``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from consensus import Block, ValidationError
from node.chainstate import BlockDisconnected, ChainEvent, Chainstate, TipChanged
from node.chainstate import schema as k
from node.storage import KeyValueStore, MemoryStore
from tests.helpers import key
from tests.stores import BACKENDS, Stores
from tests.workchain import FAST, SLOW, WORK_PARAMS, WorkChain, chain_work

FAR_FUTURE = 2**31


def open_chainstate(store: KeyValueStore) -> Chainstate:
    return Chainstate(store, WORK_PARAMS, clock=lambda: FAR_FUTURE, sync=False)


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    made = Stores(request.param, tmp_path)
    yield made
    made.close_all()


def fresh(blocks: Sequence[Block]) -> Chainstate:
    """A memory chainstate that only ever processed ``blocks`` (heights 1...)."""
    cs = open_chainstate(MemoryStore())
    for block in blocks:
        assert cs.process_block(block).status == "active"
    return cs


def derived_state(cs: Chainstate) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for prefix in k.DERIVED_PREFIXES:
        state.update(cs.store.iterate(prefix))
    return state


def assert_same_state(cs: Chainstate, reference: Chainstate) -> None:
    assert cs.tip.hash == reference.tip.hash
    assert cs.utxo_set_info() == reference.utxo_set_info()
    assert derived_state(cs) == derived_state(reference)


def statuses(cs: Chainstate, blocks: Sequence[Block]) -> list[str]:
    out = []
    for block in blocks:
        try:
            out.append(cs.process_block(block).status)
        except ValidationError as err:
            out.append(err.code)
    return out


def branches() -> tuple[WorkChain, WorkChain]:
    """F: 4 blocks 1 s apart (work 16); S: 8 blocks 120 s apart (work 18 at height 8)."""
    fast = WorkChain(key(1))
    fast.grow(4, FAST)
    slow = WorkChain(key(2))
    slow.grow(8, SLOW)
    return fast, slow


def test_the_branches_have_the_work_the_table_says() -> None:
    """The premise of every test below, from ``block_work`` alone."""
    fast, slow = branches()
    assert [fast.work_at(h) for h in range(5)] == [2, 4, 6, 8, 16]
    assert [slow.work_at(h) for h in range(9)] == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert fast.tip.header.bits != WORK_PARAMS.pow_limit_bits
    assert {b.header.bits for b in slow.blocks} == {WORK_PARAMS.pow_limit_bits}


def test_chainwork_is_the_sum_of_block_work_and_survives_a_reopen(stores: Stores) -> None:
    fast, slow = branches()
    store = stores.new()
    cs = open_chainstate(store)
    statuses(cs, [*slow.new_blocks, *fast.new_blocks])
    for chain in (fast, slow):
        for height, block in enumerate(chain.blocks):
            entry = cs.get_entry(block.hash())
            assert entry is not None
            assert (entry.height, entry.chainwork) == (
                height,
                chain_work(chain.blocks[: height + 1]),
            )
    assert cs.tip.chainwork == slow.work == 18
    store = stores.reopen(store)
    cs = open_chainstate(store)
    assert (cs.tip.hash, cs.tip.height, cs.tip.chainwork) == (slow.tip.hash(), 8, 18)
    entry = cs.get_entry(fast.tip.hash())
    assert entry is not None and entry.chainwork == 16


def test_a_shorter_chain_with_more_work_takes_over(stores: Stores) -> None:
    fast, slow = branches()
    store = stores.new()
    cs = open_chainstate(store)
    assert statuses(cs, slow.new_blocks[:6]) == ["active"] * 6  # height 6, work 14
    events: list[ChainEvent] = []
    cs.subscribe(events.append)
    # F's first three blocks have less work than S (8 < 14); its fourth has more (16 > 14).
    assert statuses(cs, fast.new_blocks) == ["side", "side", "side", "active"]
    assert (cs.tip.hash, cs.height, cs.tip.chainwork) == (fast.tip.hash(), 4, 16)
    assert [e for e in events if isinstance(e, TipChanged)] == [
        TipChanged(slow.blocks[6].hash(), fast.tip.hash(), 4, 6)
    ]
    assert len([e for e in events if isinstance(e, BlockDisconnected)]) == 6
    assert_same_state(cs, fresh(fast.new_blocks))
    store = stores.reopen(store)
    cs = open_chainstate(store)
    assert (cs.tip.hash, cs.height) == (fast.tip.hash(), 4)
    assert_same_state(cs, fresh(fast.new_blocks))


def test_a_longer_chain_with_less_work_is_refused_until_it_has_more(stores: Stores) -> None:
    fast, slow = branches()
    store = stores.new()
    cs = open_chainstate(store)
    assert statuses(cs, fast.new_blocks) == ["active"] * 4
    events: list[ChainEvent] = []
    cs.subscribe(events.append)
    # S at heights 5 and 6 is longer than F (4) with less work (10, 12, 14 < 16): refused.
    assert statuses(cs, slow.new_blocks[:6]) == ["side"] * 6
    assert (cs.tip.hash, cs.height) == (fast.tip.hash(), 4) and events == []
    # Height 7: equal work (16), seen later: F stays.
    assert statuses(cs, [slow.blocks[7]]) == ["side"]
    assert cs.tip.hash == fast.tip.hash() and events == []
    store = stores.reopen(store)
    cs = open_chainstate(store)
    cs.subscribe(events.append)
    assert cs.tip.hash == fast.tip.hash()
    # Height 8: more work (18 > 16): S takes over (the positive control).
    assert statuses(cs, [slow.blocks[8]]) == ["active"]
    assert [e for e in events if isinstance(e, TipChanged)] == [
        TipChanged(fast.tip.hash(), slow.tip.hash(), 8, 4)
    ]
    assert_same_state(cs, fresh(slow.new_blocks))


def test_equal_work_at_different_heights_keeps_the_tip_seen_first(stores: Stores) -> None:
    """S at height 7 and F at height 4 both have work 16: whichever came first stays."""
    fast, slow = branches()
    cs = open_chainstate(stores.new())
    assert statuses(cs, slow.new_blocks[:7]) == ["active"] * 7
    assert statuses(cs, fast.new_blocks) == ["side"] * 4
    assert (cs.tip.hash, cs.height) == (slow.blocks[7].hash(), 7)
    other = open_chainstate(stores.new())
    assert statuses(other, fast.new_blocks) == ["active"] * 4
    assert statuses(other, slow.new_blocks[:7]) == ["side"] * 7
    assert (other.tip.hash, other.height) == (fast.tip.hash(), 4)


@pytest.mark.parametrize("first", ["x", "y"])
def test_equal_work_candidates_in_one_step_keep_the_first_seen(stores: Stores, first: str) -> None:
    """Two orphans of equal work wait for the same parent; when it arrives both are candidates
    at once, and the one received first becomes the tip (the choice among candidates)."""
    base = WorkChain(key(1))
    base.grow(3, FAST)
    x = base.fork(3, key(1))
    x.grow(1, FAST)
    y = base.fork(3, key(3))
    y.grow(1, FAST)
    assert x.work == y.work and x.tip.hash() != y.tip.hash()
    cs = open_chainstate(stores.new())
    assert statuses(cs, base.new_blocks[:2]) == ["active"] * 2
    order = [x.tip, y.tip] if first == "x" else [y.tip, x.tip]
    assert statuses(cs, order) == ["orphan", "orphan"]
    assert cs.process_block(base.blocks[3]).status == "active"
    assert cs.tip.hash == order[0].hash()
    assert cs.height == 4


def test_a_branch_cut_short_at_equal_work_falls_back_to_the_tip_seen_first(
    stores: Stores,
) -> None:
    """S's block 8 (work 18 > 16) makes S the candidate, but it claims too much: the chainstate
    connects S up to height 7 (work 16, equal to F's) and then fails. Of two tips of equal work
    F was seen first, so the chain goes back to F (the tie-break between the tip and the best
    candidate, ``better_than``)."""
    fast, slow = branches()
    slow.blocks[8:] = []
    bad = slow.next_block(SLOW, fees=1)
    cs = open_chainstate(stores.new())
    assert statuses(cs, fast.new_blocks) == ["active"] * 4
    assert statuses(cs, slow.new_blocks) == ["side"] * 7
    events: list[ChainEvent] = []
    cs.subscribe(events.append)
    assert statuses(cs, [bad]) == ["bad-cb-amount"]
    assert (cs.tip.hash, cs.height) == (fast.tip.hash(), 4)
    assert [e for e in events if isinstance(e, TipChanged)] == [
        TipChanged(fast.tip.hash(), fast.tip.hash(), 4, 4 + 7)
    ]
    assert_same_state(cs, fresh(fast.new_blocks))


def test_reindex_keeps_the_first_seen_of_equal_work_chains(stores: Stores) -> None:
    """Reindex chooses among every stored chain at once: F (height 4) was seen before S
    (height 7, the same work), so F is the tip again, before and after a reopen."""
    fast, slow = branches()
    store = stores.new()
    cs = open_chainstate(store)
    statuses(cs, [*fast.new_blocks, *slow.new_blocks[:7]])
    assert cs.tip.hash == fast.tip.hash()
    cs.reindex()
    assert (cs.tip.hash, cs.height) == (fast.tip.hash(), 4)
    assert_same_state(cs, fresh(fast.new_blocks))
    store = stores.reopen(store)
    cs = open_chainstate(store)
    cs.reindex()
    assert (cs.tip.hash, cs.height) == (fast.tip.hash(), 4)
