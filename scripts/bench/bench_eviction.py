"""Eviction benchmark: accepting a transaction into a FULL mempool against pool size.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_eviction.py [--quick] [--json OUT]

Issue 16 defect 9 / issue 17: a full pool evicted its lowest descendant-score package with a
scan of every entry (``min`` with a descendant walk per entry) for each newcomer: 3 ms at 2,000
entries, 28 ms at 16,000. Eviction is now O(log n) (``node.mempool``: package sums per entry, a
lazily invalidated heap). This benchmark shows it.

Everything runs in this one process. The mempool is the real ``Mempool`` persisting into a
``LevelDBStore`` (a temporary directory per pool), as the node wires it (``MemoryStore`` keeps a
sorted key list whose inserts cost O(n): a test double, not what a node runs). Its ``ChainView``
is a dict of confirmed coins (the chain is not what is measured), and its signature verifier
always says yes, so that elliptic-curve work (the same at every pool size) does not hide the
eviction cost: the ratios are the stricter for it.
Every transaction spends one confirmed coin into one output (all the same size).

For each pool size N (1,000, 10,000 and 100,000 entries; ``--quick``: 1,000, 10,000, 30,000) a
pool is filled with N transactions (80 % independent, 20 % parent-child pairs; fee rates drawn
from 1..50 units per byte, seeded) and its byte limit set to exactly what it holds. Then
newcomers paying 100 units per byte are accepted, each of which evicts exactly one package: the
"full" accept time. The ceiling is the same newcomers accepted into an empty pool (no limit
reached) in the same run, interleaved with the full pools chunk by chunk (chunks of 100, best of
the repeats per chunk, summed). Ratio ``full_N/empty`` (1.0: eviction costs nothing; O(log n)
keeps it near flat from 1k to 100k; the old scan grew about 10x per 10x of pool).

Output: a table; with ``--json OUT`` the usual ``{"name": "eviction", "figures", "ratios",
"targets", "machine"}``. Target: ``full_N/empty`` <= 3 for every N (a loose bound: a heap push
per ancestor and the removal's bookkeeping are real work, but they do not grow with N).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchlib import loadavg, platform_info, verdict, write_json  # noqa: E402

from consensus import Coin, OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from node.mempool import ChainView, Mempool, MempoolPolicy  # noqa: E402
from node.storage import LevelDBStore  # noqa: E402
from tests.helpers import REGTEST, key  # noqa: E402

NAME = "eviction"
OWNER = key(9)
AMOUNT = 10_000_000
TIP = 1_000
CHUNK = 100
NEWCOMER_RATE = 100
DUMMY_SIG = b"\x01" * 64
TARGETS: dict[str, dict[str, float]] = {}


def always_valid(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    return True


class Coins:
    """Confirmed coins as a plain dict, handed out one at a time."""

    def __init__(self) -> None:
        self.coins: dict[OutPoint, Coin] = {}
        self._n = 0

    def new(self) -> OutPoint:
        self._n += 1
        outpoint = OutPoint(hashlib.sha256(self._n.to_bytes(8, "little")).digest(), 0)
        self.coins[outpoint] = Coin(TxOut(AMOUNT, OWNER.pubkey_hash), 1, False)
        return outpoint

    def view(self) -> ChainView:
        return ChainView(self.coins.get, lambda: TIP, lambda txid: False)


def tx_spending(outpoint: OutPoint, amount: int, fee: int) -> Transaction:
    return Transaction(
        1,
        (TxIn(outpoint, OWNER.pubkey, DUMMY_SIG),),
        (TxOut(amount - fee, OWNER.pubkey_hash),),
        0,
    )


SIZE = tx_spending(OutPoint(b"\x00" * 32, 0), AMOUNT, 1_000).size()


_TMP = tempfile.TemporaryDirectory(prefix="tally-bench-eviction-")
_STORES: list[LevelDBStore] = []


def new_pool(coins: Coins, max_bytes: int) -> Mempool:
    store = LevelDBStore(Path(_TMP.name) / f"pool{len(_STORES)}")
    _STORES.append(store)
    return Mempool(
        coins.view(),
        REGTEST,
        policy=MempoolPolicy(max_bytes=max_bytes),
        verify=always_valid,
        store=store,
        clock=time.time,
    )


def fill(coins: Coins, n: int, seed: int) -> Mempool:
    """A pool of exactly ``n`` entries whose byte limit is what it holds."""
    rng = random.Random(seed)
    pool = new_pool(coins, 10**12)
    while len(pool) < n:
        rate = rng.randint(1, 50)
        parent = tx_spending(coins.new(), AMOUNT, rate * SIZE)
        pool.accept(parent)
        if len(pool) < n and rng.random() < 0.2:
            child_rate = rng.randint(1, 50)
            child = tx_spending(OutPoint(parent.txid(), 0), AMOUNT - rate * SIZE, child_rate * SIZE)
            pool.accept(child)
    assert len(pool) == n
    pool.policy = MempoolPolicy(max_bytes=pool.total_bytes)
    return pool


def accept_chunk(pool: Mempool, txs: Sequence[Transaction]) -> Callable[[], None]:
    def run() -> None:
        for tx in txs:
            if pool.accept(tx).status != "accepted":
                raise AssertionError("a newcomer was not accepted")

    return run


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="pools of 1k, 10k, 30k; 3 repeats")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    sizes = (1_000, 10_000, 30_000) if args.quick else (1_000, 10_000, 100_000)
    repeats = 3 if args.quick else 5
    chunks = 3 if args.quick else 5
    load_before = loadavg()
    coins = Coins()

    names = ["empty", *(f"full_{n}" for n in sizes)]
    best = {name: [float("inf")] * chunks for name in names}
    evicted = dict.fromkeys(names, 0)
    fill_seconds: dict[str, float] = {}
    pools: dict[str, Mempool] = {}
    for n in sizes:
        print(f"filling a pool of {n:,} ...", file=sys.stderr)
        started = time.perf_counter()
        pools[f"full_{n}"] = fill(coins, n, seed=n)
        fill_seconds[f"full_{n}"] = time.perf_counter() - started
    # Each repeat hands every contender fresh newcomers (a transaction is accepted once).
    for rep in range(repeats):
        pools["empty"] = new_pool(coins, 10**12)
        newcomers = {
            name: [
                [tx_spending(coins.new(), AMOUNT, NEWCOMER_RATE * SIZE) for _ in range(CHUNK)]
                for _ in range(chunks)
            ]
            for name in names
        }
        print(f"repeat {rep + 1}/{repeats} ...", file=sys.stderr)
        for i in range(chunks):
            shift = (i + rep) % len(names)
            for name in names[shift:] + names[:shift]:
                pool = pools[name]
                before = len(pool)
                best[name][i] = min(best[name][i], timed(accept_chunk(pool, newcomers[name][i])))
                evicted[name] += before + CHUNK - len(pool)
    for n in sizes:
        pool = pools[f"full_{n}"]
        assert n - 1 <= len(pool) <= n, (n, len(pool))  # a pair evicted leaves room for one
        assert pool.total_bytes <= pool.policy.max_bytes
    assert evicted["empty"] == 0

    per_tx = {name: sum(best[name]) / (chunks * CHUNK) for name in names}
    figures: dict[str, float] = {"tx_size": SIZE, "newcomers_per_contender": chunks * CHUNK}
    ratios: dict[str, float] = {}
    for name in names:
        figures[f"{name}_us_per_accept"] = per_tx[name] * 1e6
    for n in sizes:
        name = f"full_{n}"
        figures[f"{name}_evicted"] = evicted[name]
        figures[f"{name}_fill_s"] = fill_seconds[name]
        ratios[f"{name}/empty"] = per_tx[name] / per_tx["empty"]
        TARGETS[f"{name}/empty"] = {"max": 3.0}
    info = {
        **platform_info(load_before),
        "quick": args.quick,
        "sizes": list(sizes),
        "repeats": repeats,
        "chunks": chunks,
        "chunk": CHUNK,
    }

    print(
        f"\nTally eviction bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(
        f"accepting {chunks * CHUNK} newcomers ({SIZE} bytes, {NEWCOMER_RATE} units/B), "
        f"best of {repeats} per chunk of {CHUNK}"
    )
    print(f"  {'empty pool (ceiling)':28} {figures['empty_us_per_accept']:9.1f} us/accept")
    for n in sizes:
        name = f"full_{n}"
        ratio = ratios[f"{name}/empty"]
        print(
            f"  {f'full pool of {n:,}':28} {figures[f'{name}_us_per_accept']:9.1f} us/accept"
            f"  {name}/empty {ratio:.2f} {verdict(TARGETS, f'{name}/empty', ratio)}"
        )
    write_json(args.json, NAME, figures, ratios, TARGETS, info)
    for store in _STORES:
        store.close()
    _TMP.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
