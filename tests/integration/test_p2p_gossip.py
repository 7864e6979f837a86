"""Gossip and discovery between real ``tally-node`` processes on loopback (SPEC 3.4).

- Five nodes started in a line (each ``--peer`` the previous one): transactions submitted at one
  end reach every mempool, blocks mined at either end reach every node, and the
  ``tally_p2p_downloaded_total`` counters show each body downloaded exactly once per node that
  did not make it (announcements by hash, ``getdata`` only for what is missing). Discovery may
  add links beyond the line while this runs; at most once must hold whatever the topology.
- A node given one peer learns the other nodes' addresses through ``addr`` and connects to them.
"""

from __future__ import annotations

from itertools import pairwise

from consensus import OutPoint
from tests.functional.node_process import address_of
from tests.helpers import key
from tests.integration.fake_peer import (
    API,
    Cluster,
    coinbase_coin,
    connected,
    downloaded,
    height,
    mempool,
    ok,
    pay,
    submit_tx,
    tip,
    tx_status,
    utxo_info,
)

K0, K1, K2 = key(0), key(1), key(2)
A0, A1 = address_of(K0.pubkey_hash), address_of(K1.pubkey_hash)


def test_line_of_five_relays_every_object_once(cluster: Cluster) -> None:
    first = cluster.start("n0")
    first.generate(105, A0)  # coinbases 1..5 are spendable in block 106
    line = [first]
    for i in range(1, 5):
        line.append(cluster.start(f"n{i}", "--peer", line[-1].url))
    for prev, node in pairwise(line):
        cluster.wait(lambda n=node, p=prev: p.url in connected(n), f"{node.url} -> {prev.url}")
    start_tip = tip(first)
    cluster.wait(lambda: all(tip(n) == start_tip for n in line), "the line to sync block 105")
    before = {n.url: (downloaded(n, "tx"), downloaded(n, "block")) for n in line}

    # Transactions from one end: four independent ones and a child of the first.
    txs = [pay(coinbase_coin(first, h, K0), K1, parts=2) for h in range(1, 5)]
    child = pay((OutPoint(txs[0].txid(), 0), txs[0].outputs[0], K1), K2)
    txs.append(child)
    txids = {submit_tx(first, tx) for tx in txs}
    cluster.wait(lambda: all(mempool(n) == txids for n in line), "the 5 transactions everywhere")

    # A block from the other end carries them all back.
    last = line[-1]
    (mined,) = last.generate(1, A1)
    assert ok(last.get(f"{API}/block/{mined}"))["tx_count"] == 1 + len(txs)
    cluster.wait(lambda: all(tip(n) == mined for n in line), "block 106 everywhere")
    cluster.wait(lambda: all(not mempool(n) for n in line), "mempools emptied by block 106")
    for n in line:
        for txid in txids:
            status = tx_status(n, txid)
            assert status is not None and status["confirmed"], (n.url, txid, status)

    # A burst of blocks from the first end.
    burst = first.generate(3, A0)
    cluster.wait(lambda: all(tip(n) == burst[-1] for n in line), "blocks 107..109 everywhere")
    assert {height(n) for n in line} == {109}
    assert len({utxo_info(n)["hash"] for n in line}) == 1

    for n in line:
        got_tx = downloaded(n, "tx") - before[n.url][0]
        got_block = downloaded(n, "block") - before[n.url][1]
        want_tx = 0 if n is first else len(txs)
        want_block = (0 if n is last else 1) + (0 if n is first else len(burst))
        assert (got_tx, got_block) == (want_tx, want_block), (
            f"{n.datadir.name}: downloaded {got_tx} tx / {got_block} block bodies, "
            f"expected {want_tx} / {want_block}\n{cluster.logs()}"
        )
    cluster.check_logs()


def test_node_given_one_peer_discovers_the_others(cluster: Cluster) -> None:
    hub = cluster.start("hub")
    others = [cluster.start(f"o{i}", "--peer", hub.url) for i in range(3)]
    for o in others:
        cluster.wait(lambda o=o: o.url in connected(hub), f"{o.url} connected to the hub")
    newcomer = cluster.start("new", "--peer", hub.url)
    want = {hub.url, *(o.url for o in others)}
    cluster.wait(lambda: want <= connected(newcomer), "the newcomer to connect to every node")
    for o in others:
        cluster.wait(lambda o=o: newcomer.url in connected(o), f"{o.url} to see the newcomer")
    outbound = {
        p["url"]
        for p in ok(newcomer.get(f"{API}/peers"))["connected"]
        if p["direction"] == "outbound"
    }
    assert want <= outbound, outbound
    cluster.check_logs()
