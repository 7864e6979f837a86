"""Eviction from a full mempool (SPEC 3.2, issue 16 defect 9; issue 17 item 8).

When the pool is over its byte limit the package with the lowest descendant score goes first
(Core's score: the higher of a transaction's own fee rate and that of it plus its descendants),
taking its descendants with it; ties go oldest first. These tests pin that order with packages of
known scores, check that the incremental bookkeeping behind the O(log n) eviction (package sums
per entry, the lazily invalidated heap) always agrees with a brute-force recomputation, that the
work of one eviction does not grow with the pool, and that a refusal (``mempool-full``) changes
nothing, even for a replacement that had already taken its victims out.

The node wiring, the base chain (100 coins of 1 TLY for ``ALICE``) and the exact-rate
transaction builder come from ``tests.unit.test_mempool``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from consensus import OutPoint, Transaction, TxOut, ValidationError
from consensus import errors as codes
from node.mempool import P_MEMPOOL, Mempool, MempoolPolicy
from tests.helpers import REGTEST, ChainBuilder, key, spend
from tests.unit.test_mempool import (
    Coin3,
    Node,
    at_rate,
    base,
    check_invariants,
    out,
    rejects,
)

# --- checks of the eviction index --------------------------------------------------------------


def check_eviction_index(mp: Mempool) -> None:
    """Package sums equal a recomputation; every entry has a current heap item; the heap's
    lowest current item is the brute-force lowest (score, then age)."""
    for txid, e in mp.entries.items():
        package = [e, *(mp.entries[d] for d in mp.descendants(txid))]
        assert e.desc_fee == sum(p.fee for p in package), "desc_fee out of date"
        assert e.desc_size == sum(p.size for p in package), "desc_size out of date"
    current = [
        (score, seq, txid)
        for score, seq, txid in mp._heap
        if txid in mp.entries
        and mp.entries[txid].seq == seq
        and mp.entries[txid].descendant_score == score
    ]
    assert {t for _, _, t in current} == set(mp.entries), "an entry has no current heap item"
    if mp.entries:
        brute = min(mp.entries.values(), key=lambda e: (e.descendant_score, e.seq))
        assert min(current)[2] == brute.txid


def snapshot(node: Node) -> tuple[object, ...]:
    mp = node.mp
    return (
        {t: (e.fee, e.size, e.time, e.seq, set(e.parents), set(e.children)) for t, e in
         mp.entries.items()},
        dict(mp.spenders),
        {k: set(v) for k, v in mp.by_address.items()},
        mp.total_bytes,
        mp.total_fee,
        sorted(node.store.iterate(P_MEMPOOL)),
        dict(mp.replaced),
    )  # fmt: skip


# --- the order ---------------------------------------------------------------------------------


def packages() -> dict[str, list[Transaction]]:
    """Packages of known descendant scores (units per byte), named by their expected rank.

    - ``c_child`` 1: the rate-1 child of a rate-6 parent goes alone (its parent scores 6).
    - ``a`` 2: a single transaction.
    - ``e`` 3: a chain of three at rate 3, all three scoring 3 (the root goes with both).
    - ``d`` 4: a single transaction.
    - ``b`` 5.x: a rate-1 parent whose rate-9 child pays for it (package rate about 5).
    - ``c_parent`` 6: once its cheap child has gone.
    """
    coins = base().coins
    c_parent = at_rate([coins[0]], 6)
    c_child = at_rate([out(c_parent)], 1)
    a = at_rate([coins[1]], 2)
    e1 = at_rate([coins[2]], 3)
    e2 = at_rate([out(e1)], 3)
    e3 = at_rate([out(e2)], 3)
    d = at_rate([coins[3]], 4)
    b_parent = at_rate([coins[4]], 1)
    b_child = at_rate([out(b_parent)], 9)
    return {
        "c_child": [c_child],
        "a": [a],
        "e": [e1, e2, e3],
        "d": [d],
        "b": [b_parent, b_child],
        "c_parent": [c_parent],
    }


def test_a_full_pool_evicts_packages_in_descendant_score_order() -> None:
    pk = packages()
    accept_order = [
        pk["c_parent"][0], pk["c_child"][0], *pk["e"], pk["a"][0], pk["b"][0], pk["d"][0],
        pk["b"][1],
    ]  # fmt: skip
    node = Node(policy=MempoolPolicy(max_bytes=sum(t.size() for t in accept_order)))
    for tx in accept_order:
        node.accept(tx)
    check_eviction_index(node.mp)
    expected = ["c_child", "a", "e", "d", "b", "c_parent"]
    remaining = {name: {t.txid() for t in txs} for name, txs in pk.items()}
    newcomers: list[bytes] = []
    coins = iter(base().coins[10:])
    evicted_order: list[str] = []
    while remaining:
        before = set(node.mp.entries)
        tx = at_rate([next(coins)], 50)  # outbids every package
        node.accept(tx)
        newcomers.append(tx.txid())
        gone = before - set(node.mp.entries)
        check_invariants(node.mp, node.store)
        check_eviction_index(node.mp)
        if not gone:
            continue
        name = expected[len(evicted_order)]
        assert gone == remaining[name], (
            f"expected package {name!r} to go next, got {len(gone)} other transaction(s)"
        )
        evicted_order.append(name)
        del remaining[name]
        # Everything not evicted yet is still there, and every newcomer too.
        left = set().union(*remaining.values()) if remaining else set()
        assert set(node.mp.entries) == left | set(newcomers)
    assert evicted_order == expected


def test_a_child_lifts_its_parent_and_its_removal_lowers_it_again() -> None:
    """Package sums follow descendants as they come and go. A rate-1 parent whose rate-9 child
    pays for it outranks a rate-3 single: the single goes first. When a block confirms a
    transaction that conflicts with the child, the child leaves and the parent, back to its own
    rate, is the next to go."""
    coins = base().coins
    parent = at_rate([coins[0]], 1)
    rich_child = at_rate([out(parent), coins[5]], 9)
    single = at_rate([coins[1]], 3)
    node = full_pool([parent, rich_child, single])
    entries = node.mp.entries
    assert entries[parent.txid()].descendant_score > 3
    n1 = at_rate([coins[2]], 50)
    assert n1.size() <= single.size()
    node.accept(n1)
    assert set(entries) == {parent.txid(), rich_child.txid(), n1.txid()}
    check_eviction_index(node.mp)
    node.mine([at_rate([coins[5]], 2)])  # confirms a conflict of the child
    assert set(node.mp.entries) == {parent.txid(), n1.txid()}
    assert node.mp.entries[parent.txid()].descendant_score == 1.0
    check_eviction_index(node.mp)
    free = node.mp.policy.max_bytes - node.mp.total_bytes
    n2 = at_rate([coins[3]], 50, outputs=8)
    assert free < n2.size() <= free + parent.size()
    node.accept(n2)
    assert set(node.mp.entries) == {n1.txid(), n2.txid()}
    check_invariants(node.mp, node.store)
    check_eviction_index(node.mp)


def test_exact_sums_through_replacement_block_and_reorg() -> None:
    """After replacements, a block confirming a parent whose children stay, a reorganisation
    and a restart of the pool from its store, the index still agrees with a recomputation."""
    coins = base().coins
    node = Node()
    chain: list[Transaction] = []
    coin = coins[0]
    for rate in (1, 2, 8, 3):
        tx = at_rate([coin], rate, outputs=2)
        node.accept(tx)
        chain.append(tx)
        coin = out(tx)
    side = at_rate([out(chain[1], 1)], 5)
    node.accept(side)
    check_eviction_index(node.mp)
    # Replace the last link by a richer one.
    bump = at_rate([out(chain[2])], 20)
    assert node.mp.accept(bump).replaced == (chain[3].txid(),)
    check_eviction_index(node.mp)
    # A block confirms the first link only: its children stay, now without it as ancestor.
    node.mine([chain[0]])
    check_invariants(node.mp, node.store)
    check_eviction_index(node.mp)
    # Eviction still takes the lowest package: shrink the limit and trim.
    node.mp = Mempool(
        node.mp.chain, REGTEST, policy=MempoolPolicy(max_bytes=node.mp.total_bytes - 1),
        store=node.store, clock=lambda: node.now,
    )  # fmt: skip
    node.mp.load()
    check_invariants(node.mp, node.store)
    check_eviction_index(node.mp)


# --- cost --------------------------------------------------------------------------------------


def fanned_node(n: int) -> tuple[Node, list[Coin3]]:
    """A node whose chain has ``n`` extra confirmed coins (one fan-out block), for big pools."""
    cb = ChainBuilder()
    for block in base().blocks[1:]:
        cb.add(block)
    owner = key(7)
    coins: list[Coin3] = []
    txs: list[Transaction] = []
    per_fan = 500
    for height in range(3, 3 + -(-n // per_fan)):
        cb_coin = cb.coinbase_coin(height)
        amount = cb_coin[1].amount // per_fan
        fan = spend([cb_coin], [TxOut(amount, owner.pubkey_hash)] * per_fan)
        txs.append(fan)
        coins += [(OutPoint(fan.txid(), i), fan.outputs[i], owner) for i in range(per_fan)]
    cb.add(cb.next_block(txs))
    return Node(feed=cb.blocks[1:]), coins[:n]


@pytest.mark.parametrize("n", [400])
def test_one_eviction_does_not_look_at_every_entry(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16 defect 9: eviction scanned every entry (``min`` with a descendant walk per
    entry) for every newcomer to a full pool. Now a newcomer that evicts one package walks
    descendants a bounded number of times, whatever the pool's size."""
    node, coins = fanned_node(n + 1)
    fee = 500
    txs = [spend([c], [TxOut(c[1].amount - fee - n + i, c[2].pubkey_hash)]) for i, c in
           enumerate(coins[:n])]  # fmt: skip
    c = coins[n]
    newcomer = spend([c], [TxOut(c[1].amount - 50 * fee, c[2].pubkey_hash)])
    assert newcomer.size() >= txs[-1].size()
    limit = sum(t.size() for t in txs) - txs[-1].size() + newcomer.size()  # room for one swap
    node.mp = Mempool(
        node.mp.chain, REGTEST, policy=MempoolPolicy(max_bytes=limit),
        store=node.store, clock=lambda: node.now,
    )  # fmt: skip
    for tx in txs:
        node.accept(tx)
    walks = 0
    real = Mempool.descendants

    def counting(self: Mempool, txid: bytes) -> set[bytes]:
        nonlocal walks
        walks += 1
        return real(self, txid)

    monkeypatch.setattr(Mempool, "descendants", counting)
    result = node.accept(newcomer)
    assert result.status == "accepted"
    assert len(node.mp) == n, "one package should have been evicted"
    assert txs[-1].txid() not in node.mp, "the lowest fee (the last one) should have gone"
    assert walks <= 10, f"{walks} descendant walks for one eviction in a pool of {n}"
    monkeypatch.undo()
    check_eviction_index(node.mp)


