"""Acceptance benchmark: ``POST /txs`` rate against the number of transactions in the mempool.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_accept.py [--quick] [--json OUT]

One real ``tally-node run --network regtest`` process (fresh data directory, no peers, no mining).
Setup (untimed, ``bench_api.fund``): 100 + F generated blocks and F fan-out transactions give
L + 1,000 distinct confirmed coins, L = 10,000 (3,000 with ``--quick``); one transaction per coin
(1 input, 1 output, fee 500 units) is signed here beforehand.

The transactions are then posted in order, in batches of 500 (msgpack array, one keep-alive
connection, the client of ``bench_api``), without pause: the mempool grows from 0 to L + 1,000.
Every batch is timed; its rate is plotted against the mempool size at its start. At each level
(0, 1,000, 5,000, 10,000; 0, 1,000, 3,000 with ``--quick``) the rate is that of the 1,000
transactions posted from that size on. Ratio ``accept_at_L/accept_at_0`` (1.0: the mempool's size
costs nothing); no target in SPEC 7 (information). At each level, before its batches, 20
``GET /api/v1/address/{a}/txs`` of an address with nothing in the mempool are timed too (median,
information: the cost of the mempool's size to an unrelated address query).

Output: a table on stdout; ``--json OUT`` writes ``{"name": "accept", "figures", "ratios",
"targets", "machine", "series"}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib as bl
import msgpack
from bench_api import fund, sign_spends

NAME = "accept"
BATCH = 500
PROBE = 1_000
TARGETS: dict[str, dict[str, float]] = {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="levels 0, 1,000, 3,000")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    levels = (0, 1_000, 3_000) if args.quick else (0, 1_000, 5_000, 10_000)
    total = levels[-1] + PROBE
    load_before = bl.loadavg()
    began = time.perf_counter()
    other = bl.address_of(bl.key(9).pubkey_hash)
    batches: list[tuple[int, int, float]] = []  # (mempool size before, txs, seconds)
    addr_ms: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="tally-bench-accept-") as tmp:
        node = bl.BenchNode(Path(tmp) / "node").start()
        try:
            bl.log(f"funding {total:,} coins")
            coins = fund(node, total)
            bl.log("signing")
            txs = sign_spends(coins)
            bodies = [
                msgpack.packb([tx.serialize() for tx in txs[i : i + BATCH]])
                for i in range(0, total, BATCH)
            ]
            conn = bl.Conn(node.port)
            addr_probe = bl.get_bytes(node.port, f"/api/v1/address/{other}/txs")
            bl.log(f"posting {total:,} transactions in batches of {BATCH}")
            size = 0
            for body in bodies:
                if size in levels:
                    times = []
                    for _ in range(20):
                        t0 = time.perf_counter()
                        status, _ = conn.request(addr_probe)
                        times.append(time.perf_counter() - t0)
                        assert status == 200
                    addr_ms[size] = statistics.median(times) * 1e3
                data = bl.post_bytes(node.port, "/api/v1/txs", body)
                t0 = time.perf_counter()
                status, answer = conn.request(data)
                elapsed = time.perf_counter() - t0
                assert status == 200, answer[:300]
                items = json.loads(answer)
                n = len(items)
                errors = [it for it in items if "txid" not in it]
                assert not errors, errors[:3]
                batches.append((size, n, elapsed))
                size += n
            conn.close()
            count = node.get("/api/v1/mempool").json().get("count")
            assert count == total, (count, total)
        except BaseException:
            print(node.log()[-3000:], file=sys.stderr)
            raise
        finally:
            node.close()

    figures: dict[str, float] = {}
    for level in levels:
        window = [(n, s) for before, n, s in batches if level <= before < level + PROBE]
        figures[f"accept_at_{level}_tx_per_s"] = sum(n for n, _ in window) / sum(
            s for _, s in window
        )
        figures[f"addr_txs_at_{level}_ms"] = addr_ms[level]
    top = levels[-1]
    ratios = {
        f"accept_at_{lv}/accept_at_0": figures[f"accept_at_{lv}_tx_per_s"]
        / figures["accept_at_0_tx_per_s"]
        for lv in levels[1:]
    }
    ratios[f"addr_txs_at_{top}/at_0"] = (
        figures[f"addr_txs_at_{top}_ms"] / figures["addr_txs_at_0_ms"]
    )
    series = {
        "mempool_size": [b for b, _, _ in batches],
        "tx_per_s": [n / s for _, n, s in batches],
        "levels": list(levels),
        "level_tx_per_s": [figures[f"accept_at_{lv}_tx_per_s"] for lv in levels],
    }
    info = bl.machine(
        load_before,
        quick=args.quick,
        levels=list(levels),
        batch=BATCH,
        probe=PROBE,
        wall_s=round(time.perf_counter() - began, 1),
    )
    print_table(figures, ratios, info)
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info, series)
    return 0


def print_table(figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any]) -> None:
    print(
        f"\nTally acceptance vs mempool size: batches of {info['batch']}, "
        f"{info['cpu_count']} CPUs, load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(f"{'mempool size':>13} {'POST /txs tx/s':>15} {'vs empty':>9} {'addr query ms':>14}")
    for lv in info["levels"]:
        rate = figures[f"accept_at_{lv}_tx_per_s"]
        rel = ratios.get(f"accept_at_{lv}/accept_at_0", 1.0)
        print(f"{lv:13,} {rate:15,.0f} {rel:9.3f} {figures[f'addr_txs_at_{lv}_ms']:14.2f}")


if __name__ == "__main__":
    sys.exit(main())
