"""Consensus throughput benchmark: signature verification and 1,000-transaction block validation.

Run from the repository root::

    .venv/bin/python scripts/bench/bench_consensus.py [--quick] [--json OUT] [--profile]

Everything runs in this one process, on one core (no multiprocessing). The machine is shared and
noisy, so every figure is reported as a RATIO to a ceiling measured in the same run, interleaved
with it; absolute rates are printed for information only. Each measurement is repeated (7 times,
3 with ``--quick``), alternating the order of the contenders, and the best (fastest) run is kept:
on a loaded machine noise only ever makes a run slower. Signatures are timed in chunks of 250
(every contender on a chunk, then the next chunk), summing each contender's best per chunk. A
full ``gc.collect()`` precedes every timed run; the collector stays enabled during it, as it
would be in the node.

What is measured:

a. Signature verification. N (5,000; 1,000 with ``--quick``) distinct ``(pubkey33, sig64,
   digest32)`` triples, each from its own key, are made beforehand, together with the DER form of
   the same signatures. Ceiling: raw coincurve, ``coincurve.PublicKey(pubkey).verify(der, digest,
   hasher=None)``. Measured: ``consensus.verify_signature`` (the active engine, coincurve by
   default) and ``consensus.engine("coincurve").verify``; ratio = rate / ceiling rate (target
   >= 0.9). The pure-Python ``consensus.engine("ecdsa").verify`` is timed on 200 triples. For
   information, ``secp256k1_ecdsa_verify`` alone on pre-parsed keys and signatures (what neither
   raw coincurve nor ``consensus`` can beat) is timed too.

b. Block validation. ``tests.helpers.ChainBuilder`` grows a regtest chain past coinbase maturity,
   spends one mature coinbase into a fan-out transaction of 1,000 outputs (one per key), mines it,
   then builds (without connecting) the next block: 1,000 transactions, each spending a distinct
   fan-out output with a fresh signature, paying 1 or 2 outputs. Each run decodes a FRESH block
   from its bytes (``Block.deserialize``, so no cached txid or encoding carries over) and runs
   ``check_block`` then ``connect_block`` against a copy of the coins view (copied untimed before
   every run, so every run starts from the same state). Reported in transactions per second
   (non-coinbase transactions / seconds; target >= 5,000 for the total) for deserialize,
   check_block, connect_block and their total, each with a ceiling from the same run:

   - deserialize: ``msgpack.unpackb`` of the same bytes (decoding only, no canonical check and
     no objects);
   - check_block: the hashing it cannot avoid, SHA256d of every transaction's encoding (its
     wtxid) plus the merkle tree over the wtxids, on bytes prepared beforehand;
   - connect_block and total: ``secp256k1_ecdsa_verify`` alone over the block's 1,000
     signatures, keys and signatures parsed beforehand (the crypto floor: no validation can be
     cheaper without a signature cache). Raw coincurve is not used here: its ``PublicKey`` and DER
     wrappers add Python overhead that ``consensus`` avoids, so it is no ceiling for a whole block.

   Then a "signature cache" (a verifier wrapping ``verify_signature`` with a Python set keyed by
   ``(pubkey, sig, digest)``) is filled by a first pass, and connect_block is timed again with it
   warm; the warm/cold ratio is the speed-up a cache gives for a block whose transactions were
   already seen in the mempool.

c. ``--profile``: after the measurements, cProfile over one check_block + connect_block of a
   fresh block, printing the top 25 functions by cumulative time and the top 15 by own time.

Output: a table on stdout; with ``--json OUT`` a JSON object ``{"name", "figures", "ratios",
"targets", "machine"}``.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import coincurve  # noqa: E402
import msgpack  # noqa: E402
from benchlib import crypto_engine, loadavg, platform_info, version, write_json  # noqa: E402
from coincurve._libsecp256k1 import ffi, lib  # noqa: E402
from coincurve.context import GLOBAL_CONTEXT  # noqa: E402

import consensus  # noqa: E402
from consensus import (  # noqa: E402
    Block,
    MemoryCoinsView,
    OutPoint,
    TxOut,
    check_block,
    connect_block,
    hash160,
    merkle_root,
    sha256d,
    sign,
    signature_hash,
    verify_signature,
)
from tests.helpers import REGTEST, ChainBuilder, Key, key, mine_block, spend  # noqa: E402

NAME = "consensus"
BLOCK_TXS = 1_000
ECDSA_N = 200
TARGETS: dict[str, float] = {
    "verify_signature/raw": 0.9,
    "engine_coincurve/raw": 0.9,
    "block_total_tx_per_s": 5_000.0,
}

Triple = tuple[bytes, bytes, bytes]


# --- timing ------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes, after a full collection."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Samples:
    """Run times of one contender, in seconds."""

    runs: list[float]

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def interleave(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, Samples]:
    """Time every contender ``repeats`` times, reversing the order on every other round."""
    names = list(contenders)
    out = {name: Samples([]) for name in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else reversed(names):
            out[name].runs.append(timed(contenders[name]))
    return out


# --- a. signature verification -----------------------------------------------------------------


def make_triples(n: int, tag: bytes) -> tuple[list[Triple], list[bytes]]:
    """``n`` distinct (pubkey, compact sig, digest) triples and the same signatures in DER."""
    triples: list[Triple] = []
    ders: list[bytes] = []
    for i in range(n):
        priv = hashlib.sha256(b"bench key %s %d" % (tag, i)).digest()
        digest = hashlib.sha256(b"bench digest %s %d" % (tag, i)).digest()
        ck = coincurve.PrivateKey(priv)
        pub = ck.public_key.format(compressed=True)
        triples.append((pub, sign(priv, digest), digest))
        ders.append(ck.sign(digest, hasher=None))
    return triples, ders


def raw_verifier(triples: list[Triple], ders: list[bytes]) -> Callable[[], object]:
    pairs = [(pub, der, digest) for (pub, _, digest), der in zip(triples, ders, strict=True)]
    public_key = coincurve.PublicKey

    def run() -> None:
        for pub, der, digest in pairs:
            if not public_key(pub).verify(der, digest, hasher=None):
                raise AssertionError("raw coincurve rejected a valid signature")

    return run


def libsecp_floor(triples: list[Triple]) -> Callable[[], object]:
    """Only ``secp256k1_ecdsa_verify``, on keys and signatures parsed beforehand: pure crypto."""
    ctx = GLOBAL_CONTEXT.ctx
    parsed = []
    for pub, sig, digest in triples:
        csig = ffi.new("secp256k1_ecdsa_signature *")
        ckey = ffi.new("secp256k1_pubkey *")
        ok = lib.secp256k1_ecdsa_signature_parse_compact(ctx, csig, sig)
        ok = ok and lib.secp256k1_ec_pubkey_parse(ctx, ckey, pub, 33)
        if not ok:
            raise AssertionError("cannot parse a fixture signature or key")
        parsed.append((csig, digest, ckey))
    verify = lib.secp256k1_ecdsa_verify

    def run() -> None:
        for csig, digest, ckey in parsed:
            if not verify(ctx, csig, digest, ckey):
                raise AssertionError("libsecp256k1 rejected a valid signature")

    return run


def loop_verifier(
    verify: Callable[[bytes, bytes, bytes], bool], triples: list[Triple]
) -> Callable[[], object]:
    def run() -> None:
        for pub, sig, digest in triples:
            if not verify(pub, sig, digest):
                raise AssertionError("a valid signature was rejected")

    return run


SIG_CHUNK = 250


def bench_signatures(n: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Chunks of ``SIG_CHUNK`` triples, every contender on a chunk in turn: short samples are
    likelier to fall in a quiet moment; a contender's time is the sum of its best per chunk."""
    triples, ders = make_triples(n, b"sig")
    best: dict[str, float] = {}
    for start in range(0, n, SIG_CHUNK):
        t, d = triples[start : start + SIG_CHUNK], ders[start : start + SIG_CHUNK]
        chunk = interleave(
            {
                "raw": raw_verifier(t, d),
                "libsecp": libsecp_floor(t),
                "verify_signature": loop_verifier(verify_signature, t),
                "engine_coincurve": loop_verifier(consensus.engine("coincurve").verify, t),
            },
            repeats,
        )
        for name, samples in chunk.items():
            best[name] = best.get(name, 0.0) + samples.best
    small, _ = make_triples(ECDSA_N, b"ecdsa")
    ecdsa_runs = interleave(
        {"ecdsa": loop_verifier(consensus.engine("ecdsa").verify, small)}, min(repeats, 3)
    )["ecdsa"]
    figures = {f"sig_{k}_per_s": n / secs for k, secs in best.items()}
    figures["sig_ecdsa_per_s"] = ECDSA_N / ecdsa_runs.best
    raw = best["raw"]
    ratios = {
        "verify_signature/raw": raw / best["verify_signature"],
        "engine_coincurve/raw": raw / best["engine_coincurve"],
        "ecdsa/raw": (ECDSA_N / ecdsa_runs.best) / (n / raw),
        "verify_signature/libsecp": best["libsecp"] / best["verify_signature"],
    }
    return figures, ratios


