"""The chainstate and mutated blocks (SPEC 2.4, 3.1; issue 16, defect 1).

A *mutated* body does not match its header (one signature bit flipped by a relayer, or a
CVE-2012-2459 duplicated subtree). It says nothing about the header: the chainstate drops it (not
stored, not kept as an orphan), never marks the hash, and takes the genuine body when it comes.
Under the old rule (a root over txids) the flipped signature kept the header valid, the hash was
marked failed with ``bad-txns-signature``, the genuine block was refused for ever, children were
``bad-prevblk`` and a mutated side-branch block stopped a reorganisation.

A block whose header commits to a broken rule still marks the hash and its descendants.
``reindex`` re-checks every stored body against its header and drops one that does not match.
A database of the old schema (version 1, txid roots) is refused with a clear message, unchanged.

Every test runs on both storage backends (memory and LevelDB).
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
from node.chainstate import Chainstate, ChainstateError, Status
from node.chainstate import schema as k
from node.storage import KeyValueStore, LevelDBStore, MemoryStore
from tests.helpers import REGTEST, ChainBuilder, key, mine_block, solve, spend

FAR_FUTURE = 2**31
COMMON = REGTEST.coinbase_maturity + 1  # the coinbase of height 1 is mature on top of this


def flip_signature(tx: Transaction) -> Transaction:
    txin = tx.inputs[0]
    sig = bytes(txin.signature[:-1]) + bytes([txin.signature[-1] ^ 1])
    return Transaction(
        tx.version, (TxIn(txin.prevout, txin.pubkey, sig), *tx.inputs[1:]), tx.outputs, tx.locktime
    )


def mutate(block: Block) -> Block:
    """``block`` with one signature bit of its second transaction flipped: same header."""
    txs = list(block.txs)
    txs[1] = flip_signature(txs[1])
    mutated = Block(block.header, tuple(txs))
    assert mutated.hash() == block.hash() and mutated.serialize() != block.serialize()
    return mutated


@dataclasses.dataclass
class World:
    """A common chain of ``COMMON`` blocks, then two branches.

    ``main``: two empty blocks (heights 102, 103). ``side``: three blocks (102-104, more work),
    the first spending the coinbases of heights 1 and 2 (three transactions: an odd count, so
    that CVE-2012-2459's duplicated last transaction gives the same root).
    """

    common: list[Block]
    main: list[Block]
    side: list[Block]


@pytest.fixture(scope="module")
def world() -> World:
    builder = ChainBuilder()
    builder.grow(COMMON)
    fork = builder.tip.hash()
    miner = builder.miner.pubkey_hash
    main = []
    prev = fork
    for height in (COMMON + 1, COMMON + 2):
        block = mine_block(prev, height, [], REGTEST.genesis_time + 60 * height, miner)
        main.append(block)
        prev = block.hash()
    pays = [
        spend([builder.coinbase_coin(h)], [TxOut(49 * COIN, key(5).pubkey_hash)]) for h in (1, 2)
    ]
    side = []
    prev = fork
    for n, height in enumerate((COMMON + 1, COMMON + 2, COMMON + 3)):
        txs = pays if n == 0 else []
        block = mine_block(
            prev,
            height,
            txs,
            REGTEST.genesis_time + 60 * height + 7,
            key(6).pubkey_hash,
            fees=2 * COIN if n == 0 else 0,
        )
        side.append(block)
        prev = block.hash()
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


def reject(cs: Chainstate, block: Block) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        cs.process_block(block)
    return info.value


def assert_dropped(cs: Chainstate, block: Block, err: ValidationError) -> None:
    """``err`` is a mutated rejection and left no trace of ``block``'s hash."""
    assert err.mutated and err.result is BlockValidationResult.MUTATED
    assert cs.get_entry(block.hash()) is None
    assert cs.get_block_bytes(block.hash()) is None
    assert cs.orphan_count() == 0


def test_mutated_block_is_dropped_and_the_genuine_one_accepted(
    store: KeyValueStore, world: World
) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common)
    genuine = world.side[0]
    err = reject(cs, mutate(genuine))
    assert err.code == codes.BAD_TXNMRKLROOT
    assert_dropped(cs, genuine, err)
    err = reject(cs, mutate(genuine))  # as often as it is sent: never cached
    assert err.code == codes.BAD_TXNMRKLROOT and err.mutated
    result = cs.process_block(genuine)
    assert (result.status, result.height) == ("active", COMMON + 1)
    assert cs.get_block_bytes(genuine.hash()) == genuine.serialize()
    entry = cs.get_entry(genuine.hash())
    assert entry is not None and not entry.failed


