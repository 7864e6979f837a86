"""The miner: builds a template, searches for its proof of work off the event loop, submits it.

Job: mine blocks on the chainstate's tip paying a given address, either ``generate(n)`` blocks at
once (regtest's ``generatetoaddress``) or continuously with ``run`` (one block about every
``block_time`` seconds if given, otherwise back to back). A search is restarted with a fresh
template when the tip changes (another block arrived) or when better transactions have arrived
and the current template is at least ``refresh_seconds`` old.

Invariants: the proof-of-work search runs in ``PowSearcher``'s worker processes, never on the
event loop. Templates are built and found blocks submitted through ``call`` (the node passes its
state thread, so chainstate and mempool are only touched there), and found blocks go through
``Chainstate.process_block`` like any other block.

Left to others: relaying the mined block (P2P subscribes to chain events), choosing the address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from consensus import Block, encode_address
from node.chainstate import ChainEvent, Chainstate, TipChanged
from node.mempool import Mempool, MempoolEntry
from node.miner.pow import PowSearcher
from node.miner.template import BlockTemplate, build_template

log = logging.getLogger(__name__)

T = TypeVar("T")
StateCall = Callable[..., Awaitable[Any]]
"""``await call(fn, *args)`` runs ``fn(*args)`` where the node's state may be touched."""


async def call_inline(fn: Callable[..., T], *args: Any) -> T:
    """The default ``StateCall``: run on the caller's thread (tests, single-threaded tools)."""
    return fn(*args)


REFRESH_SECONDS = 2.0
"""A template this old is rebuilt when better transactions have arrived."""
WATCH_INTERVAL = 0.1


class Miner:
    """Mines on ``chainstate``'s tip with transactions from ``mempool``."""

    def __init__(
        self,
        chainstate: Chainstate,
        mempool: Mempool | None,
        searcher: PowSearcher,
        *,
        clock: Callable[[], float] = time.time,
        refresh_seconds: float = REFRESH_SECONDS,
        call: StateCall = call_inline,
    ) -> None:
        self.chainstate = chainstate
        self._call = call
        self.mempool = mempool
        self.searcher = searcher
        self._clock = clock
        self._refresh = refresh_seconds
        self._extra_nonce = 0
        self._stale = False
        self._better_txs = False
        self.templates_built = 0
        self.blocks_mined = 0

    # --- events ---------------------------------------------------------------------------------

    def on_chain_event(self, event: ChainEvent) -> None:
        """Subscribe this to the chainstate: a new tip makes the running search stale."""
        if isinstance(event, TipChanged):
            self._stale = True
            self.searcher.cancel()

    def on_mempool_accept(self, entry: MempoolEntry) -> None:
        """Subscribe this to the mempool: new fees are worth a new template soon."""
        self._better_txs = True

    # --- mining ---------------------------------------------------------------------------------

    def _template(self, pubkey_hash: bytes) -> BlockTemplate:
        self._extra_nonce += 1
        self._stale = False
        self._better_txs = False
        self.templates_built += 1
        return build_template(
            self.chainstate,
            self.mempool,
            pubkey_hash,
            now=int(self._clock()),
            extra_nonce=self._extra_nonce,
        )

    async def mine_block(self, pubkey_hash: bytes) -> Block | None:
        """Mine one block on the current tip and submit it; ``None`` if the tip moved first
        (during the search, or between the search and the submission: a block that did not
        become the tip is never returned).

        A search that runs out of nonces is retried with a new extra nonce; one that is cancelled
        because better transactions arrived is retried with a new template.
        """
        while True:
            template: BlockTemplate = await self._call(self._template, pubkey_hash)
            built_at = time.monotonic()
            search = asyncio.ensure_future(
                self.searcher.search(template.block.header, template.target)
            )
            while not search.done():
                await asyncio.wait({search}, timeout=WATCH_INTERVAL)
                refresh_due = time.monotonic() - built_at >= self._refresh
                if not search.done() and self._better_txs and refresh_due:
                    self.searcher.cancel()
            header = search.result()
            if header is None:
                if self._stale:
                    return None  # another block took the tip: start over on the new one
                continue  # better transactions, or every nonce tried: new template
            block = Block(header, template.block.txs)
            result = await self._call(self.chainstate.process_block, block)
            if result.status != "active":
                # Another block took the tip between the search and this submission: ours is
                # stored on a side branch and is not reported as mined.
                log.info(
                    "block %d found but another block came first: %s stays on a side branch",
                    template.height,
                    block.hash_hex(),
                )
                return None
            self.blocks_mined += 1
            # debug: the chainstate's "block N connected" line already says it at info level
            log.debug(
                "mined block %d: %s, %d tx, %d in fees",
                template.height,
                block.hash_hex(),
                len(block.txs),
                template.fees,
            )
            return block

    async def generate(self, count: int, pubkey_hash: bytes) -> list[bytes]:
        """Mine ``count`` blocks one after another; their hashes, each of which became the tip."""
        hashes: list[bytes] = []
        while len(hashes) < count:
            block = await self.mine_block(pubkey_hash)
            if block is not None:
                hashes.append(block.hash())
        return hashes

    async def run(self, pubkey_hash: bytes, block_time: float | None = None) -> None:
        """Mine until cancelled: a block about every ``block_time`` seconds, or back to back."""
        log.info(
            "mining to %s%s",
            encode_address(pubkey_hash, self.chainstate.params),
            f", a block about every {block_time:g} s" if block_time else "",
        )
        last = time.monotonic()
        try:
            while True:
                if block_time:
                    await asyncio.sleep(max(0.0, last + block_time - time.monotonic()))
                if await self.mine_block(pubkey_hash) is not None:
                    last = time.monotonic()
        finally:
            self.searcher.cancel()