# --- a refusal changes nothing (issue 17 item 8) ------------------------------------------------


def full_pool(txs: Sequence[Transaction], spare: int = 0) -> Node:
    node = Node(policy=MempoolPolicy(max_bytes=sum(t.size() for t in txs) + spare))
    for tx in txs:
        node.accept(tx)
    return node


def test_a_replacement_refused_as_mempool_full_keeps_what_it_would_have_replaced() -> None:
    """Issue 17 item 8: the replacement evicted its victim, then was trimmed itself
    (``mempool-full``): neither was left. Now the victim (and its child) are back, exactly."""
    coins = base().coins
    victim = at_rate([coins[0]], 2)
    victim_child = at_rate([out(victim)], 2)
    others = [at_rate([coins[i]], 20) for i in (1, 2, 3)]
    node = full_pool([victim, victim_child, *others])
    # Pays enough to replace both (fee and rate) but is much bigger and the lowest rate left.
    replacement = at_rate([coins[0]], 3, outputs=12, extra=2_000)
    assert replacement.size() > victim.size() + victim_child.size()
    before = snapshot(node)
    rejects(codes.MEMPOOL_FULL, lambda: node.mp.accept(replacement))
    assert snapshot(node) == before, "a refused replacement changed the mempool"
    assert node.mp.replaced_by(victim.txid()) is None
    check_invariants(node.mp, node.store)
    check_eviction_index(node.mp)


