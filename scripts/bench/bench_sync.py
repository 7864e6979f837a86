"""Sync benchmark: initial sync of N blocks from a peer vs ``tally-node reindex`` of those blocks.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_sync.py [--quick] [--json OUT]

The chain (``benchlib.chain_datadirs``, "loaded": from height 101 one fee-paying transaction a
block, and from height 110 every 10th block carries 22 transactions, 41 signatures; block times in
the past of the real clock) is built in this process through the real validation and written as
LevelDB data directories holding its first N blocks, for N in 250, 500, 1,000, 2,000 (250, 500
with ``--quick``). For each N:

- node A: a real ``tally-node run --network regtest`` on a copy of the N-block directory;
- node B: a real node on an empty data directory, started, then told ``POST /admin/peers`` A;
  the sync time runs from that request to B's ``GET /api/v1/blocks/tip/height`` answering N
  (polled every 20 ms on a keep-alive connection): handshake, headers-first download over HTTP,
  validation (signatures included) and storage with LevelDB ``sync=True``, as a user's node does.
  B's process start-up is not included.
- then B is stopped and ``tally-node reindex --network regtest --datadir B`` is timed (wall time
  of the whole command: Python start-up and imports included), and, right after, the same
  command on a 1-block data directory; the difference is the reindex's own time. ``reindex``
  validates every block again (signatures included) from the stored blocks, ``sync=True``.

The main N (2,000; 500 with ``--quick``) is done 3 times (2 with ``--quick``), each time with a
fresh B; the others twice (once). Medians. Ratio ``sync/reindex`` = (N / sync s) / (N / reindex s)
per round (sync and reindex run back to back), median over the rounds of the main N; target
>= 0.6. Both are bound by fsync latency on a shared disk (sync makes 4 synced LevelDB writes a
block, reindex 1), so absolute times drift during a run; read the per-round ratios.

Output: a table on stdout; ``--json OUT`` writes ``{"name": "sync", "figures", "ratios",
"targets", "machine", "series"}``.
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

NAME = "sync"
TARGETS: dict[str, dict[str, float]] = {"sync/reindex": {"min": 0.6}}
POLL = 0.02


def sync_once(a: bl.BenchNode, b_dir: Path, n: int, timeout: float = 600) -> float:
    b = bl.BenchNode(b_dir).start()
    try:
        conn = bl.Conn(b.port)
        probe = bl.get_bytes(b.port, "/api/v1/blocks/tip/height")
        t0 = time.perf_counter()
        b.add_peer(a)
        deadline = t0 + timeout
        while True:
            status, body = conn.request(probe)
            if status == 200 and int(body) >= n:
                elapsed = time.perf_counter() - t0
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"B reached height {body!r} of {n} in {timeout} s:\n{b.log()}")
            time.sleep(POLL)
        conn.close()
        tip_a = a.get("/api/v1/blocks/tip/hash").body
        tip_b = b.get("/api/v1/blocks/tip/hash").body
        assert tip_a == tip_b, (tip_a, tip_b)
    finally:
        b.close()
    return elapsed


def reindex_once(datadir: Path, expect: int) -> float:
    seconds, out = bl.run_command(["reindex", "--network", "regtest", "--datadir", str(datadir)])
    assert f"reindexed to height {expect}:" in out, out
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 250, 500 (main 500), 2 rounds")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    sizes = (250, 500) if args.quick else (250, 500, 1_000, 2_000)
    main_n = sizes[-1]
    main_rounds = 2 if args.quick else 3
    other_rounds = 1 if args.quick else 2
    load_before = bl.loadavg()
    began = time.perf_counter()
    cached = bl.chain_datadirs([1, *sizes], loaded=True)
    figures: dict[str, float] = {}
    sync_s: dict[int, list[float]] = {n: [] for n in sizes}
    reindex_s: dict[int, list[float]] = {n: [] for n in sizes}
    base_s: list[float] = []
    pair_ratios: dict[int, list[float]] = {n: [] for n in sizes}
    with tempfile.TemporaryDirectory(prefix="tally-bench-sync-") as tmp_name:
        tmp = Path(tmp_name)
        one = bl.copy_datadir(cached[1], tmp / "one")
        reindex_once(one, 1)  # warm the command's imports into the page cache
        for n in sizes:
            a = bl.BenchNode(bl.copy_datadir(cached[n], tmp / f"a{n}")).start()
            try:
                assert a.height() == n, a.height()
                rounds = main_rounds if n == main_n else other_rounds
                for r in range(rounds):
                    b_dir = tmp / f"b{n}-{r}"
                    bl.log(f"sync of {n:,} blocks, round {r + 1}/{rounds}")
                    sync_s[n].append(sync_once(a, b_dir, n))
                    reindex_s[n].append(reindex_once(b_dir, n))
                    base_s.append(reindex_once(one, 1))
                    net = reindex_s[n][-1] - base_s[-1]
                    pair_ratios[n].append(net / sync_s[n][-1])
                    bl.log(
                        f"  sync {sync_s[n][-1]:.2f} s, reindex {reindex_s[n][-1]:.2f} s "
                        f"(1-block reindex {base_s[-1]:.2f} s)"
                    )
            finally:
                a.close()
    base = statistics.median(base_s)
    for n in sizes:
        s = statistics.median(sync_s[n])
        rx = statistics.median(reindex_s[n]) - base
        figures[f"sync_{n}_s"] = s
        figures[f"reindex_{n}_s"] = rx
        figures[f"reindex_{n}_wall_s"] = statistics.median(reindex_s[n])
        figures[f"sync_{n}_blocks_per_s"] = n / s
        figures[f"reindex_{n}_blocks_per_s"] = n / rx
    figures["reindex_1_block_wall_s"] = base
    figures["main_blocks"] = main_n
    figures["sync_blocks_per_s"] = figures[f"sync_{main_n}_blocks_per_s"]
    figures["reindex_blocks_per_s"] = figures[f"reindex_{main_n}_blocks_per_s"]
    # Each round's sync and reindex run back to back: the median of the per-round ratios is
    # steadier than a ratio of medians when the disk's fsync latency drifts during the run.
    ratios = {"sync/reindex": statistics.median(pair_ratios[main_n])}
    ratios["sync/reindex_of_medians"] = (
        figures["sync_blocks_per_s"] / figures["reindex_blocks_per_s"]
    )
    for n in sizes:
        if n != main_n:
            ratios[f"sync/reindex_{n}"] = statistics.median(pair_ratios[n])
    series = {
        "blocks": list(sizes),
        "sync_s": [figures[f"sync_{n}_s"] for n in sizes],
        "reindex_s": [figures[f"reindex_{n}_s"] for n in sizes],
    }
    info = bl.machine(
        load_before,
        quick=args.quick,
        sizes=list(sizes),
        main_rounds=main_rounds,
        chain="loaded: 1 tx a block from height 101, 22 txs in every 10th from 110",
        wall_s=round(time.perf_counter() - began, 1),
    )
    print_table(figures, ratios, info, sizes)
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info, series)
    return 0


def print_table(
    figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any], sizes: Any
) -> None:
    f = figures
    print(
        f"\nTally sync bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(f"{'blocks':>8} {'sync s':>8} {'blocks/s':>9} {'reindex s':>10} {'blocks/s':>9}  ratio")
    for n in sizes:
        print(
            f"{n:8,} {f[f'sync_{n}_s']:8.2f} {f[f'sync_{n}_blocks_per_s']:9.0f} "
            f"{f[f'reindex_{n}_s']:10.2f} {f[f'reindex_{n}_blocks_per_s']:9.0f}  "
            f"{ratios.get(f'sync/reindex_{n}', ratios['sync/reindex']):.3f}"
        )
    r = ratios["sync/reindex"]
    print(
        f"sync/reindex at {int(f['main_blocks']):,} blocks (median of per-round ratios): {r:.3f}  "
        f"{bl.verdict(TARGETS, 'sync/reindex', r)}  (reindex = command wall time minus "
        f"{f['reindex_1_block_wall_s']:.2f} s for a 1-block directory)"
    )


if __name__ == "__main__":
    sys.exit(main())
