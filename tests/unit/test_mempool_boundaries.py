"""Mempool policy exactly at its boundaries (SPEC 3.2): replacing exactly the limit of
transactions is accepted and one more is refused; a coinbase spend is accepted exactly when the
*next* block may spend it, not the tip.

The node wiring (``Node``: a real chainstate on the base chain of ``test_mempool``, the mempool
subscribed to it) and the transaction builders come from ``tests/unit/test_mempool.py``; these
tests run on the memory store and on LevelDB as those do.

What each test catches (each checked by making the change in ``node/mempool.py``):
``len(evicted) > max_replacements`` written ``>=`` (or the default limit moved by one), and the
maturity height taken as the tip's instead of the next block's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consensus import OutPoint, Transaction
from consensus import errors as codes
from node.mempool import MempoolPolicy
from tests.helpers import REGTEST
from tests.stores import BACKENDS, Stores
from tests.unit.test_mempool import MINER, Coin3, Node, at_rate, base, out, pay, rejects

DOCUMENTED_LIMIT = 100
"""docs/DECISIONS.md: a replacement "that would evict more than 100 transactions" is refused;
the tests at this limit run on the default policy, so they pin the constant as well."""


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    Node.stores = Stores(request.param, tmp_path)
    yield request.param
    Node.stores.close_all()
    Node.stores = None


def conflicted(node: Node, count: int, extra_child: bool) -> tuple[list[Transaction], Transaction]:
    """``count`` mempool transactions, one a coin (plus, with ``extra_child``, a child of the
    first: one more to evict), and a replacement spending all ``count`` coins at a fee rate and
    absolute fee that beat them comfortably: only the eviction count can refuse it."""
    coins = node.coins[:count]
    victims = [at_rate([c], 2) for c in coins]
    for tx in victims:
        node.accept(tx)
    if extra_child:
        node.accept(at_rate([out(victims[0])], 3))
    evicted_fees = node.mp.total_fee
    size = pay(list(coins), 1_000).size()
    replacement = pay(list(coins), evicted_fees + 20 * size)
    assert replacement.size() == size
    return victims, replacement


@pytest.mark.parametrize("limit", [3, DOCUMENTED_LIMIT])
def test_replacing_exactly_the_limit_is_accepted(limit: int) -> None:
    policy = None if limit == DOCUMENTED_LIMIT else MempoolPolicy(max_replacements=limit)
    assert limit <= len(base().coins)
    node = Node(policy=policy)
    victims, replacement = conflicted(node, limit, extra_child=False)
    result = node.accept(replacement)
    assert set(result.replaced) == {t.txid() for t in victims} and len(result.replaced) == limit
    assert set(node.mp.entries) == {replacement.txid()}


@pytest.mark.parametrize("limit", [3, DOCUMENTED_LIMIT])
def test_replacing_one_over_the_limit_is_a_conflict(limit: int) -> None:
    policy = None if limit == DOCUMENTED_LIMIT else MempoolPolicy(max_replacements=limit)
    node = Node(policy=policy)
    _, replacement = conflicted(node, limit, extra_child=True)
    before = set(node.mp.entries)
    assert len(before) == limit + 1
    err = rejects(codes.TXN_MEMPOOL_CONFLICT, lambda: node.mp.accept(replacement))
    assert f"would replace {limit + 1} " in str(err)
    assert set(node.mp.entries) == before


def coinbase_coin(node: Node, height: int) -> Coin3:
    block = node.cs.get_block(node.cs.hash_at_height(height) or b"")
    assert block is not None
    cb = block.txs[0]
    return OutPoint(cb.txid(), 0), cb.outputs[0], MINER


def test_a_coinbase_spend_is_accepted_exactly_when_the_next_block_may_spend_it() -> None:
    """A coinbase of height h may be spent in a block at h + maturity. With the tip at t, the
    next block is t + 1: the coinbase of t + 1 - maturity is spendable, the one after is not,
    until one more block is mined. The block then mined with it connects (the chain agrees)."""
    node = Node()
    maturity = REGTEST.coinbase_maturity
    tip = node.cs.height
    ripe = coinbase_coin(node, tip + 1 - maturity)
    green = coinbase_coin(node, tip + 2 - maturity)
    rejects(
        codes.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
        lambda: node.mp.accept(pay([green], 1_000, to=MINER)),
    )
    ripe_spend = pay([ripe], 1_000, to=MINER)
    node.accept(ripe_spend)
    block = node.mine()  # the template: the chain must accept the spend at tip + 1
    assert ripe_spend in block.txs and node.cs.height == tip + 1
    green_spend = pay([green], 1_000, to=MINER)
    node.accept(green_spend)
    assert node.mine() and node.cs.get_tx_location(green_spend.txid()) is not None
