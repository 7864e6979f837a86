"""Headers-first sync and partitions between real ``tally-node`` processes (SPEC 3.4, 3.1).

- A node with an empty data directory, given two peers that hold 2,000 blocks (a few with
  transactions), syncs headers first and ends with their tip and UTXO set hash, each block body
  downloaded once.
- Two groups of two nodes mine apart (group X more work than group Y), then one link joins them:
  every node ends on X's chain; Y's transactions come back to Y's mempools and are mined again
  where still valid; a double spend confirmed on Y ends with X's spend; the UTXO sets agree.
"""

from __future__ import annotations

from consensus import OutPoint
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key
from tests.integration.fake_peer import (
    API,
    Cluster,
    block_at,
    coinbase_coin,
    connected,
    downloaded,
    hx,
    mempool,
    ok,
    pay,
    submit_tx,
    tip,
    tx_status,
    utxo_info,
)

K0, K1, K2, K3, K4 = (key(i) for i in range(5))
A0, A4 = address_of(K0.pubkey_hash), address_of(K4.pubkey_hash)


def confirmed_in(node: NodeProcess, txid: str) -> int | None:
    """The height of the block ``node`` has ``txid`` in, None if not confirmed."""
    status = tx_status(node, txid)
    if status is None or not status["confirmed"]:
        return None
    return int(status["block_height"])


def test_empty_node_syncs_2000_blocks_headers_first(cluster: Cluster) -> None:
    a = cluster.start("a")
    a.generate(103, A0)  # coinbases 1..3 are spendable in block 104
    txids = [submit_tx(a, pay(coinbase_coin(a, h, K0), K1, parts=3)) for h in (1, 2, 3)]
    a.generate(1_897, A0)
    for txid in txids:
        assert confirmed_in(a, txid) == 104
    goal = tip(a)
    b = cluster.start("b", "--peer", a.url)
    cluster.wait(lambda: tip(b) == goal, "b to sync 2,000 blocks from a")
    c = cluster.start("c", "--peer", a.url, "--peer", b.url)
    cluster.wait(lambda: {a.url, b.url} <= connected(c), "c to connect to a and b", 30)
    cluster.wait(lambda: tip(c) == goal, "c to sync 2,000 blocks", 120)
    info = utxo_info(a)
    assert info["height"] == 2_000
    assert utxo_info(b) == info
    assert utxo_info(c) == info
    assert downloaded(c, "block") == 2_000
    log = c.log()
    assert "syncing from" in log and "2000 header(s)" in log, log[-3000:]
    cluster.check_logs()


def test_partition_heals_on_the_most_work_chain(cluster: Cluster) -> None:
    x1 = cluster.start("x1")
    x1.generate(105, A0)  # coinbases 1..5 are spendable in block 106
    y1 = cluster.start("y1")
    for h in range(1, 106):  # the common history, handed over by hand
        ok(y1.post_raw(f"{API}/block", block_at(x1, h).serialize()))
    common = tip(x1)
    assert tip(y1) == common
    x2 = cluster.start("x2", "--peer", x1.url)
    y2 = cluster.start("y2", "--peer", y1.url)
    cluster.wait(lambda: tip(x2) == common and tip(y2) == common, "both groups at block 105")
    cluster.wait(lambda: x1.url in connected(x2) and y1.url in connected(y2), "the groups' links")

    # Group Y (less work): an ordinary payment, a child of it, and one side of a double spend.
    lost = pay(coinbase_coin(y1, 2, K0), K3, parts=2)
    lost_child = pay((OutPoint(lost.txid(), 0), lost.outputs[0], K3), K2)
    y_spend = pay(coinbase_coin(y1, 3, K0), K1)
    y_txids = {submit_tx(y2, tx) for tx in (lost, lost_child, y_spend)}
    cluster.wait(lambda: mempool(y1) == y_txids, "Y's transactions to reach y1")
    y_blocks = y1.generate(2, A4)
    cluster.wait(lambda: tip(y2) == y_blocks[-1], "y2 to follow y1")
    for txid in y_txids:
        assert confirmed_in(y2, txid) == 106

    # Group X (more work): the other side of the double spend and a payment of its own.
    x_spend = pay(coinbase_coin(x1, 3, K0), K2)
    x_other = pay(coinbase_coin(x1, 4, K0), K2)
    x_txids = {submit_tx(x1, tx) for tx in (x_spend, x_other)}
    cluster.wait(lambda: mempool(x2) == x_txids, "X's transactions to reach x2")
    x_blocks = x2.generate(3, A0)
    cluster.wait(lambda: tip(x1) == x_blocks[-1], "x1 to follow x2")
    assert tip(y1) == y_blocks[-1]  # still apart

    # One link joins the groups.
    r = y2.post_json(f"{API}/admin/peers", {"url": x1.url}, admin=True)
    assert ok(r)["connected"] is True
    nodes = [x1, x2, y1, y2]
    cluster.wait(lambda: all(tip(n) == x_blocks[-1] for n in nodes), "every node on X's chain")
    lost_ids = {hx(lost.txid()), hx(lost_child.txid())}
    for y in (y1, y2):
        cluster.wait(lambda y=y: lost_ids <= mempool(y), f"Y's payments back in {y.url}'s mempool")
        assert mempool(y) == lost_ids, "the losing double spend must not come back"
    for n in nodes:
        assert confirmed_in(n, hx(x_spend.txid())) == 106
        assert confirmed_in(n, hx(x_other.txid())) == 106
        assert confirmed_in(n, hx(y_spend.txid())) is None
        for txid in lost_ids:
            assert confirmed_in(n, txid) is None
        spent_by = ok(n.get(f"{API}/tx/{hx(x_spend.inputs[0].prevout.txid)}/outspends"))[0]
        assert spent_by["spent"] and spent_by["txid"] == hx(x_spend.txid()), spent_by

    # Mined again: a block from Y's side of the old partition confirms them on the winning chain.
    (again,) = y1.generate(1, A4)
    cluster.wait(lambda: all(tip(n) == again for n in nodes), "the new block everywhere")
    for n in nodes:
        for txid in lost_ids:
            assert confirmed_in(n, txid) == 109, (n.url, txid)
        assert confirmed_in(n, hx(y_spend.txid())) is None
    cluster.wait(lambda: all(not mempool(n) for n in nodes), "mempools emptied by block 109")
    assert len({utxo_info(n)["hash"] for n in nodes}) == 1
    log = y1.log() + y2.log()
    assert "reorg" in log.lower(), log[-3000:]
    cluster.check_logs()