def test_children_of_a_mutated_block_are_not_bad_prevblk(
    store: KeyValueStore, world: World
) -> None:
    """Honest peers sending the children must not look like they build on an invalid block."""
    cs = open_chainstate(store)
    feed(cs, world.common)
    reject(cs, mutate(world.side[0]))
    assert cs.process_block(world.side[1]).status == "orphan"  # parent unknown: not an error
    assert cs.process_block(world.side[0]).status == "active"
    assert cs.tip.hash == world.side[1].hash()
    assert cs.process_block(world.side[2]).status == "active"


def test_mutated_orphan_is_not_kept(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common[:-1])  # the fork point is not known yet
    err = reject(cs, mutate(world.side[0]))
    assert err.code == codes.BAD_TXNMRKLROOT
    assert_dropped(cs, world.side[0], err)
    assert cs.process_block(world.side[0]).status == "orphan"
    assert cs.orphan_count() == 1
    assert cs.process_block(world.common[-1]).status == "active"
    assert cs.tip.hash == world.side[0].hash()


def test_mutated_side_block_does_not_stop_a_reorganisation(
    store: KeyValueStore, world: World
) -> None:
    """The mutated copy arrives while its branch has less work; the branch then overtakes."""
    cs = open_chainstate(store)
    feed(cs, world.common + world.main)
    err = reject(cs, mutate(world.side[0]))
    assert_dropped(cs, world.side[0], err)
    assert cs.process_block(world.side[0]).status == "side"
    assert cs.process_block(world.side[1]).status == "side"  # equal work: the first seen stays
    assert cs.tip.hash == world.main[-1].hash()
    assert cs.process_block(world.side[2]).status == "active"
    assert cs.tip.hash == world.side[2].hash()
    for block in world.side:
        entry = cs.get_entry(block.hash())
        assert entry is not None and not entry.failed and cs.in_active_chain(entry)


def test_cve_2012_2459_copy_is_dropped(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common)
    genuine = world.side[0]
    duplicated = Block(genuine.header, (*genuine.txs, genuine.txs[-1]))
    err = reject(cs, duplicated)
    assert err.code == codes.BAD_TXNS_DUPLICATE
    assert_dropped(cs, genuine, err)
    assert cs.process_block(genuine).status == "active"


def test_a_rule_the_header_commits_to_marks_the_block_and_descendants(
    store: KeyValueStore, world: World
) -> None:
    """A bad signature the header commits to: the hash is invalid, and so are its children."""
    cs = open_chainstate(store)
    feed(cs, world.common)
    honest = world.side[0]
    txs = mutate(honest).txs
    header = dataclasses.replace(honest.header, merkle_root=block_merkle_root(txs)[0], nonce=0)
    bad = Block(solve(header, REGTEST), txs)
    err = reject(cs, bad)
    assert err.code == codes.BAD_TXNS_SIGNATURE and not err.mutated
    entry = cs.get_entry(bad.hash())
    assert entry is not None and entry.status & Status.FAILED
    assert entry.reject_code == codes.BAD_TXNS_SIGNATURE
    again = reject(cs, bad)
    assert again.code == codes.BAD_TXNS_SIGNATURE
    assert again.result is BlockValidationResult.CACHED_INVALID
    child = mine_block(bad.hash(), COMMON + 2, [], honest.header.time + 60, key(6).pubkey_hash)
    err = reject(cs, child)
    assert err.code == codes.BAD_PREVBLK and not err.mutated
    assert cs.tip.hash == world.common[-1].hash()


