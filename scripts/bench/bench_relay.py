"""Relay benchmark: 3,000 transactions across a line of nodes, against the first node's own
acceptance time (issue 16 "Load"; SPEC 3.4 batched relay).

Run from the repository root::

    .venv/bin/python scripts/bench/bench_relay.py [--quick] [--json OUT]

For each line length L in (3, 5) (3 only with ``--quick``): L fresh ``tally-node run --network
regtest`` processes on loopback, peered in a line as ``bench_gossip`` does (every node made to
ban every non-neighbour first: discovery would make a mesh). Node 0 generates 103 blocks; three
fan-out transactions (one per coinbase of heights 1-3) each pay 1,000 outputs, confirmed in one
more block; the 3,000 spends (1 input, 1 output, signed here beforehand) are the load.

Timing: the clock starts before the first request; the transactions are posted to node 0 with
``POST /api/v1/txs`` (msgpack arrays of 500, one connection) as fast as it accepts them. The
*ceiling* is node 0's own acceptance time (the last ``/txs`` answered: every transaction in its
mempool). The figure is the time until the last node of the line holds all 3,000 (``GET
/api/v1/mempool`` count, polled every 20 ms on another connection). The ratio ceiling/figure is
1.0 if relay added nothing to acceptance; the target is >= 0.5 for the 3-node line (the 5-node
line is reported). Also checked: every node of the line ends with the same 3,000 transactions,
no node banned a neighbour.

On ``bad5a2c`` (one ``inv`` and one ``getdata`` per transaction, over the peer's own rate
limit) 2,980 of 3,000 had reached node 2 after 300 s: a ratio of about 0.007.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib as bl
import msgpack

from consensus import OutPoint, TxOut, block_subsidy

NAME = "relay"
COUNT = 3_000
FAN = 1_000
BATCH = 500
TARGETS: dict[str, dict[str, float]] = {"accept/relay_3": {"min": 0.5}}


def ban(node: bl.BenchNode, url: str) -> None:
    """Make ``node`` ban ``url``: 5 malformed messages that claim to come from it."""
    headers = {"Content-Type": "application/msgpack", "X-Tally-Peer": url}
    for _ in range(6):
        r = bl.http(node.url + "/p2p/inv", "POST", b"\xc1", headers)
        if r.status == 403:
            return
    raise AssertionError(f"{node.url} did not ban {url}")


def neighbours(nodes: list[bl.BenchNode]) -> list[set[str]]:
    return [
        {p["url"].rstrip("/") for p in n.get("/api/v1/peers").json()["connected"]} for n in nodes
    ]


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


def run_line(tmp: Path, length: int) -> dict[str, float]:

    miner = bl.key(1)
    addr = bl.address_of(miner.pubkey_hash)
    nodes = [bl.BenchNode(tmp / f"line{length}-n{k}") for k in range(length)]
    try:
        for node in nodes:
            node.start()
        for k, node in enumerate(nodes):
            for j, other in enumerate(nodes):
                if abs(j - k) > 1:
                    ban(node, other.url)
        for k in range(1, length):
            nodes[k].add_peer(nodes[k - 1])
        line = expected_line(nodes)
        wait_for(lambda: neighbours(nodes) == line, "the line did not form")
        hashes = nodes[0].generate(103, addr)
        fans = []
        for height in (1, 2, 3):
            txid = nodes[0].get(f"/api/v1/block/{hashes[height - 1]}/txids").json()[0]
            coin = (
                OutPoint(bytes.fromhex(txid)[::-1], 0),
                TxOut(block_subsidy(height, bl.REGTEST), miner.pubkey_hash),
                miner,
            )
            part = (coin[1].amount - 5_000_000) // FAN
            fan = bl.spend([coin], [TxOut(part, miner.pubkey_hash)] * FAN)
            status = nodes[0].post_raw("/api/v1/tx", fan.serialize()).status
            assert status == 200, status
            fans.append(fan)
        nodes[0].generate(1, addr)
        wait_for(lambda: all(n.height() == 104 for n in nodes), "the nodes did not sync")
        bl.log(f"{length}-node line: signing {COUNT} transactions")
        txs = [
            bl.spend(
                [(OutPoint(fan.txid(), i), fan.outputs[i], miner)],
                [TxOut(fan.outputs[i].amount - 10_000, miner.pubkey_hash)],
            )
            for fan in fans
            for i in range(FAN)
        ]
        bodies = [
            bl.post_bytes(
                nodes[0].port,
                "/api/v1/txs",
                msgpack.packb([t.serialize() for t in txs[i : i + BATCH]], use_bin_type=True),
            )
            for i in range(0, COUNT, BATCH)
        ]
        poster = bl.Conn(nodes[0].port)
        watcher = bl.Conn(nodes[-1].port)

        def count(conn: bl.Conn) -> int:
            status, body = conn.get("/api/v1/mempool")
            assert status == 200, body
            return int(json.loads(body)["count"])

        bl.log(f"{length}-node line: posting {COUNT} transactions to node 0")
        t0 = time.perf_counter()
        for body in bodies:
            status, answer = poster.request(body)
            assert status == 200, answer[:200]
            assert all("txid" in r for r in json.loads(answer)), answer[:300]
        accepted = time.perf_counter() - t0
        deadline = t0 + 600
        while count(watcher) < COUNT:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {count(watcher)} of {COUNT} reached the last node")
            time.sleep(0.02)
        relayed = time.perf_counter() - t0
        poster.close()
        watcher.close()
        sets = [set(n.get("/api/v1/mempool/txids").json()) for n in nodes]
        assert all(s == sets[0] and len(s) == COUNT for s in sets), [len(s) for s in sets]
        assert neighbours(nodes) == line, "the line changed during the run"
        for k, n in enumerate(nodes):
            banned = {b["peer"] for b in n.get("/api/v1/peers").json()["banned"]}
            assert not banned & line[k], f"node {k} banned a neighbour: {banned & line[k]}"
        return {
            f"accept_{length}_s": accepted,
            f"relay_{length}_s": relayed,
            f"accept_{length}_tx_per_s": COUNT / accepted,
            f"relay_{length}_tx_per_s": COUNT / relayed,
        }
    finally:
        for node in nodes:
            node.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 3-node line only")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    load_before = bl.loadavg()
    began = time.perf_counter()
    figures: dict[str, float] = {}
    lengths = (3,) if args.quick else (3, 5)
    with tempfile.TemporaryDirectory(prefix="tally-bench-relay-") as tmp_name:
        for length in lengths:
            figures.update(run_line(Path(tmp_name), length))
    ratios = {
        f"accept/relay_{n}": figures[f"accept_{n}_s"] / figures[f"relay_{n}_s"] for n in lengths
    }
    info = bl.machine(
        load_before,
        quick=args.quick,
        transactions=COUNT,
        lines=list(lengths),
        wall_s=round(time.perf_counter() - began, 1),
    )
    print(
        f"\nTally relay bench: {COUNT} transactions, {info['cpu_count']} CPUs, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    for n in lengths:
        print(
            f"{n}-node line: node 0 accepted all in {figures[f'accept_{n}_s']:.2f} s "
            f"({figures[f'accept_{n}_tx_per_s']:.0f} tx/s); the last node held all after "
            f"{figures[f'relay_{n}_s']:.2f} s ({figures[f'relay_{n}_tx_per_s']:.0f} tx/s); "
            f"ratio {ratios[f'accept/relay_{n}']:.3f} "
            + bl.verdict(TARGETS, f"accept/relay_{n}", ratios[f"accept/relay_{n}"])
        )
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
