"""Fifty nodes: how fast a block and a transaction reach 50%, 90% and 100% of a delayed network.

Run from the repository root, as root (it builds network namespaces)::

    .venv/bin/python scripts/bench/bench_fifty.py [--quick] [--nodes N] [--json OUT]
    scripts/bench/run --fifty          # the same, inside the report (not part of a plain run)

SPEC 7 and issue 22. ``--nodes`` real ``tally-node run --network regtest`` processes (50), each in
its own network namespace with its own address (``tests/integration/netns.py``, the harness the
10-node test uses too). The peer graph is random: a ring through a random permutation, then
random edges until every node has 4 to 8 peers (seeded, ``--seed``); its diameter is computed.
Each node is given its lower-numbered neighbours as ``--peer``; the router refuses packets
between nodes that are not neighbours, so address exchange adds no link and the diameter holds
(checked before and after the measurements).

Every link delays each packet 50 ms ± 10 ms (uniform, in order per direction), one way.
This kernel has no ``sch_netem`` (``tc qdisc add ... netem`` answers "Specified qdisc kind is
unknown"), so the delay is the harness's user-space delayer on a TUN device in the router's
namespace (docs/DECISIONS.md, "Fifty nodes: the delayed links without netem"); its own
measurements (packets, median hold, how late it wrote) are in the JSON.

Setup: a random node mines 101 blocks, a fan-out transaction of 200 outputs is confirmed in
block 102, and every node reaches that height.

a. Blocks: R rounds (20; 5 with ``--quick``), each at a random origin: ``POST
   /admin/generate`` 1; the clock starts before the request. The origin has the block when the
   request answers; the other nodes are polled (``GET /api/v1/blocks/tip/height``, every
   ``--poll-ms`` per node, all at once) until each has the new height.
b. Transactions: T rounds (200; 20 with ``--quick``), each at a random origin: ``POST
   /api/v1/tx`` of one spend of a fan-out output; the others polled (``GET
   /api/v1/tx/{txid}/status`` until 200).

A round's t50, t90 and t100 are the times at which ceil(0.5 n), ceil(0.9 n) and n nodes (the
origin included) had it. Each figure is the median over the rounds (``*_max_ms``: the worst
round). An answer is read at most ``--poll-ms`` (50) after the object arrived: that is the
resolution.

The ceiling (the bound of issue 22): the links' latency times the graph's diameter. The
latency is measured in the same run: half the median HTTP round trip (``GET
/api/v1/blocks/tip/height``) from a node's namespace to a neighbour's API, 10 round trips on
each of 10 random links (so it includes the delayer's lateness and a trivial request; the
nominal 50 ms is beside it). Ratios ``block_t90/bound`` etc.; target (issue 22): 90% of the
nodes within 3 times the bound, for blocks and for transactions. The relay protocol needs at
least three link crossings a hop (``inv``, ``getdata``, the object), plus the relay interval
(50 ms on regtest), so ~3-4x latency per hop is the protocol's own floor on a long path; a
random graph of degree 4-8 reaches 90% in fewer hops than its diameter.

Duration: 50 nodes, full: ~5 minutes on 2 shared cores (289 s on 2026-12-02 at load average
~33: start-up and graph 30 s, setup 20 s, 20 blocks 20 s, 200 transactions 3.5 min);
``--quick`` ~2 min. Memory: ~55 MB a node, 2.7 GB for 50. Every namespace and process is
removed on exit, on Ctrl-C, on SIGTERM and on failure (``try``/``finally`` + ``atexit``);
leftovers of a killed run are swept at the next start (``ip netns list | grep tally-ns-`` finds
them).

Output: a table on stdout; ``--json OUT`` writes ``{"name": "fifty", "figures", "ratios",
"targets", "machine", "series"}`` (``series``: median arrival per hop distance from the origin).
"""

from __future__ import annotations

import argparse
import atexit
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib as bl

from consensus import OutPoint, TxOut, block_subsidy
from tests.integration import netns

NAME = "fifty"
FEE = 10_000
FRACTIONS = (("t50", 0.5), ("t90", 0.9), ("t100", 1.0))
TARGETS: dict[str, dict[str, float]] = {
    "block_t90/bound": {"max": 3.0},
    "tx_t90/bound": {"max": 3.0},
}


