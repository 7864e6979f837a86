"""Orphan transactions a peer sends a real node are held within the pool's byte bound (issue 17,
item 7, transaction half).

A hundred orphan transactions of 1 MB sent to a node took it to 787 MiB: the pool held up to 100
decoded transactions, whatever their size. Here a fake peer announces 120 transactions of about
90 KB (under the standard size) whose parents the node has never seen, plus one of 150 KB; the
node fetches them all. Then the parents are submitted: the node adopts exactly the orphans it
still holds. Those must be the newest that fit ``max_orphan_bytes`` (4,000,000: 44 of them, far
fewer than the count bound of 100), the non-standard one is not among them, and the node's
resident memory grew by much less than 120 decoded transactions would take (about 100 MB).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from consensus import OutPoint, Transaction, TxOut
from consensus.policy import MAX_STANDARD_TX_SIZE
from node.mempool import MempoolPolicy
from tests.functional.node_process import address_of
from tests.functional.test_orphan_block_memory import rss_mb
from tests.helpers import key, spend
from tests.integration.fake_peer import (
    Cluster,
    coinbase_coin,
    connected,
    hx,
    mempool,
    submit_tx,
)

K0, K1 = key(0), key(1)
ORPHANS = 120
ORPHAN_SIZE = 90_000
GROWTH_LIMIT_MB = 60


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()


def padded_child(parent: Transaction, size: int) -> Transaction:
    """A child spending ``parent``'s only output, with outputs enough to be about ``size`` bytes
    and a fee of 2 units a byte."""
    coin = (OutPoint(parent.txid(), 0), parent.outputs[0], K1)
    one = len(TxOut(1000, K0.pubkey_hash).to_obj()[1]) + 6
    count = (size - 200) // one
    fee = 2 * size
    each = (parent.outputs[0].amount - fee) // count
    return spend([coin], [TxOut(each, K0.pubkey_hash)] * count)


def test_orphans_from_a_peer_are_bounded_in_bytes(cluster: Cluster) -> None:
    node = cluster.start("node")
    node.generate(101, address_of(K0.pubkey_hash))
    coin = coinbase_coin(node, 1, K0)
    fan = spend([coin], [TxOut((coin[1].amount - 100_000) // ORPHANS, K1.pubkey_hash)] * ORPHANS)
    submit_tx(node, fan)
    node.generate(1, address_of(K0.pubkey_hash))
    parents = [
        spend(
            [(OutPoint(fan.txid(), i), fan.outputs[i], K1)],
            [TxOut(fan.outputs[i].amount - 1000, K1.pubkey_hash)],
        )
        for i in range(ORPHANS)
    ]
    orphans = [padded_child(p, ORPHAN_SIZE) for p in parents]
    assert all(ORPHAN_SIZE - 100 < o.size() <= MAX_STANDARD_TX_SIZE for o in orphans)
    oversized = padded_child(
        spend(
            [(OutPoint(b"\x07" * 32, 0), TxOut(10**9, K1.pubkey_hash), K1)],
            [TxOut(10**9 - 1000, K1.pubkey_hash)],
        ),
        MAX_STANDARD_TX_SIZE + 50_000,
    )

    fake = cluster.fake()
    assert fake.handshake(node.url).status == 200
    cluster.wait(lambda: fake.url in connected(node), "the fake peer to be connected")
    assert node.proc is not None
    before = rss_mb(node.proc.pid)
    announced = [*orphans[:60], oversized, *orphans[60:]]
    for tx in announced:
        fake.offer_tx(tx.serialize(), tx.txid())
    for start in range(0, len(announced), 10):  # in order: the pool drops the oldest first
        chunk = [tx.txid() for tx in announced[start : start + 10]]
        assert fake.inv(node.url, "tx", chunk).status == 200
        cluster.wait(
            lambda chunk=chunk: all(
                any(r == "getdata" and h in msg.get("hashes", []) for r, msg in list(fake.requests))
                for h in chunk
            ),
            "the node to fetch the announced transactions",
        )
    grown = rss_mb(node.proc.pid) - before
    print(f"resident memory grew {grown:.1f} MB")
    assert not mempool(node), "orphans are not in the mempool before their parents come"

    for parent in parents:
        submit_tx(node, parent)
    pool = mempool(node)
    adopted = [n for n, o in enumerate(orphans) if hx(o.txid()) in pool]
    policy, held, total = MempoolPolicy(), 0, 0
    for orphan in reversed(orphans):  # the newest that fit the byte bound
        if total + orphan.size() > policy.max_orphan_bytes:
            break
        total += orphan.size()
        held += 1
    assert held < policy.max_orphans, "the byte bound, not the count, must be what binds"
    assert adopted == list(range(ORPHANS - held, ORPHANS)), (
        f"adopted {len(adopted)} orphans ({adopted[:3]}...), expected the newest {held}"
    )
    assert hx(oversized.txid()) not in pool
    assert grown < GROWTH_LIMIT_MB, f"memory grew {grown:.0f} MB for {ORPHANS} orphans"
    cluster.check_logs()
