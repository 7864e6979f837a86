"""Tests for ``node.chainstate`` (SPEC 3.1): the active chain, the UTXO set and its stats, the
indexes, reorganisations, invalid and orphan blocks, reindex, restart and crash points.

Most tests run on both storage backends (``MemoryStore`` and a ``LevelDBStore`` in ``tmp_path``).
After a chain switch the state is compared with a *fresh* chainstate that only ever processed
the winning chain: the UTXO set info and every key of the derived state (UTXO set, undo data,
heights, transaction, spender and address indexes, tip, stats) must be identical.

Crash points are simulated deterministically with ``CrashingStore``: a ``MemoryStore`` that
"loses power" when the n-th write batch is opened, so that batch and every later one are lost,
exactly what ``kill -9`` does to a process whose batches are synced one by one. The real
``kill -9`` test is ``tests/integration/test_chainstate_crash.py``.

Every chainstate gets a far-future clock (ChainBuilder's block times are genesis + 60 s a
height, which may be ahead of the real clock).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import (
    COIN,
    MAX_MONEY,
    Block,
    Coin,
    OutPoint,
    Transaction,
    TxOut,
    ValidationError,
    get_params,
    hash160,
)
from consensus import errors as codes
from node.chainstate import (
    AddressStats,
    BlockConnected,
    BlockDisconnected,
    ChainEvent,
    Chainstate,
    ChainstateError,
    Status,
    TipChanged,
    UtxoStats,
)
from node.chainstate import schema as k
from node.storage import KeyValueStore, LevelDBStore, MemoryStore, WriteBatch
from tests.helpers import REGTEST, ChainBuilder, Key, key, mine_block, spend

FAR_FUTURE = 2**31
GENESIS_TIME = REGTEST.genesis_time
FEE = 1000
BACKENDS = ["memory", "leveldb"]

# Every key that describes the active chain (what reindex rebuilds).
DERIVED = k.DERIVED_PREFIXES


def far_future() -> float:
    return FAR_FUTURE


def open_chainstate(store: KeyValueStore, **kwargs: object) -> Chainstate:
    kwargs.setdefault("clock", far_future)
    kwargs.setdefault("sync", False)
    return Chainstate(store, REGTEST, **kwargs)  # type: ignore[arg-type]


def fresh_chainstate(blocks: Sequence[Block]) -> Chainstate:
    """A memory chainstate that only ever processed ``blocks`` (heights 1...), in order."""
    cs = open_chainstate(MemoryStore())
    for height, block in enumerate(blocks, 1):
        result = cs.process_block(block)
        assert (result.status, result.height) == ("active", height)
    return cs


def derived_state(cs: Chainstate) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for prefix in DERIVED:
        state.update(cs.store.iterate(prefix))
    return state


def assert_same_state(cs: Chainstate, reference: Chainstate) -> None:
    """``cs`` is in exactly the state of ``reference``: tip, UTXO set info, derived keys."""
    assert cs.tip.hash == reference.tip.hash
    assert cs.utxo_set_info() == reference.utxo_set_info()
    mine, theirs = derived_state(cs), derived_state(reference)
    assert mine.keys() - theirs.keys() == set(), "stale keys left behind"
    assert theirs.keys() - mine.keys() == set(), "keys missing"
    assert mine == theirs


def stats_of(builder: ChainBuilder) -> UtxoStats:
    """UTXO stats of a ChainBuilder's coins view (an independent reference)."""
    stats = UtxoStats()
    for outpoint, coin in builder.view.items():
        stats.add(outpoint, coin)
    return stats


def pay(coins: Sequence[tuple[OutPoint, TxOut, Key]], to: Key, fee: int = FEE) -> Transaction:
    """Spend ``coins`` to one output for ``to``, leaving ``fee``."""
    total = sum(out.amount for _, out, _ in coins)
    return spend(coins, [TxOut(total - fee, to.pubkey_hash)])


def out_coin(tx: Transaction, index: int, owner: Key) -> tuple[OutPoint, TxOut, Key]:
    return OutPoint(tx.txid(), index), tx.outputs[index], owner


def extend(builder: ChainBuilder, txs: Sequence[Transaction] = ()) -> Block:
    """Add a block with ``txs`` to ``builder`` (claiming their fees) and return it."""
    fees = sum(
        sum(builder.view.coins[i.prevout].output.amount for i in tx.inputs) - tx.total_out()
        for tx in txs
    )
    block = builder.next_block(txs, fees=fees)
    builder.add(block)
    return block


def copy_of(blocks: Sequence[Block], miner: Key) -> ChainBuilder:
    """A ChainBuilder paying ``miner`` that has added ``blocks`` (heights 1...)."""
    builder = ChainBuilder(miner=miner)
    for block in blocks:
        builder.add(block)
    return builder


def error_code(cs: Chainstate, block: Block) -> str | None:
    """``process_block``'s reject code, or ``None`` if it accepted the block."""
    try:
        cs.process_block(block)
    except ValidationError as err:
        return err.code
    return None


