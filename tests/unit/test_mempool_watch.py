"""What the mempool tells its watchers (``Mempool.watch``, for the event stream of SPEC 3.6).

On a real ``Chainstate`` and mempool wired as the node wires them (``tests.unit.test_mempool``).
Each change of the pool's contents is told once, with the honest reason: ``confirmed`` (a
block mined it), ``conflict`` (a block spent its input; its descendants with it), ``replaced``
(replace-by-fee, descendants included), ``evicted`` (a full pool), ``expired``; a refused
attempt tells nothing. After a reorganisation only the net changes are told: the transactions
of the disconnected block that come back are ``added``, the entries kept are not told again, and
one that cannot come back because its coinbase left the chain is ``reorg``; a transaction of the
disconnected block that the winning branch double-spends is ``conflict``.
"""

from __future__ import annotations

from consensus import Coin, Transaction, TxOut
from consensus import errors as codes
from node.mempool import MempoolEntry, MempoolPolicy
from tests.helpers import key, spend
from tests.unit.test_mempool import (
    NOW,
    Node,
    at_rate,
    backend,  # noqa: F401  (the autouse fixture: every test on both backends)
    builder_on_base,
    out,
    rejects,
)

DAY = 24 * 60 * 60


class Watcher:
    def __init__(self) -> None:
        self.told: list[tuple[str, bytes, str]] = []

    def added(self, entry: MempoolEntry) -> None:
        self.told.append(("added", entry.txid, ""))

    def removed(self, tx: Transaction, spent: tuple[Coin, ...], reason: str) -> None:
        self.told.append(("removed", tx.txid(), reason))

    def take(self) -> list[tuple[str, bytes, str]]:
        told, self.told = self.told, []
        return told


def watched(node: Node) -> Watcher:
    w = Watcher()
    node.mp.watch(w)
    return w


def test_added_confirmed_and_conflicting_with_a_block() -> None:
    node = Node()
    w = watched(node)
    a = at_rate([node.coins[0]], 2)
    child = at_rate([out(a)], 2)
    doomed = at_rate([node.coins[1]], 2)
    doomed_child = at_rate([out(doomed)], 2)
    for tx in (a, child, doomed, doomed_child):
        node.accept(tx)
    assert w.take() == [("added", t.txid(), "") for t in (a, child, doomed, doomed_child)]
    rival = at_rate([node.coins[1]], 5)  # spends doomed's coin, mined without the pool
    node.mine([a, rival])
    assert sorted(w.take()) == sorted(
        [
            ("removed", a.txid(), "confirmed"),
            ("removed", doomed.txid(), "conflict"),
            ("removed", doomed_child.txid(), "conflict"),
        ]
    )
    assert set(node.mp.entries) == {child.txid()}


def test_replaced_with_descendants_and_a_refusal_tells_nothing() -> None:
    node = Node()
    w = watched(node)
    first = at_rate([node.coins[0]], 2)
    kid = at_rate([out(first)], 2)
    node.accept(first)
    node.accept(kid)
    w.take()
    too_cheap = at_rate([node.coins[0]], 2, extra=1)
    rejects(codes.INSUFFICIENT_FEE, lambda: node.mp.accept(too_cheap))
    assert w.take() == []
    better = at_rate([node.coins[0]], 10)
    node.accept(better)
    told = w.take()
    assert sorted(told[:2]) == sorted(
        [("removed", first.txid(), "replaced"), ("removed", kid.txid(), "replaced")]
    )
    assert told[2:] == [("added", better.txid(), "")]


def test_evicted_and_expired() -> None:
    probe = at_rate([Node().coins[0]], 2)
    node = Node(policy=MempoolPolicy(max_bytes=2 * probe.size() + 10))
    w = watched(node)
    cheap = at_rate([node.coins[0]], 1)
    node.accept(cheap)
    node.now = NOW + DAY
    node.accept(at_rate([node.coins[1]], 3))
    w.take()
    rich = at_rate([node.coins[2]], 5)
    node.accept(rich)
    assert w.take() == [("added", rich.txid(), ""), ("removed", cheap.txid(), "evicted")]
    node.mp.expire(NOW + 14 * DAY + DAY + 1)
    assert sorted(r for _, _, r in w.take()) == ["expired", "expired"]


def test_after_a_reorganisation_only_the_net_changes() -> None:
    node = Node()
    coins = node.coins
    returning = at_rate([coins[0]], 3)  # in the block that the rival branch takes away
    double_spent = at_rate([coins[1]], 3)  # in that block; the rival branch spends its coin
    node.mine([returning, double_spent])
    kept = at_rate([coins[2]], 2)  # in the pool all along
    node.accept(kept)
    # A child of ``double_spent``: its parent cannot come back (the rival branch spends the same
    # coin), so neither can it.
    orphaned = at_rate([out(double_spent)], 2)
    node.accept(orphaned)
    w = watched(node)

    rival = builder_on_base()
    rival.miner = key(9)
    thief = spend([coins[1]], [TxOut(coins[1][1].amount - 5_000, key(8).pubkey_hash)])
    rival.add(rival.next_block([thief], fees=5_000))
    rival.grow(1)
    for block in rival.blocks[-2:]:
        node.cs.process_block(block)
    assert node.cs.tip.hash == rival.blocks[-1].hash()
    told = w.take()
    assert ("added", returning.txid(), "") in told
    assert ("removed", double_spent.txid(), "conflict") in told
    assert ("removed", orphaned.txid(), "reorg") in told
    assert not any(txid == kept.txid() for _, txid, _ in told)  # kept: nothing to say
    assert len(told) == 3
    assert set(node.mp.entries) == {returning.txid(), kept.txid()}


def test_a_clear_by_hand_tells_each_removal_children_first() -> None:
    """Regression: ``Mempool.clear`` (the devnet's ``mempool clear``) emptied the pool without
    telling the watchers, so event-stream clients kept transactions that were gone."""
    node = Node()
    w = watched(node)
    parent = at_rate([node.coins[0]], 2)
    child = at_rate([out(parent)], 2)
    other = at_rate([node.coins[1]], 3)
    for tx in (parent, child, other):
        node.accept(tx)
    w.take()
    assert node.mp.clear() == 3
    told = w.take()
    assert sorted(told) == sorted(("removed", t.txid(), "evicted") for t in (parent, child, other))
    order = [txid for _, txid, _ in told]
    assert order.index(child.txid()) < order.index(parent.txid())
    assert node.mp.entries == {}