def test_a_newcomer_refused_after_trimming_a_lower_package_puts_it_back() -> None:
    """A newcomer bigger than the lowest package: trimming takes that package, is still over
    the limit, reaches the newcomer and refuses it. The lower package comes back too."""
    coins = base().coins
    low = at_rate([coins[0]], 1)
    mid = [at_rate([coins[i]], 5) for i in (1, 2, 3)]
    node = full_pool([low, *mid])
    newcomer = at_rate([coins[4]], 2, outputs=6)  # above ``low`` only, bigger than it
    assert newcomer.size() > low.size()
    before = snapshot(node)
    rejects(codes.MEMPOOL_FULL, lambda: node.mp.accept(newcomer))
    assert snapshot(node) == before
    check_invariants(node.mp, node.store)
    check_eviction_index(node.mp)
    # And the pool still works: a rich newcomer evicts ``low``.
    rich = at_rate([coins[5]], 30)
    node.accept(rich)
    assert low.txid() not in node.mp and rich.txid() in node.mp
    check_eviction_index(node.mp)


def test_trimming_after_a_replacement_keeps_the_replaced_record() -> None:
    """A replacement accepted into a full pool that trims something else: the replaced
    transaction is remembered, the trimmed one is not (it was evicted, not replaced)."""
    coins = base().coins
    original = at_rate([coins[0]], 2)
    low = at_rate([coins[1]], 1)
    node = full_pool([original, low, at_rate([coins[2]], 10)])
    replacement = at_rate([coins[0]], 6, outputs=2)
    assert replacement.size() > original.size()
    result = node.mp.accept(replacement)
    assert result.replaced == (original.txid(),)
    assert low.txid() not in node.mp
    record = node.mp.replaced_by(original.txid())
    assert record is not None and record.by == replacement.txid()
    assert node.mp.replaced_by(low.txid()) is None


