"""Public reads against block size, and ``/info`` while clients page (issue 17, acceptance 2).

Run from the repository root::

    .venv/bin/python scripts/bench/bench_reads.py [--quick] [--json OUT]

The machine is shared and noisy (2 cores), so the figures with a meaning are RATIOS measured in
the same run, interleaved: a read from a block of 1 MB over the same read from a block of 1 KB.

Setup (untimed): one regtest chain built in this process through the real validation
(``tests.helpers``, block times in the past) and written to a LevelDB data directory by the real
``Chainstate``; then a real ``tally-node run`` serves it. After the 101 blocks that make coinbases
spendable, one block fans two coinbases out into 12,000 coins; then, for each block size S in
``SIZES`` (about 1 KB, 10 KB, 100 KB and 990 KB), blocks of that size hold one "probe" payment
to an address of its own (``/tx/`` of it) and 25 payments to another address of its own (its
first ``/address/{a}/txs`` page), filled up to S with payments to a sink; a 1 KB block holds 4
transactions, so that size takes several blocks for its 25 rows. Last, ``BIG`` (5,000; 2,000
with ``--quick``) payments to one address, in as few blocks as fit.

a. ``GET /tx/{probe}`` and b. ``GET /address/{a}/txs`` (25 rows), for every size: rounds of
   ``REPEAT`` sequential requests on one keep-alive connection, the sizes interleaved round
   after round; the figure is the median over all of a size's requests. Ratios
   ``tx_990k/1k`` and ``page_990k/1k`` (target: at most 2: flat within 2x). Before issue 17 a
   ``/tx/`` decoded its whole block and undo data, and a page did it once per row.
c. ``GET /info``: latency sampled every 10 ms, first on an idle node, then while 10 clients (one
   subprocess, a thread each, a keep-alive connection each) page through the ``BIG`` address
   with ``after_txid`` cursors, starting over at the end. Figures: 50th and 99th percentile and
   the maximum, idle and loaded, and the pages per second the clients got. Target:
   ``info_p99_loaded_ms`` at most 50; ratio ``info_p99_loaded/idle`` for information. Then
   ``GENERATES`` ``admin/generate`` calls of one block each, idle and while the clients page
   (a command on the state thread, behind at most 4 reads): ``generate_loaded/idle``, info.

Every answer is checked (status 200; a page has 25 rows; /tx/ the probe's txid).
Output: a table on stdout; with ``--json OUT`` a JSON object ``{"name": "reads", "figures",
"ratios", "targets", "machine", "series"}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as bl  # noqa: E402

from consensus import MAX_BLOCK_SIZE, Block, OutPoint, Transaction, TxOut  # noqa: E402
from tests.helpers import REGTEST, Key, key, spend  # noqa: E402

NAME = "reads"
SIZES = (1_000, 10_000, 100_000, 990_000)
FAN = 6_000
FAN_AMOUNT = 500_000
FEE = 1_000
ROWS = 25
MINER, FUNDS, SINK, BIG_ADDR = key(0), key(1), key(5), key(6)
CLIENTS = 10
GENERATES = 5
TARGETS: dict[str, dict[str, float]] = {
    "tx_990k/1k": {"max": 2.0},
    "page_990k/1k": {"max": 2.0},
    "info_p99_loaded_ms": {"max": 50.0},
}

Coin3 = tuple[OutPoint, TxOut, Key]


def label(size: int) -> str:
    return f"{size // 1000}k"


def probe_key(size: int) -> Key:
    return key(100 + SIZES.index(size))


def page_key(size: int) -> Key:
    return key(200 + SIZES.index(size))


# --- the chain -----------------------------------------------------------------------------------


def build(datadir: Path, big: int) -> dict[str, Any]:
    """Write the chain (see the module docstring) to ``datadir``; what the benchmark queries."""
    from node.chainstate import Chainstate
    from node.storage import LevelDBStore

    cb = bl.ClockChainBuilder()
    store = LevelDBStore(datadir / "chainstate")
    cs = Chainstate(store, REGTEST, clock=time.time, sync=False)
    blocks = 0
    sizes: dict[str, list[int]] = {}

    def add(txs: list[Transaction], fees: int) -> Block:
        nonlocal blocks
        block = cb.next_block(txs, fees=fees)
        cb.add(block)
        assert cs.process_block(block).status == "active"
        blocks += 1
        return block

    try:
        for _ in range(REGTEST.coinbase_maturity + 1):
            add([], 0)
        coins: list[Coin3] = []
        fans = []
        for height in (1, 2):
            cb_coin = (*cb.coinbase_coin(height)[:2], MINER)
            tx = spend([cb_coin], [TxOut(FAN_AMOUNT, FUNDS.pubkey_hash)] * FAN)
            fans.append(tx)
            coins += [(OutPoint(tx.txid(), n), tx.outputs[n], FUNDS) for n in range(FAN)]
        fan_fees = sum(cb.coinbase_coin(h)[1].amount for h in (1, 2)) - 2 * FAN * FAN_AMOUNT
        add(fans, fan_fees)

        def pay(to: Key) -> Transaction:
            coin = coins.pop()
            return spend([coin], [TxOut(coin[1].amount - FEE, to.pubkey_hash)])

        tx_size = pay(SINK).size()
        coins_left_check = len(coins)
        probes: dict[int, str] = {}
        for size in SIZES:
            per_block = max(1, (size - 200) // tx_size)
            wanted = [pay(probe_key(size))] + [pay(page_key(size)) for _ in range(ROWS)]
            probes[size] = wanted[0].txid()[::-1].hex()
            while wanted:
                mine, wanted = wanted[:per_block], wanted[per_block:]
                fill = [pay(SINK) for _ in range(per_block - len(mine))]
                half = len(fill) // 2
                txs = [*fill[:half], *mine, *fill[half:]]
                block = add(txs, FEE * len(txs))
                assert block.size() <= MAX_BLOCK_SIZE
                sizes.setdefault(label(size), []).append(block.size())
        per_block = (990_000 - 200) // tx_size
        remaining = big
        while remaining:
            n = min(per_block, remaining)
            add([pay(BIG_ADDR) for _ in range(n)], FEE * n)
            remaining -= n
        assert coins_left_check > len(coins)
    finally:
        store.close()
    return {"probes": probes, "block_sizes": sizes, "blocks": blocks, "tx_size": tx_size}


# --- clients -------------------------------------------------------------------------------------


def pager(port: int, address: str, clients: int, seconds: float) -> None:
    """(Run as a subprocess.) ``clients`` threads page through ``address`` for ``seconds``;
    prints the pages fetched and any error as JSON."""
    stop = time.monotonic() + seconds
    pages = [0] * clients
    errors: list[str] = []

    def run(i: int) -> None:
        conn = bl.Conn(port)
        after = ""
        try:
            while time.monotonic() < stop:
                path = f"/api/v1/address/{address}/txs" + (f"?after_txid={after}" if after else "")
                status, body = conn.get(path)
                if status != 200:
                    errors.append(f"{status} {body[:200]!r}")
                    return
                rows = json.loads(body)
                after = rows[-1]["txid"] if rows else ""
                pages[i] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"pages": sum(pages), "errors": errors}))


def sample_info(port: int, count: int, gap: float = 0.01) -> list[float]:
    conn = bl.Conn(port)
    data = bl.get_bytes(port, "/api/v1/info")
    out = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            status, body = conn.request(data)
            out.append(time.perf_counter() - t0)
            if status != 200:
                raise AssertionError(f"/info: {status} {body[:200]!r}")
            time.sleep(gap)
    finally:
        conn.close()
    return out


def generate_times(node: bl.BenchNode, count: int) -> list[float]:
    """Seconds of ``count`` ``admin/generate`` calls of one block each: a command on the state
    thread (template, proof of work on regtest, connect), queued behind any reads there."""
    out = []
    to = bl.address_of(MINER.pubkey_hash)
    for _ in range(count):
        t0 = time.perf_counter()
        node.generate(1, to)
        out.append(time.perf_counter() - t0)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(conn: bl.Conn, path: str, n: int, check: Any) -> list[float]:
    data = bl.get_bytes(conn.port, path)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, body = conn.request(data)
        out.append(time.perf_counter() - t0)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body[:200]!r}")
    check(json.loads(body))
    return out


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests, 2,000-tx address")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    ap.add_argument("--pager", nargs=4, metavar=("PORT", "ADDRESS", "CLIENTS", "SECONDS"))
    args = ap.parse_args(argv)
    if args.pager:
        port, address, clients, seconds = args.pager
        pager(int(port), address, int(clients), float(seconds))
        return 0
    big = 2_000 if args.quick else 5_000
    rounds, repeat = (4, 10) if args.quick else (10, 20)
    info_samples = 200 if args.quick else 500
    load_before = bl.loadavg()
    figures: dict[str, float] = {}
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tally-bench-reads-") as tmp:
        datadir = Path(tmp) / "node"
        datadir.mkdir()
        bl.log(f"building the chain ({big:,}-transaction address) ...")
        began = time.perf_counter()
        built = build(datadir, big)
        bl.log(f"built {built['blocks']} blocks in {time.perf_counter() - began:.0f} s")
        node = bl.BenchNode(datadir)
        try:
            node.start()
            conn = bl.Conn(node.port)
            tx_times: dict[int, list[float]] = {s: [] for s in SIZES}
            page_times: dict[int, list[float]] = {s: [] for s in SIZES}
            bl.log(f"a/b. /tx/ and address pages, {rounds} rounds x {repeat} per size ...")
            for _ in range(rounds):
                for size in SIZES:
                    probe = built["probes"][size]
                    tx_times[size] += timed(
                        conn,
                        f"/api/v1/tx/{probe}",
                        repeat,
                        lambda j, p=probe: assert_equal(j["txid"], p),
                    )
                    address = bl.address_of(page_key(size).pubkey_hash)
                    page_times[size] += timed(
                        conn,
                        f"/api/v1/address/{address}/txs",
                        repeat,
                        lambda j: assert_equal(len(j), ROWS),
                    )
            conn.close()
            for size in SIZES:
                figures[f"tx_{label(size)}_ms"] = 1e3 * statistics.median(tx_times[size])
                figures[f"page_{label(size)}_ms"] = 1e3 * statistics.median(page_times[size])
                figures[f"block_{label(size)}_bytes"] = max(built["block_sizes"][label(size)])
            top, bottom = label(SIZES[-1]), label(SIZES[0])
            ratios[f"tx_{top}/{bottom}"] = figures[f"tx_{top}_ms"] / figures[f"tx_{bottom}_ms"]
            ratios[f"page_{top}/{bottom}"] = (
                figures[f"page_{top}_ms"] / figures[f"page_{bottom}_ms"]
            )

            bl.log("c. /info idle ...")
            idle = sample_info(node.port, info_samples)
            gen_idle = generate_times(node, GENERATES)
            address = bl.address_of(BIG_ADDR.pubkey_hash)
            seconds = info_samples * 0.012 + 8
            bl.log(f"c. /info while {CLIENTS} clients page through {big:,} transactions ...")
            proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--pager",
                    str(node.port),
                    address,
                    str(CLIENTS),
                    str(seconds),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1.0)  # the clients are paging
            t0 = time.perf_counter()
            loaded = sample_info(node.port, info_samples)
            sampled_for = time.perf_counter() - t0
            gen_loaded = generate_times(node, GENERATES)
            out, _ = proc.communicate(timeout=seconds + 120)
            paged = json.loads(out)
            if paged["errors"]:
                raise AssertionError(f"pager errors: {paged['errors'][:3]}")
            for name, values in (("idle", idle), ("loaded", loaded)):
                figures[f"info_p50_{name}_ms"] = 1e3 * percentile(values, 0.50)
                figures[f"info_p99_{name}_ms"] = 1e3 * percentile(values, 0.99)
                figures[f"info_max_{name}_ms"] = 1e3 * max(values)
            figures["generate_idle_ms"] = 1e3 * statistics.median(gen_idle)
            figures["generate_loaded_ms"] = 1e3 * statistics.median(gen_loaded)
            ratios["generate_loaded/idle"] = (
                figures["generate_loaded_ms"] / figures["generate_idle_ms"]
            )
            figures["pages_per_s"] = paged["pages"] / seconds
            figures["info_sampled_s"] = sampled_for
            ratios["info_p99_loaded/idle"] = (
                figures["info_p99_loaded_ms"] / figures["info_p99_idle_ms"]
            )
        except BaseException:
            print(node.log()[-3000:], file=sys.stderr)
            raise
        finally:
            node.close()

    info = bl.machine(load_before, quick=args.quick, big_address_txs=big, tx_size=built["tx_size"])
    print_table(figures, ratios)
    series = {
        "sizes": [max(built["block_sizes"][label(s)]) for s in SIZES],
        "tx_ms": [figures[f"tx_{label(s)}_ms"] for s in SIZES],
        "page_ms": [figures[f"page_{label(s)}_ms"] for s in SIZES],
    }
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info, series)
    return 0


def assert_equal(a: object, b: object) -> None:
    if a != b:
        raise AssertionError(f"{a!r} != {b!r}")


def print_table(f: dict[str, float], r: dict[str, float]) -> None:
    print(f"{'block size':>12} {'bytes':>9} {'/tx/ ms':>9} {'page ms':>9}")
    for size in SIZES:
        name = label(size)
        print(
            f"{name:>12} {int(f[f'block_{name}_bytes']):>9} {f[f'tx_{name}_ms']:9.2f} "
            f"{f[f'page_{name}_ms']:9.2f}"
        )
    for ratio in ("tx_990k/1k", "page_990k/1k", "info_p99_loaded/idle"):
        print(f"  {ratio:<24} {r[ratio]:7.3f}  {bl.verdict(TARGETS, ratio, r[ratio])}")
    for name in ("idle", "loaded"):
        print(
            f"  /info {name:<7} p50 {f[f'info_p50_{name}_ms']:6.2f} ms  "
            f"p99 {f[f'info_p99_{name}_ms']:6.2f} ms  max {f[f'info_max_{name}_ms']:6.2f} ms"
        )
    print(
        f"  {'info_p99_loaded_ms':<24} {f['info_p99_loaded_ms']:7.2f}  "
        f"{bl.verdict(TARGETS, 'info_p99_loaded_ms', f['info_p99_loaded_ms'])}"
    )
    print(f"  pages/s by {CLIENTS} clients: {f['pages_per_s']:.1f}")
    print(
        f"  admin/generate 1 block: idle {f['generate_idle_ms']:.1f} ms, while paging "
        f"{f['generate_loaded_ms']:.1f} ms (ratio {r['generate_loaded/idle']:.2f})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