def test_a_context_free_rule_the_header_commits_to_marks_the_block(
    store: KeyValueStore, world: World
) -> None:
    """Not only rules checked on connecting: a zero output in a spend, committed to, too."""
    cs = open_chainstate(store)
    feed(cs, world.common)
    honest = world.side[0]
    pay = honest.txs[1]
    zero = Transaction(pay.version, pay.inputs, (TxOut(0, key(5).pubkey_hash),), pay.locktime)
    txs = (honest.txs[0], zero, honest.txs[2])
    header = dataclasses.replace(honest.header, merkle_root=block_merkle_root(txs)[0], nonce=0)
    bad = Block(solve(header, REGTEST), txs)
    err = reject(cs, bad)
    assert err.code == codes.BAD_TXNS_VOUT_NEGATIVE and not err.mutated
    entry = cs.get_entry(bad.hash())
    assert entry is not None and entry.failed and not entry.have_data
    child = mine_block(bad.hash(), COMMON + 2, [], honest.header.time + 60, key(6).pubkey_hash)
    assert reject(cs, child).code == codes.BAD_PREVBLK


def test_proof_of_work_failure_is_not_stored(store: KeyValueStore, world: World) -> None:
    """A header without its proof of work costs nothing to make: nothing is written for it."""
    cs = open_chainstate(store)
    feed(cs, world.common)
    honest = world.side[0]
    nonce = honest.header.nonce
    while True:
        nonce += 1
        header = dataclasses.replace(honest.header, nonce=nonce)
        if int.from_bytes(header.hash(), "little") > REGTEST.pow_limit:
            break
    err = reject(cs, Block(header, honest.txs))
    assert err.code == codes.HIGH_HASH
    assert cs.get_entry(header.hash()) is None


def plant_body(cs: Chainstate, block: Block) -> None:
    """Write ``block``'s bytes as the stored body of its hash (what an old version, or a bad
    disk, could have left): behind the chainstate's back."""
    with cs.store.write_batch(sync=False) as batch:
        batch.put(k.block_key(block.hash()), block.serialize())


def test_reindex_drops_a_stored_mutated_body(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common + world.main + world.side[:2])
    assert cs.tip.hash == world.main[-1].hash()
    genuine = world.side[0]
    plant_body(cs, mutate(genuine))
    cs.reindex()
    assert cs.tip.hash == world.main[-1].hash()
    assert cs.get_block_bytes(genuine.hash()) is None
    entry = cs.get_entry(genuine.hash())
    assert entry is not None and not entry.have_data and not entry.failed
    # Its child keeps its body and waits; the heavier branch becomes active once the genuine
    # body and the next block arrive.
    assert cs.get_block_bytes(world.side[1].hash()) == world.side[1].serialize()
    assert cs.process_block(world.side[2]).status == "side"  # waits for side[0]'s body
    assert cs.tip.hash == world.main[-1].hash()
    assert cs.process_block(genuine).status == "active"
    assert cs.tip.hash == world.side[2].hash()
    for block in world.side:
        found = cs.get_entry(block.hash())
        assert found is not None and not found.failed and cs.in_active_chain(found)
    # The state is what a chainstate that only ever saw the winning chain has.
    reference = open_chainstate(MemoryStore())
    feed(reference, world.common + world.side)
    assert cs.utxo_set_info() == reference.utxo_set_info()


def test_reindex_keeps_a_genuine_body(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common + world.side)
    before = cs.utxo_set_info()
    cs.reindex()
    assert cs.utxo_set_info() == before
    assert cs.get_block_bytes(world.side[0].hash()) == world.side[0].serialize()


def test_a_version_1_database_is_refused_unchanged(store: KeyValueStore, world: World) -> None:
    cs = open_chainstate(store)
    feed(cs, world.common[:3])
    with store.write_batch() as batch:
        batch.put(k.K_VERSION, k.u32(1))  # as an older Tally (txid roots) wrote it
    before = dict(store.iterate(b""))
    with pytest.raises(ChainstateError) as info:
        open_chainstate(store)
    message = str(info.value)
    assert "older Tally" in message and "merkle" in message and "--datadir" in message
    assert dict(store.iterate(b"")) == before
    assert k.MERKLE_OVER_WTXIDS_SINCE == 2 <= k.SCHEMA_VERSION


def test_a_newer_database_is_refused(store: KeyValueStore) -> None:
    open_chainstate(store)
    with store.write_batch() as batch:
        batch.put(k.K_VERSION, k.u32(k.SCHEMA_VERSION + 1))
    with pytest.raises(ChainstateError, match="newer Tally"):
        open_chainstate(store)
