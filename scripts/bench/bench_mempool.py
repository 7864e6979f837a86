"""Mempool benchmark: transaction acceptance rate and block-template build time.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_mempool.py [--quick] [--json OUT]

Everything runs in this one process, on one core. The machine is shared and noisy, so every
figure with a meaning is a RATIO to a ceiling measured in the same run, interleaved with it;
absolute rates and times are printed for information only. A ``gc.collect()`` precedes every
timed run; the collector stays on during it. The chain is built by ``tests.helpers.ChainBuilder``
(through the real validation) and processed into a ``Chainstate`` on a ``MemoryStore`` with
``clock=lambda: 2**31``; the mempool is wired as the node wires it (``ChainView`` over the
chainstate, its own ``MemoryStore`` for persistence).

Setup: 100 + F empty blocks, then one block whose F transactions fan the coinbases of heights
1..F out into 500 outputs each (0.1 TLY, over 200 keys): N coins for (a) and about 3,000 for (b).

a. Acceptance (tx/s). N independent transactions (default 3,000; 1,000 with ``--quick``), each
   spending one distinct confirmed coin into one output with a fee of 500 units (about 3 units
   per byte), signed beforehand. Each run hands fresh ``Transaction`` objects (decoded from their
   bytes, untimed: no cached txid, no cached signature) to ``Mempool.accept`` on a fresh mempool,
   in chunks of 250, interleaved per chunk with the contenders below; the best time per chunk
   over the repeats (5; 3 with ``--quick``) is summed.
   - ``accept``: ``Mempool(verify=consensus.verify_signature)``: the default engine, no cache.
   - ``verify_raw`` (the ceiling): ``consensus.verify_signature`` alone on the same
     (pubkey, signature, digest) triples, digests computed beforehand.
   - ``accept_nosig`` (info): the mempool with a verifier that always says yes: the cost of the
     policy, the lookups and the bookkeeping without elliptic-curve work.
   Ratio ``accept/verify_raw`` (1.0 would mean acceptance costs nothing but the signature check).

b. Template build (ms). A mempool of 5,000 transactions: seeded mix of independent ones (40 %)
   and parent-child chains of depth 2 to 5, fee rates 1..50 units per byte, all fitting in one
   block. ``build_template`` (package selection, coinbase, merkle root, header) is timed 5 times,
   interleaved with its ceiling, and the medians are kept. The ceiling is what any template must
   at least do: sort the entries by fee rate and compute the merkle root of their wtxids. Ratio
   ``ceiling/template`` (1.0 would mean package selection costs nothing extra). The template is
   checked to hold all 5,000 transactions and to pass ``check_block`` once solved (untimed).

Output: a table on stdout; with ``--json OUT`` a JSON object ``{"name": "mempool", "figures",
"ratios", "targets", "machine"}``. SPEC 7 sets no target for these figures, so ``targets`` is
empty; the ratios are there to compare runs.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchlib import crypto_engine, loadavg, platform_info, version, write_json  # noqa: E402

from consensus import (  # noqa: E402
    Block,
    OutPoint,
    Transaction,
    TxOut,
    check_block,
    merkle_root,
    signature_hash,
    verify_signature,
)
from node.chainstate import Chainstate  # noqa: E402
from node.mempool import ChainView, Mempool  # noqa: E402
from node.miner.template import build_template  # noqa: E402
from node.storage import MemoryStore  # noqa: E402
from tests.helpers import REGTEST, ChainBuilder, Key, key, solve, spend  # noqa: E402

NAME = "mempool"
FAN_OUT = 500
KEYS = 200
FEE = 500
CHUNK = 250
TEMPLATE_TXS = 5_000
TEMPLATE_ROOTS = 3_000  # coins set aside for (b): enough for 5,000 txs in chains of 1..5
TEMPLATE_RUNS = 5
EST_SIZE = 180  # bytes, at least a 1-input, 1-output transaction's: fee rates in (b)
TARGETS: dict[str, dict[str, float]] = {}

Coin3 = tuple[OutPoint, TxOut, Key]


def chain_clock() -> float:
    return float(2**31)


def always_valid(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    return True


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- setup -------------------------------------------------------------------------------------


def build_chain(coins_needed: int) -> tuple[Chainstate, list[Coin3]]:
    fans = -(-coins_needed // FAN_OUT)
    keys = [key(2_000 + i) for i in range(KEYS)]
    cb = ChainBuilder()
    cb.grow(REGTEST.coinbase_maturity + fans)
    coins: list[Coin3] = []
    txs: list[Transaction] = []
    for height in range(1, fans + 1):
        coin = cb.coinbase_coin(height)
        amount = coin[1].amount // FAN_OUT
        owners = [keys[(height * FAN_OUT + i) % KEYS] for i in range(FAN_OUT)]
        tx = spend([coin], [TxOut(amount, k.pubkey_hash) for k in owners])
        txs.append(tx)
        coins += [(OutPoint(tx.txid(), i), tx.outputs[i], k) for i, k in enumerate(owners)]
    cb.add(cb.next_block(txs))
    cs = Chainstate(MemoryStore(), REGTEST, clock=chain_clock, sync=False)
    for block in cb.blocks[1:]:
        cs.process_block(block)
    assert cs.height == cb.height
    return cs, coins


def new_mempool(cs: Chainstate, verify: Callable[[bytes, bytes, bytes], bool]) -> Mempool:
    view = ChainView.of(cs)
    return Mempool(view, REGTEST, verify=verify, store=MemoryStore(), clock=time.time)


# --- a. acceptance -----------------------------------------------------------------------------


def verify_chunk(triples: Sequence[tuple[bytes, bytes, bytes]], chunk: range) -> Callable[[], None]:
    def run() -> None:
        for j in chunk:
            if not verify_signature(*triples[j]):
                raise AssertionError("a signature failed")

    return run


def accept_chunk(pool: Mempool, txs: Sequence[Transaction], chunk: range) -> Callable[[], None]:
    def run() -> None:
        for j in chunk:
            pool.accept(txs[j])

    return run


def bench_accept(
    cs: Chainstate, coins: Sequence[Coin3], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    txs = [spend([c], [TxOut(c[1].amount - FEE, c[2].pubkey_hash)]) for c in coins]
    raws = [tx.serialize() for tx in txs]
    triples = [
        (tx.inputs[0].pubkey, tx.inputs[0].signature, signature_hash(tx, 0, c[1], REGTEST))
        for tx, c in zip(txs, coins, strict=True)
    ]
    chunks = [range(i, min(i + CHUNK, len(txs))) for i in range(0, len(txs), CHUNK)]
    names = ("accept", "accept_nosig", "verify_raw")
    best = {name: [float("inf")] * len(chunks) for name in names}
    for rep in range(repeats):
        pools = {
            "accept": new_mempool(cs, verify_signature),
            "accept_nosig": new_mempool(cs, always_valid),
        }
        fresh = {name: [Transaction.deserialize(r) for r in raws] for name in pools}
        for i, chunk in enumerate(chunks):
            shift = (i + rep) % len(names)
            for name in names[shift:] + names[:shift]:
                if name == "verify_raw":
                    run = verify_chunk(triples, chunk)
                else:
                    run = accept_chunk(pools[name], fresh[name], chunk)
                best[name][i] = min(best[name][i], timed(run))
        for name, pool in pools.items():
            assert len(pool) == len(txs), (name, len(pool))
    n = len(txs)
    rate = {name: n / sum(best[name]) for name in names}
    figures = {
        "accept_n": n,
        "accept_tx_per_s": rate["accept"],
        "accept_nosig_tx_per_s": rate["accept_nosig"],
        "verify_raw_per_s": rate["verify_raw"],
        "accept_us_per_tx": 1e6 / rate["accept"],
        "accept_nosig_us_per_tx": 1e6 / rate["accept_nosig"],
        "verify_raw_us_per_sig": 1e6 / rate["verify_raw"],
    }
    ratios = {
        "accept/verify_raw": rate["accept"] / rate["verify_raw"],
        "accept_nosig/verify_raw": rate["accept_nosig"] / rate["verify_raw"],
    }
    return figures, ratios


# --- b. template -------------------------------------------------------------------------------


def fill_template_pool(cs: Chainstate, coins: Sequence[Coin3], seed: int = 7) -> Mempool:
    rng = random.Random(seed)
    pool = new_mempool(cs, verify_signature)
    roots = iter(coins)
    made = chains = 0
    while made < TEMPLATE_TXS:
        depth = 1 if rng.random() < 0.4 else rng.randint(2, 5)
        depth = min(depth, TEMPLATE_TXS - made)
        coin = next(roots)
        for _ in range(depth):
            fee = rng.randint(1, 50) * EST_SIZE
            tx = spend([coin], [TxOut(coin[1].amount - fee, coin[2].pubkey_hash)])
            result = pool.accept(tx)
            assert result.status == "accepted", result
            coin = (OutPoint(tx.txid(), 0), tx.outputs[0], coin[2])
        made += depth
        chains += depth > 1
    assert len(pool) == TEMPLATE_TXS
    return pool


def bench_template(
    cs: Chainstate, coins: Sequence[Coin3]
) -> tuple[dict[str, float], dict[str, float]]:
    pool = fill_template_pool(cs, coins)
    payout = key(1).pubkey_hash
    now = cs.tip.header.time + 60

    def template() -> None:
        build_template(cs, pool, payout, now=now)

    def ceiling() -> None:
        ordered = sorted(pool.entries.values(), key=lambda e: e.fee_rate, reverse=True)
        merkle_root([e.tx.wtxid() for e in ordered])  # a header's root is over wtxids

    t = build_template(cs, pool, payout, now=now)
    assert len(t.block.txs) == TEMPLATE_TXS + 1, len(t.block.txs)
    check_block(Block(solve(t.block.header, REGTEST), t.block.txs), REGTEST)
    runs: dict[str, list[float]] = {"template": [], "ceiling": []}
    for rnd in range(TEMPLATE_RUNS):
        order = [("template", template), ("ceiling", ceiling)]
        for name, fn in order if rnd % 2 == 0 else reversed(order):
            runs[name].append(timed(fn))
    med = {name: statistics.median(v) for name, v in runs.items()}
    figures = {
        "template_txs": TEMPLATE_TXS,
        "template_bytes": t.block.size(),
        "template_ms": med["template"] * 1e3,
        "template_best_ms": min(runs["template"]) * 1e3,
        "template_ceiling_ms": med["ceiling"] * 1e3,
    }
    ratios = {"ceiling/template": med["ceiling"] / med["template"]}
    return figures, ratios


# --- report ------------------------------------------------------------------------------------


def machine(load_before: list[float], quick: bool, n: int, repeats: int) -> dict[str, Any]:
    return {
        **platform_info(load_before),
        "coincurve": version("coincurve"),
        "msgpack": version("msgpack"),
        "crypto_engine": crypto_engine(),
        "quick": quick,
        "accept_n": n,
        "accept_repeats": repeats,
        "template_txs": TEMPLATE_TXS,
        "template_runs": TEMPLATE_RUNS,
    }


def print_table(figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any]) -> None:
    print(
        f"\nTally mempool bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}"
    )
    print(
        f"a. acceptance of {figures['accept_n']:,.0f} transactions, "
        f"best of {info['accept_repeats']}"
    )
    print(f"  {'verify_signature alone (ceiling)':36} {figures['verify_raw_per_s']:10,.0f} /s")
    print(
        f"  {'Mempool.accept':36} {figures['accept_tx_per_s']:10,.0f} /s"
        f"  accept/verify_raw {ratios['accept/verify_raw']:.3f}"
    )
    print(
        f"  {'Mempool.accept, signatures off':36} {figures['accept_nosig_tx_per_s']:10,.0f} /s"
        f"  accept_nosig/verify_raw {ratios['accept_nosig/verify_raw']:.3f}"
    )
    print(
        f"b. template from {figures['template_txs']:,.0f} transactions "
        f"({figures['template_bytes']:,.0f} bytes), median of {info['template_runs']}"
    )
    print(f"  {'sort + merkle root (ceiling)':36} {figures['template_ceiling_ms']:10,.1f} ms")
    print(
        f"  {'build_template':36} {figures['template_ms']:10,.1f} ms"
        f"  ceiling/template {ratios['ceiling/template']:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 transactions, 3 repeats")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    args = ap.parse_args(argv)
    n = 1_000 if args.quick else 3_000
    repeats = 3 if args.quick else 5
    load_before = loadavg()

    print("building the chain ...", file=sys.stderr)
    cs, coins = build_chain(n + TEMPLATE_ROOTS)
    print(f"a. accepting {n} transactions x {repeats} ...", file=sys.stderr)
    figures, ratios = bench_accept(cs, coins[:n], repeats)
    print(f"b. filling a mempool of {TEMPLATE_TXS} and building templates ...", file=sys.stderr)
    tf, tr = bench_template(cs, coins[n:])
    figures |= tf
    ratios |= tr
    info = machine(load_before, args.quick, n, repeats)
    print_table(figures, ratios, info)
    write_json(args.json, NAME, figures, ratios, TARGETS, info, figure_digits=3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
