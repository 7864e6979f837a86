"""Chainstate benchmark: start-up time, connect throughput, address-index lookups and reindex.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_chainstate.py [--quick] [--json OUT] [--profile]

Everything runs in this one process. The machine is shared and noisy, so every figure that has a
target is a RATIO to a baseline measured in the same run, interleaved with it; absolute times and
rates are printed for information only. Every ``Chainstate`` gets ``clock=lambda: 2**31``
(``ChainBuilder``'s block times run ahead of the wall clock). The databases live in a temporary
directory (``--tmpdir``, default the system's) that is removed at the end. ``gc.collect()`` then
``gc.freeze()`` precede every timed run, so later collections skip the large fixtures (the
chains) instead of costing minutes; the collector stays on during timed runs.

Chains (all built by ``tests.helpers.ChainBuilder`` through the real validation):

- "long" chain: 10,000 blocks (2,000 with ``--quick``) mined to key 0, except the coinbases of
  heights 10, 20, 30, 40 and 50, which pay the "small" address (key 2: five transactions, five
  unspent coins, never spent). From height 101 each block carries one transaction moving a coin
  of key 1 to itself for a fee of 1 (the coinbase of height 1 starts the line): regtest halves
  the subsidy every 150 blocks, so from height 4,950 a coinbase is worth only its fees, and an
  empty block's zero-value coinbase would be invalid. The "short" chain is its first 100 blocks.
- "load" chain: 101 empty blocks, one block fanning the coinbases of heights 1 and 2 out into
  2 x 1,000 coins over 200 keys, then 300 blocks (60 with ``--quick``) of 50-100 signed
  transactions each (seeded pseudo-random: 1 or 2 inputs taken oldest-first from coins confirmed
  in earlier blocks, 1 or 2 outputs to random keys of the 200, fee 1,000).

What is measured:

a. Start-up. Each chain is processed once into its own LevelDB chainstate (``sync=False``) and
   the store closed. One untimed open per database replays LevelDB's log (reported as "first
   open"); then 7 rounds, alternating the order, each time
   ``Chainstate(LevelDBStore(path), REGTEST, clock=...)`` (the close is not timed). Median of
   the 7; ratio open(long) / open(short), target <= 1.5. The LevelDB open alone is reported too.

b. Connect throughput. The load chain's funding blocks are processed untimed into a fresh
   chainstate per contender, then its loaded blocks by ``process_block`` (context-free checks,
   storing, connecting, signatures included) in chunks of 10 blocks: every contender on a chunk
   (order rotating), then the next chunk. Contenders: ``MemoryStore`` (the baseline; not a
   ceiling: its sorted key list makes every new key an O(n) list insert),
   ``LevelDBStore`` with ``sync=True`` (as a node runs) and with ``sync=False``, plus, for
   information, memory and LevelDB ``sync=True`` with signature checks off (``verify`` always
   true), which shows the storage share without the crypto. The whole pass is repeated (2 times,
   1 with ``--quick``) on fresh databases and each contender's best time per chunk is summed.
   Rates are non-coinbase transactions and blocks per second; ratio LevelDB(sync) / memory,
   target >= 0.7.

c. Address-index lookups, on the short and long databases of (a), both open at once:
   ``list(islice(cs.address_history(pkh), 25))`` and ``list(cs.address_utxos(pkh))`` for the
   small address (5 entries either way) and the first page of 25 of the miner's history (one
   coinbase per block). Timed in batches of 20 calls, many rounds alternating the databases; the
   median per call is kept. Ratio long / short for each, target <= 1.5. For information, also
   ``address_utxos`` of key 1 (one live coin, but every block of the long chain spent one of its
   coins). Spent coins leave LevelDB deletion markers in the ``o`` table until a compaction drops
   them, and a scan cannot stop at the prefix's end without stepping over them to the next live
   key; the small address's hash sorts just before key 1's, so its scan ends in key 1's markers.
   The result therefore depends on how far LevelDB has compacted (the 2,000-block database of
   ``--quick`` usually has not, the 10,000-block one mostly has).

d. Reindex. The long chain's first 2,000 blocks go into a fresh LevelDB chainstate; then
   ``reindex()`` runs 3 times (1 with ``--quick``; fewer once 12 s are spent, as fsync can be
   slow on a shared disk) with ``sync=True``, then once with ``sync=False``: median blocks per
   second, for information.

``--profile`` adds cProfile listings of two chunks of (b) on LevelDB ``sync=True`` and of 20 opens
of the long database, top functions by cumulative and by own time (to rank, not to measure).

Output: a table on stdout; with ``--json OUT`` a JSON object ``{"name", "figures", "ratios",
"targets", "machine"}``; a target is ``{"max": x}`` or ``{"min": x}`` on the ratio of that name.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import plyvel  # noqa: E402
from benchlib import loadavg, platform_info, version, write_json  # noqa: E402

from consensus import Block, OutPoint, Transaction, TxOut, verify_signature  # noqa: E402
from node.chainstate import Chainstate  # noqa: E402
from node.storage import KeyValueStore, LevelDBStore, MemoryStore  # noqa: E402
from tests.helpers import REGTEST, ChainBuilder, Key, key, spend  # noqa: E402

NAME = "chainstate"
SHORT_BLOCKS = 100
SMALL_HEIGHTS = (10, 20, 30, 40, 50)
FEE = 1_000
FAN_OUT = 1_000
LOAD_KEYS = 200
CHUNK = 10
PAGE = 25
REINDEX_BLOCKS = 2_000
OPEN_ROUNDS = 7

TARGETS: dict[str, dict[str, float]] = {
    "open_long/open_short": {"max": 1.5},
    "leveldb_sync/memory": {"min": 0.7},
    "addr_history_small_long/short": {"max": 1.5},
    "addr_utxos_small_long/short": {"max": 1.5},
    "addr_history_miner_long/short": {"max": 1.5},
}


def clock() -> float:
    return float(2**31)


def always_valid(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    return True


Coin3 = tuple[OutPoint, TxOut, Key]


# --- timing ------------------------------------------------------------------------------------


def settle() -> None:
    """Collect, then freeze what survives: later collections skip the (large) fixtures, so they
    neither land in timed runs at full cost nor take minutes of untimed wall time."""
    gc.collect()
    gc.freeze()


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes, after ``settle()``."""
    settle()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def dir_bytes(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())


