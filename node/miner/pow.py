"""The proof-of-work search: a tight nonce loop, run in worker processes off the event loop.

Job: given a block header and a target, find a ``nonce`` whose header hash (SHA256d of the 80
bytes, read as a little-endian 256-bit number) is ``<= target`` (SPEC 2.2), without ever blocking
the node's asyncio event loop (SPEC 3.3).

- ``search_nonces`` is the inner loop, a pure function usable anywhere. It hashes the first 76
  header bytes once and copies that SHA-256 state for every nonce (OpenSSL keeps the 12 buffered
  bytes), then rejects most digests on their top byte (``digest[31]``, the most significant byte
  of the little-endian number) before the full integer comparison. It returns the FIRST nonce of
  ``range(start, stop, step)`` that meets the target: exactly ``consensus.check_proof_of_work``'s
  comparison, with the target already decoded from ``bits``.
- ``PowSearcher`` owns a ``ProcessPoolExecutor`` of "spawn" processes (no fork: safe with threads
  and a running event loop). The 2**32 nonces are cut into chunks of ``chunk`` nonces, scanned in
  increasing order, at most two per worker in flight; the event loop only submits chunks and
  awaits their futures (``loop.run_in_executor``). Every worker shares one
  ``multiprocessing.Event``, the stop flag, which it reads every ``CHECK_EVERY`` (4,096) nonces
  (~3 ms of hashing), so ``cancel()`` (a new tip, better transactions) takes effect within a few
  milliseconds (measured 1-5 ms; longer only when other jobs starve the workers). Workers run
  ``nice``-d (+10 by default) and ignore SIGINT, so the node's own process and the rest of the
  machine come first (the event loop stays prompt even with every core mining) and a Ctrl-C is
  the parent's to handle. Each worker also watches its parent: when the node is gone, however it
  ended (``kill -9`` included, where no shutdown code runs), the worker is re-parented and exits
  within ``PARENT_CHECK_SECONDS``, so no orphaned worker keeps hashing.

Invariants: a search returns only after every chunk it handed out has come back, so the stop flag
it sets never leaks into the next search, which clears it; searches on one searcher run one at a
time (a second waits for the first); a returned header always meets the target (re-checked in
the parent); ``hashes_done`` counts every nonce hashed, for hash-rate reports.

Left to others: the block template (transactions, coinbase, ``bits``, ``time``) and what to do
when ``search`` returns ``None`` (cancelled, or all 2**32 nonces tried: change ``time`` or the
coinbase extra nonce and search again); validating and submitting the block. A broken pool (a
worker killed) raises ``BrokenProcessPool`` from ``search``: close the searcher and make a new one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import multiprocessing
import os
import signal
import struct
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, Self

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as StopFlag

    from consensus import BlockHeader

log = logging.getLogger(__name__)

NONCE_SPACE = 1 << 32
"""Number of distinct header nonces (a u32)."""
MAX_NONCE = NONCE_SPACE - 1
MAX_TARGET = (1 << 256) - 1
"""A target this large (or larger) accepts every hash."""
PREFIX_SIZE = 76
"""Header bytes before the nonce."""
CHECK_EVERY = 4096
"""Nonces a worker scans between two looks at the stop flag (~3 ms of hashing)."""
PARENT_CHECK_SECONDS = 0.5
"""How often a worker checks that the node that started it is still its parent."""
DEFAULT_CHUNK = 1 << 16
DEFAULT_NICE = 10

_PACK_U32 = struct.Struct("<I").pack


def search_nonces(prefix76: bytes, target: int, start: int, stop: int, step: int = 1) -> int | None:
    """The first nonce of ``range(start, stop, step)`` whose header hash is ``<= target``.

    ``prefix76`` is the header's first 76 bytes (everything but the nonce); the hash is
    SHA256d(prefix76 + nonce as u32 little-endian) read as a little-endian integer, as
    ``consensus.check_proof_of_work`` reads it. ``None`` if no nonce in the range qualifies.
    Nonces must fit in a u32 (``ValueError`` otherwise).
    """
    if len(prefix76) != PREFIX_SIZE:
        raise ValueError(f"the header prefix is {PREFIX_SIZE} bytes, not {len(prefix76)}")
    nonces = range(start, stop, step)
    if not nonces:
        return None
    if not (0 <= nonces[0] <= MAX_NONCE and 0 <= nonces[-1] <= MAX_NONCE):
        raise ValueError(f"nonces must be in [0, {MAX_NONCE}]: {nonces!r}")
    if target < 0:
        return None
    if target >= MAX_TARGET:
        return nonces[0]
    # Everything the loop touches is a local: no global or attribute lookups per nonce.
    sha256 = hashlib.sha256
    pack = _PACK_U32
    from_bytes = int.from_bytes
    midstate = sha256(bytes(prefix76)).copy  # SHA-256 state after the first 76 bytes
    top = target >> 248  # the most significant byte of the target
    if top == 0:
        # Hard targets (every real network): only digests ending in a zero byte can pass.
        for nonce in nonces:
            inner = midstate()
            inner.update(pack(nonce))
            digest = sha256(inner.digest()).digest()
            if not digest[31] and from_bytes(digest, "little") <= target:
                return nonce
    else:
        for nonce in nonces:
            inner = midstate()
            inner.update(pack(nonce))
            digest = sha256(inner.digest()).digest()
            if digest[31] <= top and from_bytes(digest, "little") <= target:
                return nonce
    return None


def header_hash_int(prefix76: bytes, nonce: int) -> int:
    """SHA256d(prefix76 + nonce) as the little-endian number compared with the target."""
    inner = hashlib.sha256(prefix76 + _PACK_U32(nonce)).digest()
    return int.from_bytes(hashlib.sha256(inner).digest(), "little")


# --- worker side ---------------------------------------------------------------------------------

_stop_flag: StopFlag | None = None
"""The stop flag of this worker process, set by ``_init_worker``."""


class ChunkResult(NamedTuple):
    """What one worker call reports: the winning nonce (if any), nonces hashed, its PID."""

    nonce: int | None
    hashes: int
    pid: int


def _exit_when_orphaned(parent: int) -> None:
    """Worker thread: end this process once the node that spawned it is gone.

    A process whose parent dies is re-parented (to init or a subreaper), so ``getppid`` changes;
    polling it works whichever way the node ended, on every POSIX system, and unlike
    ``PR_SET_PDEATHSIG`` does not depend on which of the node's threads spawned the worker.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)  # no clean-up to do: the worker holds nothing but its share of a search


