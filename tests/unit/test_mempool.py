"""The mempool (SPEC 3.2): every policy rule with its exact reject code, replace-by-fee, the byte
limit, expiry, orphans, following the chain (connect, reorganisation), persistence across a
restart, and the signature cache shared with block validation.

Every test runs on the memory store and on LevelDB (the autouse ``backend`` fixture): a restart
closes the LevelDB directory and opens it again (``Node.restart``), so only what reached the
disk comes back.

Everything runs on a real ``Chainstate`` wired as the node wires it (``ChainView`` over the
chainstate, one ``SignatureCache`` for both, the mempool subscribed to chain events). The base
chain is built once: 100 empty blocks, then two blocks fanning the coinbases of heights 1 and 2
out into 100 coins of 1 TLY owned by ``ALICE``, then a few empty blocks. Fee rates are exact:
``at_rate`` builds a transaction, measures it and rebuilds it paying ``rate * size``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path

import pytest

from consensus import (
    COIN,
    Block,
    OutPoint,
    Transaction,
    TxOut,
    ValidationError,
    verify_signature,
)
from consensus import errors as codes
from node.chainstate import Chainstate
from node.mempool import P_MEMPOOL, AcceptResult, ChainView, Mempool, MempoolPolicy
from node.miner.template import build_template
from node.sigcache import SignatureCache
from node.storage import KeyValueStore, MemoryStore
from tests.helpers import REGTEST, ChainBuilder, Key, coinbase, key, mine_block, solve, spend
from tests.stores import BACKENDS, Stores

MINER, ALICE, BOB = key(0), key(1), key(2)
FAN_OUT = 50
NOW = 1_700_000_000.0
DAY = 24 * 60 * 60
Coin3 = tuple[OutPoint, TxOut, Key]


# --- the base chain (built once) ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Base:
    blocks: tuple[Block, ...]  # genesis first
    coins: tuple[Coin3, ...]  # 100 coins of 1 TLY owned by ALICE


@cache
def base() -> Base:
    cb = ChainBuilder()
    cb.grow(REGTEST.coinbase_maturity)
    coins: list[Coin3] = []
    for height in (1, 2):
        cb_coin = cb.coinbase_coin(height)
        assert cb_coin[1].amount == FAN_OUT * COIN
        fan = spend([cb_coin], [TxOut(COIN, ALICE.pubkey_hash)] * FAN_OUT)
        cb.add(cb.next_block([fan]))
        coins += [(OutPoint(fan.txid(), i), fan.outputs[i], ALICE) for i in range(FAN_OUT)]
    cb.grow(3)
    return Base(tuple(cb.blocks), tuple(coins))


def builder_on_base() -> ChainBuilder:
    """A ``ChainBuilder`` holding the base chain, ready to grow a branch on it."""
    cb = ChainBuilder()
    for block in base().blocks[1:]:
        cb.add(block)
    return cb


# --- transactions ------------------------------------------------------------------------------


def pay(
    coins: Sequence[Coin3], fee: int, outputs: int = 1, to: Key = ALICE, locktime: int = 0
) -> Transaction:
    """Spend ``coins`` into ``outputs`` equal outputs (the rest to the first) minus ``fee``."""
    total = sum(c[1].amount for c in coins) - fee
    each = total // outputs
    amounts = [total - each * (outputs - 1)] + [each] * (outputs - 1)
    return spend(coins, [TxOut(a, to.pubkey_hash) for a in amounts], locktime=locktime)


def at_rate(coins: Sequence[Coin3], rate: int, outputs: int = 1, extra: int = 0) -> Transaction:
    """A transaction paying exactly ``rate`` units per byte of its own size, plus ``extra``."""
    size = pay(coins, 1_000, outputs).size()
    tx = pay(coins, rate * size + extra, outputs)
    assert tx.size() == size, "the fee changed the size: keep amounts in one encoding width"
    return tx


def out(tx: Transaction, index: int = 0, owner: Key = ALICE) -> Coin3:
    return OutPoint(tx.txid(), index), tx.outputs[index], owner


def rejects(code: str, fn: Callable[[], object]) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        fn()
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    return info.value


# --- the node wiring ---------------------------------------------------------------------------


class Node:
    """Chainstate + shared signature cache + mempool (+ its store), as the node wires them.

    Without a ``store``, one of the backend under test (``Node.stores``; memory if unset)."""

    stores: Stores | None = None

    def __init__(
        self,
        store: KeyValueStore | None = None,
        *,
        policy: MempoolPolicy | None = None,
        cache: SignatureCache | None = None,
        feed: Sequence[Block] | None = None,
    ) -> None:
        if store is None:
            store = MemoryStore() if Node.stores is None else Node.stores.new()
        self.store = store
        self.cache = cache if cache is not None else SignatureCache()
        self.cs = Chainstate(
            self.store, REGTEST, clock=lambda: 2**31, verify=self.cache.verify, sync=False
        )
        for block in base().blocks[1:] if feed is None else feed:
            self.cs.process_block(block)
        self.now = NOW
        cs = self.cs
        view = ChainView.of(cs)
        self.mp = Mempool(
            view,
            REGTEST,
            policy=policy,
            verify=self.cache.verify,
            store=self.store,
            clock=lambda: self.now,
        )
        cs.subscribe(self.mp.on_chain_event)

    @property
    def coins(self) -> tuple[Coin3, ...]:
        return base().coins

    def restart(self) -> Node:
        """A node on this one's store, reopened (a LevelDB directory is closed and opened
        again), with an empty mempool: call ``mp.load()`` to restore it."""
        store = self.store if Node.stores is None else Node.stores.reopen(self.store)
        restarted = Node(store, policy=self.mp.policy, feed=())
        restarted.now = self.now
        return restarted

    def accept(self, tx: Transaction) -> AcceptResult:
        result = self.mp.accept(tx)
        assert result.status == "accepted", result
        return result

    def mine(self, txs: Sequence[Transaction] | None = None) -> Block:
        """Mine the template (``txs=None``) or a block of exactly ``txs`` on the tip."""
        cs = self.cs
        if txs is None:
            t = build_template(cs, self.mp, MINER.pubkey_hash, now=cs.tip.header.time + 60)
            block = Block(solve(t.block.header, REGTEST), t.block.txs)
        else:
            made = {tx.txid(): tx for tx in txs}
            fees = 0
            for tx in txs:
                spent = 0
                for txin in tx.inputs:
                    parent = made.get(txin.prevout.txid)
                    if parent is not None:
                        spent += parent.outputs[txin.prevout.index].amount
                    else:
                        coin = cs.get_coin(txin.prevout)
                        assert coin is not None
                        spent += coin.output.amount
                fees += spent - tx.total_out()
            block = mine_block(
                cs.tip.hash, cs.height + 1, txs, cs.tip.header.time + 60, MINER.pubkey_hash,
                fees=fees,
            )  # fmt: skip
        result = cs.process_block(block)
        assert result.status == "active"
        return block


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every ``Node()`` of the test is on this backend; its stores are closed afterwards."""
    Node.stores = Stores(request.param, tmp_path)
    yield request.param
    Node.stores.close_all()
    Node.stores = None


