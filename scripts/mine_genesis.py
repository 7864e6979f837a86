#!/usr/bin/env python3
"""Mine a network's genesis block once and print the nonce to keep in ``consensus/params.py``.

Usage: ``python scripts/mine_genesis.py main [--workers N] [--time T]``

The genesis header is fixed by its network's parameters (message, time, bits); only the nonce is
searched, in ``--workers`` processes that split the 2**32 nonces between them. If no nonce works
the time is raised by one second and the search starts again. ``main`` needs about 2**32 hashes
at Bitcoin's 0x1d00ffff (tens of minutes on two cores); ``test`` about 2**25; ``regtest`` a few.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consensus.params import build_genesis, get_params
from consensus.pow import bits_to_target

NONCES = 1 << 32


def search(prefix: bytes, target: int, start: int, stop: int, step: int) -> int | None:
    """Try nonces start, start+step, ... below stop; return the first that meets the target."""
    sha = hashlib.sha256
    pack = struct.Struct("<I").pack
    for nonce in range(start, stop, step):
        digest = sha(sha(prefix + pack(nonce)).digest()).digest()
        # The cheap test on the top byte first; the full comparison only when it passes.
        if (digest[31] == 0 or target >> 248) and int.from_bytes(digest, "little") <= target:
            return nonce
    return None


def _worker(args: tuple[bytes, int, int, int]) -> int | None:
    prefix, target, start, step = args
    return search(prefix, target, start, NONCES, step)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network", choices=["main", "test", "regtest"])
    parser.add_argument("--workers", type=int, default=mp.cpu_count())
    parser.add_argument("--time", type=int, default=None, help="header time to start from")
    args = parser.parse_args()
    params = get_params(args.network)
    target = bits_to_target(params.pow_limit_bits)
    header_time = params.genesis_time if args.time is None else args.time
    while True:
        header = build_genesis(params, 0, header_time).header.serialize()
        prefix = header[:76]
        started = time.monotonic()
        with mp.Pool(args.workers) as pool:
            jobs = [(prefix, target, w, args.workers) for w in range(args.workers)]
            for found in pool.imap_unordered(_worker, jobs):
                if found is not None:
                    pool.terminate()
                    block = build_genesis(params, found, header_time)
                    print(f"network={args.network} time={header_time} nonce={found}")
                    print(f"hash={block.hash_hex()} ({time.monotonic() - started:.0f} s)")
                    return 0
        print(f"no nonce at time {header_time}; trying {header_time + 1}", file=sys.stderr)
        header_time += 1


if __name__ == "__main__":
    raise SystemExit(main())