# --- chains ------------------------------------------------------------------------------------


def build_long_chain(length: int) -> list[Block]:
    """Blocks 1..length of the long chain (see the module docstring)."""
    cb = ChainBuilder()
    miner, small, mover = cb.miner, key(2), key(1)
    line: Coin3 | None = None
    for height in range(1, length + 1):
        txs: list[Transaction] = []
        if height > REGTEST.coinbase_maturity:
            if line is None:
                line = cb.coinbase_coin(1)
            tx = spend([line], [TxOut(line[1].amount - 1, mover.pubkey_hash)])
            txs.append(tx)
            line = (OutPoint(tx.txid(), 0), tx.outputs[0], mover)
        cb.miner = small if height in SMALL_HEIGHTS else miner
        cb.add(cb.next_block(txs, fees=len(txs)))
        cb.miner = miner
    return cb.blocks[1:]


@dataclass
class LoadChain:
    funding: list[Block]
    loaded: list[Block]

    @property
    def txs(self) -> int:
        return sum(len(b.txs) - 1 for b in self.loaded)


def build_load_chain(blocks: int, seed: int = 1) -> LoadChain:
    """101 empty blocks, a fan-out block, then ``blocks`` blocks of 50-100 transactions."""
    rng = random.Random(seed)
    keys = [key(1_000 + i) for i in range(LOAD_KEYS)]
    cb = ChainBuilder()
    cb.grow(REGTEST.coinbase_maturity + 1)  # the coinbase of height 2 spendable next
    pool: deque[Coin3] = deque()
    fan: list[Transaction] = []
    for height in (1, 2):
        coin = cb.coinbase_coin(height)
        amount = coin[1].amount // FAN_OUT
        owners = [keys[(height * FAN_OUT + i) % LOAD_KEYS] for i in range(FAN_OUT)]
        tx = spend([coin], [TxOut(amount, k.pubkey_hash) for k in owners])
        fan.append(tx)
        pool.extend((OutPoint(tx.txid(), i), tx.outputs[i], k) for i, k in enumerate(owners))
    cb.add(cb.next_block(fan))
    funding_end = len(cb.blocks)
    for _ in range(blocks):
        txs: list[Transaction] = []
        fresh: list[Coin3] = []
        for _ in range(rng.randint(50, 100)):
            n_in = 1 if rng.random() < 0.55 else 2
            coins = [pool.popleft() for _ in range(n_in)]
            value = sum(c[1].amount for c in coins) - FEE
            if value <= 0:
                raise AssertionError("load chain ran out of value; lower FEE")
            owners = [rng.choice(keys)]
            if value >= 20_000 and rng.random() < 0.55:
                owners.append(rng.choice(keys))
            first = value if len(owners) == 1 else rng.randint(value // 10, value - value // 10)
            amounts = [first] if len(owners) == 1 else [first, value - first]
            outs = [TxOut(a, k.pubkey_hash) for a, k in zip(amounts, owners, strict=True)]
            tx = spend(coins, outs)
            txs.append(tx)
            fresh.extend((OutPoint(tx.txid(), i), tx.outputs[i], k) for i, k in enumerate(owners))
        cb.add(cb.next_block(txs, fees=FEE * len(txs)))
        pool.extend(fresh)  # spendable from the next block on
    return LoadChain(cb.blocks[1:funding_end], cb.blocks[funding_end:])


def fill_leveldb(path: str, blocks: Sequence[Block]) -> None:
    """Process ``blocks`` into a new LevelDB chainstate at ``path`` (sync=False) and close it."""
    store = LevelDBStore(path)
    try:
        cs = Chainstate(store, REGTEST, clock=clock, sync=False)
        for block in blocks:
            cs.process_block(block)
        assert cs.height == len(blocks), (cs.height, len(blocks))
    finally:
        store.close()


# --- a. start-up -------------------------------------------------------------------------------


def open_once(path: str, expect_height: int) -> tuple[float, float]:
    """(seconds for the whole open, seconds for ``LevelDBStore`` alone); the close is untimed."""
    settle()
    start = time.perf_counter()
    store = LevelDBStore(path)
    mid = time.perf_counter()
    cs = Chainstate(store, REGTEST, clock=clock)
    end = time.perf_counter()
    try:
        assert cs.height == expect_height, (cs.height, expect_height)
    finally:
        store.close()
    return end - start, mid - start


def bench_open(
    dbs: dict[str, tuple[str, int]], rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    figures: dict[str, float] = {}
    for name, (path, height) in dbs.items():
        figures[f"open_{name}_first_ms"] = open_once(path, height)[0] * 1e3
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in dbs}
    names = list(dbs)
    for rnd in range(rounds):
        for name in names if rnd % 2 == 0 else reversed(names):
            runs[name].append(open_once(*dbs[name]))
    for name in names:
        figures[f"open_{name}_ms"] = statistics.median(t for t, _ in runs[name]) * 1e3
        figures[f"open_{name}_store_ms"] = statistics.median(s for _, s in runs[name]) * 1e3
        figures[f"open_{name}_chainstate_ms"] = (
            statistics.median(t - s for t, s in runs[name]) * 1e3
        )
    ratios = {
        "open_long/open_short": figures["open_long_ms"] / figures["open_short_ms"],
        "open_store_long/short": figures["open_long_store_ms"] / figures["open_short_store_ms"],
        "open_chainstate_long/short": figures["open_long_chainstate_ms"]
        / figures["open_short_chainstate_ms"],
    }
    return figures, ratios


# --- b. connect throughput ---------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    name: str
    leveldb: bool
    sync: bool
    check_sigs: bool = True


CONTENDERS = (
    Contender("memory", leveldb=False, sync=True),
    Contender("leveldb_sync", leveldb=True, sync=True),
    Contender("leveldb_nosync", leveldb=True, sync=False),
    Contender("memory_nosig", leveldb=False, sync=True, check_sigs=False),
    Contender("leveldb_sync_nosig", leveldb=True, sync=True, check_sigs=False),
)


def fresh_chainstate(
    c: Contender, tmp: str, tag: str, funding: Sequence[Block]
) -> tuple[KeyValueStore, Chainstate]:
    store: KeyValueStore
    if c.leveldb:
        store = LevelDBStore(os.path.join(tmp, f"load-{c.name}-{tag}"))
    else:
        store = MemoryStore()
    verify = verify_signature if c.check_sigs else always_valid
    cs = Chainstate(store, REGTEST, clock=clock, sync=c.sync, verify=verify)
    for block in funding:
        cs.process_block(block)
    return store, cs


def process_all(cs: Chainstate, blocks: Sequence[Block]) -> Callable[[], None]:
    def run() -> None:
        for block in blocks:
            cs.process_block(block)

    return run


def bench_connect(
    chain: LoadChain, tmp: str, repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    chunks = [chain.loaded[i : i + CHUNK] for i in range(0, len(chain.loaded), CHUNK)]
    best: dict[str, list[float]] = {c.name: [float("inf")] * len(chunks) for c in CONTENDERS}
    for rep in range(repeats):
        opened = {c.name: fresh_chainstate(c, tmp, str(rep), chain.funding) for c in CONTENDERS}
        try:
            for i, chunk in enumerate(chunks):
                shift = (i + rep) % len(CONTENDERS)
                order = CONTENDERS[shift:] + CONTENDERS[:shift]
                for c in order:
                    elapsed = timed(process_all(opened[c.name][1], chunk))
                    best[c.name][i] = min(best[c.name][i], elapsed)
            tip = len(chain.funding) + len(chain.loaded)
            for c in CONTENDERS:
                assert opened[c.name][1].height == tip, (c.name, opened[c.name][1].height)
        finally:
            for store, _ in opened.values():
                store.close()
            for c in CONTENDERS:
                if c.leveldb:
                    shutil.rmtree(os.path.join(tmp, f"load-{c.name}-{rep}"), ignore_errors=True)
    figures: dict[str, float] = {
        "load_blocks": len(chain.loaded),
        "load_txs": chain.txs,
        "load_bytes": sum(b.size() for b in chain.loaded),
    }
    for c in CONTENDERS:
        total = sum(best[c.name])
        figures[f"connect_{c.name}_tx_per_s"] = chain.txs / total
        figures[f"connect_{c.name}_blocks_per_s"] = len(chain.loaded) / total
    rate = {c.name: figures[f"connect_{c.name}_tx_per_s"] for c in CONTENDERS}
    ratios = {
        "leveldb_sync/memory": rate["leveldb_sync"] / rate["memory"],
        "leveldb_nosync/memory": rate["leveldb_nosync"] / rate["memory"],
        "leveldb_sync_nosig/memory_nosig": rate["leveldb_sync_nosig"] / rate["memory_nosig"],
        "memory/memory_nosig": rate["memory"] / rate["memory_nosig"],
    }
    return figures, ratios


# --- c. address-index lookups ------------------------------------------------------------------


def bench_address(
    dbs: dict[str, tuple[str, int]], rounds: int, batch: int
) -> tuple[dict[str, float], dict[str, float]]:
    small, miner, mover = key(2).pubkey_hash, key(0).pubkey_hash, key(1).pubkey_hash
    queries: dict[str, Callable[[Chainstate], list[Any]]] = {
        "addr_history_small": lambda cs: list(itertools.islice(cs.address_history(small), PAGE)),
        "addr_utxos_small": lambda cs: list(cs.address_utxos(small)),
        "addr_history_miner": lambda cs: list(itertools.islice(cs.address_history(miner), PAGE)),
        "addr_utxos_mover": lambda cs: list(cs.address_utxos(mover)),
    }
    expected: dict[str, int | None] = {
        "addr_history_small": len(SMALL_HEIGHTS),
        "addr_utxos_small": len(SMALL_HEIGHTS),
        "addr_history_miner": PAGE,
        "addr_utxos_mover": None,  # 0 on the short chain, 1 on the long one
    }
    stores = {name: LevelDBStore(path) for name, (path, _) in dbs.items()}
    try:
        states = {name: Chainstate(store, REGTEST, clock=clock) for name, store in stores.items()}
        for qname, query in queries.items():
            for name, cs in states.items():
                got = len(query(cs))
                assert expected[qname] in (None, got), (qname, name, got)
        cells = [(q, name) for q in queries for name in states]
        runs: dict[tuple[str, str], list[float]] = {cell: [] for cell in cells}
        settle()
        for rnd in range(rounds):
            for qname, name in cells if rnd % 2 == 0 else reversed(cells):
                query, cs = queries[qname], states[name]
                start = time.perf_counter()
                for _ in range(batch):
                    query(cs)
                runs[(qname, name)].append((time.perf_counter() - start) / batch)
    finally:
        for store in stores.values():
            store.close()
    figures = {f"{q}_{n}_us": statistics.median(runs[(q, n)]) * 1e6 for q, n in cells}
    ratios = {
        f"{q}_long/short": figures[f"{q}_long_us"] / figures[f"{q}_short_us"] for q in queries
    }
    return figures, ratios


# --- d. reindex --------------------------------------------------------------------------------


def bench_reindex(path: str, height: int, repeats: int, budget_s: float) -> dict[str, float]:
    """Median of up to ``repeats`` synced reindexes (fewer once ``budget_s`` is spent: fsync is
    slow when the disk is shared), then one unsynced."""

    def once(sync: bool) -> float:
        store = LevelDBStore(path)
        try:
            cs = Chainstate(store, REGTEST, clock=clock, sync=sync)
            elapsed = timed(cs.reindex)
            assert cs.height == height, (cs.height, height)
        finally:
            store.close()
        return elapsed

    runs = [once(True)]
    while len(runs) < repeats and sum(runs) < budget_s:
        runs.append(once(True))
    synced = statistics.median(runs)
    unsynced = once(False)
    return {
        "reindex_blocks": height,
        "reindex_runs": len(runs),
        "reindex_s": synced,
        "reindex_blocks_per_s": height / synced,
        "reindex_nosync_blocks_per_s": height / unsynced,
    }


# --- profile -----------------------------------------------------------------------------------


def profile_listing(prof: cProfile.Profile, cumulative: int = 25, own: int = 15) -> str:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(cumulative)
    stats.sort_stats("tottime").print_stats(own)
    return out.getvalue()


def profile(chain: LoadChain, tmp: str, long_db: tuple[str, int]) -> str:
    contender = CONTENDERS[1]
    store, cs = fresh_chainstate(contender, tmp, "profile", chain.funding)
    try:
        prof = cProfile.Profile()
        prof.runcall(process_all(cs, chain.loaded[: 2 * CHUNK]))
    finally:
        store.close()
    text = f"--- process_block x {2 * CHUNK}, LevelDB sync=True ---\n" + profile_listing(prof)
    prof = cProfile.Profile()
    for _ in range(20):
        prof.runcall(open_once, *long_db)
    return text + "--- open of the long database x 20 ---\n" + profile_listing(prof, 20, 10)


# --- report ------------------------------------------------------------------------------------


def verdict(name: str, value: float) -> str:
    target = TARGETS.get(name)
    if target is None:
        return "(info)"
    if "max" in target:
        return f"<= {target['max']:g}  {'ok' if value <= target['max'] else 'MISSED'}"
    return f">= {target['min']:g}  {'ok' if value >= target['min'] else 'MISSED'}"


def print_table(figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any]) -> None:
    f, r = figures, ratios
    long_n, load = info["blocks_long"], info["load_blocks"]
    print(
        f"\nTally chainstate bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"LevelDB {info['leveldb']}, load {info['loadavg_before']} -> {info['loadavg_after']}"
        f"{', quick' if info['quick'] else ''}"
    )

    def row(label: str, value: str, ratio: str | None = None) -> None:
        text = f"{label:44} {value:>16}"
        if ratio is not None:
            text += f"  {r[ratio]:7.3f}  {ratio:34} {verdict(ratio, r[ratio])}"
        print(text.rstrip())

    print(f"a. open (start-up), median of {info['open_rounds']} (first open: log replay)")
    for name, n in (("short", SHORT_BLOCKS), ("long", long_n)):
        row(
            f"  {n:,} blocks: total / LevelDB / Chainstate",
            f"{f[f'open_{name}_ms']:.2f} ms",
        )
        print(
            f"{'':44} {'':>16}  store {f[f'open_{name}_store_ms']:.2f} ms, chainstate "
            f"{f[f'open_{name}_chainstate_ms'] * 1e3:.0f} us, "
            f"first {f[f'open_{name}_first_ms']:.1f} ms, db {f[f'db_{name}_bytes'] / 1e6:.1f} MB"
        )
    row("  long / short", "", "open_long/open_short")
    row("  LevelDB open alone, long / short", "", "open_store_long/short")
    row("  Chainstate part alone, long / short", "", "open_chainstate_long/short")

    print(
        f"b. connect {load} blocks, {f['load_txs']:,.0f} txs, {f['load_bytes'] / 1e6:.1f} MB "
        f"(best of {info['connect_repeats']} per chunk of {CHUNK})"
    )
    for c in CONTENDERS:
        ratio = {
            "leveldb_sync": "leveldb_sync/memory",
            "leveldb_nosync": "leveldb_nosync/memory",
            "leveldb_sync_nosig": "leveldb_sync_nosig/memory_nosig",
        }.get(c.name)
        row(
            f"  {c.name} (tx/s, blocks/s)",
            f"{f[f'connect_{c.name}_tx_per_s']:8,.0f} {f[f'connect_{c.name}_blocks_per_s']:7.1f}",
            ratio,
        )
    row("  signatures on / off (memory)", "", "memory/memory_nosig")

    print("c. address index, median per call (short / long)")
    for q in ("addr_history_small", "addr_utxos_small", "addr_history_miner", "addr_utxos_mover"):
        row(
            f"  {q}",
            f"{f[f'{q}_short_us']:6.1f} /{f[f'{q}_long_us']:6.1f} us",
            f"{q}_long/short",
        )

    print(
        f"d. reindex {f['reindex_blocks']:,.0f} blocks (median of {f['reindex_runs']:.0f}): "
        f"{f['reindex_s']:.2f} s, "
        f"{f['reindex_blocks_per_s']:,.0f} blocks/s synced, "
        f"{f['reindex_nosync_blocks_per_s']:,.0f} blocks/s unsynced (info)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000-block long chain, 60 loaded")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    ap.add_argument("--profile", action="store_true", help="cProfile connect and open")
    ap.add_argument("--tmpdir", help="where the databases go (default: the system temp dir)")
    args = ap.parse_args(argv)

    long_n = 2_000 if args.quick else 10_000
    load_n = 60 if args.quick else 300
    connect_repeats = 1 if args.quick else 2
    reindex_repeats = 1 if args.quick else 3
    addr_rounds = 61 if args.quick else 201
    load_before = loadavg()
    started = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="tally-bench-chainstate-", dir=args.tmpdir)
    try:
        log = sys.stderr
        stages: dict[str, float] = {}  # seconds per stage, for the record
        current, mark = "", started

        def stage(name: str, message: str) -> None:
            nonlocal current, mark
            now = time.perf_counter()
            if current:
                stages[current] = round(now - mark, 1)
            current, mark = name, now
            print(f"[{now - started:5.1f} s] {message}", file=log)

        stage("build_long", f"building a {long_n:,}-block chain")
        long_chain = build_long_chain(long_n)
        dbs = {
            "short": (os.path.join(tmp, "short"), SHORT_BLOCKS),
            "long": (os.path.join(tmp, "long"), long_n),
        }
        for path, n in dbs.values():
            fill_leveldb(path, long_chain[:n])
        figures: dict[str, float] = {
            "blocks_short": SHORT_BLOCKS,
            "blocks_long": long_n,
            "db_short_bytes": dir_bytes(dbs["short"][0]),
            "db_long_bytes": dir_bytes(dbs["long"][0]),
        }
        stage("open", "a. opening")
        fa, ra = bench_open(dbs, OPEN_ROUNDS)
        stage("address", "c. address lookups")
        fc, rc = bench_address(dbs, addr_rounds, 20)
        stage("reindex", f"d. reindex of {REINDEX_BLOCKS:,} blocks")
        reindex_path = os.path.join(tmp, "reindex")
        fill_leveldb(reindex_path, long_chain[:REINDEX_BLOCKS])
        fd = bench_reindex(reindex_path, REINDEX_BLOCKS, reindex_repeats, budget_s=12.0)
        del long_chain
        stage("build_load", f"b. building the load chain ({load_n} blocks)")
        chain = build_load_chain(load_n)
        stage("connect", f"b. connecting {chain.txs:,} txs x {len(CONTENDERS)} contenders")
        fb, rb = bench_connect(chain, tmp, connect_repeats)
        stage("report", "done")
        figures |= fa | fb | fc | fd
        ratios = ra | rb | rc
        info = {
            **platform_info(load_before),
            "plyvel": version("plyvel"),
            "leveldb": getattr(plyvel, "__leveldb_version__", "?"),
            "msgpack": version("msgpack"),
            "coincurve": version("coincurve"),
            "tmpdir": tmp,
            "quick": args.quick,
            "blocks_long": long_n,
            "load_blocks": load_n,
            "open_rounds": OPEN_ROUNDS,
            "connect_repeats": connect_repeats,
            "reindex_repeats": reindex_repeats,
            "addr_rounds": addr_rounds,
            "wall_s": round(time.perf_counter() - started, 1),
            "stage_s": stages,
        }
        print_table(figures, ratios, info)
        write_json(args.json, NAME, figures, ratios, TARGETS, info)
        if args.profile:
            print("\nprofiles (cProfile; rank, do not measure):")
            print(profile(chain, tmp, dbs["long"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
