"""``Chainstate.invalidate_block`` and ``reconsider_block`` (SPEC 2.4; Core's invalidateblock and
reconsiderblock).

- invalidating a block of the active chain marks it (``invalidated``) and its descendants
  (``bad-prevblk``), disconnects back to its parent and activates the best valid chain left (a
  side branch with more work than the parent, or the parent itself); the state is then exactly
  that of a chainstate that only ever saw the new chain;
- the block, sent again, is refused as ``duplicate`` (``CACHED_INVALID``), a new child of it as
  ``bad-prevblk``; the marks survive a restart;
- invalidating a side block keeps its branch from ever becoming active;
- reconsidering clears the marks of the block, its descendants and its ancestors and activates
  the most-work chain again; a block that really breaks a rule is marked again;
- unknown hashes and the genesis are refused; a power cut at any write batch of an invalidation
  leaves a database that opens on a valid, unmarked tip, and completes the change.

Both storage backends (memory and LevelDB) for the main cases.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from consensus import (
    COIN,
    Block,
    BlockValidationResult,
    Transaction,
    TxIn,
    TxOut,
    ValidationError,
    block_merkle_root,
)
from consensus import errors as codes
from node.chainstate import (
    Chainstate,
    GenesisBlockError,
    Status,
    TipChanged,
    UnknownBlockError,
)
from node.chainstate import schema as k
from node.chainstate.chainstate import INVALIDATED_BY_HAND
from node.storage import KeyValueStore, LevelDBStore, MemoryStore, WriteBatch
from tests.helpers import REGTEST, ChainBuilder, key, mine_block, solve, spend

FAR_FUTURE = 2**31
COMMON = REGTEST.coinbase_maturity + 1


@dataclasses.dataclass
class World:
    """``common`` (heights 1-101), then ``main`` (102-105, the second spending a coinbase) and
    ``side`` (102-104: more work than ``main`` up to 103, less than all of it)."""

    common: list[Block]
    main: list[Block]
    side: list[Block]


def branch(
    builder: ChainBuilder, count: int, tag: int, txs_at: dict[int, list[Transaction]]
) -> list[Block]:
    blocks: list[Block] = []
    prev = builder.tip.hash()
    for n in range(count):
        height = COMMON + 1 + n
        txs = txs_at.get(n, [])
        block = mine_block(
            prev,
            height,
            txs,
            REGTEST.genesis_time + 60 * height + tag,
            key(10 + tag).pubkey_hash,
            fees=COIN * len(txs),
        )
        blocks.append(block)
        prev = block.hash()
    return blocks


@pytest.fixture(scope="module")
def world() -> World:
    builder = ChainBuilder()
    builder.grow(COMMON)
    pay = spend([builder.coinbase_coin(1)], [TxOut(49 * COIN, key(5).pubkey_hash)])
    main = branch(builder, 4, 0, {1: [pay]})
    side = branch(builder, 3, 1, {})
    return World(builder.blocks[1:], main, side)


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        with LevelDBStore(tmp_path / "chainstate") as db:
            yield db


def open_chainstate(store: KeyValueStore) -> Chainstate:
    return Chainstate(store, REGTEST, clock=lambda: FAR_FUTURE, sync=False)


def feed(cs: Chainstate, blocks: list[Block]) -> None:
    for block in blocks:
        cs.process_block(block)


def derived(cs: Chainstate) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for prefix in k.DERIVED_PREFIXES:
        state.update(cs.store.iterate(prefix))
    return state


def assert_state_of(cs: Chainstate, blocks: list[Block]) -> None:
    """``cs`` is exactly where a fresh chainstate fed only ``blocks`` (heights 1...) is."""
    reference = open_chainstate(MemoryStore())
    feed(reference, blocks)
    assert reference.height == len(blocks)
    assert cs.tip.hash == reference.tip.hash
    assert cs.utxo_set_info() == reference.utxo_set_info()
    assert derived(cs) == derived(reference)


def status_of(cs: Chainstate, block: Block) -> Status:
    entry = cs.get_entry(block.hash())
    assert entry is not None
    return entry.status


def test_invalidate_moves_to_the_best_chain_left(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common + world.main + world.side)
    assert cs.tip.hash == world.main[-1].hash()
    events: list[object] = []
    cs.subscribe(events.append)
    cs.invalidate_block(world.main[1].hash())  # height 103, with the spend
    # main[0] (102) is left, but the side branch (to 104) has more work than it.
    assert cs.tip.hash == world.side[-1].hash()
    assert_state_of(cs, world.common + world.side)
    first = cs.get_entry(world.main[1].hash())
    assert first is not None and first.status & Status.FAILED
    assert first.reject_code == INVALIDATED_BY_HAND
    for block in world.main[2:]:
        assert status_of(cs, block) & Status.FAILED_CHILD
    assert not status_of(cs, world.main[0]) & (Status.FAILED | Status.FAILED_CHILD)
    tip_changes = [e for e in events if isinstance(e, TipChanged)]
    assert len(tip_changes) == 1 and tip_changes[0].reorg_depth == 4


def test_invalidate_to_the_parent_when_nothing_has_more_work(
    store: KeyValueStore, world: World
) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common + world.main)
    cs.invalidate_block(world.main[2].hash())
    assert cs.tip.hash == world.main[1].hash()
    assert_state_of(cs, world.common + world.main[:2])


def test_an_invalidated_block_and_its_children_are_refused(
    store: KeyValueStore, world: World
) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common + world.main)
    target = world.main[2]
    cs.invalidate_block(target.hash())
    with pytest.raises(ValidationError) as info:
        cs.process_block(target)
    assert info.value.code == codes.DUPLICATE
    assert info.value.result is BlockValidationResult.CACHED_INVALID
    with pytest.raises(ValidationError) as info:
        cs.process_block(world.main[3])
    assert info.value.code == codes.BAD_PREVBLK
    child = mine_block(target.hash(), COMMON + 4, [], target.header.time + 60, key(9).pubkey_hash)
    with pytest.raises(ValidationError) as info:
        cs.process_block(child)
    assert info.value.code == codes.BAD_PREVBLK
    assert cs.tip.hash == world.main[1].hash()


def test_marks_survive_a_restart(tmp_path: Path, world: World) -> None:
    path = tmp_path / "chainstate"
    with LevelDBStore(path) as db:
        cs = open_chainstate(db)
        feed(cs, world.common + world.main)
        cs.invalidate_block(world.main[1].hash())
    with LevelDBStore(path) as db:
        cs = open_chainstate(db)
        assert cs.tip.hash == world.main[0].hash()
        assert status_of(cs, world.main[1]) & Status.FAILED
        cs.reconsider_block(world.main[1].hash())
        assert cs.tip.hash == world.main[-1].hash()
    with LevelDBStore(path) as db:
        cs = open_chainstate(db)
        assert cs.tip.hash == world.main[-1].hash()
        assert_state_of(cs, world.common + world.main)


def test_reconsider_returns_to_the_most_work_chain(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common + world.main + world.side)
    cs.invalidate_block(world.main[1].hash())
    assert cs.tip.hash == world.side[-1].hash()
    cs.reconsider_block(world.main[1].hash())
    assert cs.tip.hash == world.main[-1].hash()
    assert_state_of(cs, world.common + world.main)
    for block in world.main:
        entry = cs.get_entry(block.hash())
        assert entry is not None and not entry.failed and entry.reject_code == ""


def test_reconsider_a_descendant_clears_its_ancestors(store: KeyValueStore, world: World) -> None:
    """As Core's reconsiderblock: the marks of the ancestors go too."""
    cs = open_chainstate(store)
    feed(cs, world.common + world.main)
    cs.invalidate_block(world.main[1].hash())
    cs.reconsider_block(world.main[3].hash())
    assert cs.tip.hash == world.main[-1].hash()
    assert_state_of(cs, world.common + world.main)


