"""Node benchmark: start-up time, address-query time and memory of a real node against chain length.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_node.py [--quick] [--json OUT]

The chain (``benchlib.chain_datadirs``, "plain": the "long" chain of ``bench_chainstate.py``, one
fee-paying transaction a block from height 101, block times in the past of the real clock) is
built in this process through the real validation and written as LevelDB data directories
holding its first 100, 1,000, 3,000 and 10,000 blocks; each is copied once to a working directory
that a real ``tally-node run --network regtest`` process opens (stored blocks are not validated
again at start-up).

a. Start-up: seconds from ``Popen`` to the first 200 on ``GET /api/v1/info`` (polled every 10 ms),
   for each chain length, in rounds (5; 3 with ``--quick``) that alternate the order of the
   lengths, after one untimed start per directory (LevelDB log replay, page cache). Median per
   length. An empty data directory (a fresh node creating its genesis) is timed in the same rounds
   for information. Ratio ``startup_10k/100``, target <= 1.5.
b. Address queries: all lengths' nodes running at once, each with one keep-alive connection from
   this process; 150 rounds (50 with ``--quick``), each round one request per (query, length),
   the order of the lengths alternating; median per cell (and, for information, the 10th
   percentile: on a loaded machine every request waits for two thread wake-ups, and the median
   of a cell can move by 2-3x between batches while the fastest tenth stays put). Queries: the
   first page (25) of ``/address/{miner}/txs`` (the miner has a coinbase in every block),
   ``/address/{miner}`` (summary), and the same two for the "small" address (5 coinbases at
   heights 10..50). Ratios ``addr_*_10k/100``, target <= 1.5.
c. Memory: VmRSS of each node's main process (``/proc/<pid>/status``) after the queries;
   target < 300 MB at 10,000 blocks. The proof-of-work worker processes are reported apart (info).

Output: a table on stdout; ``--json OUT`` writes ``{"name": "node", "figures", "ratios",
"targets", "machine", "series"}`` (``series``: the per-length curves for the runner's plots).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib as bl

NAME = "node"
HEIGHTS = (100, 1_000, 3_000, 10_000)
SHORT, LONG = HEIGHTS[0], HEIGHTS[-1]
QUERY_ROUNDS = 50  # quick; the full run does 3 x as many
RSS_LIMIT_MB = 300.0

QUERIES = {
    "addr_txs_miner": "/api/v1/address/{miner}/txs",
    "addr_summary_miner": "/api/v1/address/{miner}",
    "addr_txs_small": "/api/v1/address/{small}/txs",
    "addr_summary_small": "/api/v1/address/{small}",
}
TARGETS: dict[str, dict[str, float]] = {
    "startup_10k/100": {"max": 1.5},
    **{f"{q}_10k/100": {"max": 1.5} for q in QUERIES},
    "rss_10000_mb": {"max": RSS_LIMIT_MB},
}


def label(h: int) -> str:
    return "10k" if h == 10_000 else str(h)


def bench_startup(dirs: dict[int, Path], tmp: Path, rounds: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for h, d in dirs.items():  # untimed first start: log replay, page cache
        node = bl.BenchNode(d).start()
        figures[f"startup_first_{h}_s"] = node.startup_s
        node.close()
    runs: dict[str, list[float]] = {str(h): [] for h in dirs}
    runs["empty"] = []
    names = [*map(str, dirs), "empty"]
    for rnd in range(rounds):
        for name in names if rnd % 2 == 0 else reversed(names):
            if name == "empty":
                d = tmp / f"empty-{rnd}"
            else:
                d = dirs[int(name)]
            node = bl.BenchNode(d).start()
            if name != "empty":
                assert node.height() == int(name), (node.height(), name)
            runs[name].append(node.startup_s)
            node.close()
            shutil.rmtree(tmp / f"empty-{rnd}", ignore_errors=True)
    for name, values in runs.items():
        figures[f"startup_{name}_s"] = statistics.median(values)
        figures[f"startup_{name}_min_s"] = min(values)
    return figures


def bench_queries(dirs: dict[int, Path], rounds: int) -> dict[str, float]:
    miner = bl.address_of(bl.MINER.pubkey_hash)
    small = bl.address_of(bl.SMALL.pubkey_hash)
    nodes = {h: bl.BenchNode(d).start() for h, d in dirs.items()}
    figures: dict[str, float] = {}
    try:
        conns = {h: bl.Conn(n.port) for h, n in nodes.items()}
        paths = {q: p.format(miner=miner, small=small) for q, p in QUERIES.items()}
        requests = {(q, h): bl.get_bytes(nodes[h].port, paths[q]) for q in QUERIES for h in nodes}
        for (q, h), data in requests.items():  # check once, and warm up
            status, body = conns[h].request(data)
            assert status == 200, (q, h, status, body[:200])
        times: dict[tuple[str, int], list[float]] = {cell: [] for cell in requests}
        heights = list(nodes)
        for rnd in range(rounds):
            for q in QUERIES:
                for h in heights if rnd % 2 == 0 else reversed(heights):
                    data = requests[(q, h)]
                    t0 = time.perf_counter()
                    status, _ = conns[h].request(data)
                    times[(q, h)].append(time.perf_counter() - t0)
                    assert status == 200
        for (q, h), values in times.items():
            figures[f"{q}_{h}_ms"] = statistics.median(values) * 1e3
            figures[f"{q}_{h}_p10_ms"] = sorted(values)[len(values) // 10] * 1e3
        for h, node in nodes.items():
            figures[f"rss_{h}_mb"] = node.rss_mb()
            figures[f"rss_children_{h}_mb"] = node.rss_children_mb()
        for c in conns.values():
            c.close()
    finally:
        for node in nodes.values():
            node.close()
    return figures


def print_table(figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any]) -> None:
    f = figures
    print(
        f"\nTally node bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    head = "".join(f"{label(h) + ' blocks':>13}" for h in info["heights"])
    print(f"{'':32}{head}   ratio 10k/100")
    rows: list[tuple[str, str, str | None, int]] = [
        ("start-up (s)", "startup_{}_s", "startup_10k/100", 3)
    ]
    rows += [(f"{q} (ms)", q + "_{}_ms", f"{q}_10k/100", 2) for q in QUERIES]
    rows += [("RSS main process (MB)", "rss_{}_mb", None, 1)]
    rows += [("RSS PoW workers (MB, info)", "rss_children_{}_mb", None, 1)]
    for name, pattern, ratio, digits in rows:
        cells = "".join(f"{f[pattern.format(h)]:13.{digits}f}" for h in info["heights"])
        extra = ""
        if ratio:
            extra = f"   {ratios[ratio]:6.3f}  {bl.verdict(TARGETS, ratio, ratios[ratio])}"
        print(f"{name:32}{cells}{extra}")
    print(
        f"empty data directory start-up (info): {f['startup_empty_s']:.3f} s; "
        f"RSS at {LONG:,} blocks {f[f'rss_{LONG}_mb']:.1f} MB "
        f"{bl.verdict(TARGETS, f'rss_{LONG}_mb', f[f'rss_{LONG}_mb'])}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 start-up rounds instead of 5")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    rounds = 3 if args.quick else 5
    query_rounds = QUERY_ROUNDS if args.quick else 3 * QUERY_ROUNDS
    load_before = bl.loadavg()
    began = time.perf_counter()
    cached = bl.chain_datadirs(HEIGHTS)
    with tempfile.TemporaryDirectory(prefix="tally-bench-node-") as tmp_name:
        tmp = Path(tmp_name)
        dirs = {h: bl.copy_datadir(cached[h], tmp / f"h{h}") for h in HEIGHTS}
        bl.log(f"a. start-up, {rounds} rounds x {len(HEIGHTS) + 1} data directories")
        figures = bench_startup(dirs, tmp, rounds)
        bl.log(f"b. address queries, {query_rounds} rounds")
        figures |= bench_queries(dirs, query_rounds)
    ratios = {"startup_10k/100": figures[f"startup_{LONG}_s"] / figures[f"startup_{SHORT}_s"]}
    for q in QUERIES:
        ratios[f"{q}_10k/100"] = figures[f"{q}_{LONG}_ms"] / figures[f"{q}_{SHORT}_ms"]
        ratios[f"{q}_p10_10k/100"] = figures[f"{q}_{LONG}_p10_ms"] / figures[f"{q}_{SHORT}_p10_ms"]
    series = {
        "blocks": list(HEIGHTS),
        "startup_s": [figures[f"startup_{h}_s"] for h in HEIGHTS],
        "rss_mb": [figures[f"rss_{h}_mb"] for h in HEIGHTS],
        **{f"{q}_ms": [figures[f"{q}_{h}_ms"] for h in HEIGHTS] for q in QUERIES},
    }
    info = bl.machine(
        load_before,
        quick=args.quick,
        heights=list(HEIGHTS),
        startup_rounds=rounds,
        query_rounds=query_rounds,
        wall_s=round(time.perf_counter() - began, 1),
    )
    print_table(figures, ratios, info)
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info, series)
    return 0


if __name__ == "__main__":
    sys.exit(main())