def measure_rounds(
    net: netns.Net,
    kind: str,
    rounds: int,
    rng: random.Random,
    poll: float,
    make: Any,
) -> list[dict[str, Any]]:
    """``rounds`` propagations of ``kind``; ``make(origin, k)`` sends the object (timed) and
    returns (probe per node, done predicate). One dict a round: origin, arrivals."""
    out = []
    n = len(net.nodes)
    for k in range(rounds):
        origin = rng.randrange(n)
        others = [node for node in net.nodes if node.i != origin]
        t0 = time.perf_counter()
        probes, done = make(net.nodes[origin], k, others)
        t_origin = time.perf_counter() - t0
        got = netns.arrivals(
            [o.conn for o in others if o.conn is not None], probes, done, t0, poll, 60.0
        )
        times: list[float | None] = [None] * n
        times[origin] = t_origin
        for node, t in zip(others, got, strict=True):
            times[node.i] = t
        missing = [i for i, t in enumerate(times) if t is None]
        if missing:
            bl.log(f"{kind} round {k}: nodes {missing} did not get it within 60 s")
        out.append({"origin": origin, "times": times})
        time.sleep(0.1)
    return out


def summarize(
    kind: str, rounds: list[dict[str, Any]], graph: netns.Graph, figures: dict[str, float]
) -> list[float | None]:
    """Percentile figures of ``kind``; the median arrival (ms) per hop distance."""
    per_fraction: dict[str, list[float]] = {name: [] for name, _ in FRACTIONS}
    by_hop: dict[int, list[float]] = {}
    incomplete = 0
    for r in rounds:
        dist = netns.distances(graph, r["origin"])
        for name, fraction in FRACTIONS:
            t = netns.percentile_time(r["times"], fraction)
            if t is not None:
                per_fraction[name].append(t)
        if any(t is None for t in r["times"]):
            incomplete += 1
        for i, t in enumerate(r["times"]):
            if t is not None:
                by_hop.setdefault(dist[i], []).append(t)
    for name, values in per_fraction.items():
        if values:
            figures[f"{kind}_{name}_ms"] = statistics.median(values) * 1e3
            figures[f"{kind}_{name}_max_ms"] = max(values) * 1e3
    figures[f"{kind}_rounds"] = len(rounds)
    figures[f"{kind}_rounds_incomplete"] = incomplete
    top = max(by_hop) if by_hop else 0
    return [statistics.median(by_hop[h]) * 1e3 if h in by_hop else None for h in range(top + 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 block and 20 transaction rounds")
    ap.add_argument("--nodes", type=int, default=50, help="how many nodes (default 50)")
    ap.add_argument("--delay-ms", type=float, default=50.0, help="one-way link delay (50)")
    ap.add_argument("--jitter-ms", type=float, default=10.0, help="± uniform jitter (10)")
    ap.add_argument("--min-peers", type=int, default=4)
    ap.add_argument("--max-peers", type=int, default=8)
    ap.add_argument("--blocks", type=int, help="block rounds (20; --quick 5)")
    ap.add_argument("--txs", type=int, help="transaction rounds (200; --quick 20)")
    ap.add_argument("--poll-ms", type=float, default=50.0, help="poll interval per node (50)")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    problem = netns.netns_problem()
    if problem:
        print(f"bench_fifty {problem}; run it as root (sudo) on a machine with iproute2")
        return 2
    block_rounds = args.blocks if args.blocks is not None else (5 if args.quick else 20)
    tx_rounds = args.txs if args.txs is not None else (20 if args.quick else 200)
    poll = args.poll_ms / 1e3
    rng = random.Random(args.seed)
    n = args.nodes
    graph = netns.random_graph(n, args.min_peers, args.max_peers, rng)
    diameter = netns.diameter(graph)
    degrees = [len(p) for p in graph]
    load_before = bl.loadavg()
    began = time.perf_counter()
    swept = netns.sweep_stale()
    if swept:
        bl.log(f"removed {len(swept)} namespace(s) left by an earlier run")
    miner = bl.key(1)
    miner_addr = bl.address_of(miner.pubkey_hash)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tally-bench-fifty-") as tmp_name:
        net = netns.Net(Path(tmp_name) / "net", graph, args.delay_ms, args.jitter_ms, args.seed)
        atexit.register(net.close)
        try:
            bl.log(
                f"{n} namespaces, {len(netns.edges(graph))} links (degree {min(degrees)}-"
                f"{max(degrees)}), diameter {diameter}, {args.delay_ms:g} ± {args.jitter_ms:g} ms"
            )
            net.build()
            started = time.perf_counter()
            net.start_nodes(timeout=600)
            figures["start_s"] = time.perf_counter() - started
            bl.log(f"{n} nodes answer after {figures['start_s']:.0f} s; waiting for the graph")
            net.wait(net.topology_formed, "every node to be connected to its neighbours", 600)
            figures["graph_formed_s"] = time.perf_counter() - started

            bl.log("link latency: 10 round trips on each of 10 links")
            links = rng.sample(netns.edges(graph), min(10, len(netns.edges(graph))))
            rtts = [t for a, b in links for t in net.link_rtt(a, b, 10)]

            setup_node = net.nodes[rng.randrange(n)]
            bl.log(f"setup: n{setup_node.i} mines 101 blocks, then a fan-out of {tx_rounds}")
            hashes = net.generate(setup_node, 101, miner_addr)
            coinbase = net.get(setup_node, f"/block/{hashes[0]}/txids")[0]
            value = block_subsidy(1, bl.REGTEST)
            share = (value - FEE) // tx_rounds
            fan = bl.spend(
                [
                    (
                        OutPoint(bytes.fromhex(coinbase)[::-1], 0),
                        TxOut(value, miner.pubkey_hash),
                        miner,
                    )
                ],
                [TxOut(share, miner.pubkey_hash)] * tx_rounds,
            )
            net.post(setup_node, "/tx", fan.serialize(), "application/msgpack")
            net.generate(setup_node, 1, miner_addr)
            top = 102
            net.wait(
                lambda: all(net.height(node) == top for node in net.nodes),
                f"every node at height {top}",
                600,
            )
            fan_id = fan.txid()
            spends = [
                bl.spend(
                    [(OutPoint(fan_id, k), TxOut(share, miner.pubkey_hash), miner)],
                    [TxOut(share - FEE, miner.pubkey_hash)],
                )
                for k in range(tx_rounds)
            ]

            bl.log(f"a. {block_rounds} blocks, each from a random node")

            def send_block(origin: netns.Node, k: int, others: list[netns.Node]) -> Any:
                assert origin.conn is not None
                want = str(top + k + 1).encode()
                status, body = origin.conn.request(net.generate_request(origin, 1, miner_addr))
                assert status == 200, body
                probes = [
                    o.conn.raw("GET", netns.API + "/blocks/tip/height")
                    for o in others
                    if o.conn is not None
                ]
                return probes, lambda s, b, w=want: s == 200 and b == w

            block_runs = measure_rounds(net, "block", block_rounds, rng, poll, send_block)
            top += block_rounds

            bl.log(f"b. {tx_rounds} transactions, each from a random node")

            def send_tx(origin: netns.Node, k: int, others: list[netns.Node]) -> Any:
                assert origin.conn is not None
                tx = spends[k]
                txid = tx.txid()[::-1].hex()
                headers = {"Content-Type": "application/msgpack"}
                request = origin.conn.raw("POST", netns.API + "/tx", tx.serialize(), headers)
                status, body = origin.conn.request(request)
                assert status == 200, body
                path = f"{netns.API}/tx/{txid}/status"
                probes = [o.conn.raw("GET", path) for o in others if o.conn is not None]
                return probes, lambda s, b: s == 200

            tx_runs = measure_rounds(net, "tx", tx_rounds, rng, poll, send_tx)

            formed_after = net.topology_formed()
            rss = [bl._rss_kb(node.proc.pid) for node in net.nodes if node.proc is not None]
            figures["nodes_rss_total_mb"] = sum(rss) * 1024 / 1e6
            figures["node_rss_median_mb"] = statistics.median(rss) * 1024 / 1e6
            delayer = net.delayer_stats()
        finally:
            net.close()

    figures["nodes"] = n
    figures["links"] = len(netns.edges(graph))
    figures["diameter"] = diameter
    figures["degree_min"], figures["degree_max"] = min(degrees), max(degrees)
    figures["degree_mean"] = statistics.fmean(degrees)
    figures["delay_ms"] = args.delay_ms
    figures["jitter_ms"] = args.jitter_ms
    figures["link_rtt_ms"] = statistics.median(rtts) * 1e3
    figures["latency_ms"] = figures["link_rtt_ms"] / 2
    figures["bound_ms"] = figures["latency_ms"] * diameter
    figures["bound_nominal_ms"] = args.delay_ms * diameter
    figures["poll_ms"] = args.poll_ms
    for key in ("packets", "held_median_ms", "late_median_ms", "late_p99_ms"):
        if delayer.get(key) is not None:
            figures[f"delayer_{key}"] = float(delayer[key])
    block_hops = summarize("block", block_runs, graph, figures)
    tx_hops = summarize("tx", tx_runs, graph, figures)
    ratios: dict[str, float] = {}
    for kind in ("block", "tx"):
        for name, _ in FRACTIONS:
            if f"{kind}_{name}_ms" in figures:
                ratios[f"{kind}_{name}/bound"] = figures[f"{kind}_{name}_ms"] / figures["bound_ms"]
    hops = list(range(max(len(block_hops), len(tx_hops))))
    series = {
        "hops": hops,
        "block_ms": block_hops + [None] * (len(hops) - len(block_hops)),
        "tx_ms": tx_hops + [None] * (len(hops) - len(tx_hops)),
        "latency_x_hops_ms": [h * figures["latency_ms"] for h in hops],
        "percentiles": {
            kind: {name: figures.get(f"{kind}_{name}_ms") for name, _ in FRACTIONS}
            for kind in ("block", "tx")
        },
        "bound_ms": figures["bound_ms"],
    }
    info = bl.machine(
        load_before,
        quick=args.quick,
        nodes=n,
        block_rounds=block_rounds,
        tx_rounds=tx_rounds,
        seed=args.seed,
        topology=f"random graph, {args.min_peers}-{args.max_peers} peers, diameter {diameter}",
        links="user-space delayer on a TUN device (no sch_netem in this kernel)",
        graph_unchanged_after=formed_after,
        delayer=delayer,
        wall_s=round(time.perf_counter() - began, 1),
    )
    print_table(figures, ratios, info)
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info, series)
    if args.json:
        raw = Path(args.json).with_suffix(".rounds.json")
        raw.write_text(
            json.dumps({"graph": [sorted(p) for p in graph], "block": block_runs, "tx": tx_runs})
        )
    return 0


def print_table(figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any]) -> None:
    f = figures
    print(
        f"\nTally fifty-node bench: {info['nodes']} nodes, {info['topology']}, "
        f"{f['delay_ms']:g} ± {f['jitter_ms']:g} ms links; {info['cpu_count']} CPUs, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(
        f"link latency (half a measured round trip) {f['latency_ms']:.1f} ms x diameter "
        f"{f['diameter']:g} = bound {f['bound_ms']:.0f} ms (nominal {f['bound_nominal_ms']:.0f})"
    )
    print(f"{'median ms (ratio to bound)':28}{'50%':>16}{'90%':>16}{'100%':>16}")
    for kind in ("block", "tx"):
        cells = []
        for name, _ in FRACTIONS:
            v = f.get(f"{kind}_{name}_ms")
            r = ratios.get(f"{kind}_{name}/bound")
            cells.append("-" if v is None or r is None else f"{v:.0f} ({r:.2f})")
        print(f"{kind:28}" + "".join(f"{c:>16}" for c in cells))
    for kind in ("block", "tx"):
        print(
            f"{kind}: {f[f'{kind}_rounds']:g} rounds, {f[f'{kind}_rounds_incomplete']:g} "
            f"incomplete, worst 100% {f.get(f'{kind}_t100_max_ms', float('nan')):.0f} ms"
        )
    print(
        f"graph unchanged after the run: {info['graph_unchanged_after']}; delayer {info['delayer']}"
    )


if __name__ == "__main__":
    sys.exit(main())