def test_invalidate_a_side_block_keeps_its_branch_out(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common + world.main[:2] + world.side[:2])
    assert cs.tip.hash == world.main[1].hash()
    cs.invalidate_block(world.side[0].hash())
    assert cs.tip.hash == world.main[1].hash()
    assert status_of(cs, world.side[1]) & Status.FAILED_CHILD
    with pytest.raises(ValidationError) as info:
        cs.process_block(world.side[2])  # would have more work: refused, no reorganisation
    assert info.value.code == codes.BAD_PREVBLK
    assert cs.tip.hash == world.main[1].hash()
    cs.reconsider_block(world.side[0].hash())
    # side[2] was never stored (its parent was marked); up to side[1] the work is equal.
    assert cs.tip.hash == world.main[1].hash()
    assert cs.process_block(world.side[2]).status == "active"
    assert_state_of(cs, world.common + world.side)


def test_reconsider_marks_a_block_that_breaks_a_rule_again(
    store: KeyValueStore, world: World
) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common + world.main[:1])
    honest = world.main[1]
    pay = honest.txs[1]
    txin = pay.inputs[0]
    broken = Transaction(
        pay.version,
        (TxIn(txin.prevout, txin.pubkey, txin.signature[:-1] + bytes([txin.signature[-1] ^ 1])),),
        pay.outputs,
        pay.locktime,
    )
    txs = (honest.txs[0], broken)
    header = dataclasses.replace(honest.header, merkle_root=block_merkle_root(txs)[0], nonce=0)
    bad = Block(solve(header, REGTEST), txs)
    with pytest.raises(ValidationError):
        cs.process_block(bad)
    assert status_of(cs, bad) & Status.FAILED
    events: list[object] = []
    cs.subscribe(events.append)
    cs.reconsider_block(bad.hash())  # cleared, tried again (it has more work), marked again
    entry = cs.get_entry(bad.hash())
    assert entry is not None and entry.status & Status.FAILED
    assert entry.reject_code == codes.BAD_TXNS_SIGNATURE
    assert cs.tip.hash == world.main[0].hash()
    assert not [e for e in events if isinstance(e, TipChanged)]
    with pytest.raises(ValidationError) as info:
        cs.process_block(bad)
    assert info.value.code == codes.BAD_TXNS_SIGNATURE
    assert info.value.result is BlockValidationResult.CACHED_INVALID
    assert cs.process_block(honest).status == "active"  # the honest block at that height


