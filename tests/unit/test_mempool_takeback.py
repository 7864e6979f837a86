"""The mempool takes back what a reorganisation or a restart hands it, and loses nothing valid
on a crash at any point of either (issue 17, items 3, 5 and 6).

On a real ``Chainstate`` wired as the node wires it (``tests.unit.test_mempool.Node``), on the
memory store and on LevelDB (a restart closes the directory and opens it again). A crash is a
``Crash`` (a ``BaseException``, which no handler of the node catches) raised at a chosen point:
the n-th transaction the take-back pass re-accepts, or a chain event while the chainstate is in
the middle of a reorganisation. The node is then restarted on the same store, as after a
``kill -9`` (which loses no write LevelDB made: the kernel keeps the process's page cache), and
the restored pool is compared with what an uncrashed node holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from consensus import Block, Transaction
from consensus import errors as codes
from node.chainstate.events import BlockDisconnected, ChainEvent
from node.mempool import AcceptResult
from tests.helpers import key
from tests.unit.test_mempool import (
    NOW,
    Node,
    at_rate,
    backend,  # noqa: F401  (the autouse fixture: every test on both backends)
    builder_on_base,
    check_invariants,
    out,
    rejects,
)


class Crash(BaseException):
    """The process dies here (nothing of the node catches a ``BaseException``)."""


def crash_on_accept(node: Node, after: int) -> None:
    """Make the mempool die when it is about to accept its ``after``-th transaction from now."""
    real = node.mp._accept_one
    calls = 0

    def accept_one(tx: Transaction, *args: object, **kwargs: object) -> AcceptResult:
        nonlocal calls
        calls += 1
        if calls > after:
            raise Crash(f"killed before accepting transaction {calls}")
        return real(tx, *args, **kwargs)  # type: ignore[arg-type]

    node.mp._accept_one = accept_one  # type: ignore[method-assign]


def rival_branch(blocks: int) -> list[Block]:
    """``blocks`` empty blocks on the base tip by another miner: more work than one block."""
    rival = builder_on_base()
    rival.miner = key(9)
    rival.grow(blocks)
    return rival.blocks[-blocks:]


@dataclass
class Scene:
    """A node whose tip block confirms ``returning`` (independent payments) while its pool holds
    ``pool`` (children of ``returning`` and chains of their own); ``rival`` overtakes the tip."""

    node: Node
    returning: list[Transaction]
    pool: list[Transaction]
    rival: list[Block]

    @property
    def everything(self) -> set[bytes]:
        """What must be in the pool after the rival branch wins: all of it, still valid."""
        return {t.txid() for t in self.returning + self.pool}


def scene(chains: int = 12, length: int = 8) -> Scene:
    node = Node()
    coins = node.coins
    returning = [at_rate([c], 3) for c in coins[:10]]
    node.mine(returning)
    pool: list[Transaction] = []
    for n, tx in enumerate(returning):  # children of the confirmed payments
        node.now = NOW + n
        child = at_rate([out(tx)], 2)
        node.accept(child)
        pool.append(child)
    for c in coins[10 : 10 + chains]:  # chains that never touch the reorganised block
        coin = c
        for _ in range(length):
            node.now += 1
            tx = at_rate([coin], 2)
            node.accept(tx)
            pool.append(tx)
            coin = out(tx)
    assert set(node.mp.entries) == {t.txid() for t in pool}
    return Scene(node, returning, pool, rival_branch(2))


def restart_and_load(node: Node) -> Node:
    restarted = node.restart()
    restarted.now = node.now
    restarted.mp.load()
    return restarted


# --- item 3: a crash in the middle of taking back ----------------------------------------------


@pytest.mark.parametrize("after", [0, 1, 9, 10, 40, 95])
def test_a_crash_while_taking_back_after_a_reorganisation_loses_nothing(after: int) -> None:
    """Killed after ``after`` re-acceptances of the pass (the 10 returning ones come first):
    the next start brings back every transaction, each with its entry time."""
    s = scene()
    node = s.node
    times = {t: e.time for t, e in node.mp.entries.items()}
    crash_on_accept(node, after)
    with pytest.raises(Crash):
        for block in s.rival:
            node.cs.process_block(block)
    assert node.cs.tip.hash == s.rival[-1].hash()

    restarted = restart_and_load(node)
    assert set(restarted.mp.entries) == s.everything, (
        f"{len(set(restarted.mp.entries) & s.everything)} of {len(s.everything)} came back"
    )
    for txid, when in times.items():
        assert restarted.mp.entries[txid].time == when
    check_invariants(restarted.mp, restarted.store)
    assert restarted.cs.returned_blocks() == []  # taken back, so forgotten


def test_a_reorganisation_cut_short_is_taken_back_at_the_next_start() -> None:
    """Killed just after the chainstate committed the first disconnection, before the mempool
    did anything: the reorganisation resumes while the chainstate opens (before the mempool
    subscribes), and ``load`` still takes back the disconnected block's transactions."""
    s = scene()
    node = s.node

    def die_on_disconnect(event: ChainEvent) -> None:
        if isinstance(event, BlockDisconnected):
            raise Crash("killed after the disconnection was committed")

    node.cs.subscribe(die_on_disconnect)
    with pytest.raises(Crash):
        node.cs.process_block(s.rival[0])
        node.cs.process_block(s.rival[1])

    restarted = restart_and_load(node)
    assert restarted.cs.tip.hash == s.rival[-1].hash(), "the reorganisation resumed at start-up"
    returned = {t.txid() for t in s.returning}
    assert returned <= set(restarted.mp.entries), (
        f"{len(returned & set(restarted.mp.entries))} of {len(returned)} returning came back"
    )
    assert set(restarted.mp.entries) == s.everything
    check_invariants(restarted.mp, restarted.store)