def _init_worker(stop_flag: StopFlag, nice: int) -> None:
    """Runs once in every worker process: keep the stop flag, lower priority, leave SIGINT, and
    exit when the parent does."""
    global _stop_flag
    _stop_flag = stop_flag
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_exit_when_orphaned, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    if nice > 0:
        try:
            os.nice(nice)
        except OSError:  # pragma: no cover - platform without nice
            log.debug("could not lower the priority of miner worker %d", os.getpid())


def _worker_pid() -> int:
    return os.getpid()


def _scan_chunk(prefix76: bytes, target: int, start: int, stop: int) -> ChunkResult:
    """Scan ``[start, stop)`` in slices of ``CHECK_EVERY``, giving up when the stop flag is set."""
    flag = _stop_flag
    pos = start
    while pos < stop:
        if flag is not None and flag.is_set():
            break
        end = min(pos + CHECK_EVERY, stop)
        nonce = search_nonces(prefix76, target, pos, end)
        if nonce is not None:
            return ChunkResult(nonce, nonce - start + 1, os.getpid())
        pos = end
    return ChunkResult(None, pos - start, os.getpid())


# --- parent side ---------------------------------------------------------------------------------


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class PowSearcher:
    """Searches nonces in a pool of worker processes; the event loop only awaits futures.

    ``workers`` defaults to one per CPU; each call to a worker scans ``chunk`` nonces. Use as a
    (sync or async) context manager, or call ``close()``/``aclose()``. ``hashes_done`` is the
    running total of nonces hashed by this searcher; ``worker_pids`` the PIDs seen reporting.
    """

    def __init__(
        self,
        workers: int | None = None,
        chunk: int = DEFAULT_CHUNK,
        *,
        nice: int = DEFAULT_NICE,
    ) -> None:
        if workers is None:
            workers = default_workers()
        if workers < 1:
            raise ValueError("a searcher needs at least one worker")
        if chunk < 1:
            raise ValueError("chunk must be at least one nonce")
        self.workers = workers
        self.chunk = chunk
        self.hashes_done = 0
        self.worker_pids: set[int] = set()
        context = multiprocessing.get_context("spawn")
        self._stop: StopFlag = context.Event()
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self._stop, nice),
        )
        self._in_flight = 2 * workers
        self._generation = 0
        self._closed = False
        self._started = False
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle --

    def _spawn_all(self) -> None:
        """Start every worker process now (blocking); ``start`` runs it off the event loop."""
        futures = [self._executor.submit(_worker_pid) for _ in range(self.workers)]
        self.worker_pids.update(f.result() for f in futures)
        self._started = True

    async def start(self) -> None:
        """Start the worker processes from a thread, so spawning never stalls the event loop.

        ``search`` calls it the first time; call it earlier to have the workers ready.
        """
        if not self._started:
            await asyncio.to_thread(self._spawn_all)

    def cancel(self) -> None:
        """Make the running search return ``None`` promptly; later searches are unaffected."""
        self._generation += 1
        self._stop.set()

    def close(self) -> None:
        """Stop any search and shut the pool down, waiting for the workers to exit (blocking)."""
        if self._closed:
            return
        self._closed = True
        self.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """``close()`` from a thread, leaving the event loop free while the workers exit."""
        if not self._closed:
            await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- searching --

    def _lock_for(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        """The lock serialising searches, one per event loop (an asyncio.Lock binds to one)."""
        if self._lock is None or self._lock_loop is not loop:
            self._lock = asyncio.Lock()
            self._lock_loop = loop
        return self._lock

    async def search(self, header: BlockHeader, target: int) -> BlockHeader | None:
        """``header`` with a nonce whose hash is ``<= target``, or ``None``.

        ``None`` means the search was cancelled (``cancel()``, ``close()``) or every one of the
        2**32 nonces failed; the caller then changes ``time`` or the extra nonce. The header's own
        ``nonce`` is ignored. If another search is running, this one waits for it to end.
        """
        if self._closed:
            raise RuntimeError("the searcher is closed")
        loop = asyncio.get_running_loop()
        async with self._lock_for(loop):
            await self.start()
            return await self._search(loop, header, target)

    async def _search(
        self, loop: asyncio.AbstractEventLoop, header: BlockHeader, target: int
    ) -> BlockHeader | None:
        generation = self._generation
        self._stop.clear()
        prefix = header.serialize()[:PREFIX_SIZE]
        began = time.perf_counter()
        hashes_before = self.hashes_done
        pending: set[asyncio.Future[ChunkResult]] = set()
        next_start = 0
        found: int | None = None
        try:
            while True:
                while (
                    found is None
                    and generation == self._generation
                    and next_start < NONCE_SPACE
                    and len(pending) < self._in_flight
                ):
                    end = min(next_start + self.chunk, NONCE_SPACE)
                    pending.add(
                        loop.run_in_executor(
                            self._executor, _scan_chunk, prefix, target, next_start, end
                        )
                    )
                    next_start = end
                if not pending:
                    break
                done, pending = await asyncio.wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    nonce = self._collect(future)
                    if nonce is not None and found is None:
                        found = nonce
                if found is not None or generation != self._generation:
                    self._stop.set()  # the chunks still out return at their next look
        finally:
            if pending:  # only when this task was cancelled or a worker failed
                self._stop.set()  # the chunks still out return at their next look
                await asyncio.wait(pending)
                for future in pending:
                    try:
                        self._collect(future)
                    except Exception:  # the error already on its way out matters more
                        log.debug("another chunk failed too", exc_info=True)
        elapsed = time.perf_counter() - began
        hashes = self.hashes_done - hashes_before
        if generation != self._generation:
            log.debug("search cancelled after %d hashes in %.3f s", hashes, elapsed)
            return None
        if found is None:
            log.debug("all %d nonces tried in %.3f s, none met the target", hashes, elapsed)
            return None
        if header_hash_int(prefix, found) > target:  # pragma: no cover - would be a bug
            raise RuntimeError(f"worker reported nonce {found}, which misses the target")
        log.debug("nonce %d found after %d hashes in %.3f s", found, hashes, elapsed)
        return dataclasses.replace(header, nonce=found)

    def _collect(self, future: asyncio.Future[ChunkResult]) -> int | None:
        """Count a finished chunk's hashes; its winning nonce, if any. Re-raises worker errors."""
        if future.cancelled():  # the pool was shut down under us (``close()``)
            return None
        result = future.result()
        self.hashes_done += result.hashes
        self.worker_pids.add(result.pid)
        return result.nonce
