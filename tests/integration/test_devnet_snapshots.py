"""The devnet toolkit's snapshots and partitions on real ``tally-node`` processes (SPEC 6).

- Snapshot at height H with transactions in the mempool, then more blocks and transactions, then
  revert: tip, ``utxo-set-info``, an address's index and the mempool are what they were; the
  snapshot is kept; the node then mines, accepts a transaction, serves a new peer and follows
  its blocks, and restarts at the same state. An unknown name is a 404, a bad one a 400.
- A reverted node refuses its peers of before until they revert too (or ``heal``): nodes
  reverted one after another end exactly at the snapshot; one reverted alone gets back, once
  healed, what its peer has and it lost.
- Two connected nodes, one partitioned from the other: each mines, no block crosses in either
  direction (the other's P2P requests are refused 403 ``partitioned``), heights diverge; after
  ``heal`` both are on the chain with more work.
- The routes need the token (401) and regtest (403 ``not-allowed`` on the test network).

Driven through ``client.http.Client``, the typed methods ``tally-devnet`` uses.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from client.http import Client, NodeError
from node.p2p import messages as m
from tests.functional.node_process import NodeProcess, address_of, http
from tests.helpers import key
from tests.integration.fake_peer import (
    API,
    Cluster,
    coinbase_coin,
    connected,
    height,
    mempool,
    ok,
    p2p_post,
    pay,
    peers,
    submit_tx,
    tip,
    tx_status,
    utxo_info,
)

K0, K1 = key(0), key(1)
A0, A1 = address_of(K0.pubkey_hash), address_of(K1.pubkey_hash)


def admin(node: NodeProcess) -> Client:
    return Client(node.url, token=node.token)


def state(node: NodeProcess) -> tuple[str, dict[str, object], list[str], dict[str, object]]:
    """Tip, UTXO set, mempool txids in acceptance order, and one address's index."""
    txids: list[str] = ok(node.get(f"{API}/mempool/txids"))
    return tip(node), utxo_info(node), txids, ok(node.get(f"{API}/address/{A1}"))


def test_revert_puts_chain_utxos_indexes_and_mempool_back(cluster: Cluster) -> None:
    a = cluster.start("a")
    a.generate(103, A0)  # the coinbases of heights 1..3 are spendable in block 104
    t1 = submit_tx(a, pay(coinbase_coin(a, 1, K0), K1))
    t2 = submit_tx(a, pay(coinbase_coin(a, 2, K0), K1))
    at_snapshot = state(a)
    assert at_snapshot[2] == [t1, t2]
    taken = admin(a).snapshot("before.1")
    assert (taken.name, taken.height, taken.best_hash) == ("before.1", 103, at_snapshot[0])

    a.generate(2, A0)  # confirms t1 and t2
    t3 = submit_tx(a, pay(coinbase_coin(a, 3, K0), K1))
    assert mempool(a) == {t3} and height(a) == 105
    assert state(a) != at_snapshot

    reverted = admin(a).revert("before.1")
    assert reverted == taken
    assert state(a) == at_snapshot
    assert tx_status(a, t3) is None
    status = tx_status(a, t1)
    assert status is not None and status["confirmed"] is False
    listed = admin(a).snapshots()
    assert [(s.name, s.height, s.best_hash) for s in listed] == [("before.1", 103, taken.best_hash)]

    with pytest.raises(NodeError) as unknown:
        admin(a).revert("never-taken")
    assert (unknown.value.status, unknown.value.code) == (404, "not-found")
    with pytest.raises(NodeError) as bad:
        admin(a).snapshot("../escape")
    assert bad.value.status == 400
    assert state(a) == at_snapshot

    # The node keeps working: it mines (t1 and t2 go into the block), accepts a transaction,
    # serves a new peer the reverted chain and its mempool, and follows that peer's blocks.
    (mined,) = a.generate(1, A0)
    assert ok(a.get(f"{API}/block/{mined}"))["tx_count"] == 3
    t4 = submit_tx(a, pay(coinbase_coin(a, 4, K0), K1))
    b = cluster.start("b", "--peer", a.url)
    cluster.wait(lambda: tip(b) == mined and mempool(b) == {t4}, "b to sync a's reverted chain")
    (from_b,) = b.generate(1, A1)
    cluster.wait(lambda: tip(a) == from_b and not mempool(a), "a to take b's block with t4")
    assert utxo_info(a) == utxo_info(b)

    # What the revert wrote is what a restart opens.
    after = state(a)
    a.stop()
    a.start()
    assert state(a) == after
    cluster.check_logs()