def process_all(cs: Chainstate, blocks: Sequence[Block]) -> list[str]:
    """Process every block; the outcome of each (status or reject code)."""
    outcomes = []
    for block in blocks:
        try:
            outcomes.append(cs.process_block(block).status)
        except ValidationError as err:
            outcomes.append(err.code)
    return outcomes


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def new_store(backend: str, tmp_path: Path) -> Iterator[Callable[[], KeyValueStore]]:
    """Makes fresh, empty stores of the backend under test; closes them afterwards."""
    opened: list[KeyValueStore] = []

    def make() -> KeyValueStore:
        if backend == "memory":
            store: KeyValueStore = MemoryStore()
        else:
            store = LevelDBStore(tmp_path / f"db{len(opened)}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# --- shared chains ------------------------------------------------------------------------------

FANOUT_KEY = key(7)
FANOUT_OUTPUTS = 400


@dataclass(frozen=True)
class Prefix:
    """102 blocks mined by key(0); block 101 splits coinbase 1 into 400 coins of FANOUT_KEY."""

    blocks: tuple[Block, ...]
    fanout: Transaction

    def coin(self, index: int) -> tuple[OutPoint, TxOut, Key]:
        return out_coin(self.fanout, index, FANOUT_KEY)


@cache
def prefix() -> Prefix:
    builder = ChainBuilder()
    builder.grow(100)
    fanout = spend(
        [builder.coinbase_coin(1)], [TxOut(COIN // 10, FANOUT_KEY.pubkey_hash)] * FANOUT_OUTPUTS
    )
    extend(builder, [fanout])
    extend(builder)
    return Prefix(tuple(builder.blocks[1:]), fanout)


@dataclass(frozen=True)
class Fork:
    """Branch A (``a``, then ``a_ext``) and branch B (``b``) off the prefix's tip.

    ``a`` has ``depth`` blocks and ``b`` one more, so B overtakes A by a ``depth``-deep
    reorganisation; ``a_ext`` then makes A win back. ``shared`` is in A's and B's first block;
    ``double_a`` and ``double_b`` spend the same coin to different keys.
    """

    a: tuple[Block, ...]
    b: tuple[Block, ...]
    a_ext: tuple[Block, ...]
    a_only: tuple[Transaction, ...]
    b_only: tuple[Transaction, ...]
    a_ext_txs: tuple[Transaction, ...]
    shared: Transaction
    double_a: Transaction
    double_b: Transaction


@cache
def fork(depth: int) -> Fork:
    pre = prefix()
    a = copy_of(pre.blocks, key(0))
    b = copy_of(pre.blocks, key(1))
    shared = pay([pre.coin(FANOUT_OUTPUTS - 1)], key(40))
    double_a = pay([pre.coin(1)], key(41))
    double_b = pay([pre.coin(1)], key(42))
    a_only: list[Transaction] = []
    for i in range(1, depth + 1):
        txs = [pay([pre.coin(2 * i)], key(1000 + i))]
        if i == 1:
            txs += [shared, double_a]
        if i == 2:  # a chain of spends that exists only on A
            txs.append(pay([out_coin(a_only[0], 0, key(1001))], key(1500)))
        extend(a, txs)
        a_only += [tx for tx in txs if tx is not shared]
    b_only: list[Transaction] = []
    for i in range(1, depth + 2):
        txs = [pay([pre.coin(2 * i + 1)], key(2000 + i))]
        if i == 1:
            txs += [shared, double_b]
        extend(b, txs)
        b_only += [tx for tx in txs if tx is not shared]
    a_ext_txs = []
    for j in range(2):
        tx = pay([pre.coin(300 + j)], key(1200 + j))
        extend(a, [tx])
        a_ext_txs.append(tx)
    start = len(pre.blocks) + 1
    return Fork(
        tuple(a.blocks[start : start + depth]),
        tuple(b.blocks[start:]),
        tuple(a.blocks[start + depth :]),
        tuple(a_only),
        tuple(b_only),
        tuple(a_ext_txs),
        shared,
        double_a,
        double_b,
    )


# --- index assertions ---------------------------------------------------------------------------


def tx_addresses(tx: Transaction) -> set[bytes]:
    spent_from = {hash160(txin.pubkey) for txin in tx.inputs if not tx.is_coinbase()}
    return {out.pubkey_hash for out in tx.outputs} | spent_from


def assert_indexed(cs: Chainstate, tx: Transaction) -> None:
    """``tx`` is on the active chain and every index says so."""
    txid = tx.txid()
    located = cs.get_tx_location(txid)
    assert located is not None, f"{txid.hex()} not indexed"
    entry, pos = located
    assert cs.in_active_chain(entry)
    found = cs.get_transaction(txid)
    assert found is not None
    assert (found[0], found[1].hash, found[2]) == (tx, entry.hash, pos)
    for pkh in tx_addresses(tx):
        assert (txid, entry.height, pos) in list(cs.address_history(pkh))
    if not tx.is_coinbase():
        for n, txin in enumerate(tx.inputs):
            assert cs.get_spender(txin.prevout) == (txid, n)
    utxos_of: dict[bytes, dict[OutPoint, Coin]] = {}
    for n, out in enumerate(tx.outputs):
        outpoint = OutPoint(txid, n)
        if out.pubkey_hash not in utxos_of:
            utxos_of[out.pubkey_hash] = dict(cs.address_utxos(out.pubkey_hash))
        utxos = utxos_of[out.pubkey_hash]
        if cs.get_spender(outpoint) is None:
            coin = Coin(out, entry.height, tx.is_coinbase())
            assert cs.get_coin(outpoint) == coin
            assert utxos[outpoint] == coin
        else:
            assert cs.get_coin(outpoint) is None
            assert outpoint not in utxos


def assert_not_indexed(cs: Chainstate, tx: Transaction) -> None:
    """``tx`` is not on the active chain and no index mentions it."""
    txid = tx.txid()
    assert cs.get_tx_location(txid) is None
    assert cs.get_transaction(txid) is None
    for pkh in tx_addresses(tx):
        assert txid not in [t for t, _, _ in cs.address_history(pkh)]
        assert txid not in [op.txid for op, _ in cs.address_utxos(pkh)]
    for txin in tx.inputs:
        spender = cs.get_spender(txin.prevout)
        assert spender is None or spender[0] != txid
    for n in range(len(tx.outputs)):
        assert cs.get_coin(OutPoint(txid, n)) is None
        assert cs.get_spender(OutPoint(txid, n)) is None


# --- a fresh chainstate, connecting, the indexes ------------------------------------------------


def test_fresh_chainstate_has_the_genesis_as_tip(new_store: Callable[[], KeyValueStore]) -> None:
    cs = open_chainstate(new_store())
    genesis = REGTEST.genesis
    assert (cs.tip.hash, cs.height, cs.tip.height) == (REGTEST.genesis_hash, 0, 0)
    info = cs.utxo_set_info()
    assert (info.height, info.best_hash, info.count, info.total_amount) == (
        0,
        REGTEST.genesis_hash,
        1,
        50 * COIN,
    )
    assert info.hash == stats_of(ChainBuilder()).hash()
    assert info.hash != UtxoStats().hash()
    assert cs.hash_at_height(0) == REGTEST.genesis_hash
    assert cs.hash_at_height(1) is None
    assert cs.hash_at_height(-1) is None
    cb = genesis.txs[0]
    found = cs.get_transaction(cb.txid())
    assert found is not None and (found[0], found[1].hash, found[2]) == (cb, genesis.hash(), 0)
    assert cs.get_coin(OutPoint(cb.txid(), 0)) == Coin(cb.outputs[0], 0, True)
    assert cs.orphan_count() == 0
    assert cs.get_block(REGTEST.genesis_hash) == genesis


def test_connect_blocks_and_spend_coinbases(new_store: Callable[[], KeyValueStore]) -> None:
    cs = open_chainstate(new_store())
    events: list[ChainEvent] = []
    cs.subscribe(events.append)
    chain = ChainBuilder()
    chain.grow(110)
    for height, block in enumerate(chain.blocks[1:], 1):
        result = cs.process_block(block)
        assert (result.status, result.height, result.hash) == ("active", height, block.hash())
    assert [e.height for e in events if isinstance(e, BlockConnected)] == list(range(1, 111))
    assert [e.height for e in events if isinstance(e, TipChanged)] == list(range(1, 111))
    info = cs.utxo_set_info()
    assert (info.height, info.count, info.total_amount) == (110, 111, 111 * 50 * COIN)
    assert info.hash == stats_of(chain).hash()

    miner, alice, bob = key(0), key(21), key(22)
    tx1 = spend(
        [chain.coinbase_coin(1)],
        [TxOut(30 * COIN, alice.pubkey_hash), TxOut(19 * COIN, bob.pubkey_hash)],
    )
    block111 = chain.next_block([tx1], fees=COIN)  # claims the fee
    chain.add(block111)
    assert cs.process_block(block111).status == "active"
    info = cs.utxo_set_info()
    assert (info.count, info.total_amount) == (113, 112 * 50 * COIN)

    tx2 = pay([chain.coinbase_coin(2)], alice, fee=COIN)
    tx3 = pay([out_coin(tx1, 1, bob)], alice, fee=COIN)
    block112 = chain.next_block([tx2, tx3])  # leaves both fees unclaimed: they are gone
    chain.add(block112)
    assert cs.process_block(block112).status == "active"
    info = cs.utxo_set_info()
    assert (info.height, info.best_hash) == (112, block112.hash())
    assert (info.count, info.total_amount) == (114, 113 * 50 * COIN - 2 * COIN)
    assert info.hash == stats_of(chain).hash()

    for height, block in enumerate(chain.blocks):
        assert cs.hash_at_height(height) == block.hash()
    assert cs.hash_at_height(113) is None

    found = cs.get_transaction(tx1.txid())
    assert found is not None
    assert (found[0], found[1].hash, found[1].height, found[2]) == (tx1, block111.hash(), 111, 1)
    located = cs.get_tx_location(tx3.txid())
    assert located is not None and (located[0].hash, located[1]) == (block112.hash(), 2)
    assert cs.get_tx_location(b"\x01" * 32) is None
    assert cs.get_spender(OutPoint(chain.blocks[1].txs[0].txid(), 0)) == (tx1.txid(), 0)
    assert cs.get_spender(OutPoint(tx1.txid(), 1)) == (tx3.txid(), 0)
    assert cs.get_spender(OutPoint(tx1.txid(), 0)) is None
    assert cs.get_spender(OutPoint(chain.blocks[3].txs[0].txid(), 0)) is None
    for tx in (tx1, tx2, tx3, *[b.txs[0] for b in chain.blocks[1:]]):
        assert_indexed(cs, tx)

    # Address history: newest first, ``before`` pages strictly below (height, position).
    history = [(tx3.txid(), 112, 2), (tx2.txid(), 112, 1), (tx1.txid(), 111, 1)]
    assert list(cs.address_history(alice.pubkey_hash)) == history
    assert list(cs.address_history(alice.pubkey_hash, before=(112, 2))) == history[1:]
    assert list(cs.address_history(alice.pubkey_hash, before=(112, 1))) == history[2:]
    assert list(cs.address_history(alice.pubkey_hash, before=(112, 0))) == history[2:]
    assert list(cs.address_history(alice.pubkey_hash, before=(111, 1))) == []
    assert list(cs.address_history(alice.pubkey_hash, before=(200, 0))) == history
    assert list(cs.address_history(bob.pubkey_hash)) == [history[0], history[2]]
    assert list(cs.address_history(key(23).pubkey_hash)) == []
    miner_history = list(cs.address_history(miner.pubkey_hash))
    assert len(miner_history) == 112 + 2  # every coinbase, and tx1 and tx2 spending two of them
    assert miner_history[:4] == [
        (tx2.txid(), 112, 1),
        (block112.txs[0].txid(), 112, 0),
        (tx1.txid(), 111, 1),
        (block111.txs[0].txid(), 111, 0),
    ]
    assert miner_history[-1] == (chain.blocks[1].txs[0].txid(), 1, 0)
    page = list(cs.address_history(miner.pubkey_hash, before=miner_history[9][1:]))
    assert page == miner_history[10:]

    assert dict(cs.address_utxos(alice.pubkey_hash)) == {
        OutPoint(tx1.txid(), 0): Coin(tx1.outputs[0], 111, False),
        OutPoint(tx2.txid(), 0): Coin(tx2.outputs[0], 112, False),
        OutPoint(tx3.txid(), 0): Coin(tx3.outputs[0], 112, False),
    }
    assert list(cs.address_utxos(bob.pubkey_hash)) == []
    assert cs.address_stats(alice.pubkey_hash) == AddressStats((30 + 49 + 18) * COIN, 0, 3)
    assert cs.address_stats(bob.pubkey_hash) == AddressStats(19 * COIN, 19 * COIN, 2)
    assert cs.address_stats(miner.pubkey_hash) == AddressStats(
        112 * 50 * COIN + COIN, 2 * 50 * COIN, 114
    )
    assert cs.address_stats(key(23).pubkey_hash) == AddressStats(0, 0, 0)
    miner_utxos = dict(cs.address_utxos(miner.pubkey_hash))
    assert len(miner_utxos) == 110
    assert OutPoint(chain.blocks[1].txs[0].txid(), 0) not in miner_utxos
    assert miner_utxos[OutPoint(block112.txs[0].txid(), 0)] == Coin(
        block112.txs[0].outputs[0], 112, True
    )


# --- reorganisations ----------------------------------------------------------------------------


def of_type(events: list[ChainEvent], kind: type) -> list[ChainEvent]:
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("depth", [1, 10, 100])
def test_reorganisation_and_switch_back(new_store: Callable[[], KeyValueStore], depth: int) -> None:
    pre, f = prefix(), fork(depth)
    base = len(pre.blocks)
    cs = open_chainstate(new_store())
    events: list[ChainEvent] = []
    cs.subscribe(events.append)
    assert set(process_all(cs, [*pre.blocks, *f.a])) == {"active"}
    assert_same_state(cs, fresh_chainstate([*pre.blocks, *f.a]))
    for tx in (*f.a_only, f.shared):
        assert_indexed(cs, tx)
    for tx in f.b_only:
        assert_not_indexed(cs, tx)

    # B: side blocks until it has more work; then a ``depth``-deep reorganisation.
    events.clear()
    assert process_all(cs, f.b[:-1]) == ["side"] * depth
    assert cs.tip.hash == f.a[-1].hash()
    assert events == []
    result = cs.process_block(f.b[-1])
    assert (result.status, result.height) == ("active", base + depth + 1)
    disconnected = of_type(events, BlockDisconnected)
    assert len(disconnected) == depth
    assert [e.block.hash() for e in disconnected] == [b.hash() for b in reversed(f.a)]
    assert [e.block.hash() for e in of_type(events, BlockConnected)] == [b.hash() for b in f.b]
    assert of_type(events, TipChanged) == [
        TipChanged(f.a[-1].hash(), f.b[-1].hash(), base + depth + 1, depth)
    ]
    assert_same_state(cs, fresh_chainstate([*pre.blocks, *f.b]))
    for tx in (*f.b_only, f.shared):
        assert_indexed(cs, tx)
    for tx in f.a_only:
        assert_not_indexed(cs, tx)
    assert cs.get_spender(pre.coin(1)[0]) == (f.double_b.txid(), 0)
    for block in f.a:  # still stored, on a side chain
        entry = cs.get_entry(block.hash())
        assert entry is not None and not entry.failed and not cs.in_active_chain(entry)

    # A wins back: equal work first (no switch), then more.
    events.clear()
    assert cs.process_block(f.a_ext[0]).status == "side"
    assert cs.tip.hash == f.b[-1].hash()
    assert events == []
    assert cs.process_block(f.a_ext[1]).status == "active"
    assert len(of_type(events, BlockDisconnected)) == depth + 1
    assert of_type(events, TipChanged) == [
        TipChanged(f.b[-1].hash(), f.a_ext[1].hash(), base + depth + 2, depth + 1)
    ]
    assert_same_state(cs, fresh_chainstate([*pre.blocks, *f.a, *f.a_ext]))
    for tx in (*f.a_only, *f.a_ext_txs, f.shared):
        assert_indexed(cs, tx)
    for tx in f.b_only:
        assert_not_indexed(cs, tx)
    assert cs.get_spender(pre.coin(1)[0]) == (f.double_a.txid(), 0)


def test_equal_work_does_not_switch(new_store: Callable[[], KeyValueStore]) -> None:
    a = ChainBuilder()
    a.grow(3)
    b = ChainBuilder(miner=key(1))
    b.grow(4)
    cs = open_chainstate(new_store())
    process_all(cs, a.blocks[1:])
    events: list[ChainEvent] = []
    cs.subscribe(events.append)
    for height, block in enumerate(b.blocks[1:4], 1):
        result = cs.process_block(block)
        assert (result.status, result.height) == ("side", height)
    assert cs.tip.hash == a.tip.hash() and events == []
    assert_same_state(cs, fresh_chainstate(a.blocks[1:]))
    result = cs.process_block(b.tip)
    assert (result.status, result.height) == ("active", 4)
    assert of_type(events, TipChanged) == [TipChanged(a.tip.hash(), b.tip.hash(), 4, 3)]
    assert len(of_type(events, BlockDisconnected)) == 3
    assert_same_state(cs, fresh_chainstate(b.blocks[1:]))


def test_first_seen_wins_on_equal_work_in_either_order(
    new_store: Callable[[], KeyValueStore],
) -> None:
    a = ChainBuilder()
    a.grow(2)
    b = ChainBuilder(miner=key(1))
    b.grow(2)
    cs = open_chainstate(new_store())
    assert process_all(cs, [b.blocks[1], a.blocks[1], a.blocks[2], b.blocks[2]]) == [
        "active",
        "side",
        "active",
        "side",
    ]
    assert cs.tip.hash == a.tip.hash()


# --- invalid blocks -----------------------------------------------------------------------------


BAD_KINDS = {
    "cb-amount": codes.BAD_CB_AMOUNT,
    "missing-coin": codes.BAD_TXNS_INPUTS_MISSINGORSPENT,
}


def invalid_block(parent: Block, height: int, kind: str, miner: Key) -> Block:
    """A block that passes the context-free and header checks but fails when it connects."""
    time = GENESIS_TIME + height * 60
    if kind == "cb-amount":
        return mine_block(parent.hash(), height, [], time, miner.pubkey_hash, fees=1)
    ghost = (OutPoint(b"\x42" * 32, 0), TxOut(COIN, key(3).pubkey_hash), key(3))
    tx = pay([ghost], key(4))
    return mine_block(parent.hash(), height, [tx], time, miner.pubkey_hash, fees=FEE)


def on_top(parent: Block, height: int, miner: Key) -> Block:
    """An empty block on ``parent`` (which may be invalid: no view needed)."""
    return mine_block(parent.hash(), height, [], GENESIS_TIME + height * 60, miner.pubkey_hash)


@dataclass(frozen=True)
class BadBranch:
    old: tuple[Block, ...]  # the active chain before the branch arrives (heights 1...)
    valid: tuple[Block, ...]  # the branch's valid prefix (heights 6, 7)
    bad: Block  # height 8
    after: tuple[Block, ...]  # heights 9, 10 on ``bad``


def bad_branch(kind: str, old_length: int) -> BadBranch:
    old = ChainBuilder()
    old.grow(old_length)
    branch = copy_of(old.blocks[1:6], key(1))
    extend(branch)
    extend(branch)
    bad = invalid_block(branch.tip, 8, kind, key(1))
    after1 = on_top(bad, 9, key(1))
    after2 = on_top(after1, 10, key(1))
    return BadBranch(tuple(old.blocks[1:]), tuple(branch.blocks[6:]), bad, (after1, after2))


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
@pytest.mark.parametrize("prefix_better", [True, False], ids=["prefix-wins", "old-chain-wins"])
@pytest.mark.parametrize("delivery", ["in-order", "orphans"])
def test_branch_with_invalid_block_is_cut_there(
    new_store: Callable[[], KeyValueStore], kind: str, prefix_better: bool, delivery: str
) -> None:
    code = BAD_KINDS[kind]
    # Fork after height 5; the old chain is at 6 (less work than the valid prefix) or 8 (more).
    br = bad_branch(kind, 6 if prefix_better else 8)
    branch = [*br.valid, br.bad, *br.after]
    cs = open_chainstate(new_store())
    process_all(cs, br.old)
    if delivery == "in-order":
        outcomes = process_all(cs, branch)
        assert "active" not in outcomes[-3:]  # neither the bad block nor its children
    else:
        outcomes = process_all(cs, branch[1:])
        assert outcomes == ["orphan"] * 4
        assert process_all(cs, branch[:1]) == ["active" if prefix_better else "side"]

    best = [*br.old[:5], *br.valid] if prefix_better else list(br.old)
    assert cs.tip.hash == best[-1].hash()
    assert_same_state(cs, fresh_chainstate(best))
    assert cs.orphan_count() == 0

    entry = cs.get_entry(br.bad.hash())
    assert entry is not None and entry.failed and entry.status & Status.FAILED
    assert entry.reject_code == code
    assert not cs.in_active_chain(entry)
    for child in br.after:
        child_entry = cs.get_entry(child.hash())
        assert child_entry is not None and child_entry.failed
        assert child_entry.reject_code == codes.BAD_PREVBLK
    for tx in br.bad.txs:
        assert cs.get_tx_location(tx.txid()) is None

    # Never accepted again, and nothing is built on it.
    assert error_code(cs, br.bad) == code
    for child in br.after:
        assert error_code(cs, child) == codes.BAD_PREVBLK
    for parent, height in ((br.bad, 9), (br.after[1], 11)):
        new_child = on_top(parent, height, key(5))
        assert error_code(cs, new_child) == codes.BAD_PREVBLK
        stored = cs.get_entry(new_child.hash())
        assert stored is not None and stored.failed
    assert cs.tip.hash == best[-1].hash()

    # The best valid chain still grows.
    builder = copy_of(best, key(6))
    assert cs.process_block(extend(builder)).status == "active"


def test_rejected_block_on_the_tip_does_not_announce_a_tip_change(
    new_store: Callable[[], KeyValueStore],
) -> None:
    """events.TipChanged: "The active chain's tip moved". A block that fails to connect on the
    tip moves nothing, so subscribers (mempool, miner) must not be told it did."""
    chain = ChainBuilder()
    chain.grow(3)
    cs = open_chainstate(new_store())
    process_all(cs, chain.blocks[1:])
    events: list[ChainEvent] = []
    cs.subscribe(events.append)
    assert error_code(cs, invalid_block(chain.tip, 4, "cb-amount", key(0))) == codes.BAD_CB_AMOUNT
    assert cs.tip.hash == chain.tip.hash()
    assert events == []


def test_invalid_orphan_branch_falls_back_to_the_best_valid_sibling(
    new_store: Callable[[], KeyValueStore],
) -> None:
    """Orphans adopted together: X6 <- Y7 (invalid) <- Y8 <- Y9, and X6 <- Z7 <- Z8 (valid).
    When X6 arrives, Y9 has the most work but is invalid; the best valid chain ends at Z8."""
    base = ChainBuilder()
    base.grow(5)
    z = copy_of(base.blocks[1:], key(1))
    x6 = extend(z)
    extend(z)
    extend(z)
    y7 = invalid_block(x6, 7, "cb-amount", key(3))
    y8 = on_top(y7, 8, key(3))
    y9 = on_top(y8, 9, key(3))
    cs = open_chainstate(new_store())
    process_all(cs, base.blocks[1:])
    assert process_all(cs, [y7, y8, y9, *z.blocks[7:]]) == ["orphan"] * 5
    cs.process_block(x6)
    entry = cs.get_entry(y7.hash())
    assert entry is not None and entry.reject_code == codes.BAD_CB_AMOUNT
    assert cs.tip.hash == z.tip.hash(), f"tip at height {cs.height}, Z8 is valid with more work"
    assert_same_state(cs, fresh_chainstate(z.blocks[1:]))


# --- orphans and duplicates ---------------------------------------------------------------------


def test_blocks_in_reverse_order_end_on_the_same_tip(
    new_store: Callable[[], KeyValueStore],
) -> None:
    blocks = prefix().blocks
    cs = open_chainstate(new_store())
    outcomes = process_all(cs, blocks[::-1])
    assert outcomes == ["orphan"] * (len(blocks) - 1) + ["active"]
    assert cs.orphan_count() == 0
    assert_same_state(cs, fresh_chainstate(blocks))
    assert_indexed(cs, prefix().fanout)


def test_orphan_pool_is_bounded(new_store: Callable[[], KeyValueStore]) -> None:
    chain = ChainBuilder()
    chain.grow(11)
    blocks = chain.blocks[1:]
    cs = open_chainstate(new_store(), max_orphans=5)
    assert process_all(cs, blocks[1:]) == ["orphan"] * 10
    assert cs.orphan_count() == 5
    assert cs.process_block(blocks[0]).status == "active"
    assert cs.height == 1  # block 2, the oldest orphan, was dropped
    assert process_all(cs, blocks[1:6]) == ["active"] * 5  # block 6 brings in 7..11
    assert cs.orphan_count() == 0
    assert cs.tip.hash == chain.tip.hash()
    assert error_code(cs, blocks[6]) == codes.DUPLICATE


def test_duplicates_are_rejected(new_store: Callable[[], KeyValueStore]) -> None:
    chain = ChainBuilder()
    chain.grow(3)
    side = ChainBuilder(miner=key(1))
    side.grow(1)
    cs = open_chainstate(new_store())
    process_all(cs, chain.blocks[1:2])
    assert cs.process_block(chain.blocks[3]).status == "orphan"
    assert error_code(cs, chain.blocks[3]) == codes.DUPLICATE
    assert cs.process_block(side.blocks[1]).status == "side"
    assert error_code(cs, side.blocks[1]) == codes.DUPLICATE
    assert error_code(cs, chain.blocks[1]) == codes.DUPLICATE
    assert error_code(cs, REGTEST.genesis) == codes.DUPLICATE
    assert cs.orphan_count() == 1
    assert cs.process_block(chain.blocks[2]).status == "active"
    assert cs.tip.hash == chain.tip.hash()


# --- contextual header checks -------------------------------------------------------------------


def test_wrong_bits_are_rejected_and_remembered(new_store: Callable[[], KeyValueStore]) -> None:
    chain = ChainBuilder()
    chain.grow(3)
    cs = open_chainstate(new_store())
    process_all(cs, chain.blocks[1:])
    bad = mine_block(
        chain.tip.hash(), 4, [], GENESIS_TIME + 240, key(0).pubkey_hash, bits=0x2000FFFF
    )
    assert error_code(cs, bad) == codes.BAD_DIFFBITS
    entry = cs.get_entry(bad.hash())
    assert entry is not None and entry.failed and entry.reject_code == codes.BAD_DIFFBITS
    assert error_code(cs, bad) == codes.BAD_DIFFBITS
    assert error_code(cs, on_top(bad, 5, key(0))) == codes.BAD_PREVBLK
    assert cs.tip.hash == chain.tip.hash()
    assert cs.process_block(extend(chain)).status == "active"


def test_time_too_old_is_rejected_and_remembered(new_store: Callable[[], KeyValueStore]) -> None:
    chain = ChainBuilder()
    chain.grow(12)
    cs = open_chainstate(new_store())
    process_all(cs, chain.blocks[1:])
    mtp = GENESIS_TIME + 7 * 60  # the median of heights 2..12
    assert cs.median_time_past() == mtp
    bad = mine_block(chain.tip.hash(), 13, [], mtp, key(0).pubkey_hash)
    assert error_code(cs, bad) == codes.TIME_TOO_OLD
    entry = cs.get_entry(bad.hash())
    assert entry is not None and entry.failed and entry.reject_code == codes.TIME_TOO_OLD
    assert error_code(cs, bad) == codes.TIME_TOO_OLD
    assert cs.tip.hash == chain.tip.hash()
    good = mine_block(chain.tip.hash(), 13, [], mtp + 1, key(0).pubkey_hash)
    assert cs.process_block(good).status == "active"


def test_time_too_new_is_rejected_but_not_remembered(
    new_store: Callable[[], KeyValueStore],
) -> None:
    now = [float(GENESIS_TIME)]
    chain = ChainBuilder()
    chain.grow(3)
    cs = open_chainstate(new_store(), clock=lambda: now[0])
    process_all(cs, chain.blocks[1:])
    early = mine_block(chain.tip.hash(), 4, [], GENESIS_TIME + 7201, key(0).pubkey_hash)
    assert error_code(cs, early) == codes.TIME_TOO_NEW
    entry = cs.get_entry(early.hash())
    assert entry is None or not entry.failed
    assert error_code(cs, early) == codes.TIME_TOO_NEW
    assert cs.tip.hash == chain.tip.hash()
    now[0] = GENESIS_TIME + 1
    result = cs.process_block(early)
    assert (result.status, result.height) == ("active", 4)


# --- reindex ------------------------------------------------------------------------------------


def test_reindex_after_reorganisations(new_store: Callable[[], KeyValueStore]) -> None:
    pre, f = prefix(), fork(10)
    cs = open_chainstate(new_store())
    process_all(cs, [*pre.blocks, *f.a, *f.b, f.a_ext[0]])
    assert cs.tip.hash == f.b[-1].hash()
    before = (cs.utxo_set_info(), derived_state(cs))
    cs.reindex()
    assert (cs.utxo_set_info(), derived_state(cs)) == before
    assert cs.tip.hash == f.b[-1].hash()
    for tx in f.b_only:
        assert_indexed(cs, tx)
    for tx in f.a_only:
        assert_not_indexed(cs, tx)
    assert cs.process_block(f.a_ext[1]).status == "active"  # A wins back after the reindex
    assert_same_state(cs, fresh_chainstate([*pre.blocks, *f.a, *f.a_ext]))
    cs.reindex()
    assert_same_state(cs, fresh_chainstate([*pre.blocks, *f.a, *f.a_ext]))


def test_reindex_with_an_invalid_branch(new_store: Callable[[], KeyValueStore]) -> None:
    br = bad_branch("missing-coin", 8)
    cs = open_chainstate(new_store())
    process_all(cs, [*br.old, *br.valid, br.bad, *br.after])
    assert cs.tip.hash == br.old[-1].hash()
    cs.reindex()
    assert_same_state(cs, fresh_chainstate(br.old))
    assert error_code(cs, br.after[1]) == codes.BAD_PREVBLK


def test_reindex_keeps_invalid_blocks_marked(new_store: Callable[[], KeyValueStore]) -> None:
    """A block found invalid stays invalid (SPEC 3.1: "marked and never re-downloaded"), even
    when the reindex never needs to try it again because it is on a chain with less work."""
    br = bad_branch("cb-amount", 8)
    longer = copy_of(br.old, key(0))
    longer.grow(4)  # height 12: more work than the invalid branch (10)
    cs = open_chainstate(new_store())
    process_all(cs, [*br.old, *br.valid, br.bad, *br.after, *longer.blocks[9:]])
    assert cs.tip.hash == longer.tip.hash()
    assert error_code(cs, br.bad) == codes.BAD_CB_AMOUNT
    cs.reindex()
    assert_same_state(cs, fresh_chainstate(longer.blocks[1:]))
    entry = cs.get_entry(br.bad.hash())
    assert entry is not None and entry.failed, "the reindex forgot that the block is invalid"
    assert error_code(cs, br.bad) == codes.BAD_CB_AMOUNT


# --- restart ------------------------------------------------------------------------------------


class CountingStore(LevelDBStore):
    """A LevelDBStore that counts reads."""

    gets = 0
    iterates = 0

    def get(self, key: bytes) -> bytes | None:
        self.gets += 1
        return super().get(key)

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        self.iterates += 1
        return super().iterate(prefix, reverse=reverse)


def test_restart_after_reorganisations(tmp_path: Path) -> None:
    pre, f = prefix(), fork(10)
    path = tmp_path / "db"
    store = LevelDBStore(path)
    cs = open_chainstate(store, sync=True)
    process_all(cs, [*pre.blocks, *f.a, *f.b])
    before = (cs.tip.hash, cs.utxo_set_info(), derived_state(cs))
    store.close()

    store = LevelDBStore(path)
    cs = open_chainstate(store, sync=True)
    assert (cs.tip.hash, cs.utxo_set_info(), derived_state(cs)) == before
    assert cs.tip.hash == f.b[-1].hash()
    for tx in f.b_only:
        assert_indexed(cs, tx)
    assert error_code(cs, f.a[0]) == codes.DUPLICATE  # side blocks are still known
    assert process_all(cs, f.a_ext) == ["side", "active"]
    assert_same_state(cs, fresh_chainstate([*pre.blocks, *f.a, *f.a_ext]))
    store.close()


def test_restart_refuses_another_networks_database(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = LevelDBStore(path)
    open_chainstate(store)
    store.close()
    for name in ("main", "test"):
        store = LevelDBStore(path)
        with pytest.raises(ChainstateError):
            Chainstate(store, get_params(name), clock=far_future)
        store.close()
    store = LevelDBStore(path)
    assert open_chainstate(store).tip.hash == REGTEST.genesis_hash
    store.close()


def test_start_up_cost_does_not_grow_with_the_chain(tmp_path: Path) -> None:
    reads = {}
    for length in (10, 200):
        chain = ChainBuilder()
        chain.grow(length)
        path = tmp_path / f"db{length}"
        store = LevelDBStore(path)
        process_all(open_chainstate(store), chain.blocks[1:])
        info = open_chainstate(store).utxo_set_info()
        store.close()
        counting = CountingStore(path)
        cs = open_chainstate(counting)
        reads[length] = (counting.gets, counting.iterates)
        assert cs.utxo_set_info() == info
        assert cs.tip.hash == chain.tip.hash()
        counting.close()
    assert reads[10][1] == reads[200][1] == 0
    assert reads[10][0] == reads[200][0] <= 10


# --- simulated crashes --------------------------------------------------------------------------


class PowerCutError(Exception):
    """The power went out."""


class CrashingStore(MemoryStore):
    """A MemoryStore that crashes when its ``crash_at``-th write batch (counted from 1 after
    ``arm``) is opened: that batch and every later write are lost, as with ``kill -9``."""

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

    def put(self, key: bytes, value: bytes) -> None:
        raise AssertionError("the chainstate writes through batches only")

    def delete(self, key: bytes) -> None:
        raise AssertionError("the chainstate writes through batches only")

    def clone(self) -> CrashingStore:
        copy = CrashingStore()
        copy._data = dict(self._data)
        copy._keys = list(self._keys)
        return copy


def crash_everywhere(
    setup: Callable[[Chainstate], None],
    action: Callable[[Chainstate], object],
    check: Callable[[Chainstate], None],
    sample: Callable[[int, int], bool] = lambda point, points: True,
) -> int:
    """Run ``action`` after ``setup``, crashing at each of its write batches in turn (those
    ``sample(point, points)`` picks); after each crash, reopen the store and ``check`` it.
    Returns how many crash points there were."""
    base = CrashingStore()
    setup(open_chainstate(base, sync=True))
    probe = base.clone()
    cs = open_chainstate(probe, sync=True)
    probe.arm(None)
    action(cs)
    points = probe.batches
    assert points > 0
    failures = []
    for crash_at in range(1, points + 1):
        if not sample(crash_at, points):
            continue
        store = base.clone()
        cs = open_chainstate(store, sync=True)
        store.arm(crash_at)
        with pytest.raises(PowerCutError):
            action(cs)
        store.arm(None)
        try:
            check(open_chainstate(store, sync=True))
        except (AssertionError, ChainstateError, ValidationError) as err:
            reason = str(err).splitlines()[0] if str(err) else repr(err)
            failures.append(f"crash at write batch {crash_at}/{points}: {reason}")
    assert not failures, "\n".join(failures)
    return points


def resubmit(cs: Chainstate, block: Block) -> None:
    """Hand ``block`` over again, as a peer would after the restart."""
    try:
        cs.process_block(block)
    except ValidationError as err:
        if err.code != codes.DUPLICATE:
            raise


def test_crash_while_creating_the_database() -> None:
    def check(cs: Chainstate) -> None:
        assert cs.tip.hash == REGTEST.genesis_hash
        assert cs.utxo_set_info() == fresh_chainstate([]).utxo_set_info()

    failures = []
    for crash_at in range(1, 10):
        store = CrashingStore()
        store.arm(crash_at)
        try:
            open_chainstate(store, sync=True)
        except PowerCutError:
            store.arm(None)
            try:
                check(open_chainstate(store, sync=True))
            except (AssertionError, ChainstateError) as err:
                failures.append(f"crash at write batch {crash_at}: {err!r}")
        else:
            assert crash_at > 1
            break
    assert not failures, "\n".join(failures)


def test_crash_while_connecting_a_block() -> None:
    chain = ChainBuilder()
    chain.grow(6)

    def check(cs: Chainstate) -> None:
        if cs.tip.hash != chain.tip.hash():
            assert_same_state(cs, fresh_chainstate(chain.blocks[1:6]))
        resubmit(cs, chain.tip)
        assert cs.tip.hash == chain.tip.hash(), "the stored block never becomes the tip"
        assert_same_state(cs, fresh_chainstate(chain.blocks[1:]))

    crash_everywhere(
        lambda cs: process_all(cs, chain.blocks[1:6]),
        lambda cs: cs.process_block(chain.tip),
        check,
    )


def test_crash_during_a_reorganisation() -> None:
    pre, f = prefix(), fork(3)
    chains = {}  # every block that may be the tip -> the chain up to it
    for branch in (f.a, f.b):
        for n in range(len(branch) + 1):
            chain = [*pre.blocks, *branch[:n]]
            chains[chain[-1].hash()] = chain

    def check(cs: Chainstate) -> None:
        assert cs.tip.hash in chains
        assert_same_state(cs, fresh_chainstate(chains[cs.tip.hash]))
        resubmit(cs, f.b[-1])
        assert cs.tip.hash == f.b[-1].hash(), "the stored branch with more work is not active"
        assert_same_state(cs, fresh_chainstate([*pre.blocks, *f.b]))

    points = crash_everywhere(
        lambda cs: process_all(cs, [*pre.blocks, *f.a, *f.b[:-1]]),
        lambda cs: cs.process_block(f.b[-1]),
        check,
    )
    assert points >= 2 * 3 + 2  # three disconnections and four connections, at least


def test_crash_during_a_reorganisation_to_an_invalid_branch() -> None:
    """The old chain (height 8) is overtaken by a branch (height 9) whose block 8 is invalid;
    wherever the node crashes, it must end on the old chain: the best valid one."""
    br = bad_branch("cb-amount", 8)
    old = fresh_chainstate(br.old)

    def check(cs: Chainstate) -> None:
        try:
            cs.process_block(br.after[0])
        except ValidationError as err:
            assert err.code in (codes.DUPLICATE, codes.BAD_PREVBLK)
        assert cs.tip.hash == br.old[-1].hash(), f"tip at height {cs.height}, not the old tip"
        assert_same_state(cs, old)
        assert error_code(cs, br.bad) == codes.BAD_CB_AMOUNT

    crash_everywhere(
        lambda cs: process_all(cs, [*br.old, *br.valid, br.bad]),
        lambda cs: error_code(cs, br.after[0]),
        check,
    )


def test_crash_during_reindex() -> None:
    pre, f = prefix(), fork(3)
    reference = fresh_chainstate([*pre.blocks, *f.b])

    def check(cs: Chainstate) -> None:
        assert_same_state(cs, reference)

    points = crash_everywhere(
        lambda cs: process_all(cs, [*pre.blocks, *f.a, *f.b]),
        lambda cs: cs.reindex(),
        check,
        # Every batch of the wipe and the first and last connections; every 7th in between.
        sample=lambda point, points: point <= 20 or point > points - 10 or point % 7 == 0,
    )
    assert points > len(pre.blocks)


# --- the UTXO set hash --------------------------------------------------------------------------

coins_strategy = st.lists(
    st.tuples(
        st.builds(OutPoint, st.binary(min_size=32, max_size=32), st.integers(0, 2**32 - 1)),
        st.builds(
            Coin,
            st.builds(TxOut, st.integers(1, MAX_MONEY), st.binary(min_size=20, max_size=20)),
            st.integers(0, 2**32 - 1),
            st.booleans(),
        ),
    ),
    unique_by=lambda item: item[0],
    max_size=25,
)


def stats_from(coins: Sequence[tuple[OutPoint, Coin]]) -> UtxoStats:
    stats = UtxoStats()
    for outpoint, coin in coins:
        stats.add(outpoint, coin)
    return stats


@settings(max_examples=60, deadline=None)
@given(coins_strategy, st.randoms(use_true_random=False))
def test_utxo_hash_does_not_depend_on_order(
    coins: list[tuple[OutPoint, Coin]], rnd: random.Random
) -> None:
    shuffled = list(coins)
    rnd.shuffle(shuffled)
    a, b = stats_from(coins), stats_from(shuffled)
    assert (a.hash(), a.count, a.total_amount) == (b.hash(), b.count, b.total_amount)
    assert a.count == len(coins)
    assert a.total_amount == sum(c.output.amount for _, c in coins)
    restored = UtxoStats.deserialize(a.serialize())
    assert (restored.hash(), restored.count, restored.total_amount) == (
        a.hash(),
        a.count,
        a.total_amount,
    )


@settings(max_examples=60, deadline=None)
@given(coins_strategy, coins_strategy)
def test_utxo_hash_add_and_remove_cancel(
    coins: list[tuple[OutPoint, Coin]], extra: list[tuple[OutPoint, Coin]]
) -> None:
    base = stats_from(coins)
    grown = base.copy()
    for outpoint, coin in extra:
        grown.add(outpoint, coin)
    if extra:
        assert grown.hash() != base.hash()
    for outpoint, coin in reversed(extra):
        grown.remove(outpoint, coin)
    assert (grown.hash(), grown.count, grown.total_amount) == (
        base.hash(),
        base.count,
        base.total_amount,
    )
    # Spending before creating (as a disconnect may) cancels too.
    shrunk = base.copy()
    for outpoint, coin in extra:
        shrunk.remove(outpoint, coin)
    for outpoint, coin in extra:
        shrunk.add(outpoint, coin)
    assert shrunk.hash() == base.hash()


def test_utxo_hash_depends_on_every_field() -> None:
    outpoint = OutPoint(b"\x01" * 32, 0)
    coin = Coin(TxOut(COIN, b"\x02" * 20), 5, False)
    variants = [
        (outpoint, coin),
        (OutPoint(b"\x03" * 32, 0), coin),
        (OutPoint(b"\x01" * 32, 1), coin),
        (outpoint, Coin(TxOut(COIN + 1, b"\x02" * 20), 5, False)),
        (outpoint, Coin(TxOut(COIN, b"\x04" * 20), 5, False)),
        (outpoint, Coin(TxOut(COIN, b"\x02" * 20), 6, False)),
        (outpoint, Coin(TxOut(COIN, b"\x02" * 20), 5, True)),
    ]
    hashes = {stats_from([v]).hash() for v in variants}
    assert len(hashes) == len(variants)
