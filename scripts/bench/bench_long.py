"""Long-chain benchmark: start-up, address queries, memory, reindex and disk at 100,000 blocks
carrying 1,000,000 transactions, against the 100-block (and 10,000-block) prefix of the same chain.

Run from the repository root (``scripts/bench/run --long`` runs it; it is not in the default set)::

    .venv/bin/python scripts/bench/bench_long.py [--scale F] [--jobs N] [--cache DIR] [--json OUT]
    .venv/bin/python scripts/bench/bench_long.py --scale 0.02   # 2,000 blocks, 20,000 txs
    .venv/bin/python scripts/bench/bench_long.py --build-only   # build (or find) the chain, stop

The chain (regtest; ``--scale F`` multiplies the blocks, transactions and keys):

- 100,000 blocks, block times ``genesis_time + height`` s (in the past of the real clock, as in
  ``benchlib``); coinbases to ``benchlib.MINER`` (the address with the longest history: one
  coinbase a block), except heights 10..50 step 10 to ``benchlib.SMALL`` (5 transactions; never
  spent, so it stays small).
- 1,000,000 non-coinbase transactions from height 101 (the first mature coinbase), about 10 a
  block (fewer in the first blocks, until enough coins are confirmed; the shortfall is made up
  later). Each spends one coin chosen at random from the confirmed coins worth at least
  ``MIN_SPEND`` and pays a fee of ``FEE``: 49 in 50 are a payment and a change output (1 in, 2
  out), 1 in 50 a fan-out to ``FAN_OUT`` addresses. Outputs go to ``KEYS`` (50,000) addresses
  drawn with a skew (index ``KEYS * u**3``), so a few addresses have histories of tens of
  thousands of transactions and most have a few dozen; coins below ``MIN_SPEND`` are never spent.
  The UTXO set ends near 1.4 million coins.
- Built through the real validation: each block goes to ``node.chainstate.Chainstate.
  process_block`` on a ``LevelDBStore`` (``sync=False``, one batch a block, as ``benchlib``
  does); nothing else validates it. Signing is the rest of the cost (about a sixth of it, by
  cProfile at 1,000 blocks): with ``--jobs N`` > 1 (default: every core), ``N - 1`` worker
  processes sign the next chunk of ``CHUNK`` blocks while this process connects the current one
  (a chunk spends only coins confirmed before it). On the shared 2-core machine under load, 2
  processes built no faster than 1 (there is no idle core to take the signing); on idle cores
  the connect alone bounds the rate.
- Written once, with snapshots of its first 100, 1,000, 10,000 and 100,000 blocks (those below
  the length at smaller scales), to ``CACHE/long-v<version>-s<schema>-b<blocks>-t<txs>-k<keys>/``
  ``h<height>/chainstate``, where ``CACHE`` is ``--cache``, else ``$TALLY_BENCH_LONG_CACHE``, else
  ``${XDG_CACHE_HOME:-~/.cache}/tally/bench-long``. The key holds every parameter of the builder,
  so a later run (any checkout) reuses it, and a change of the builder (bump ``LONG_VERSION``) or
  of the chainstate's schema builds a new one. ``build.json`` there records how long the build
  took. Delete the folder to reclaim the disk (about 1.5 GB at full scale).

Measured, each snapshot copied to a temporary directory first (a node writes to its datadir):

a. start-up of a real ``tally-node run`` on each length (``bench_node.bench_startup``: Popen to
   the first 200 on ``/info``, median of 5 rounds, 3 with ``--quick``); ratio
   ``startup_long/100``, target <= 1.5 (issue 22);
b. address queries (``bench_node.bench_queries``): first page of ``/address/{a}/txs`` and the
   summary ``/address/{a}``, for the miner (a long history) and the small address, all lengths'
   nodes running at once; ratios ``addr_*_long/100``, target <= 1.5; then resident memory of
   each node (VmRSS after the queries): ``rss_long_mb``, target < 500 MB;
c. ``tally-node reindex`` of the long chain and of the ``REINDEX_SHORT`` (10,000) prefix, minus
   the same command on a 1-block directory (as ``bench_sync`` does): blocks/s and tx/s, ratios
   ``reindex_tx_per_s_long/short`` and ``reindex_blocks_per_s_long/short``, and the command's
   CPU time (user + system) per transaction, ``reindex_cpu_per_tx_long/short``, which hardly
   moves with the machine's load where the wall time does (information);
d. disk: bytes of the long chain's ``chainstate`` directory per transaction, against the bytes
   of the serialized blocks (the floor for a node that keeps them): ``disk/raw_bytes``.

Output: a table on stdout; ``--json OUT`` writes ``{"name": "long", "figures", "ratios",
"targets", "machine", "series"}`` (``series``: start-up, memory and query time per length, for
the runner's plots).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_node as bn
import benchlib as bl

from consensus import Block, OutPoint, Transaction, TxIn, TxOut, sign_transaction
from tests.helpers import mine_block

NAME = "long"
# Bump when the chain's content changes (a new cache key): any of the constants below, the
# Planner, or the blocks iter_blocks makes. The blocks, transactions and keys are in the key.
LONG_VERSION = "1"
BLOCKS = 100_000
TXS = 1_000_000
KEYS = 50_000
FEE = 100
MIN_SPEND = 100_000
FAN_EVERY = 50
FAN_OUT = 20
SEED = 22
CHUNK = 20  # blocks signed together (a chunk spends coins confirmed before it)
MAX_PER_BLOCK = 40  # catching up never makes a block bigger than this many transactions
KEY_BASE = 1_000  # pool key n is tests.helpers.key(KEY_BASE + n), clear of benchlib's keys
SNAPSHOTS = (100, 1_000, 10_000)
REINDEX_SHORT = 10_000
SHORT = 100
RSS_LIMIT_MB = 500.0


@dataclass(frozen=True)
class Params:
    """Everything the chain's content depends on: the cache key."""

    blocks: int
    txs: int
    keys: int

    @classmethod
    def scaled(cls, scale: float) -> Params:
        blocks = max(SHORT + 2, round(BLOCKS * scale))
        return cls(blocks, max(1, round(TXS * scale)), max(100, round(KEYS * scale)))

    def snapshots(self) -> list[int]:
        return sorted({h for h in SNAPSHOTS if h < self.blocks} | {self.blocks})

    def reindex_short(self) -> int:
        below = [h for h in self.snapshots() if SHORT < h < self.blocks and h <= REINDEX_SHORT]
        return max(below) if below else SHORT

    def key(self) -> str:
        from node.chainstate.schema import SCHEMA_VERSION

        return (
            f"long-v{LONG_VERSION}-s{SCHEMA_VERSION}-b{self.blocks}-t{self.txs}-k{self.keys}"
            f"-f{FEE}-m{MIN_SPEND}-o{FAN_EVERY}x{FAN_OUT}-r{SEED}"
        )


