"""Background mining in Anvil's modes: off, a block per accepted batch of transactions, or a block
every S seconds (SPEC 3.3 and 6: ``POST /admin/automine``, ``POST /admin/mining``, ``--mine-to``).

Job: ``AutoMiner`` owns the node's one background mining task and the mode it runs in:

- ``off``: no task; blocks come only from ``generate`` (and peers);
- ``tx``: wait until the mempool accepts transactions, then mine one block with what it holds
  (``Miner.mine_block``: the template takes the whole pool, so transactions that arrived together,
  a ``POST /txs`` batch or several sends while a block was being made, share it). A block is mined
  only after an acceptance that came after the previous block's template was asked for, so every
  accepted batch costs at most one block; a template that did not become the tip (a peer's block
  came first) is retried while the mempool is not empty;
- ``interval``: ``Miner.run``: a block about every ``interval`` seconds, or back to back when
  ``interval`` is ``None`` (``POST /admin/mining`` without ``block_time``, or ``--mine-to`` without
  ``--block-time``).

``paused()`` stops the task for the length of a ``with`` block and starts it again in the mode then
current (a scripted reorg must not race the node's own miner). ``settle`` waits until a stopped
task's last block, if any, is in the chain: after ``off`` and ``settle``, no block comes.

Invariants: one task at most; the mode and the task change only on the event loop;
``on_mempool_accept`` runs on the state thread (the mempool's listener) and only reads a flag and
hands the event loop a wake-up (``call_soon_threadsafe``). The proof-of-work search is the
``Miner``'s (worker processes). Left to others: which address to pay (the service resolves it),
which networks may use ``tx`` mode (the API: regtest only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Literal

from consensus import encode_address
from node.mempool import MempoolEntry
from node.miner.miner import Miner, StateCall, call_inline

log = logging.getLogger(__name__)

Mode = Literal["off", "tx", "interval"]
MODES: tuple[Mode, ...] = ("off", "tx", "interval")
StartTask = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]
"""Runs a coroutine as a task whose failure is logged (``NodeService._background``)."""


def _nothing() -> None:
    return None


class AutoMiner:
    """The node's background mining, in one of ``MODES``."""

    def __init__(self, miner: Miner, start_task: StartTask, call: StateCall = call_inline) -> None:
        """``call`` runs a function where the state lives (the node's ``NodeService.call``)."""
        self.miner = miner
        self._call = call
        self._start_task = start_task
        self.mode: Mode = "off"
        self.interval: float | None = None
        self.pubkey_hash: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = 0
        self._watching = False
        """Read on the state thread: whether an acceptance should wake the ``tx`` loop."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        """Whether a mode other than ``off`` is set (paused or not)."""
        return self.mode != "off"

    @property
    def address(self) -> str | None:
        if self.pubkey_hash is None or self.mode == "off":
            return None
        return encode_address(self.pubkey_hash, self.miner.chainstate.params)

    # --- events (state thread) ------------------------------------------------------------------

    def on_mempool_accept(self, entry: MempoolEntry) -> None:
        """Subscribe this to the mempool: in ``tx`` mode, an acceptance wakes the loop."""
        loop, arrived = self._loop, self._arrived
        if self._watching and loop is not None and arrived is not None:
            loop.call_soon_threadsafe(arrived.set)

    # --- control (event loop) -------------------------------------------------------------------

    def set(
        self, mode: Mode, pubkey_hash: bytes | None, interval: float | None = None
    ) -> asyncio.Task[None] | None:
        """Switch to ``mode`` (``pubkey_hash`` is required unless ``off``); the task it stopped,
        for ``settle``."""
        if mode != "off" and pubkey_hash is None:
            raise ValueError("mining needs an address")
        stopped = self._stop_task()
        self.mode = mode
        self.interval = interval if mode == "interval" else None
        self.pubkey_hash = pubkey_hash if mode != "off" else self.pubkey_hash
        if mode == "off":
            log.info("mining stopped")
        elif mode == "tx":
            log.info("mining to %s, a block whenever transactions arrive", self.address)
        if not self._paused:
            self._start()
        return stopped

    async def settle(self, stopped: asyncio.Task[None] | None) -> None:
        """Wait until ``stopped`` has ended and a block it was submitting is in the chain (the
        state thread runs calls in order: one more call comes after it), so that no block of
        the previous mode arrives after this returns."""
        if stopped is not None:
            await asyncio.gather(stopped, return_exceptions=True)
            await self._call(_nothing)

    def _start(self) -> None:
        if self.mode == "off" or self.pubkey_hash is None:
            return
        if self.mode == "interval":
            work = self.miner.run(self.pubkey_hash, self.interval)
        else:
            self._loop = asyncio.get_running_loop()
            self._arrived = asyncio.Event()
            self._arrived.set()  # what is already waiting, if anything, counts as a batch
            self._watching = True
            work = self._mine_on_arrival(self.pubkey_hash, self._arrived)
        self._task = self._start_task(work, "mining")

    def _stop_task(self) -> asyncio.Task[None] | None:
        self._watching = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    def _waiting(self) -> int:
        """State thread: transactions in the mempool."""
        mempool = self.miner.mempool
        return 0 if mempool is None else len(mempool)

    async def _pending(self) -> int:
        """The mempool's size, asked on the state thread: the call runs after the one whose
        acceptance woke the loop (calls run in order), so it counts what that one accepted."""
        return int(await self._call(self._waiting))

    async def _mine_on_arrival(self, pubkey_hash: bytes, arrived: asyncio.Event) -> None:
        try:
            while True:
                await arrived.wait()
                arrived.clear()  # acceptances from now on are after this block's template
                if not await self._pending():
                    continue  # nothing waiting (already mined by ``generate`` or a peer)
                if await self.miner.mine_block(pubkey_hash) is None and await self._pending():
                    arrived.set()  # another block came first: mine on it what is still waiting
        finally:
            self.miner.searcher.cancel()

    async def stop(self) -> None:
        """Stop mining for good (the node is shutting down)."""
        self.mode = "off"
        task = self._stop_task()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """No background mining inside the block; then the mode current at its end resumes.

        On entry the task is cancelled and awaited: a block it was submitting is queued on the
        state thread before anything the block then asks of it."""
        self._paused += 1
        await self.settle(self._stop_task())
        try:
            yield
        finally:
            self._paused -= 1
            if not self._paused and self._task is None:
                self._start()