def test_invalidating_a_block_refused_by_a_rule_keeps_its_code(
    store: KeyValueStore, world: World
) -> None:
    """Its sender is still at fault: the rule's code stays (not ``invalidated``)."""
    cs = open_chainstate(store)
    feed(cs, world.common + world.main[:1])
    honest = world.main[1]
    txs = (honest.txs[0], Transaction(1, honest.txs[1].inputs, honest.txs[1].outputs, 7))
    header = dataclasses.replace(honest.header, merkle_root=block_merkle_root(txs)[0], nonce=0)
    bad = Block(solve(header, REGTEST), txs)  # its spend's signature is for locktime 0
    with pytest.raises(ValidationError):
        cs.process_block(bad)
    cs.invalidate_block(bad.hash())
    entry = cs.get_entry(bad.hash())
    assert entry is not None and entry.reject_code == codes.BAD_TXNS_SIGNATURE
    with pytest.raises(ValidationError) as info:
        cs.process_block(bad)
    assert info.value.code == codes.BAD_TXNS_SIGNATURE
    assert cs.tip.hash == world.main[0].hash()


def test_unknown_hashes_and_the_genesis(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common[:3])
    with pytest.raises(UnknownBlockError):
        cs.invalidate_block(b"\x42" * 32)
    with pytest.raises(UnknownBlockError):
        cs.reconsider_block(b"\x42" * 32)
    with pytest.raises(GenesisBlockError):
        cs.invalidate_block(REGTEST.genesis_hash)
    cs.reconsider_block(REGTEST.genesis_hash)  # nothing to clear: harmless
    assert cs.height == 3


class PowerCutError(Exception):
    pass


class CrashingStore(MemoryStore):
    """A MemoryStore that loses power when its ``crash_at``-th write batch (after ``arm``) is
    opened: that batch and every later write are lost, as with ``kill -9``."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0
        self.crash_at: int | None = None

    def arm(self, crash_at: int | None) -> None:
        self.batches = 0
        self.crash_at = crash_at

    def write_batch(self, sync: bool = True) -> WriteBatch:
        self.batches += 1
        if self.crash_at is not None and self.batches >= self.crash_at:
            raise PowerCutError(f"batch {self.batches}")
        return super().write_batch(sync)

    def survivor(self) -> MemoryStore:
        copy = MemoryStore()
        copy._data = dict(self._data)
        copy._keys = list(self._keys)
        return copy


def test_a_power_cut_during_an_invalidation_is_resumed(world: World) -> None:
    """At every write batch of ``invalidate_block``: the reopened database has a valid tip,
    and either nothing changed or the change is completed at start-up."""
    blocks = world.common + world.main + world.side
    points = 0
    while True:
        points += 1
        store = CrashingStore()
        cs = open_chainstate(store)
        feed(cs, blocks)
        store.arm(points)
        try:
            cs.invalidate_block(world.main[1].hash())
        except PowerCutError:
            reopened = open_chainstate(store.survivor())
            tip = reopened.get_entry(reopened.tip.hash)
            assert tip is not None and not tip.failed
            if points == 1:  # the mark itself was lost: nothing happened
                assert_state_of(reopened, blocks[: COMMON + len(world.main)])
            else:
                assert_state_of(reopened, world.common + world.side)
            continue
        assert points > 5  # the mark, 4 disconnections, 3 connections at least
        break
