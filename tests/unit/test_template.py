"""Block templates (SPEC 3.3): ancestor-package fee-rate order (child pays for parent), the size
limit, the coinbase amount, and a template that solves, passes ``check_block`` and connects.

The node wiring, the base chain and the exact-fee-rate transaction builders are the mempool
tests' (``tests/unit/test_mempool.py``).
"""

from __future__ import annotations

import pytest

from consensus import Block, bits_to_target, block_subsidy, check_block
from node.miner.template import COINBASE_RESERVE, build_template, select_transactions
from tests.helpers import REGTEST, key, solve
from tests.unit.test_mempool import Node, at_rate, out

PAYOUT = key(7)


def template_txids(node: Node, **kwargs: int) -> list[bytes]:
    t = build_template(node.cs, node.mp, PAYOUT.pubkey_hash, now=0, **kwargs)
    return [tx.txid() for tx in t.block.txs[1:]]


def test_child_pays_for_parent_before_a_mid_fee_transaction() -> None:
    node = Node()
    coins = node.coins
    low = at_rate([coins[0]], 2)
    parent = at_rate([coins[1]], 1)
    child = at_rate([out(parent)], 10)
    mid = at_rate([coins[2]], 3)
    rich_parent = at_rate([coins[3]], 20)
    poor_child = at_rate([out(rich_parent)], 1)
    for tx in (low, parent, child, mid, rich_parent, poor_child):
        node.accept(tx)
    # Packages: rich_parent 20; parent+child 5.5; mid 3; low 2; poor_child 1.
    expected = [rich_parent, parent, child, mid, low, poor_child]
    assert template_txids(node) == [tx.txid() for tx in expected]
    assert [e.txid for e in select_transactions(node.mp, 10**6)] == [tx.txid() for tx in expected]


def test_a_child_is_ranked_by_its_package_not_its_own_rate() -> None:
    node = Node()
    coins = node.coins
    parent = at_rate([coins[0]], 1)
    child = at_rate([out(parent)], 4)  # own rate 4, package (1 + 4) / 2 = 2.5
    mid = at_rate([coins[1]], 3)
    for tx in (parent, child, mid):
        node.accept(tx)
    assert template_txids(node) == [mid.txid(), parent.txid(), child.txid()]


def test_a_deep_chain_is_selected_parents_first_and_connects() -> None:
    node = Node()
    chain = []
    coin = node.coins[0]
    for n in range(25):
        tx = at_rate([coin], 25 - n)  # every child pays less than its parent
        node.accept(tx)
        chain.append(tx)
        coin = out(tx)
    single = at_rate([node.coins[1]], 12)
    node.accept(single)
    selected = template_txids(node)
    assert sorted(selected) == sorted([t.txid() for t in chain] + [single.txid()])
    positions = [selected.index(t.txid()) for t in chain]
    assert positions == sorted(positions)
    block = node.mine()
    assert len(block.txs) == 27 and len(node.mp) == 0


def test_the_size_limit_skips_a_package_that_does_not_fit_but_takes_a_later_one() -> None:
    node = Node()
    coins = node.coins
    big = at_rate([coins[0]], 30, outputs=20)  # best rate, but large
    parent = at_rate([coins[1]], 1)
    child = at_rate([out(parent)], 20)  # package rate ~10.5, two transactions
    small = at_rate([coins[2]], 2)
    for tx in (big, parent, child, small):
        node.accept(tx)
    assert small.size() < parent.size() + child.size() < big.size()
    budget = parent.size() + child.size() - 1  # neither big nor the package fits
    assert [e.txid for e in select_transactions(node.mp, budget)] == [small.txid()]
    t = build_template(
        node.cs, node.mp, PAYOUT.pubkey_hash, now=0, max_size=budget + COINBASE_RESERVE
    )
    assert [tx.txid() for tx in t.block.txs[1:]] == [small.txid()]
    assert t.block.size() <= budget + COINBASE_RESERVE
    assert t.fees == node.mp.entries[small.txid()].fee
    # Exactly room for the package: it goes first, then nothing else fits.
    exact = parent.size() + child.size()
    assert [e.txid for e in select_transactions(node.mp, exact)] == [parent.txid(), child.txid()]
    # Room for everything: all, best package first.
    everything = sum(e.size for e in node.mp.entries.values())
    assert [e.txid for e in select_transactions(node.mp, everything)] == [
        big.txid(),
        parent.txid(),
        child.txid(),
        small.txid(),
    ]
    assert select_transactions(node.mp, everything - 1) != select_transactions(node.mp, everything)


@pytest.mark.parametrize("at_halving", [False, True])
def test_the_coinbase_pays_subsidy_plus_fees_and_the_block_connects(at_halving: bool) -> None:
    node = Node()
    if at_halving:  # the template is for the first block of the second halving period
        while node.cs.height + 1 < REGTEST.halving_interval:
            node.mine([])
    coins = node.coins
    parent = at_rate([coins[0]], 3, outputs=2)
    txs = [parent, at_rate([out(parent, 1)], 7), at_rate([coins[1]], 2), at_rate([coins[2]], 5)]
    for tx in txs:
        node.accept(tx)
    fees = sum(e.fee for e in node.mp.entries.values())
    height = node.cs.height + 1
    t = build_template(node.cs, node.mp, PAYOUT.pubkey_hash, now=0, extra_nonce=5)
    assert t.height == height and t.fees == fees
    cb = t.block.txs[0]
    assert cb.is_coinbase() and len(cb.outputs) == 1
    assert cb.outputs[0].pubkey_hash == PAYOUT.pubkey_hash
    assert cb.outputs[0].amount == block_subsidy(height, REGTEST) + fees
    if at_halving:
        assert block_subsidy(height, REGTEST) == block_subsidy(height - 1, REGTEST) // 2
    assert int.from_bytes(cb.inputs[0].signature[:4], "little") == height
    block = Block(solve(t.block.header, REGTEST), t.block.txs)
    check_block(block, REGTEST)
    result = node.cs.process_block(block)
    assert result.status == "active" and result.height == height
    assert len(node.mp) == 0 and node.mp.total_bytes == 0
    assert node.cs.get_coin(out(cb)[0]) is not None


def test_header_fields() -> None:
    node = Node()
    node.accept(at_rate([node.coins[0]], 2))
    cs = node.cs
    mtp = cs.median_time_past()
    t = build_template(cs, node.mp, PAYOUT.pubkey_hash, now=0)
    h = t.block.header
    assert h.time == mtp + 1
    assert h.prev_hash == cs.tip.hash and h.nonce == 0
    assert h.bits == cs.next_block_bits() and t.target == bits_to_target(h.bits)
    later = build_template(cs, node.mp, PAYOUT.pubkey_hash, now=mtp + 5_000)
    assert later.block.header.time == mtp + 5_000
    # An extra nonce changes the coinbase, hence the merkle root.
    other = build_template(cs, node.mp, PAYOUT.pubkey_hash, now=0, extra_nonce=1)
    assert other.block.header.merkle_root != h.merkle_root


def test_no_mempool_gives_a_coinbase_only_block() -> None:
    node = Node()
    node.accept(at_rate([node.coins[0]], 2))
    t = build_template(node.cs, None, PAYOUT.pubkey_hash, now=0)
    assert len(t.block.txs) == 1 and t.fees == 0
    block = Block(solve(t.block.header, REGTEST), t.block.txs)
    assert node.cs.process_block(block).status == "active"
    assert len(node.mp) == 1