def check_invariants(mp: Mempool, store: KeyValueStore | None = None) -> None:
    """The bookkeeping agrees with the entries (and the persisted copy, if a store is given)."""
    assert mp.total_bytes == sum(e.size for e in mp.entries.values())
    assert mp.total_fee == sum(e.fee for e in mp.entries.values())
    assert mp.total_bytes <= mp.policy.max_bytes
    expected_spenders = {i.prevout: t for t, e in mp.entries.items() for i in e.tx.inputs}
    assert mp.spenders == expected_spenders
    for txid, e in mp.entries.items():
        parents = {i.prevout.txid for i in e.tx.inputs if i.prevout.txid in mp.entries}
        assert e.parents == parents, "parents out of date"
        assert e.children == {c for c, o in mp.entries.items() if txid in o.parents}
    if store is not None:
        persisted = {k[len(P_MEMPOOL) :] for k, _ in store.iterate(P_MEMPOOL)}
        assert persisted == set(mp.entries)


# --- chains of unconfirmed transactions --------------------------------------------------------


def test_chain_of_25_is_accepted_and_the_26th_is_refused() -> None:
    node = Node()
    chain: list[Transaction] = []
    coin = node.coins[0]
    for _ in range(25):
        tx = at_rate([coin], 2)
        node.accept(tx)
        chain.append(tx)
        coin = out(tx)
    assert len(node.mp) == 25
    assert node.mp.ancestors(chain[-1].txid()) == {t.txid() for t in chain[:-1]}
    rejects(codes.TOO_LONG_MEMPOOL_CHAIN, lambda: node.mp.accept(at_rate([coin], 2)))
    assert len(node.mp) == 25
    check_invariants(node.mp, node.store)


