"""Ten nodes, ten network namespaces, delayed links: relay across nine hops (SPEC 7; issue 22).

The small version of ``scripts/bench/bench_fifty.py``, on the same harness
(``tests/integration/netns.py``): 10 real ``tally-node run`` processes, each in its own
namespace with its own address, in a line (node 0 .. node 9, 9 hops end to end), every link
delayed 20 ms ± 5 ms by the harness's user-space delayer (this kernel has no netem). Packets to a
node that is not a neighbour in the line are refused by the router, so the address exchange
cannot shorten the line: each object crosses every hop.

Asserted (no timing, apart from the delay being real: a round trip over a link takes at least
twice the smallest one-way delay, which no slow machine makes shorter):
- the line forms and stays a line (each node connected to exactly its neighbours, before and
  after);
- 101 blocks mined at node 0 reach node 9; a transaction posted at node 9 reaches all 10
  mempools; the block mined at node 0 that confirms it reaches all 10 nodes, and node 9 sees
  the transaction confirmed;
- every namespace is gone afterwards (``Net.close`` checks it; an ``atexit`` hook backs it up,
  and a sweep at start removes the leftovers of earlier runs whose process is gone).

Without root, ``ip`` or a working ``ip netns`` the test fails, saying why: CI runs as root with
iproute2 (``scripts/test.sh``), so a skip would hide a broken harness. A missing
``/dev/net/tun`` is made (root), as containers often leave it out.
"""

from __future__ import annotations

import atexit
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from consensus import OutPoint, TxOut, block_subsidy
from tests.functional.node_process import address_of
from tests.helpers import REGTEST, key, spend
from tests.integration import netns

NODES = 10
DELAY_MS, JITTER_MS = 20.0, 5.0
FEE = 10_000
MINER = key(1)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[netns.Net]:
    problem = netns.netns_problem()
    if problem:
        pytest.fail(f"test_netns_ten {problem}")
    netns.sweep_stale()
    network = netns.Net(tmp_path / "net", netns.line(NODES), DELAY_MS, JITTER_MS)
    atexit.register(network.close)
    try:
        network.build()
        network.start_nodes()
        yield network
    finally:
        network.close()
    assert not [ns for ns in netns.namespaces() if ns.startswith(network.run)]


def test_block_and_transaction_cross_nine_delayed_hops(net: netns.Net) -> None:
    first, last = net.nodes[0], net.nodes[-1]
    assert netns.diameter(net.graph) == NODES - 1
    net.wait(net.topology_formed, "the line to form", 120)

    rtts = net.link_rtt(0, 1, 5)
    assert min(rtts) >= 2 * (DELAY_MS - JITTER_MS) / 1e3, rtts  # the links are really delayed

    miner = address_of(MINER.pubkey_hash)
    hashes = net.generate(first, 101, miner)
    net.wait(lambda: net.height(last) == 101, "node 9 to sync 101 blocks over 9 hops", 180)

    coinbase = net.get(first, f"/block/{hashes[0]}/txids")[0]
    coin = (
        OutPoint(bytes.fromhex(coinbase)[::-1], 0),
        TxOut(block_subsidy(1, REGTEST), MINER.pubkey_hash),
        MINER,
    )
    tx = spend([coin], [TxOut(coin[1].amount - FEE, MINER.pubkey_hash)])
    txid = tx.txid()[::-1].hex()
    net.post(last, "/tx", tx.serialize(), "application/msgpack")

    def in_every_mempool() -> bool:
        return all(net.get(n, f"/tx/{txid}/status")["confirmed"] is False for n in net.nodes)

    net.wait(in_every_mempool, "the transaction to reach all 10 mempools", 120)

    (block,) = net.generate(first, 1, miner)
    assert txid in net.get(first, f"/block/{block}/txids")
    net.wait(
        lambda: all(net.text(n, "/blocks/tip/hash") == block for n in net.nodes),
        "the block to reach all 10 nodes",
        120,
    )
    status = net.get(last, f"/tx/{txid}/status")
    assert status["confirmed"] is True and status["block_hash"] == block, json.dumps(status)

    assert net.topology_formed(), [sorted(net.connected(n)) for n in net.nodes]
    stats = net.delayer_stats()
    assert stats["packets"] > 0, stats
    for node in net.nodes:
        text = node.log()
        assert "Traceback" not in text and " ERROR " not in text, text[-4000:]