# --- the index under a random workload ---------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_index_stays_exact_under_random_accepts_replacements_blocks_and_trims(
    seed: int,
) -> None:
    """Seeded random mix of independent payments, children, grandchildren, replacements of
    parents (taking their descendants) and of children, blocks mined from the template, all in a
    small pool that trims often: after every step the package sums, the heap and the rest of the
    bookkeeping agree with a recomputation from scratch."""
    rng = random.Random(seed)
    coins = list(base().coins)
    node = Node(policy=MempoolPolicy(max_bytes=12 * at_rate([coins[0]], 1).size()))
    spendable: list[Coin3] = []  # outputs of pool transactions (may be gone by now)
    for step in range(200):
        op = rng.random()
        try:
            if op < 0.35 and coins:
                tx = at_rate([coins.pop()], rng.randint(1, 30), outputs=2)
                node.mp.accept(tx)
                spendable += [out(tx, 0), out(tx, 1)]
            elif op < 0.65 and spendable:
                parent_out = spendable.pop(rng.randrange(len(spendable)))
                if parent_out[0].txid in node.mp.entries:
                    tx = at_rate([parent_out], rng.randint(1, 40), outputs=2)
                    node.mp.accept(tx)
                    spendable += [out(tx, 0), out(tx, 1)]
            elif op < 0.92 and node.mp.entries:
                victim = rng.choice(list(node.mp.entries.values()))
                coin = (victim.tx.inputs[0].prevout, victim.spent[0].output, base().coins[0][2])
                rate = int(victim.fee_rate) + rng.randint(2, 40)
                node.mp.accept(at_rate([coin], rate, extra=victim.fee + 1_000 * step))
            elif node.mp.entries:
                node.mine()
        except ValidationError as err:
            assert err.code in {
                codes.MEMPOOL_FULL, codes.INSUFFICIENT_FEE, codes.TOO_LONG_MEMPOOL_CHAIN,
                codes.TXN_MEMPOOL_CONFLICT, codes.BAD_TXNS_INPUTS_MISSINGORSPENT,
            }, err  # fmt: skip
        check_invariants(node.mp, node.store)
        check_eviction_index(node.mp)