@pytest.mark.parametrize("after", [0, 3, 50])
def test_a_crash_while_restoring_loses_nothing(after: int) -> None:
    """Killed part-way through ``load`` itself: the start after that restores everything."""
    s = scene()
    for block in s.rival:
        s.node.cs.process_block(block)
    assert set(s.node.mp.entries) == s.everything
    first = s.node.restart()
    crash_on_accept(first, after)
    with pytest.raises(Crash):
        first.mp.load()
    again = restart_and_load(first)
    assert set(again.mp.entries) == s.everything
    check_invariants(again.mp, again.store)


def test_what_a_reorganisation_made_invalid_stays_out_after_a_crash() -> None:
    """The rival branch double-spends a returning payment's coin: after a crash in the pass,
    neither that payment nor its child comes back; everything else does."""
    s = scene(chains=2, length=3)
    node = s.node
    rival = builder_on_base()
    rival.miner = key(9)
    double = at_rate([node.coins[0]], 5)  # the coin of returning[0], paid elsewhere
    rival.add(rival.next_block([double], fees=double.size() * 5))
    rival.grow(1)
    crash_on_accept(node, 4)
    with pytest.raises(Crash):
        for block in rival.blocks[-2:]:
            node.cs.process_block(block)
    restarted = restart_and_load(node)
    gone = {s.returning[0].txid(), s.pool[0].txid()}  # the payment and its child
    assert set(restarted.mp.entries) == s.everything - gone
    check_invariants(restarted.mp, restarted.store)


# --- item 5: a clean restart after a reorganisation --------------------------------------------


def test_a_restart_after_a_reorganisation_restores_every_child_with_its_time() -> None:
    """Five payments confirmed, each with 24 children in the pool (120, at the limit of 25),
    then a reorganisation returns the payments with a later entry time than their children. A
    clean restart brings back all 125 (the orphan pool holds 100), children keeping their
    times."""
    node = Node()
    parents = [at_rate([c], 3, outputs=24) for c in node.coins[:5]]
    node.mine(parents)
    for p in parents:
        for i in range(24):
            node.now += 1
            node.accept(at_rate([out(p, i)], 2))
    node.now += 60
    for block in rival_branch(2):
        node.cs.process_block(block)
    assert len(node.mp) == 125
    times = {t: e.time for t, e in node.mp.entries.items()}
    assert max(times[p.txid()] for p in parents) > min(times.values())

    restarted = restart_and_load(node)
    assert len(restarted.mp) == 125, f"{len(restarted.mp)} of 125 restored"
    assert {t: e.time for t, e in restarted.mp.entries.items()} == times
    check_invariants(restarted.mp, restarted.store)


# --- item 6: a one-block reorganisation and chain limits ---------------------------------------


def chain_from(node: Node, coin: tuple, count: int) -> list[Transaction]:  # type: ignore[type-arg]
    txs = []
    for _ in range(count):
        tx = at_rate([coin], 2)
        txs.append(tx)
        coin = out(tx)
    return txs


def test_a_one_block_reorganisation_keeps_a_chain_longer_than_the_limit() -> None:
    """A chain of 35: the first 10 mined, 25 in the pool (the limit). A one-block
    reorganisation returns the 10: all 35 are kept (Core's reorg handling bypasses the chain
    limits), mined in order, and nothing new may extend the over-long chain meanwhile."""
    node = Node()
    chain = chain_from(node, node.coins[0], 36)
    node.mine(chain[:10])
    for tx in chain[10:35]:
        node.accept(tx)
    rejects(codes.TOO_LONG_MEMPOOL_CHAIN, lambda: node.mp.accept(chain[35]))
    for block in rival_branch(2):
        node.cs.process_block(block)
    assert set(node.mp.entries) == {t.txid() for t in chain[:35]}, f"{len(node.mp)} of 35 kept"
    check_invariants(node.mp, node.store)
    rejects(codes.TOO_LONG_MEMPOOL_CHAIN, lambda: node.mp.accept(chain[35]))
    # A restart keeps the whole chain too.
    restarted = restart_and_load(node)
    assert set(restarted.mp.entries) == {t.txid() for t in chain[:35]}
    block = restarted.mine()
    mined = [t.txid() for t in block.txs[1:]]
    assert mined[:2] == [chain[0].txid(), chain[1].txid()]