def cache_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("TALLY_BENCH_LONG_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "tally" / "bench-long"


# --- signing (in worker processes) -------------------------------------------------------------

# One job: an unsigned transaction's bytes, then (amount, pubkey_hash, privkey) per input.
SignJob = tuple[bytes, list[tuple[int, bytes, bytes]]]


def sign_jobs(jobs: list[SignJob]) -> list[bytes]:
    """The signed transactions' bytes (runs in a worker process, or inline)."""
    out = []
    for raw, spent in jobs:
        tx = Transaction.deserialize(raw)
        signed = sign_transaction(
            tx, [TxOut(a, h) for a, h, _ in spent], [p for _, _, p in spent], bl.REGTEST
        )
        out.append(signed.serialize())
    return out


# --- the chain's transactions ------------------------------------------------------------------

# A spendable coin: outpoint, amount, owner (index into the keys; -1 is the miner).
Coin = tuple[OutPoint, int, int]


class Planner:
    """Chooses each block's transactions (unsigned) from the confirmed coins."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.rng = random.Random(SEED)
        bl.log(f"deriving {params.keys:,} keys")
        self.keys = [bl.key(KEY_BASE + i) for i in range(params.keys)]
        self.owners = {k.pubkey_hash: i for i, k in enumerate(self.keys)}
        self.coins: list[Coin] = []
        self.made = 0  # transactions planned so far
        self.raw_bytes = 0

    def target(self, height: int) -> int:
        """Transactions wanted in blocks 101..height (spread evenly)."""
        first = bl.REGTEST.coinbase_maturity + 1
        span = self.params.blocks - first + 1
        return self.params.txs * (height - first + 1) // span

    def owner(self) -> int:
        return int(self.params.keys * self.rng.random() ** 3)

    def pick(self) -> Coin:
        coins = self.coins
        i = self.rng.randrange(len(coins))
        coins[i], coins[-1] = coins[-1], coins[i]
        return coins.pop()

    def plan_block(self, height: int) -> list[tuple[Transaction, Coin]]:
        """Unsigned transactions for ``height``; their coins leave the pool."""
        want = min(self.target(height) - self.made, MAX_PER_BLOCK, len(self.coins))
        planned = []
        for _ in range(max(0, want)):
            coin = self.pick()
            _, amount, _ = coin
            budget = amount - FEE
            if self.made % FAN_EVERY == FAN_EVERY - 1:
                each = budget // FAN_OUT
                outs = [TxOut(each, self.keys[self.owner()].pubkey_hash) for _ in range(FAN_OUT)]
                outs[0] = TxOut(budget - each * (FAN_OUT - 1), outs[0].pubkey_hash)
            else:
                pay = budget * self.rng.randint(10, 60) // 100
                outs = [
                    TxOut(pay, self.keys[self.owner()].pubkey_hash),
                    TxOut(budget - pay, self.keys[self.owner()].pubkey_hash),
                ]
            tx = Transaction(1, (TxIn(coin[0]),), tuple(outs), 0)
            planned.append((tx, coin))
            self.made += 1
        return planned

    def job(self, tx: Transaction, coin: Coin) -> SignJob:
        _, amount, owner = coin
        k = bl.MINER if owner < 0 else self.keys[owner]
        return tx.serialize(), [(amount, k.pubkey_hash, k.privkey)]

    def sign(self, tx: Transaction, coin: Coin) -> Transaction:
        _, amount, owner = coin
        k = bl.MINER if owner < 0 else self.keys[owner]
        return sign_transaction(tx, [TxOut(amount, k.pubkey_hash)], [k.privkey], bl.REGTEST)

    def confirm(self, tx: Transaction) -> None:
        """Offer ``tx``'s outputs to later chunks."""
        txid = tx.txid()
        owners = self.owners
        for i, out in enumerate(tx.outputs):
            if out.amount >= MIN_SPEND:
                self.coins.append((OutPoint(txid, i), out.amount, owners[out.pubkey_hash]))


def iter_blocks(params: Params, jobs: int, stats: dict[str, float]) -> Iterator[Block]:
    """Blocks 1..params.blocks (see the module docstring), one at a time. Chunk n+1 is being
    signed (by the pool) while the caller connects chunk n."""
    planner = Planner(params)
    # spawn, not fork: the caller's process has LevelDB's threads running.
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(jobs - 1, mp_context=spawn) if jobs > 1 else None
    maturity = bl.REGTEST.coinbase_maturity
    coinbase_coins: dict[int, Coin] = {}  # height -> its coinbase coin, until it matures
    tip = bl.REGTEST.genesis_hash

    def plan(start: int) -> tuple[int, list[list[tuple[Transaction, Coin]]], Any]:
        # Coinbases maturing in this chunk are spendable from their own height on; offered at
        # the chunk's start only if they mature by then (keeps "confirmed before the chunk").
        stop = min(start + CHUNK, params.blocks + 1)
        for h in range(start - maturity - CHUNK, start - maturity + 1):
            coin = coinbase_coins.pop(h, None)
            if coin is not None:
                planner.coins.append(coin)
        blocks = [planner.plan_block(h) for h in range(start, stop)]
        if pool is None:  # sign here, no round trip through bytes
            return stop, blocks, [[planner.sign(tx, coin) for b in blocks for tx, coin in b]]
        sign = [planner.job(tx, coin) for b in blocks for tx, coin in b]
        parts = [sign[i : i + 100] for i in range(0, len(sign), 100)]
        return stop, blocks, [pool.submit(sign_jobs, p) for p in parts]

    try:
        height = 1
        pending = plan(height)
        while height <= params.blocks:
            stop, planned, future = pending
            signed: list[Transaction] = []
            for part in future:
                if isinstance(part, Future):
                    signed += [Transaction.deserialize(r) for r in part.result()]
                else:
                    signed += part
            for tx in signed:
                planner.confirm(tx)
            pending = plan(stop) if stop <= params.blocks else (stop, [], [])
            at = 0
            for h in range(height, stop):
                txs = signed[at : at + len(planned[h - height])]
                at += len(txs)
                miner = bl.SMALL if h in bl.SMALL_HEIGHTS else bl.MINER
                block = mine_block(
                    tip,
                    h,
                    txs,
                    bl.REGTEST.genesis_time + h,
                    miner.pubkey_hash,
                    bl.REGTEST,
                    FEE * len(txs),
                )
                tip = block.hash()
                cb = block.txs[0]
                if miner is bl.MINER and cb.outputs[0].amount >= MIN_SPEND:
                    coinbase_coins[h] = (OutPoint(cb.txid(), 0), cb.outputs[0].amount, -1)
                stats["txs"] += len(txs)
                stats["raw_bytes"] += len(block.serialize())
                stats["utxo_pool"] = len(planner.coins)
                yield block
            height = stop
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def build(params: Params, root: Path, jobs: int) -> dict[str, Any]:
    """Build the chain into ``root`` (snapshots ``h<height>/chainstate``); returns build.json."""
    from node.chainstate import Chainstate
    from node.storage import LevelDBStore

    snaps = params.snapshots()
    work = root / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stats: dict[str, float] = {"txs": 0, "raw_bytes": 0, "utxo_pool": 0}
    per_snapshot: dict[str, dict[str, float]] = {}
    bl.log(
        f"building the long chain: {params.blocks:,} blocks, {params.txs:,} transactions, "
        f"{params.keys:,} keys, {jobs} process(es), into {root}"
    )
    began = time.perf_counter()
    last = began
    store = LevelDBStore(work / "chainstate")
    try:
        cs = Chainstate(store, bl.REGTEST, sync=False)
        for want, block in enumerate(iter_blocks(params, jobs, stats), start=1):
            cs.process_block(block)
            h = cs.height
            if h != want:
                raise RuntimeError(f"block {want} was not connected: {cs.process_block(block)}")
            if h in snaps:
                elapsed = time.perf_counter() - began
                per_snapshot[str(h)] = {
                    "txs": stats["txs"],
                    "raw_bytes": stats["raw_bytes"],
                    "build_s": round(elapsed, 1),
                }
                store.close()
                dest = root / f"h{h}"
                shutil.rmtree(dest, ignore_errors=True)
                if h == params.blocks:
                    work.rename(dest)
                else:
                    shutil.copytree(work, dest)
                (dest / "complete").write_text(f"{h}\n")
                if h == params.blocks:
                    break
                store = LevelDBStore(work / "chainstate")
                cs = Chainstate(store, bl.REGTEST, sync=False)
            now = time.perf_counter()
            if now - last >= 30 or h % 10_000 == 0:
                last = now
                rate_b, rate_t = h / (now - began), stats["txs"] / (now - began)
                left = max((params.blocks - h) / rate_b, (params.txs - stats["txs"]) / rate_t)
                bl.log(
                    f"  height {h:,}/{params.blocks:,}, {int(stats['txs']):,} txs, "
                    f"{now - began:.0f} s: {rate_b:.0f} blocks/s, "
                    f"{rate_t:.0f} tx/s, "
                    f"{int(stats['utxo_pool']):,} spendable coins; about {left / 60:.0f} min left"
                )
    finally:
        store.close()
    wall = time.perf_counter() - began
    info = {
        "params": {
            "blocks": params.blocks,
            "txs": params.txs,
            "keys": params.keys,
            "fee": FEE,
            "min_spend": MIN_SPEND,
            "fan_every": FAN_EVERY,
            "fan_out": FAN_OUT,
            "seed": SEED,
        },
        "txs": stats["txs"],
        "raw_bytes": stats["raw_bytes"],
        "build_s": round(wall, 1),
        "build_blocks_per_s": round(params.blocks / wall, 1),
        "build_tx_per_s": round(stats["txs"] / wall, 1),
        "jobs": jobs,
        "loadavg_after": bl.loadavg(),
        "snapshots": per_snapshot,
    }
    (root / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    bl.log(
        f"long chain built in {wall:.0f} s: {info['build_blocks_per_s']} blocks/s, "
        f"{info['build_tx_per_s']} tx/s"
    )
    return info


def long_chain(params: Params, cache: Path, jobs: int) -> tuple[dict[int, Path], dict[str, Any]]:
    """The snapshot directories (built now unless cached) and build.json."""
    root = cache / params.key()
    snaps = params.snapshots()
    dirs = {h: root / f"h{h}" for h in snaps}
    meta = root / "build.json"
    if all((d / "complete").exists() for d in dirs.values()) and meta.exists():
        bl.log(f"using the cached long chain in {root}")
        return dirs, json.loads(meta.read_text()) | {"cached": True}
    root.mkdir(parents=True, exist_ok=True)
    return dirs, build(params, root, jobs) | {"cached": False}


# --- measurements ------------------------------------------------------------------------------


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def reindex(datadir: Path, expect: int) -> tuple[float, float, int]:
    """Wall and CPU (user + system) seconds of ``tally-node reindex`` on ``datadir``, and the
    coins it reports. CPU time hardly moves with the machine's load; wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, out = bl.run_command(
        ["reindex", "--network", "regtest", "--datadir", str(datadir)], timeout=6 * 3600
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    head = f"reindexed to height {expect}: "
    line = next((x for x in out.splitlines() if x.startswith(head)), None)
    assert line is not None, out
    return seconds, cpu, int(line[len(head) :].split()[0])


def measure(
    params: Params,
    cached: dict[int, Path],
    meta: dict[str, Any],
    quick: bool,
    tmp: Path,
    with_reindex: bool = True,
) -> dict[str, float]:
    snaps = params.snapshots()
    long_h, short_r = params.blocks, params.reindex_short()
    figures: dict[str, float] = {}
    raw = meta["raw_bytes"]
    txs = meta["txs"]
    figures["disk_bytes"] = disk_bytes(cached[long_h] / "chainstate")
    figures["disk_bytes_per_tx"] = figures["disk_bytes"] / txs
    figures["raw_bytes_per_tx"] = raw / txs
    bl.log(f"copying {len(snaps)} data directories ({figures['disk_bytes'] / 1e6:,.0f} MB long)")
    dirs = {h: bl.copy_datadir(cached[h], tmp / f"h{h}") for h in snaps}
    rounds = 3 if quick else 5
    bl.log(f"a. start-up, {rounds} rounds x {len(snaps) + 1} data directories")
    figures |= bn.bench_startup(dirs, tmp, rounds)
    bl.log("  start-up (s): " + ", ".join(f"{h:,}: {figures[f'startup_{h}_s']:.3f}" for h in snaps))
    query_rounds = bn.QUERY_ROUNDS if quick else 3 * bn.QUERY_ROUNDS
    bl.log(f"b. address queries, {query_rounds} rounds; then memory")
    figures |= bn.bench_queries(dirs, query_rounds)
    for q in bn.QUERIES:
        cells = ", ".join(f"{h:,}: {figures[f'{q}_{h}_ms']:.2f}" for h in snaps)
        bl.log(f"  {q} (ms): {cells}")
    bl.log("  RSS (MB): " + ", ".join(f"{h:,}: {figures[f'rss_{h}_mb']:.1f}" for h in snaps))
    if not with_reindex:
        return figures
    bl.log(f"c. reindex of {short_r:,} and {long_h:,} blocks (and of 1, subtracted)")
    one = bl.copy_datadir(bl.chain_datadirs([1])[1], tmp / "one")
    reindex(one, 1)  # warm the command's imports into the page cache
    base, base_cpu = [], []
    for h in (short_r, long_h):
        wall, cpu, coins = reindex(dirs[h], h)
        one_wall, one_cpu, _ = reindex(one, 1)
        base.append(one_wall)
        base_cpu.append(one_cpu)
        figures[f"reindex_{h}_wall_s"] = wall
        figures[f"reindex_{h}_cpu_total_s"] = cpu
        figures[f"utxo_{h}"] = coins
        bl.log(f"  {h:,} blocks: {wall:.1f} s wall, {cpu:.1f} s CPU, {coins:,} coins")
    figures["reindex_1_block_wall_s"] = statistics.median(base)
    figures["reindex_1_block_cpu_s"] = statistics.median(base_cpu)
    for h in (short_r, long_h):
        net = figures[f"reindex_{h}_wall_s"] - figures["reindex_1_block_wall_s"]
        n_tx = meta["snapshots"][str(h)]["txs"]
        figures[f"reindex_{h}_s"] = net
        figures[f"reindex_{h}_txs"] = n_tx
        cpu = figures[f"reindex_{h}_cpu_total_s"] - figures["reindex_1_block_cpu_s"]
        figures[f"reindex_{h}_cpu_s"] = cpu
        if n_tx and cpu > 0:
            figures[f"reindex_{h}_cpu_us_per_tx"] = cpu / n_tx * 1e6
        if net > 0:  # a 100-block chain's reindex can drown in the noise of the baseline
            figures[f"reindex_{h}_blocks_per_s"] = h / net
            if n_tx:
                figures[f"reindex_{h}_tx_per_s"] = n_tx / net
    figures["disk_bytes_after_reindex"] = disk_bytes(dirs[long_h] / "chainstate")
    return figures


def ratios_of(params: Params, f: dict[str, float]) -> dict[str, float]:
    long_h, short_r = params.blocks, params.reindex_short()
    r = {"startup_long/100": f[f"startup_{long_h}_s"] / f[f"startup_{SHORT}_s"]}
    for q in bn.QUERIES:
        r[f"{q}_long/100"] = f[f"{q}_{long_h}_ms"] / f[f"{q}_{SHORT}_ms"]
        r[f"{q}_p10_long/100"] = f[f"{q}_{long_h}_p10_ms"] / f[f"{q}_{SHORT}_p10_ms"]
    for unit in ("blocks", "tx"):
        a, b = f.get(f"reindex_{long_h}_{unit}_per_s"), f.get(f"reindex_{short_r}_{unit}_per_s")
        if a and b:
            r[f"reindex_{unit}_per_s_long/short"] = a / b
    a, b = f.get(f"reindex_{long_h}_cpu_us_per_tx"), f.get(f"reindex_{short_r}_cpu_us_per_tx")
    if a and b:
        r["reindex_cpu_per_tx_long/short"] = a / b
    r["disk/raw_bytes"] = f["disk_bytes_per_tx"] / f["raw_bytes_per_tx"]
    return r


TARGETS: dict[str, dict[str, float]] = {
    "startup_long/100": {"max": 1.5},
    **{f"{q}_long/100": {"max": 1.5} for q in bn.QUERIES},
    "rss_long_mb": {"max": RSS_LIMIT_MB},
}


def print_table(
    params: Params, f: dict[str, float], r: dict[str, float], info: dict[str, Any]
) -> None:
    snaps = params.snapshots()
    long_h, short_r = params.blocks, params.reindex_short()
    print(
        f"\nTally long-chain bench: {params.blocks:,} blocks, {int(f['txs']):,} transactions "
        f"(scale {info['scale']}); {info['cpu_count']} CPUs, Python {info['python']}, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(
        f"chain {'from the cache' if info['cached'] else 'built in this run'}: "
        f"{f['build_s']:.0f} s to build, {f['build_blocks_per_s']:.1f} blocks/s, "
        f"{f['build_tx_per_s']:.0f} tx/s ({info['build_jobs']} process(es))"
    )
    head = "".join(f"{h:>12,}" for h in snaps)
    print(f"{'blocks':32}{head}   ratio long/100")
    rows: list[tuple[str, str, str | None, int]] = [
        ("start-up (s)", "startup_{}_s", "startup_long/100", 3)
    ]
    rows += [(f"{q} (ms)", q + "_{}_ms", f"{q}_long/100", 2) for q in bn.QUERIES]
    rows += [("RSS main process (MB)", "rss_{}_mb", None, 1)]
    for name, pattern, ratio, digits in rows:
        cells = "".join(f"{f[pattern.format(h)]:12.{digits}f}" for h in snaps)
        extra = ""
        if ratio:
            extra = f"   {r[ratio]:6.3f}  {bl.verdict(TARGETS, ratio, r[ratio])}"
        print(f"{name:32}{cells}{extra}")
    print(f"RSS at {long_h:,} blocks: {bl.verdict(TARGETS, 'rss_long_mb', f['rss_long_mb'])}")
    for h in (short_r, long_h) if f"reindex_{long_h}_s" in f else ():
        print(
            f"reindex {h:>7,} blocks, {int(f[f'reindex_{h}_txs']):>9,} txs: "
            f"{f[f'reindex_{h}_s']:8.1f} s net, "
            f"{f.get(f'reindex_{h}_blocks_per_s', 0):7.1f} blocks/s, "
            f"{f.get(f'reindex_{h}_tx_per_s', 0):7.0f} tx/s, {int(f[f'utxo_{h}']):,} coins"
        )
    if "reindex_tx_per_s_long/short" in r:
        print(
            f"reindex rate long/short (wall): {r['reindex_blocks_per_s_long/short']:.3f} per "
            f"block, {r['reindex_tx_per_s_long/short']:.3f} per transaction (info)"
        )
    if "reindex_cpu_per_tx_long/short" in r:
        print(
            f"reindex CPU per transaction: {f[f'reindex_{short_r}_cpu_us_per_tx']:.0f} us "
            f"({short_r:,} blocks), {f[f'reindex_{long_h}_cpu_us_per_tx']:.0f} us ({long_h:,}); "
            f"long/short {r['reindex_cpu_per_tx_long/short']:.3f} (info; load-independent)"
        )
    print(
        f"disk: {f['disk_bytes'] / 1e6:,.0f} MB, {f['disk_bytes_per_tx']:.0f} bytes per "
        f"transaction vs {f['raw_bytes_per_tx']:.0f} serialized ({r['disk/raw_bytes']:.2f}x)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="chain size factor (default 1)")
    ap.add_argument("--quick", action="store_true", help="3 start-up rounds, 50 query rounds")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes to build")
    ap.add_argument("--cache", help="where built chains are kept (see the module docstring)")
    ap.add_argument("--build-only", action="store_true", help="build (or find) the chain, stop")
    ap.add_argument("--no-reindex", action="store_true", help="skip c, the longest stage")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    if args.scale <= 0 or args.jobs < 1:
        ap.error("--scale must be > 0 and --jobs >= 1")
    params = Params.scaled(args.scale)
    load_before = bl.loadavg()
    began = time.perf_counter()
    cached, meta = long_chain(params, cache_root(args.cache), args.jobs)
    if args.build_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="tally-bench-long-") as tmp_name:
        figures = measure(params, cached, meta, args.quick, Path(tmp_name), not args.no_reindex)
    long_h = params.blocks
    figures |= {
        "blocks": long_h,
        "txs": meta["txs"],
        "rss_long_mb": figures[f"rss_{long_h}_mb"],
        "build_s": meta["build_s"],
        "build_blocks_per_s": meta["build_blocks_per_s"],
        "build_tx_per_s": meta["build_tx_per_s"],
    }
    short_r = params.reindex_short()
    for alias, h in (("long", long_h), ("short", SHORT)):  # names that do not move with --scale
        figures[f"startup_{alias}_s"] = figures[f"startup_{h}_s"]
        for q in bn.QUERIES:
            figures[f"{q}_{alias}_ms"] = figures[f"{q}_{h}_ms"]
    for alias, h in (("long", long_h), ("short", short_r)):
        for unit in ("blocks", "tx"):
            if f"reindex_{h}_{unit}_per_s" in figures:
                figures[f"reindex_{alias}_{unit}_per_s"] = figures[f"reindex_{h}_{unit}_per_s"]
    if f"utxo_{long_h}" in figures:
        figures["utxo_long"] = figures[f"utxo_{long_h}"]
    for alias, h in (("long", long_h), ("short", short_r)):
        if f"reindex_{h}_cpu_us_per_tx" in figures:
            figures[f"reindex_{alias}_cpu_us_per_tx"] = figures[f"reindex_{h}_cpu_us_per_tx"]
    ratios = ratios_of(params, figures)
    snaps = params.snapshots()
    series = {
        "blocks": snaps,
        "txs": [meta["snapshots"][str(h)]["txs"] for h in snaps],
        "startup_s": [figures[f"startup_{h}_s"] for h in snaps],
        "rss_mb": [figures[f"rss_{h}_mb"] for h in snaps],
        **{f"{q}_ms": [figures[f"{q}_{h}_ms"] for h in snaps] for q in bn.QUERIES},
    }
    info = bl.machine(
        load_before,
        scale=args.scale,
        quick=args.quick,
        chain=meta["params"],
        cache=str(cached[long_h].parent),
        cached=meta["cached"],
        build_jobs=meta["jobs"],
        reindex_short=params.reindex_short(),
        wall_s=round(time.perf_counter() - began, 1),
    )
    print_table(params, figures, ratios, info)
    bl.write_json(args.json, NAME, figures, ratios, TARGETS, info, series)
    return 0


if __name__ == "__main__":
    sys.exit(main())
