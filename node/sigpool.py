"""The signature pool: a block's signature checks spread over every core.

libsecp256k1 is called through cffi, which releases the GIL for the length of each C call, so
threads verify in parallel (measured: docs/DECISIONS.md, "Parallel signature checks"); a
process pool would add pickling and a copy of every digest for nothing. One pool per node, made
by the composition root (``node.service``) and shut down when the node stops.

Thread rule: the workers run ``verify_all`` only, a pure function over bytes (pubkey, signature,
digest) with the engine's ``verify``. They never see the chainstate, the mempool, the store or
the signature cache's table: the cache looks itself up and learns on the state thread, before
and after the batch (``node.sigcache.SignatureCache.verify_batch``).

Small batches are verified on the calling thread: below ``inline_below`` checks the hop to the
workers costs more than it saves (measured by ``scripts/bench/bench_parallel_sigs.py``). So is
everything when the pool has one worker (``TALLY_SIG_WORKERS=1``, the benchmark's and tests'
baseline).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from consensus import verify_signature

WORKERS_ENV = "TALLY_SIG_WORKERS"
"""Forces the pool's size (``1``: every signature on the calling thread)."""
INLINE_BELOW = 16
"""Batches smaller than this are verified on the calling thread (see the module docstring)."""
CHUNKS_PER_WORKER = 4
"""A batch is cut into this many pieces per worker, so a worker the machine descheduled holds
back a small piece, not half the block."""

Triple = tuple[bytes, bytes, bytes]
Engine = Callable[[bytes, bytes, bytes], bool]


def verify_all(engine: Engine, triples: Sequence[Triple]) -> list[bool]:
    """Worker: ``engine(pubkey, signature, digest)`` for each triple, in order. Pure."""
    return [engine(p, s, d) for p, s, d in triples]


def default_workers() -> int:
    """``TALLY_SIG_WORKERS`` if set, else ``os.cpu_count()``."""
    forced = os.environ.get(WORKERS_ENV, "").strip()
    if forced:
        count = int(forced)
        if count < 1:
            raise ValueError(f"{WORKERS_ENV} must be at least 1, not {count}")
        return count
    return os.cpu_count() or 1


class SignaturePool:
    """``workers`` threads verifying signature triples; ``verify`` keeps the input order."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        inline_below: int = INLINE_BELOW,
    ) -> None:
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise ValueError("a signature pool needs at least one worker")
        self.inline_below = inline_below
        self._executor: ThreadPoolExecutor | None = None
        if self.workers > 1:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="sigverify")

    def verify(self, triples: Sequence[Triple], engine: Engine = verify_signature) -> list[bool]:
        """``engine(pubkey, signature, digest)`` for each triple: one bool each, in order."""
        executor = self._executor
        if executor is None or len(triples) < self.inline_below:
            return verify_all(engine, triples)
        pieces = min(len(triples), self.workers * CHUNKS_PER_WORKER)
        size = -(-len(triples) // pieces)
        futures = [
            executor.submit(verify_all, engine, triples[i : i + size])
            for i in range(0, len(triples), size)
        ]
        results: list[bool] = []
        for future in futures:  # in submission order: results line up with ``triples``
            results.extend(future.result())
        return results

    def shutdown(self) -> None:
        """Stop the workers (after the batches in flight); ``verify`` then runs inline."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
