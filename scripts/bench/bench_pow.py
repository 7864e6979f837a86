"""Proof-of-work search benchmark: hashes per second of the miner vs a bare hashlib loop.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_pow.py [--quick] [--json OUT]

The machine is shared and noisy, so the headline figure is a RATIO to a ceiling measured in the
same run, interleaved with it; absolute rates are printed for information only.

a. One process, one core. Ceiling: the bare hashlib loop a miner cannot do without,
   ``for n in range(N): sha256(sha256(prefix + pack(n)).digest()).digest()`` (no comparison
   at all). Measured: ``node.miner.pow.search_nonces(prefix, target, 0, N)`` with a target no
   hash in the range meets (``2**200``: the top-byte pre-filter passes one digest in 256, as on
   every real network), so it scans all N nonces. N = 1,000,000 (200,000 with ``--quick``); each
   contender runs 5 times (3 with ``--quick``), alternating which goes first, after a
   ``gc.collect()``, and the fastest run is kept (noise only ever slows a run down). Ratio
   ``search_nonces/bare`` (target >= 0.8). ``search_nonces`` hashes the 76-byte prefix once and
   copies that SHA-256 state for each nonce, so it can run slightly above 1.0.

b. For information: a ``PowSearcher`` with one worker per CPU searches the same prefix for ~5 s
   (2 s with ``--quick``), workers already started; aggregate rate = ``hashes_done`` / time from
   the search's start to its return after ``cancel()``. Per-worker rate and its ratio to the
   bare loop are reported too (SPEC 7: "hashes per second per worker vs a bare hashlib loop");
   with as many workers as cores, every other job on the machine takes from it. Meanwhile the
   event loop ticks every 10 ms and the worst and 99th-percentile lateness and the time
   ``cancel()`` takes are reported, and the time a new search on the same searcher (the "new
   tip": a regtest target, met within a few nonces) takes to return its header. These are the
   wall-clock figures ``tests/unit/test_pow_search.py`` used to bound (50 ms, 0.5 s): a loaded
   machine can break such bounds, so the test checks only what load cannot break, and they
   are measured here.

Output: a table on stdout; with ``--json OUT`` a JSON object ``{"name": "pow", "figures",
"ratios", "targets", "machine"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import hashlib
import os
import platform
import ssl
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchlib import loadavg, write_json  # noqa: E402

from consensus import get_params  # noqa: E402
from node.miner.pow import PowSearcher, default_workers, search_nonces  # noqa: E402

NAME = "pow"
TARGETS: dict[str, float] = {"search_nonces/bare": 0.8}
UNREACHABLE = 1 << 200
"""A target no nonce is expected to meet (2**-56 a hash), with realistic pre-filtering."""
TICK = 0.010


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes, after a full collection."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- a. one process ----------------------------------------------------------------------------


def bare_loop(prefix: bytes, n: int) -> Callable[[], object]:
    """The ceiling: SHA256d of every header, nothing else."""

    def run() -> None:
        sha256 = hashlib.sha256
        pack = struct.Struct("<I").pack
        for nonce in range(n):
            sha256(sha256(prefix + pack(nonce)).digest()).digest()

    return run


def our_loop(prefix: bytes, n: int) -> Callable[[], object]:
    def run() -> None:
        if search_nonces(prefix, UNREACHABLE, 0, n) is not None:
            raise AssertionError("a nonce met the unreachable target: pick another prefix")

    return run


def bench_single(prefix: bytes, n: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    contenders = {"bare": bare_loop(prefix, n), "search_nonces": our_loop(prefix, n)}
    runs: dict[str, list[float]] = {name: [] for name in contenders}
    for rep in range(repeats):
        order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
        for name in order:
            runs[name].append(timed(contenders[name]))
    bare = n / min(runs["bare"])
    ours = n / min(runs["search_nonces"])
    figures = {"bare_hashlib_per_s": bare, "search_nonces_per_s": ours}
    return figures, {"search_nonces/bare": ours / bare}


# --- b. the searcher ---------------------------------------------------------------------------


async def searcher_run(header: Any, workers: int, duration: float) -> dict[str, float]:
    async with PowSearcher(workers=workers) as searcher:
        loop = asyncio.get_running_loop()
        lateness: list[float] = []
        began = time.perf_counter()
        task = asyncio.create_task(searcher.search(header, UNREACHABLE))
        end = loop.time() + duration
        while loop.time() < end:
            tick = time.perf_counter()
            await asyncio.sleep(TICK)
            lateness.append(time.perf_counter() - tick - TICK)
        cancelled = time.perf_counter()
        searcher.cancel()
        if await task is not None:
            raise AssertionError("a nonce met the unreachable target")
        done = time.perf_counter()
        hashes = searcher.hashes_done
        easy = dataclasses.replace(header, time=header.time + 1)
        if await searcher.search(easy, get_params("regtest").pow_limit) is None:
            raise AssertionError("the search after a cancel found nothing")
        restarted = time.perf_counter()
    lateness.sort()
    aggregate = hashes / (done - began)
    return {
        "searcher_aggregate_per_s": aggregate,
        "searcher_per_worker_per_s": aggregate / workers,
        "searcher_workers": workers,
        "searcher_hashes": hashes,
        "searcher_seconds": done - began,
        "loop_ticks": len(lateness),
        "loop_lateness_max_ms": lateness[-1] * 1000,
        "loop_lateness_p99_ms": lateness[int(0.99 * (len(lateness) - 1))] * 1000,
        "cancel_ms": (done - cancelled) * 1000,
        "restart_ms": (restarted - done) * 1000,
    }


# --- report ------------------------------------------------------------------------------------


def machine(load_before: list[float], quick: bool, n: int, repeats: int, workers: int) -> Any:
    return {
        "cpu_count": os.cpu_count(),
        "workers": workers,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "openssl": ssl.OPENSSL_VERSION,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "quick": quick,
        "n": n,
        "repeats": repeats,
    }


def verdict(name: str, value: float) -> str:
    target = TARGETS.get(name)
    if target is None:
        return ""
    return f">= {target:g}  {'ok' if value >= target else 'BELOW'}"


def print_table(figures: dict[str, float], ratios: dict[str, float], info: Any) -> None:
    print(
        f"\nTally proof-of-work bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"{info['openssl']}, load {info['loadavg_before']} -> {info['loadavg_after']}, "
        f"best of {info['repeats']} x {info['n']:,} nonces"
    )
    rows = [
        ("one process (hashes/s)", None, None),
        ("  bare hashlib loop (ceiling)", "bare_hashlib_per_s", None),
        ("  search_nonces", "search_nonces_per_s", "search_nonces/bare"),
        (f"PowSearcher, {info['workers']} workers (info)", None, None),
        ("  aggregate", "searcher_aggregate_per_s", None),
        ("  per worker", "searcher_per_worker_per_s", "searcher_per_worker/bare"),
    ]
    print(f"{'':34} {'per second':>12} {'ratio':>7}  {'':26} target")
    for label, fig, rat in rows:
        if fig is None:
            print(label)
            continue
        r = f"{ratios[rat]:7.3f}" if rat else " " * 7
        target = verdict(rat, ratios[rat]) if rat else ""
        print(f"{label:34} {figures[fig]:12,.0f} {r}  {rat or '':26} {target}".rstrip())
    print(
        f"  event loop while mining: {figures['loop_ticks']:.0f} ticks of 10 ms, late by "
        f"max {figures['loop_lateness_max_ms']:.2f} ms, p99 {figures['loop_lateness_p99_ms']:.2f}"
        f" ms; cancel() took {figures['cancel_ms']:.1f} ms, the next search"
        f" {figures['restart_ms']:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200,000 nonces, best of 3, 2 s pool")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)

    n = 200_000 if args.quick else 1_000_000
    repeats = 3 if args.quick else 5
    duration = 2.0 if args.quick else 5.0
    workers = default_workers()
    load_before = loadavg()
    header = get_params("regtest").genesis.header
    prefix = header.serialize()[:76]

    print(f"one process: {n:,} nonces, best of {repeats} ...", file=sys.stderr)
    figures, ratios = bench_single(prefix, n, repeats)
    print(f"PowSearcher: {workers} workers for {duration:g} s ...", file=sys.stderr)
    figures |= asyncio.run(searcher_run(dataclasses.replace(header, nonce=0), workers, duration))
    ratios["searcher_per_worker/bare"] = (
        figures["searcher_per_worker_per_s"] / figures["bare_hashlib_per_s"]
    )
    info = machine(load_before, args.quick, n, repeats, workers)
    print_table(figures, ratios, info)

    write_json(args.json, NAME, figures, ratios, TARGETS, info, figure_digits=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
