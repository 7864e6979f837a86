"""The mempool remembers recent replacements (issue 15 point 7; SPEC 3.5 ``replaced_by``).

After RBF or ``bump-fee`` the original txid used to be unknown to the node. ``Mempool.replaced``
now keeps, for a bounded time, each replaced transaction (with the coins it spent) and the txid
of the transaction that replaced it directly. Bounds: entries, serialized bytes, age (the policy
fields ``replaced_max_*``; defaults 10,000, 10 MB, 24 hours: docs/DECISIONS.md).

Wiring and transaction builders come from ``tests.unit.test_mempool``.
"""

from __future__ import annotations

from consensus import errors as codes
from node.mempool import MempoolPolicy
from tests.unit.test_mempool import DAY, Node, at_rate, base, out, rejects


def test_a_replacement_records_its_victim_and_the_victims_descendants() -> None:
    coins = base().coins
    node = Node()
    original = at_rate([coins[0]], 2, outputs=2)
    child = at_rate([out(original, 1)], 2)
    node.accept(original)
    node.accept(child)
    replacement = at_rate([coins[0]], 10)
    result = node.mp.accept(replacement)
    assert set(result.replaced) == {original.txid(), child.txid()}
    for victim in (original, child):
        record = node.mp.replaced_by(victim.txid())
        assert record is not None
        assert record.by == replacement.txid()
        assert record.entry.tx == victim
        assert record.time == node.now
    # The coins it spent are kept: the API shows its inputs and fee.
    record = node.mp.replaced_by(original.txid())
    assert record is not None and record.entry.fee == 2 * original.size()
    assert node.mp.replaced_bytes == original.size() + child.size()
    assert node.mp.replaced_by(replacement.txid()) is None


def test_a_chain_of_replacements_names_the_direct_replacer() -> None:
    coins = base().coins
    node = Node()
    a = at_rate([coins[0]], 2)
    b = at_rate([coins[0]], 5, extra=1)
    c = at_rate([coins[0]], 9, extra=2)
    node.accept(a)
    node.accept(b)
    node.accept(c)
    by = {t: node.mp.replaced_by(t) for t in (a.txid(), b.txid())}
    assert by[a.txid()] is not None and by[a.txid()].by == b.txid()
    assert by[b.txid()] is not None and by[b.txid()].by == c.txid()
    assert node.mp.replaced_by(c.txid()) is None


def test_a_refused_replacement_records_nothing() -> None:
    coins = base().coins
    node = Node()
    original = at_rate([coins[0]], 5)
    node.accept(original)
    rejects(codes.INSUFFICIENT_FEE, lambda: node.mp.accept(at_rate([coins[0]], 4, extra=1)))
    assert node.mp.replaced == {} and node.mp.replaced_bytes == 0


def test_the_table_is_bounded_in_entries() -> None:
    coins = base().coins
    node = Node(policy=MempoolPolicy(replaced_max_entries=3))
    victims = []
    for i in range(5):
        tx = at_rate([coins[i]], 2)
        node.accept(tx)
        node.accept(at_rate([coins[i]], 9, extra=1))
        victims.append(tx.txid())
    assert list(node.mp.replaced) == victims[2:], "the oldest should be forgotten first"
    assert node.mp.replaced_bytes == sum(e.entry.size for e in node.mp.replaced.values())


def test_the_table_is_bounded_in_bytes() -> None:
    coins = base().coins
    size = at_rate([coins[0]], 2).size()
    node = Node(policy=MempoolPolicy(replaced_max_bytes=2 * size + size // 2))
    victims = []
    for i in range(4):
        tx = at_rate([coins[i]], 2)
        node.accept(tx)
        node.accept(at_rate([coins[i]], 9, extra=1))
        victims.append(tx.txid())
        assert node.mp.replaced_bytes <= node.mp.policy.replaced_max_bytes
    assert list(node.mp.replaced) == victims[2:]


def test_the_table_forgets_after_its_age() -> None:
    coins = base().coins
    node = Node()
    old = at_rate([coins[0]], 2)
    node.accept(old)
    node.accept(at_rate([coins[0]], 9, extra=1))
    node.now += DAY - 1
    recent = at_rate([coins[1]], 2)
    node.accept(recent)
    node.accept(at_rate([coins[1]], 9, extra=1))
    assert node.mp.replaced_by(old.txid()) is not None
    node.now += 2  # ``old`` is now older than a day; ``recent`` is not
    assert node.mp.replaced_by(old.txid()) is None
    assert node.mp.replaced_by(recent.txid()) is not None
    assert list(node.mp.replaced) == [recent.txid()]
    assert node.mp.replaced_bytes == recent.size()
    node.now += DAY
    assert node.mp.replaced_by(recent.txid()) is None
    assert node.mp.replaced_bytes == 0
