"""Fee estimates (SPEC 3.2, ``node.fees``): the floor on a fresh chain, the documented percentiles
of the fee rates confirmed by blocks at least half full, monotonicity in the target, the window,
and forgetting a disconnected block.

Blocks are mined with exactly chosen transactions (exact fee rates from ``at_rate``) on the mempool
tests' node wiring; ``max_block_size`` is passed to the estimator so small blocks count as full.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from client.models import TARGETS
from consensus import Transaction
from node.chainstate import Chainstate
from node.fees import FLOOR, WINDOW, FeeEstimator
from node.storage import MemoryStore
from tests.helpers import REGTEST, key, mine_block
from tests.unit.test_mempool import Coin3, Node, at_rate, pay

FRESH = {1: 1, 3: 1, 6: 1, 12: 1, 25: 1}


def with_estimator(max_block_size: int) -> tuple[Node, FeeEstimator]:
    node = Node()
    fees = FeeEstimator(max_block_size=max_block_size)
    node.cs.subscribe(fees.on_chain_event)
    return node, fees


def rated(coins: Sequence[Coin3], rates: Sequence[int]) -> list[Transaction]:
    return [at_rate([c], r) for c, r in zip(coins, rates, strict=True)]


def block_size(node: Node, txs: Sequence[Transaction]) -> int:
    """The size of the block ``node.mine(txs)`` would make (the coinbase amount aside, which
    keeps its encoding width here)."""
    cs = node.cs
    return mine_block(cs.tip.hash, cs.height + 1, txs, 0, key(0).pubkey_hash).size()


def assert_monotone(fees: FeeEstimator) -> None:
    values = [fees.estimate(t) for t in range(0, 60)]
    assert all(a >= b for a, b in itertools.pairwise(values)), values
    assert min(values) >= FLOOR


def test_a_fresh_regtest_chain_answers_the_floor_for_every_target() -> None:
    cs = Chainstate(MemoryStore(), REGTEST, clock=lambda: 2**31, sync=False)
    fees = FeeEstimator()
    cs.subscribe(fees.on_chain_event)
    assert fees.estimates() == FRESH and FLOOR == 1 and tuple(FRESH) == TARGETS
    for target in (0, 1, 2, 5, 30, 1000):
        assert fees.estimate(target) == FLOOR
    # Blocks with room to spare (the base chain's, under the real block size) change nothing.
    node, fees = with_estimator(1_000_000)
    node.mine(rated(node.coins[:3], [50, 60, 70]))
    assert fees.estimates() == FRESH


def test_estimates_follow_the_documented_percentiles() -> None:
    node = Node()
    coins = node.coins
    first, second = rated(coins[:11], range(1, 12)), rated(coins[11:21], range(12, 22))
    size1, size2 = block_size(node, first), block_size(node, second)
    limit = 2 * min(size1, size2)  # the smaller block is exactly half full
    fees = FeeEstimator(max_block_size=limit)
    node.cs.subscribe(fees.on_chain_event)
    node.mine(first)
    node.mine(second)
    lone = rated(coins[21:22], [500])  # less than half full: says nothing
    assert block_size(node, lone) < limit / 2
    node.mine(lone)
    # 21 rates 1..21: 75th, 50th, 25th, 10th, 5th percentiles (nearest rank: 16, 11, 6, 3, 2)
    assert fees.estimates() == {1: 16, 3: 11, 6: 6, 12: 3, 25: 2}
    # A target between two uses the nearest one below; beyond 25 is 25's; below 1 is 1's.
    assert [fees.estimate(t) for t in (0, 2, 4, 5, 7, 11, 13, 24, 26, 1000)] == [
        16, 16, 11, 11, 6, 6, 3, 3, 2, 2,
    ]  # fmt: skip
    assert_monotone(fees)


def test_a_block_just_under_half_full_is_ignored() -> None:
    node = Node()
    txs = rated(node.coins[:5], [40, 40, 40, 40, 40])
    size = block_size(node, txs)
    exactly_half, just_under = (
        FeeEstimator(max_block_size=2 * size),
        FeeEstimator(max_block_size=2 * size + 2),
    )
    node.cs.subscribe(exactly_half.on_chain_event)
    node.cs.subscribe(just_under.on_chain_event)
    node.mine(txs)
    assert exactly_half.estimates() == dict.fromkeys(TARGETS, 40)
    assert just_under.estimates() == FRESH


def test_estimates_never_go_below_the_floor() -> None:
    node = Node()
    coins = node.coins
    # Consensus takes transactions paying nothing or under a unit per byte; policy would not.
    cheap = [pay([c], 0) for c in coins[:6]] + [pay([c], 50) for c in coins[6:12]]
    node_size = block_size(node, cheap)
    fees = FeeEstimator(max_block_size=node_size)
    node.cs.subscribe(fees.on_chain_event)
    node.mine(cheap)
    assert fees.estimates() == FRESH
    assert_monotone(fees)


def test_only_the_last_window_of_blocks_counts() -> None:
    node = Node()
    coins = list(node.coins)
    rich = rated(coins[:10], [1000] * 10)
    one = rated(coins[10:11], [2])
    fees = FeeEstimator(max_block_size=2 * block_size(node, one))
    node.cs.subscribe(fees.on_chain_event)
    node.mine(rich)
    for n in range(WINDOW - 1):
        node.mine(rated(coins[10 + n : 11 + n], [2]))
    # 10 rates of 1000 and 24 of 2 in the window: the 75th percentile is 1000.
    assert fees.estimate(1) == 1000 and fees.estimate(25) == 2
    node.mine(rated(coins[10 + WINDOW - 1 : 11 + WINDOW - 1], [2]))
    assert fees.estimates() == dict.fromkeys(TARGETS, 2)


def test_a_disconnected_block_is_forgotten() -> None:
    node = Node()
    coins = node.coins
    kept = rated(coins[:11], range(1, 12))
    gone = rated(coins[11:22], range(100, 111))
    fees = FeeEstimator(max_block_size=2 * block_size(node, kept))
    node.cs.subscribe(fees.on_chain_event)
    node.mine(kept)
    before = fees.estimates()
    fork = node.cs.tip
    node.mine(gone)
    assert fees.estimates() != before and fees.estimate(1) >= 100
    # Two empty blocks on ``fork`` (more work) take ``gone`` off the chain.
    other = key(9).pubkey_hash
    b1 = mine_block(fork.hash, fork.height + 1, [], fork.header.time + 61, other)
    b2 = mine_block(b1.hash(), fork.height + 2, [], fork.header.time + 122, other)
    node.cs.process_block(b1)
    assert node.cs.process_block(b2).status == "active"
    assert node.cs.hash_at_height(fork.height + 1) == b1.hash()
    assert fees.estimates() == before
    assert_monotone(fees)