def test_partition_splits_two_nodes_and_heal_joins_them_on_the_most_work(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b", "--peer", a.url)
    cluster.wait(lambda: a.url in connected(b) and b.url in connected(a), "a and b connected")
    a.generate(5, A0)
    cluster.wait(lambda: height(b) == 5, "b at height 5")

    assert admin(a).partition([b.url + "/"]).partitioned == [b.url]
    assert b.url not in connected(a)
    assert peers(a)["partitioned"] == [b.url]
    refused = p2p_post(a.url, "handshake", m.encode({}), b.url)  # b's requests: refused
    assert (refused.status, refused.json()["error"]["code"]) == (403, "partitioned")

    from_a = a.generate(2, A0)
    from_b = b.generate(4, A1)
    time.sleep(2)  # 40 relay intervals: time enough for a block to cross, were it allowed
    assert (height(a), height(b)) == (7, 9)
    assert a.get(f"{API}/block/{from_b[-1]}").status == 404
    assert b.get(f"{API}/block/{from_a[-1]}").status == 404
    assert b.url not in connected(a)

    healed = admin(a).heal()
    assert (healed.healed, healed.reconnected) == ([b.url], [b.url])
    cluster.wait(lambda: tip(a) == tip(b) == from_b[-1], "a to reorganise onto b's longer chain")
    assert utxo_info(a) == utxo_info(b)
    assert peers(a)["partitioned"] == []
    cluster.check_logs()


def test_the_routes_need_the_token_and_regtest(tmp_path: Path) -> None:
    routes = [
        ("POST", "/admin/snapshot", b'{"name": "a"}'),
        ("GET", "/admin/snapshots", None),
        ("POST", "/admin/revert", b'{"name": "a"}'),
        ("POST", "/admin/partition", b'{"peers": ["http://127.0.0.1:1"]}'),
        ("POST", "/admin/heal", b"{}"),
    ]
    with NodeProcess(tmp_path / "t", network="test") as t, NodeProcess(tmp_path / "r") as r:
        for method, path, body in routes:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            no_token = http(f"{r.url}{API}{path}", method, body, headers)
            assert (no_token.status, no_token.json()["error"]["code"]) == (401, "unauthorized")
            headers["Authorization"] = f"Bearer {t.token}"
            refused = http(f"{t.url}{API}{path}", method, body, headers)
            assert refused.status == 403, (path, refused.body)
            assert refused.json()["error"]["code"] == "not-allowed", path
        assert not (tmp_path / "t" / "snapshots").exists() or not any(
            (tmp_path / "t" / "snapshots").iterdir()
        )


def test_a_reverted_node_holds_off_its_peer_until_heal_then_gets_back_what_it_lost(
    cluster: Cluster,
) -> None:
    """Only b reverts. It refuses a (still in the session of before) instead of syncing back at
    once what the revert undid; after ``heal`` it takes a's block and transaction again: a,
    which saw b get both before, does not go on believing b has them (b's new nonce)."""
    a = cluster.start("a")
    b = cluster.start("b", "--peer", a.url)
    cluster.wait(lambda: a.url in connected(b) and b.url in connected(a), "a and b connected")
    a.generate(101, A0)
    cluster.wait(lambda: height(b) == 101, "b at height 101")
    at_snapshot = state(b)
    admin(b).snapshot("s")
    (block,) = a.generate(1, A0)
    t = submit_tx(a, pay(coinbase_coin(a, 1, K0), K1))
    cluster.wait(lambda: tip(b) == block and mempool(b) == {t}, "b to get the block and t")

    assert admin(b).revert("s").height == 101
    time.sleep(2)  # a's pings and announcements would have reached b by now
    assert state(b) == at_snapshot
    assert admin(b).heal().healed == [a.url]
    cluster.wait(
        lambda: tip(b) == block and mempool(b) == {t}, "b to fetch the block and t again from a"
    )
    cluster.check_logs()


def test_nodes_reverted_one_after_another_end_exactly_at_the_snapshot(cluster: Cluster) -> None:
    """As ``tally-devnet revert`` does it: each node in turn, no partition. The node reverted
    first takes nothing back from the one not reverted yet; healed, they work together again."""
    a = cluster.start("a")
    b = cluster.start("b", "--peer", a.url)
    cluster.wait(lambda: a.url in connected(b) and b.url in connected(a), "a and b connected")
    a.generate(102, A0)
    cluster.wait(lambda: height(b) == 102, "b at 102")  # then t1 is valid there when announced
    t1 = submit_tx(a, pay(coinbase_coin(a, 1, K0), K1))
    cluster.wait(lambda: mempool(b) == {t1}, "b with t1")
    at_snapshot = state(a)
    assert state(b) == at_snapshot
    for node in (a, b):
        admin(node).snapshot("s")
    a.generate(2, A0)
    cluster.wait(lambda: height(b) == 104, "b at 104")
    t3 = submit_tx(a, pay(coinbase_coin(a, 3, K0), K1))  # valid on the snapshot's chain too
    cluster.wait(lambda: mempool(b) == {t3}, "b with t3")

    for node in (a, b):
        admin(node).revert("s")
    time.sleep(2)
    assert state(a) == state(b) == at_snapshot
    for node in (a, b):  # ends the hold at once (else it ends by itself, policy.REVERT_HOLD)
        admin(node).heal()
    cluster.wait(lambda: b.url in connected(a) and a.url in connected(b), "a and b reconnected")
    (mined,) = b.generate(1, A1)  # t1 goes into it, and the block crosses
    cluster.wait(lambda: tip(a) == mined and not mempool(a), "a to take b's block")
    cluster.check_logs()