# --- b. block validation -----------------------------------------------------------------------


@dataclass
class BlockFixture:
    raw: bytes
    height: int
    view: MemoryCoinsView
    ntx: int
    triples: list[Triple]
    wtxid_preimages: list[bytes]


def build_block_fixture(ntx: int) -> BlockFixture:
    """A chain with ``ntx`` distinct spendable coins and the block that spends all of them."""
    params = REGTEST
    chain = ChainBuilder()
    chain.grow(params.coinbase_maturity + 1)  # the coinbase of height 1 is now mature
    keys: list[Key] = [key(1000 + i) for i in range(ntx)]
    funding_coin = chain.coinbase_coin(1)
    per_coin = (funding_coin[1].amount - 1_000_000) // ntx
    fanout = spend([funding_coin], [TxOut(per_coin, k.pubkey_hash) for k in keys], params)
    fanout_fee = funding_coin[1].amount - per_coin * ntx
    chain.add(chain.next_block([fanout], fees=fanout_fee))

    fid = fanout.txid()
    fee = 1_000
    txs = []
    for i, k in enumerate(keys):
        coin = (OutPoint(fid, i), fanout.outputs[i], k)
        change = per_coin - fee
        if i % 2:  # 1 or 2 outputs, alternately
            outs = [TxOut(change // 2, keys[(i + 1) % ntx].pubkey_hash)]
            outs.append(TxOut(change - change // 2, k.pubkey_hash))
        else:
            outs = [TxOut(change, keys[(i + 7) % ntx].pubkey_hash)]
        txs.append(spend([coin], outs, params))
    height = chain.height + 1
    block = mine_block(
        chain.tip.hash(),
        height,
        txs,
        params.genesis_time + height * 60,
        chain.miner.pubkey_hash,
        params,
        fees=fee * ntx,
    )

    triples: list[Triple] = []
    for tx in txs:
        txin = tx.inputs[0]
        spent = chain.view.get_coin(txin.prevout)
        assert spent is not None and hash160(txin.pubkey) == spent.output.pubkey_hash
        digest = signature_hash(tx, 0, spent.output, params)
        triples.append((txin.pubkey, txin.signature, digest))
    preimages = [tx.serialize() for tx in block.txs]  # the wtxids' (the merkle leaves)
    return BlockFixture(block.serialize(), height, chain.view, ntx, triples, preimages)


def fresh_view(fx: BlockFixture) -> MemoryCoinsView:
    return MemoryCoinsView(fx.view.coins)


class SigCache:
    """A verifier with a set of already-verified ``(pubkey, sig, digest)`` in front."""

    def __init__(self) -> None:
        self.seen: set[Triple] = set()
        self.hits = 0

    def __call__(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        entry = (pubkey, signature, digest)
        if entry in self.seen:
            self.hits += 1
            return True
        if verify_signature(pubkey, signature, digest):
            self.seen.add(entry)
            return True
        return False


def bench_block(fx: BlockFixture, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    params = REGTEST
    phases: dict[str, list[float]] = {k: [] for k in ("deserialize", "check", "connect", "total")}
    warm_runs: list[float] = []
    sigcache = SigCache()

    # Prove the fixture valid, and fill the signature cache (first pass, untimed).
    block = Block.deserialize(fx.raw)
    check_block(block, params)
    undo = connect_block(Block.deserialize(fx.raw), fx.height, fresh_view(fx), params, sigcache)
    assert len(undo.spent) == fx.ntx and len(sigcache.seen) == fx.ntx

    def cold_run() -> None:
        view = fresh_view(fx)
        gc.collect()
        t0 = time.perf_counter()
        blk = Block.deserialize(fx.raw)
        t1 = time.perf_counter()
        check_block(blk, params)
        t2 = time.perf_counter()
        connect_block(blk, fx.height, view, params)
        t3 = time.perf_counter()
        phases["deserialize"].append(t1 - t0)
        phases["check"].append(t2 - t1)
        phases["connect"].append(t3 - t2)
        phases["total"].append(t3 - t0)

    def warm_run() -> None:
        view = fresh_view(fx)
        blk = Block.deserialize(fx.raw)
        check_block(blk, params)
        warm_runs.append(timed(lambda: connect_block(blk, fx.height, view, params, sigcache)))

    unpackb = msgpack.unpackb

    def decode_floor() -> None:
        unpackb(fx.raw, raw=True)

    def hash_floor() -> None:
        wtxids = [sha256d(p) for p in fx.wtxid_preimages]
        merkle_root(wtxids)

    floors = {
        "decode": decode_floor,
        "hash": hash_floor,
        "sig": libsecp_floor(fx.triples),
    }
    floor_runs: dict[str, list[float]] = {k: [] for k in floors}
    for rep in range(repeats):
        order: list[Callable[[], None]] = [cold_run, warm_run]
        if rep % 2:
            order.reverse()
        for name, fn in floors.items() if rep % 2 == 0 else reversed(floors.items()):
            floor_runs[name].append(timed(fn))
        for fn in order:
            fn()

    n = fx.ntx
    best = {k: min(v) for k, v in phases.items()}
    fl = {k: min(v) for k, v in floor_runs.items()}
    warm = min(warm_runs)
    figures = {
        "block_deserialize_tx_per_s": n / best["deserialize"],
        "block_check_tx_per_s": n / best["check"],
        "block_connect_tx_per_s": n / best["connect"],
        "block_total_tx_per_s": n / best["total"],
        "block_total_median_tx_per_s": n / statistics.median(phases["total"]),
        "block_connect_warm_tx_per_s": n / warm,
        "ceiling_msgpack_unpackb_tx_per_s": n / fl["decode"],
        "ceiling_hashing_tx_per_s": n / fl["hash"],
        "ceiling_libsecp_verify_tx_per_s": n / fl["sig"],
        "block_bytes": float(len(fx.raw)),
    }
    ratios = {
        "deserialize/msgpack_unpackb": fl["decode"] / best["deserialize"],
        "check/hashing": fl["hash"] / best["check"],
        "connect/libsecp_verify": fl["sig"] / best["connect"],
        "total/libsecp_verify": fl["sig"] / best["total"],
        "connect_warm/connect_cold": best["connect"] / warm,
        "warm_connect/libsecp_verify": fl["sig"] / warm,
    }
    return figures, ratios


# --- c. profile --------------------------------------------------------------------------------


def profile(fx: BlockFixture) -> str:
    params = REGTEST
    view = fresh_view(fx)
    blk = Block.deserialize(fx.raw)
    prof = cProfile.Profile()
    gc.collect()
    prof.enable()
    check_block(blk, params)
    connect_block(blk, fx.height, view, params)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --- report ------------------------------------------------------------------------------------


def machine(load_before: list[float], quick: bool, n: int, repeats: int) -> dict[str, Any]:
    return {
        **platform_info(load_before),
        "coincurve": version("coincurve"),
        "ecdsa": version("ecdsa"),
        "msgpack": version("msgpack"),
        "crypto_engine": crypto_engine(),
        "quick": quick,
        "sig_n": n,
        "block_txs": BLOCK_TXS,
        "repeats": repeats,
    }


def verdict(name: str, value: float) -> str:
    target = TARGETS.get(name)
    if target is None:
        return ""
    return f">= {target:g}  {'ok' if value >= target else 'BELOW'}"


def print_table(figures: dict[str, float], ratios: dict[str, float], info: dict[str, Any]) -> None:
    print(
        f"\nTally consensus bench: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"load {info['loadavg_before']} -> {info['loadavg_after']}, "
        f"best of {info['repeats']}"
    )
    rows = [
        ("signature verification", None, None),
        ("  raw coincurve (ceiling)", "sig_raw_per_s", None),
        ("  consensus.verify_signature", "sig_verify_signature_per_s", "verify_signature/raw"),
        ("  engine('coincurve').verify", "sig_engine_coincurve_per_s", "engine_coincurve/raw"),
        ("  engine('ecdsa').verify", "sig_ecdsa_per_s", "ecdsa/raw"),
        ("  libsecp256k1 verify only (info)", "sig_libsecp_per_s", "verify_signature/libsecp"),
        (f"block of {BLOCK_TXS} txs (tx/s)", None, None),
        ("  msgpack.unpackb (ceiling)", "ceiling_msgpack_unpackb_tx_per_s", None),
        ("  Block.deserialize", "block_deserialize_tx_per_s", "deserialize/msgpack_unpackb"),
        ("  hashing floor (ceiling)", "ceiling_hashing_tx_per_s", None),
        ("  check_block", "block_check_tx_per_s", "check/hashing"),
        ("  libsecp256k1 verify (ceiling)", "ceiling_libsecp_verify_tx_per_s", None),
        ("  connect_block", "block_connect_tx_per_s", "connect/libsecp_verify"),
        ("  total (deser+check+connect)", "block_total_tx_per_s", "total/libsecp_verify"),
        ("  connect, warm sig cache", "block_connect_warm_tx_per_s", "warm_connect/libsecp_verify"),
        ("  warm / cold connect speed-up", None, "connect_warm/connect_cold"),
    ]
    print(f"{'':34} {'per second':>12} {'ratio':>7}  {'':12} target")
    for label, fig, rat in rows:
        if fig is None and rat is None:
            print(label)
            continue
        f = f"{figures[fig]:12,.0f}" if fig else " " * 12
        r = f"{ratios[rat]:7.3f}" if rat else " " * 7
        ratio_name = rat or ""
        target = verdict(ratio_name, ratios[rat]) if rat else ""
        if fig and fig in TARGETS:
            target = verdict(fig, figures[fig])
        print(f"{label:34} {f} {r}  {ratio_name:28.28} {target}".rstrip())
    print(f"  (block: {figures['block_bytes']:,.0f} bytes; ratios = rate / ceiling rate)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 signatures, 3 repeats (not 7)")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    ap.add_argument("--profile", action="store_true", help="cProfile check+connect once")
    args = ap.parse_args(argv)

    n = 1_000 if args.quick else 5_000
    repeats = 3 if args.quick else 7
    load_before = loadavg()

    print(f"signatures: {n} triples ...", file=sys.stderr)
    figures, ratios = bench_signatures(n, repeats)
    print(f"building a chain and a block of {BLOCK_TXS} transactions ...", file=sys.stderr)
    fx = build_block_fixture(BLOCK_TXS)
    print("validating ...", file=sys.stderr)
    bf, br = bench_block(fx, repeats)
    figures |= bf
    ratios |= br
    info = machine(load_before, args.quick, n, repeats)
    print_table(figures, ratios, info)

    write_json(args.json, NAME, figures, ratios, TARGETS, info, figure_digits=3)

    if args.profile:
        print("\nprofile of one check_block + connect_block (cold):")
        print(profile(fx))
    return 0


if __name__ == "__main__":
    sys.exit(main())