def test_ancestor_limit_counts_every_parent() -> None:
    """25 ancestors through 25 separate parents (no parent has many descendants): refused;
    24 parents plus the child make 25: accepted."""
    node = Node()
    parents = [at_rate([c], 2) for c in node.coins[:25]]
    for tx in parents:
        node.accept(tx)
    rejects(
        codes.TOO_LONG_MEMPOOL_CHAIN, lambda: node.mp.accept(pay([out(p) for p in parents], 50_000))
    )
    node.accept(pay([out(p) for p in parents[:24]], 50_000))
    assert len(node.mp) == 26
    check_invariants(node.mp, node.store)


def test_descendant_limit_refuses_the_25th_child_of_one_parent() -> None:
    node = Node()
    parent = at_rate([node.coins[0]], 2, outputs=30)
    node.accept(parent)
    for i in range(24):  # the parent and 24 children: 25 in the package
        node.accept(at_rate([out(parent, i)], 2))
    assert len(node.mp.descendants(parent.txid())) == 24
    rejects(codes.TOO_LONG_MEMPOOL_CHAIN, lambda: node.mp.accept(at_rate([out(parent, 24)], 2)))
    assert len(node.mp) == 25
    check_invariants(node.mp, node.store)


def of_about(coins: Sequence[Coin3], size: int, rate: int) -> Transaction:
    """``at_rate(coins, rate, outputs=n)`` with the ``n`` that makes it the largest not over
    ``size`` bytes (an output takes 26 to 28 bytes, by the width of its amount)."""
    n = max(1, (size - 170) // 28)
    tx = at_rate(coins, rate, outputs=n)
    while True:
        bigger = at_rate(coins, rate, outputs=n + 1)
        if bigger.size() > size:
            return tx
        step = max(1, (size - bigger.size()) // 28)
        n += step
        tx = at_rate(coins, rate, outputs=n) if step > 1 else bigger


def test_descendant_bytes_are_limited_so_a_child_cannot_pin_its_parent() -> None:
    """Issue 17, item 4: a payee's large child made replacing a 198-byte payment cost 2,501
    times its fee. A package (a transaction and its descendants) is at most 101,000 bytes, so
    the replacement costs at most about that many bytes' fees."""
    node = Node()
    payment = at_rate([node.coins[0]], 2, outputs=2)
    node.accept(payment)
    big_child = of_about([out(payment, 0)], 99_500, 1)
    assert payment.size() + big_child.size() <= node.mp.policy.max_descendant_bytes
    node.accept(big_child)
    small_child = at_rate([out(payment, 1)], 1, outputs=60)
    assert payment.size() + big_child.size() + small_child.size() > 101_000
    err = rejects(codes.TOO_LONG_MEMPOOL_CHAIN, lambda: node.mp.accept(small_child))
    assert "101,000" in str(err) and "package" in str(err)
    # Without the big child the same small child is welcome (the count limit is far away).
    node.mp.remove_with_descendants(big_child.txid())
    node.accept(small_child)
    check_invariants(node.mp, node.store)


def test_ancestor_bytes_are_limited() -> None:
    """Two parents of about 50,600 bytes each (each package well under the limit): a child of
    both has more than 101,000 bytes of ancestors and is refused; a child of one is not."""
    node = Node()
    parents = [of_about([c], 50_600, 1) for c in node.coins[:2]]
    for p in parents:
        node.accept(p)
    both = at_rate([out(parents[0]), out(parents[1])], 2)
    err = rejects(codes.TOO_LONG_MEMPOOL_CHAIN, lambda: node.mp.accept(both))
    assert "with its ancestors" in str(err)
    node.accept(at_rate([out(parents[0], 1)], 2))
    check_invariants(node.mp, node.store)


def test_a_replacement_discounts_the_bytes_it_evicts() -> None:
    """A replacement of a big child is measured against the package without that child."""
    node = Node()
    payment = at_rate([node.coins[0]], 2, outputs=2)
    node.accept(payment)
    big_child = of_about([out(payment, 0)], 99_500, 1)
    node.accept(big_child)
    replacement = at_rate([out(payment, 0)], 1, outputs=40, extra=big_child.size() * 2)
    node.accept(replacement)  # the package is now payment + replacement: small
    assert big_child.txid() not in node.mp and replacement.txid() in node.mp
    check_invariants(node.mp, node.store)


# --- simple refusals ---------------------------------------------------------------------------


def test_already_known_in_the_mempool_and_when_confirmed() -> None:
    node = Node()
    tx = at_rate([node.coins[0]], 2)
    node.accept(tx)
    rejects(codes.TXN_ALREADY_KNOWN, lambda: node.mp.accept(tx))
    block = node.mine()
    assert tx in block.txs and tx.txid() not in node.mp
    rejects(codes.TXN_ALREADY_KNOWN, lambda: node.mp.accept(tx))
    assert len(node.mp) == 0


def test_a_coinbase_is_refused() -> None:
    node = Node()
    cb = coinbase(node.cs.height + 1, ALICE.pubkey_hash, 50 * COIN)
    rejects(codes.COINBASE, lambda: node.mp.accept(cb))
    assert len(node.mp) == 0 and node.mp.orphan_count() == 0


def test_locktime_must_be_final_in_the_next_block() -> None:
    node = Node()
    tip = node.cs.height
    late = pay([node.coins[0]], 1_000, locktime=tip + 1)
    rejects(codes.BAD_TXNS_NONFINAL, lambda: node.mp.accept(late))
    node.accept(pay([node.coins[0]], 1_000, locktime=tip))
    # Once the tip moves up by one, the refused locktime is final in the next block.
    node.mine([])
    node.accept(pay([node.coins[1]], 1_000, locktime=tip + 1))


def test_min_relay_fee_is_one_unit_per_byte() -> None:
    node = Node()
    exact = at_rate([node.coins[0]], 1)
    short = at_rate([node.coins[0]], 1, extra=-1)
    assert short.size() == exact.size()
    rejects(codes.MIN_RELAY_FEE_NOT_MET, lambda: node.mp.accept(short))
    assert node.accept(exact).fee == exact.size()


def test_a_bad_signature_is_refused_and_not_remembered() -> None:
    node = Node()
    good = at_rate([node.coins[0]], 2)
    other = at_rate([node.coins[0]], 3)  # same key and coin, another digest
    forged_in = dataclasses.replace(good.inputs[0], signature=other.inputs[0].signature)
    forged = dataclasses.replace(good, inputs=(forged_in,))
    assert forged.txid() == good.txid()  # the txid does not cover signatures
    cached = len(node.cache)
    rejects(codes.BAD_TXNS_SIGNATURE, lambda: node.mp.accept(forged))
    assert len(node.mp) == 0 and len(node.cache) == cached
    node.accept(good)  # the genuine transaction with the same txid is still welcome


def test_spending_an_output_a_block_already_spent_is_refused() -> None:
    node = Node()
    coin = node.coins[0]
    node.mine([pay([coin], 1_000)])
    rejects(codes.BAD_TXNS_INPUTS_MISSINGORSPENT, lambda: node.mp.accept(pay([coin], 2_000)))
    # An output a mempool parent does not have is missing too (not an orphan).
    parent = at_rate([node.coins[1]], 2)
    node.accept(parent)
    ghost = (OutPoint(parent.txid(), 5), parent.outputs[0], ALICE)
    rejects(codes.BAD_TXNS_INPUTS_MISSINGORSPENT, lambda: node.mp.accept(pay([ghost], 1_000)))
    assert node.mp.orphan_count() == 0 and len(node.mp) == 1


# --- replace-by-fee ----------------------------------------------------------------------------


def test_replacement_with_a_fee_rate_not_higher_is_refused() -> None:
    node = Node()
    original = at_rate([node.coins[0]], 10)
    node.accept(original)
    # Much bigger, so its absolute fee is far above original + incremental x size, but the
    # same fee rate: only the fee-rate rule refuses it.
    same_rate = at_rate([node.coins[0]], 10, outputs=20)
    assert same_rate.size() > 3 * original.size()
    assert 10 * same_rate.size() >= original.size() * 10 + same_rate.size()
    rejects(codes.INSUFFICIENT_FEE, lambda: node.mp.accept(same_rate))
    assert set(node.mp.entries) == {original.txid()}
    better = at_rate([node.coins[0]], 10, outputs=20, extra=1)
    assert node.accept(better).replaced == (original.txid(),)
    check_invariants(node.mp, node.store)


def test_replacement_must_pay_replaced_fees_plus_incremental_relay() -> None:
    node = Node()
    original = at_rate([node.coins[0]], 2, outputs=20)  # large, low rate
    child = at_rate([out(original, 1)], 3)
    node.accept(original)
    node.accept(child)
    evicted_fees = node.mp.entries[original.txid()].fee + node.mp.entries[child.txid()].fee
    size = pay([node.coins[0]], 1_000).size()
    short = pay([node.coins[0]], evicted_fees + size - 1)  # far higher rate, 1 unit short
    assert short.size() == size and (evicted_fees + size) / size > 3
    rejects(codes.INSUFFICIENT_FEE, lambda: node.mp.accept(short))
    assert set(node.mp.entries) == {original.txid(), child.txid()}
    enough = pay([node.coins[0]], evicted_fees + size)
    result = node.accept(enough)
    assert set(result.replaced) == {original.txid(), child.txid()}
    check_invariants(node.mp, node.store)


def test_replacement_evicts_conflicts_and_their_descendants() -> None:
    node = Node()
    a = at_rate([node.coins[0]], 2, outputs=2)
    b = at_rate([out(a, 0)], 2)
    c = at_rate([out(b, 0)], 2)
    d = at_rate([out(a, 1)], 2)
    unrelated = at_rate([node.coins[1]], 2)
    for tx in (a, b, c, d, unrelated):
        node.accept(tx)
    victims = {a.txid(), b.txid(), c.txid(), d.txid()}
    replaced_fees = sum(node.mp.entries[t].fee for t in victims)
    size = pay([node.coins[0]], 1_000).size()
    replacement = pay([node.coins[0]], replaced_fees + size)
    result = node.accept(replacement)
    assert result.status == "accepted" and result.fee == replaced_fees + size
    assert set(result.replaced) == victims and len(result.replaced) == 4
    assert set(node.mp.entries) == {replacement.txid(), unrelated.txid()}
    assert node.mp.spenders == {
        node.coins[0][0]: replacement.txid(),
        node.coins[1][0]: unrelated.txid(),
    }
    assert node.mp.total_bytes == replacement.size() + unrelated.size()
    assert node.mp.total_fee == replaced_fees + size + node.mp.entries[unrelated.txid()].fee
    check_invariants(node.mp, node.store)


def test_replacement_spending_an_output_of_what_it_replaces_is_a_conflict() -> None:
    node = Node()
    a = at_rate([node.coins[0]], 2, outputs=2)
    node.accept(a)
    # Spends a's input (conflict with a) and a's own output 1: impossible once a is gone.
    bad = pay([node.coins[0], out(a, 1)], 100_000)
    rejects(codes.TXN_MEMPOOL_CONFLICT, lambda: node.mp.accept(bad))
    assert set(node.mp.entries) == {a.txid()}
    check_invariants(node.mp, node.store)


def test_replacing_too_many_transactions_is_a_conflict() -> None:
    node = Node(policy=MempoolPolicy(max_replacements=2))
    a = at_rate([node.coins[0]], 2, outputs=2)
    node.accept(a)
    node.accept(at_rate([out(a, 0)], 2))
    node.accept(at_rate([out(a, 1)], 2))
    rejects(codes.TXN_MEMPOOL_CONFLICT, lambda: node.mp.accept(pay([node.coins[0]], 100_000)))
    assert len(node.mp) == 3


# --- the byte limit ----------------------------------------------------------------------------


def full_node(txs: Sequence[Transaction], newcomer: Transaction) -> Node:
    """A node whose byte limit is exactly one byte short of holding ``txs`` + ``newcomer``."""
    limit = sum(t.size() for t in txs) + newcomer.size() - 1
    node = Node(policy=MempoolPolicy(max_bytes=limit))
    for tx in txs:
        node.accept(tx)
    return node


def test_full_mempool_evicts_the_lowest_package_not_a_parent_its_child_pays_for() -> None:
    """SPEC 3.2: "when full, the lowest fee rate package is evicted". A low-fee parent whose
    high-fee child lifts the package above a mid-fee single transaction is not the lowest
    package: the single one goes (Core's descendant score is max(own rate, package rate))."""
    coins = base().coins
    parent = at_rate([coins[0]], 1)
    child = at_rate([out(parent)], 10)
    mid = at_rate([coins[1]], 3)
    newcomer = at_rate([coins[2]], 4)
    package_rate = (parent.size() * 1 + child.size() * 10) / (parent.size() + child.size())
    assert package_rate > 4 > 3
    node = full_node([parent, child, mid], newcomer)
    node.accept(newcomer)
    assert set(node.mp.entries) == {parent.txid(), child.txid(), newcomer.txid()}, (
        f"the CPFP package (rate {package_rate:.2f}) was evicted instead of the rate-3 one"
    )
    check_invariants(node.mp, node.store)


def test_full_mempool_evicts_a_low_fee_child_alone() -> None:
    coins = base().coins
    parent = at_rate([coins[0]], 10)
    child = at_rate([out(parent)], 1)
    mid = at_rate([coins[1]], 3)
    newcomer = at_rate([coins[2]], 5)
    node = full_node([parent, child, mid], newcomer)
    node.accept(newcomer)
    assert set(node.mp.entries) == {parent.txid(), mid.txid(), newcomer.txid()}
    check_invariants(node.mp, node.store)


def test_full_mempool_refuses_a_newcomer_that_would_be_the_cheapest() -> None:
    coins = base().coins
    txs = [at_rate([coins[0]], 3), at_rate([coins[1]], 5)]
    txs.append(at_rate([out(txs[1])], 4))
    newcomer = at_rate([coins[2]], 2)
    node = full_node(txs, newcomer)
    seen: list[bytes] = []
    node.mp.subscribe(lambda e: seen.append(e.txid))
    before = (
        dict(node.mp.entries),
        dict(node.mp.spenders),
        node.mp.total_bytes,
        node.mp.total_fee,
        list(node.store.iterate(P_MEMPOOL)),
    )
    rejects(codes.MEMPOOL_FULL, lambda: node.mp.accept(newcomer))
    after = (
        dict(node.mp.entries),
        dict(node.mp.spenders),
        node.mp.total_bytes,
        node.mp.total_fee,
        list(node.store.iterate(P_MEMPOOL)),
    )
    assert after == before and seen == []
    # A newcomer paying more than the cheapest entry gets in, the cheapest leaves.
    node.accept(at_rate([coins[2]], 6))
    assert txs[0].txid() not in node.mp and len(node.mp) == 3
    check_invariants(node.mp, node.store)


# --- expiry ------------------------------------------------------------------------------------


def test_expiry_removes_old_entries_with_their_descendants() -> None:
    node = Node()
    old = at_rate([node.coins[0]], 2)
    node.accept(old)
    node.now = NOW + 1 * DAY
    child = at_rate([out(old)], 2)
    node.accept(child)
    node.now = NOW + 2 * DAY
    young = at_rate([node.coins[1]], 2)
    node.accept(young)
    fourteen = 14 * DAY
    assert node.mp.expire(NOW + fourteen) == []  # exactly 14 days old: still there
    removed = node.mp.expire(NOW + fourteen + 1)
    assert set(removed) == {old.txid(), child.txid()} and len(removed) == 2
    assert set(node.mp.entries) == {young.txid()}
    check_invariants(node.mp, node.store)


def test_a_tip_change_expires_old_entries() -> None:
    node = Node()
    old = at_rate([node.coins[0]], 2)
    node.accept(old)
    node.now = NOW + 10 * DAY
    young = at_rate([node.coins[1]], 2)
    node.accept(young)
    node.now = NOW + 15 * DAY
    assert len(node.mp) == 2  # nothing expires on its own
    node.mine([])
    assert set(node.mp.entries) == {young.txid()}
    check_invariants(node.mp, node.store)


# --- orphans -----------------------------------------------------------------------------------


def test_an_orphan_waits_for_its_parent() -> None:
    node = Node()
    parent = at_rate([node.coins[0]], 2)
    child = at_rate([out(parent)], 3)
    result = node.mp.accept(child)
    assert result.status == "orphan" and result.txid == child.txid()
    assert node.mp.orphan_count() == 1 and child.txid() not in node.mp
    node.accept(parent)
    assert set(node.mp.entries) == {parent.txid(), child.txid()}
    assert node.mp.orphan_count() == 0
    check_invariants(node.mp, node.store)


def test_an_orphan_is_adopted_when_a_block_confirms_its_parent() -> None:
    node = Node()
    parent = at_rate([node.coins[0]], 2)
    child = at_rate([out(parent)], 3)
    assert node.mp.accept(child).status == "orphan"
    node.mine([parent])
    assert set(node.mp.entries) == {child.txid()} and node.mp.orphan_count() == 0


def test_the_orphan_pool_is_bounded_in_bytes() -> None:
    """Issue 17, item 7: 100 orphans of 1 MB took 787 MiB. The pool keeps at most
    ``max_orphan_bytes`` of serialized transactions, dropping the oldest, however many fit
    the count."""
    node = Node(policy=MempoolPolicy(max_orphan_bytes=60_000))
    parents = [at_rate([c], 2) for c in node.coins[:4]]
    children = [of_about([out(p)], 25_000, 1) for p in parents]
    for n, child in enumerate(children):
        assert node.mp.accept(child).status == "orphan"
        assert node.mp.orphan_bytes() <= 60_000
        assert node.mp.orphan_count() == min(n + 1, 2)
    assert node.mp.orphan_bytes() == sum(c.size() for c in children[2:])
    for parent in parents:
        node.accept(parent)
    assert set(node.mp.entries) == {t.txid() for t in parents + children[2:]}
    assert node.mp.orphan_count() == 0 and node.mp.orphan_bytes() == 0


def test_the_orphan_pool_is_bounded_and_drops_the_oldest() -> None:
    node = Node(policy=MempoolPolicy(max_orphans=3))
    parents = [at_rate([c], 2) for c in node.coins[:5]]
    children = [at_rate([out(p)], 3) for p in parents]
    for n, child in enumerate(children):
        assert node.mp.accept(child).status == "orphan"
        assert node.mp.orphan_count() == min(n + 1, 3)
    for parent in parents:
        node.accept(parent)
    assert set(node.mp.entries) == {t.txid() for t in parents + children[2:]}
    assert node.mp.orphan_count() == 0


# --- following the chain -----------------------------------------------------------------------


def test_block_connect_removes_confirmed_and_conflicting_transactions() -> None:
    node = Node()
    a = at_rate([node.coins[0]], 2)
    a_child = at_rate([out(a)], 2)
    d = at_rate([node.coins[1]], 2)
    d_child = at_rate([out(d)], 2)
    d_grandchild = at_rate([out(d_child)], 2)
    keep = at_rate([node.coins[2]], 2)
    for tx in (a, a_child, d, d_child, d_grandchild, keep):
        node.accept(tx)
    double_spend = pay([node.coins[1]], 5_000, to=BOB)  # never seen by the mempool
    node.mine([a, double_spend])
    assert set(node.mp.entries) == {a_child.txid(), keep.txid()}
    assert node.mp.entries[a_child.txid()].parents == set()
    assert node.mp.total_bytes == a_child.size() + keep.size()
    check_invariants(node.mp, node.store)
    # The surviving child is minable on its own.
    block = node.mine()
    assert {tx.txid() for tx in block.txs[1:]} == {a_child.txid(), keep.txid()}
    assert len(node.mp) == 0


@cache
def reorg_branches() -> tuple[dict[str, Transaction], list[Block], list[Block]]:
    """Two branches from the base tip: A (101 blocks) confirming X, V, Y (child of X) and Z
    (spending the coinbase of A's first block, mature in its last); B (102 blocks, more work)
    confirming W, which double-spends V's coin, and none of the others."""
    coins = base().coins
    x = pay([coins[0]], 1_000)
    v = pay([coins[1]], 1_000)
    y = pay([out(x)], 1_000)
    w = pay([coins[1]], 2_000, to=BOB)
    a = builder_on_base()
    start = a.height
    a.add(a.next_block([x, v], fees=2_000))
    a.add(a.next_block([y], fees=1_000))
    a.grow(REGTEST.coinbase_maturity - 2)
    z = pay([a.coinbase_coin(start + 1)], 1_000, to=MINER)
    a.add(a.next_block([z], fees=1_000))
    assert a.height == start + 101
    b = builder_on_base()
    b.miner = key(9)
    b.add(b.next_block([w], fees=2_000))
    b.grow(101)
    txs = {"x": x, "v": v, "y": y, "z": z, "w": w}
    return txs, a.blocks[start + 1 :], b.blocks[start + 1 :]


def test_reorganisation_returns_still_valid_transactions_and_drops_the_others() -> None:
    txs, branch_a, branch_b = reorg_branches()
    node = Node()
    for block in branch_a:
        node.cs.process_block(block)
    assert node.cs.tip.hash == branch_a[-1].hash()
    n = at_rate([node.coins[2]], 2)
    m = at_rate([out(txs["z"], owner=MINER)], 2)  # spends Z: invalid once Z's coin is gone
    node.accept(n)
    node.accept(m)
    for block in branch_b:
        node.cs.process_block(block)
    assert node.cs.tip.hash == branch_b[-1].hash()
    x, y = txs["x"].txid(), txs["y"].txid()
    assert set(node.mp.entries) == {x, y, n.txid()}
    assert node.mp.entries[y].parents == {x}
    for dropped in ("v", "z", "w"):
        assert txs[dropped].txid() not in node.mp
    assert m.txid() not in node.mp
    check_invariants(node.mp, node.store)
    block = node.mine()
    assert [t.txid() for t in block.txs[1:]].index(x) < [t.txid() for t in block.txs[1:]].index(y)


# --- persistence -------------------------------------------------------------------------------


def test_the_mempool_survives_a_restart() -> None:
    node = Node()
    coins = node.coins
    parent = at_rate([coins[0]], 2, outputs=2)
    child = at_rate([out(parent, 0)], 3)
    grandchild = at_rate([out(child)], 4)
    single = at_rate([coins[1]], 5)
    doomed = at_rate([coins[2]], 6)
    for tx in (parent, child, grandchild, single, doomed):
        node.now += 10
        node.accept(tx)
    times = {t: e.time for t, e in node.mp.entries.items()}

    # While the node is down, a block double-spends ``doomed``'s coin.
    node = node.restart()
    assert len(node.mp) == 0
    node.mine([pay([coins[2]], 1_000, to=BOB)])
    assert node.mp.load() == 4
    kept = {parent.txid(), child.txid(), grandchild.txid(), single.txid()}
    assert set(node.mp.entries) == kept
    assert {t: e.time for t, e in node.mp.entries.items()} == {t: times[t] for t in kept}
    check_invariants(node.mp, node.store)


def test_a_restart_keeps_a_child_that_is_older_than_its_returning_parent() -> None:
    """After a reorganisation a disconnected parent comes back with a new entry time, while
    its mempool child keeps its older one; a restart must still restore both."""
    node = Node()
    x = at_rate([node.coins[0]], 2)
    node.mine([x])
    child = at_rate([out(x)], 3)
    node.accept(child)  # parent confirmed, entry time NOW
    fork = base().blocks[-1]
    other = builder_on_base()
    other.miner = key(9)
    other.grow(2)
    node.now = NOW + 60
    for block in other.blocks[-2:]:
        node.cs.process_block(block)
    assert node.cs.tip.hash == other.blocks[-1].hash() and node.cs.tip.hash != fork.hash()
    assert set(node.mp.entries) == {x.txid(), child.txid()}
    assert node.mp.entries[child.txid()].time < node.mp.entries[x.txid()].time

    restarted = node.restart()
    restarted.now = NOW + 120
    restarted.mp.load()
    assert set(restarted.mp.entries) == {x.txid(), child.txid()}, (
        f"restored {len(restarted.mp)} of 2 ({restarted.mp.orphan_count()} left as orphans)"
    )
    check_invariants(restarted.mp, restarted.store)


# --- the signature cache shared with block validation ------------------------------------------


def test_a_block_of_mempool_transactions_connects_without_verifying_signatures() -> None:
    calls: list[int] = []

    def counting(pk: bytes, sig: bytes, digest: bytes) -> bool:
        calls.append(1)
        return verify_signature(pk, sig, digest)

    node = Node(cache=SignatureCache(engine=counting))
    calls.clear()
    n = 12
    txs = [at_rate([c], 2) for c in node.coins[:n]]
    for tx in txs:
        node.accept(tx)
    assert len(calls) == n
    block = node.mine()
    assert len(block.txs) == n + 1 and len(node.mp) == 0
    assert len(calls) == n, "block connect verified signatures the mempool already checked"

    # The same block on a chainstate with its own (cold) cache costs n verifications.
    cold_calls: list[int] = []

    def cold_counting(pk: bytes, sig: bytes, digest: bytes) -> bool:
        cold_calls.append(1)
        return verify_signature(pk, sig, digest)

    cold = Node(cache=SignatureCache(engine=cold_counting))
    cold_calls.clear()
    assert cold.cs.process_block(block).status == "active"
    assert len(cold_calls) == n
