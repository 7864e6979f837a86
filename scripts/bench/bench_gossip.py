"""Gossip benchmark: time for a transaction and for a block to reach every node of a 5-node line.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_gossip.py [--quick] [--json OUT]

Five real ``tally-node run --network regtest`` processes on loopback, fresh data directories,
peered in a line: node k is told ``POST /admin/peers`` node k-1 (the same as ``--peer``), so
nodes 0 and 4 are 4 hops apart.

Keeping it a line: the nodes exchange addresses (``addr``) after each handshake and dial what
they learn (up to 8 outbound), so a line becomes a full mesh within a second or two. No setting
turns discovery off, so before peering, every node is made to ban every non-neighbour through
the public P2P interface: 5 malformed ``/p2p/inv`` messages (20 points each) carrying the
non-neighbour's URL in ``X-Tally-Peer``. Banned URLs are neither dialled nor accepted. The
topology is checked (``GET /api/v1/peers``) before and after the measurements.

Setup: node 0 generates 100 + R blocks (R rounds) to key 1; every node reaches that height.

a. Transactions: each round, a transaction spending the coinbase of height i (signed here) is
   posted to node 0 (``POST /api/v1/tx``, msgpack); the clock starts before the request. Then
   nodes 1..4 are polled round-robin on keep-alive connections (``GET /api/v1/tx/{txid}/status``
   until 200), each until it has it; the time for every mempool is the last arrival.
b. Blocks: each round node 0 is asked ``POST /admin/generate`` 1 (an empty mempool: one untimed
   block first confirms the round's transactions); the clock starts before the request; nodes
   1..4 are polled (``GET /api/v1/blocks/tip/height``) until each has the new height.

R = 15 (7 with ``--quick``) rounds each, 0.2 s apart; medians. The ceiling: one HTTP round trip
on loopback (median of 200 ``GET /api/v1/blocks/tip/height``, keep-alive, from this process to
each node in turn: a handler that touches no state) times 4 hops. Ratios ``ceiling/tx`` and
``ceiling/block`` (1.0 would be one bare round trip per hop; the protocol needs at least two per
hop, ``inv`` then ``getdata``, plus validation). No target in SPEC 7: information.

Output: a table on stdout; ``--json OUT`` writes ``{"name": "gossip", "figures", "ratios",
"targets", "machine", "series"}`` (``series``: arrival time per hop).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib as bl

from consensus import OutPoint, TxOut, block_subsidy

NAME = "gossip"
NODES = 5
HOPS = NODES - 1
FEE = 10_000
TARGETS: dict[str, dict[str, float]] = {}


def ban(node: bl.BenchNode, url: str) -> None:
    """Make ``node`` ban ``url``: 5 malformed messages that claim to come from it."""
    headers = {"Content-Type": "application/msgpack", "X-Tally-Peer": url}
    for _ in range(5):
        r = bl.http(node.url + "/p2p/inv", "POST", b"\xc1", headers)
        if r.status == 403:
            return
    r = bl.http(node.url + "/p2p/inv", "POST", b"\xc1", headers)
    assert r.status == 403, (r.status, r.body)


def neighbours(nodes: list[bl.BenchNode]) -> list[set[str]]:
    out = []
    for node in nodes:
        peers = node.get("/api/v1/peers").json()["connected"]
        out.append({p["url"].rstrip("/") for p in peers})
    return out


def expected_line(nodes: list[bl.BenchNode]) -> list[set[str]]:
    return [
        {nodes[j].url for j in (k - 1, k + 1) if 0 <= j < len(nodes)} for k in range(len(nodes))
    ]


def wait_for(cond: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def arrivals(conns: list[bl.Conn], probe: list[bytes], done: Any, t0: float) -> list[float]:
    """Seconds after ``t0`` at which each connection's probe first satisfies ``done``."""
    got: list[float | None] = [None] * len(conns)
    deadline = t0 + 60
    while any(g is None for g in got):
        for i, conn in enumerate(conns):
            if got[i] is None:
                status, body = conn.request(probe[i])
                if done(status, body):
                    got[i] = time.perf_counter() - t0
        if time.perf_counter() > deadline:
            raise TimeoutError(f"gossip did not reach every node: {got}")
    return [g for g in got if g is not None]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="7 rounds instead of 15")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    rounds = 7 if args.quick else 15
    load_before = bl.loadavg()
    began = time.perf_counter()
    miner = bl.key(1)
    miner_addr = bl.address_of(miner.pubkey_hash)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tally-bench-gossip-") as tmp_name:
        tmp = Path(tmp_name)
        nodes = [bl.BenchNode(tmp / f"n{k}") for k in range(NODES)]
        try:
            bl.log(f"starting {NODES} nodes, banning non-neighbours, peering in a line")
            for node in nodes:
                node.start()
            for k, node in enumerate(nodes):
                for j, other in enumerate(nodes):
                    if abs(j - k) > 1:
                        ban(node, other.url)
            for k in range(1, NODES):
                nodes[k].add_peer(nodes[k - 1])
            line = expected_line(nodes)
            wait_for(lambda: neighbours(nodes) == line, "the line did not form")

            bl.log(f"generating {100 + rounds} blocks on node 0")
            hashes = nodes[0].generate(100 + rounds, miner_addr)
            top = len(hashes)
            wait_for(lambda: all(n.height() == top for n in nodes), "the nodes did not sync")
            coinbases = []
            for height in range(1, rounds + 1):
                txid = nodes[0].get(f"/api/v1/block/{hashes[height - 1]}/txids").json()[0]
                coinbases.append(
                    (
                        OutPoint(bytes.fromhex(txid)[::-1], 0),
                        TxOut(block_subsidy(height, bl.REGTEST), miner.pubkey_hash),
                        miner,
                    )
                )
            txs = [bl.spend([c], [TxOut(c[1].amount - FEE, miner.pubkey_hash)]) for c in coinbases]

            conns = [bl.Conn(n.port) for n in nodes]
            bl.log("ceiling: loopback round trips")
            rtts = [bl.median_latency(c, "/api/v1/blocks/tip/height", 200) for c in conns]
            rtt = statistics.median(rtts)

            bl.log(f"a. {rounds} transactions from node 0")
            tx_arrivals: list[list[float]] = []
            far = conns[1:]
            for tx in txs:
                txid = tx.txid()[::-1].hex()
                body = tx.serialize()
                probe = [bl.get_bytes(c.port, f"/api/v1/tx/{txid}/status") for c in far]
                post = bl.post_bytes(nodes[0].port, "/api/v1/tx", body)
                t0 = time.perf_counter()
                status, answer = conns[0].request(post)
                assert status == 200, answer
                tx_arrivals.append(arrivals(far, probe, lambda s, b: s == 200, t0))
                time.sleep(0.2)

            nodes[0].generate(1, miner_addr)  # confirm them: empty mempools for (b)
            top += 1
            wait_for(lambda: all(n.height() == top for n in nodes), "the nodes did not sync")
            for n in nodes:
                assert n.get("/api/v1/mempool").json().get("count", 0) == 0

            bl.log(f"b. {rounds} blocks from node 0")
            block_arrivals: list[list[float]] = []
            gen_body = b'{"count": 1, "address": "' + miner_addr.encode() + b'"}'
            token = nodes[0].token
            for _ in range(rounds):
                top += 1
                want = str(top).encode()
                probe = [bl.get_bytes(c.port, "/api/v1/blocks/tip/height") for c in far]
                post = (
                    f"POST /api/v1/admin/generate HTTP/1.1\r\nHost: 127.0.0.1:{nodes[0].port}\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(gen_body)}\r\n\r\n"
                ).encode() + gen_body
                t0 = time.perf_counter()
                status, answer = conns[0].request(post)
                assert status == 200, answer
                block_arrivals.append(arrivals(far, probe, lambda s, b, w=want: b == w, t0))
                time.sleep(0.2)
            for c in conns:
                c.close()
            topology_after = neighbours(nodes)
            assert topology_after == line, f"the line changed during the run: {topology_after}"
        finally:
            for node in nodes:
                node.close()

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1e3

    figures["rtt_ms"] = rtt * 1e3
    figures["ceiling_ms"] = HOPS * rtt * 1e3
    figures["tx_all_ms"] = med([max(a) for a in tx_arrivals])
    figures["block_all_ms"] = med([max(a) for a in block_arrivals])
    figures["tx_per_hop_ms"] = figures["tx_all_ms"] / HOPS
    figures["block_per_hop_ms"] = figures["block_all_ms"] / HOPS
    figures["tx_all_max_ms"] = max(max(a) for a in tx_arrivals) * 1e3
    figures["block_all_max_ms"] = max(max(a) for a in block_arrivals) * 1e3
    for hop in range(1, HOPS + 1):
        figures[f"tx_hop{hop}_ms"] = med([a[hop - 1] for a in tx_arrivals])
        figures[f"block_hop{hop}_ms"] = med([a[hop - 1] for a in block_arrivals])
    ratios = {
        "ceiling/tx": figures["ceiling_ms"] / figures["tx_all_ms"],
        "ceiling/block": figures["ceiling_ms"] / figures["block_all_ms"],
    }
    series = {
        "hops": list(range(1, HOPS + 1)),
        "tx_ms": [figures[f"tx_hop{h}_ms"] for h in range(1, HOPS + 1)],
        "block_ms": [figures[f"block_hop{h}_ms"] for h in range(1, HOPS + 1)],
        "ceiling_ms": [h * figures["rtt_ms"] for h in range(1, HOPS + 1)],
    }
    info = bl.machine(
        load_before,
        quick=args.quick,
        nodes=NODES,
        rounds=rounds,
        topology="line, non-neighbours banned (see the docstring)",
        wall_s=round(time.perf_counter() - began, 1),
    )
    print_table(figures, ratios, info)
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info, series)
    return 0


def print_table(figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any]) -> None:
    f = figures
    print(
        f"\nTally gossip bench: {info['nodes']}-node line, {info['rounds']} rounds, "
        f"{info['cpu_count']} CPUs, load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(f"{'arrival (median ms)':24}" + "".join(f"{'hop ' + str(h):>9}" for h in range(1, 5)))
    for kind in ("tx", "block"):
        print(f"{kind:24}" + "".join(f"{f[f'{kind}_hop{h}_ms']:9.1f}" for h in range(1, 5)))
    print(
        f"loopback round trip {f['rtt_ms']:.3f} ms; "
        f"ceiling (4 round trips) {f['ceiling_ms']:.2f} ms"
    )
    print(
        f"transaction to every mempool: {f['tx_all_ms']:.1f} ms "
        f"(worst {f['tx_all_max_ms']:.1f}), ceiling/tx {ratios['ceiling/tx']:.3f}"
    )
    print(
        f"block to every node:          {f['block_all_ms']:.1f} ms "
        f"(worst {f['block_all_max_ms']:.1f}), ceiling/block {ratios['ceiling/block']:.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
