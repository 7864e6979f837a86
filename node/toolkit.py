"""The devnet toolkit's commands on one node (SPEC 6): its clock, automine, clearing the mempool,
and a scripted reorg. ``tally-devnet`` calls them on every node of a devnet through the admin
routes (``node.api.routes.toolkit``), which offer them on regtest only.

Job:
- the clock: ``set_time``, ``advance_time``, ``reset_time`` shift the node's ``NodeClock`` (the
  one clock of the chainstate, the mempool and the miner; kept in the data directory), never so
  far back that the node's next block would be ``time-too-new`` to itself (more than 2 hours
  behind the tip's median time past: ``bad-request``);
- automine: ``set_automine`` puts the ``AutoMiner`` in a mode, paying the address given, else the
  one it paid last, else ``--mine-to``'s (``bad-address`` if there is none);
- ``clear_mempool``: every transaction (and orphan), or given ones with their descendants;
- ``reorg(depth, drop)``: a branch of ``depth + 1`` coinbase-only blocks on the block ``depth``
  back replaces the tip. The branch is built block by block on the state thread
  (``node.miner.template.build_block_on``: the bits, a time above the parent's median time past,
  the coinbase height), its proof of work found by the node's ``PowSearcher`` (worker processes),
  then, in one state-thread call, submitted through ``Chainstate.process_block`` like a peer's
  chain: the chainstate reorganises, the mempool takes the disconnected transactions back, and the
  ``drop`` txids (with their descendants) are removed from it in that same call, so nothing sees
  them back in between.

Invariants: the chainstate and the mempool are touched only inside ``call`` (the state thread);
a refused reorg changes nothing: its depth and its ``drop`` list are checked against the chain
before any block is built, and the branch is submitted only if the tip is still the one it was
built against (``tip-moved`` otherwise). Background mining is paused while a reorg runs, and
reorgs run one at a time. Left to others: the bounds of every value (the API's route module),
doing the same on every node of a devnet and waiting for them to agree (``tally-devnet``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from client.models import AutomineMode
from consensus import AddressError, Block, decode_address, encode_address
from consensus.validation import MAX_FUTURE_BLOCK_TIME
from node.chainstate import BlockIndexEntry, Chainstate
from node.clock import NodeClock
from node.interfaces import AutomineState, ClockState, CommandError, ReorgResult
from node.mempool import Mempool
from node.miner.automine import AutoMiner
from node.miner.pow import PowSearcher
from node.miner.template import BlockTemplate, build_block_on

log = logging.getLogger(__name__)

StateCall = Callable[..., Awaitable[Any]]
SEARCH_ATTEMPTS = 10
"""Searches for one block's proof of work before a reorg gives up (a search returns nothing only
when cancelled: another block took the tip meanwhile)."""


@dataclass(frozen=True)
class _ReorgPlan:
    old_tip: bytes
    fork: BlockIndexEntry
    disconnected: tuple[bytes, ...]  # the old tip first


class Toolkit:
    """The devnet commands of one node; built by ``NodeService.start``."""

    def __init__(
        self,
        *,
        chainstate: Chainstate,
        mempool: Mempool,
        clock: NodeClock,
        automine: AutoMiner,
        searcher: PowSearcher,
        call: StateCall,
        mine_to: str | None,
    ) -> None:
        self.chainstate = chainstate
        self.mempool = mempool
        self.clock = clock
        self.automine = automine
        self.searcher = searcher
        self.params = chainstate.params
        self._call = call
        self._mine_to = mine_to
        self._reorg_lock = asyncio.Lock()

    # --- the clock ------------------------------------------------------------------------------

    def clock_state(self) -> ClockState:
        return ClockState(self.clock.now(), self.clock.offset)

    async def _shift(self, change: Callable[[], None]) -> ClockState:
        await self._call(change)
        state = self.clock_state()
        log.info("the clock reads %d now (%+d s from the wall clock)", state.now, state.offset)
        return state

    def _move_back(self, offset: int) -> None:
        """State thread: shift the clock to ``offset``, unless that takes it so far back that
        the node could not make its next block (its time must pass the tip's median time past,
        and be at most ``MAX_FUTURE_BLOCK_TIME`` ahead of the clock)."""
        floor = self.chainstate.median_time_past() + 1 - MAX_FUTURE_BLOCK_TIME
        if int(self.clock.base()) + offset < floor:
            raise CommandError(
                "bad-request",
                f"the clock cannot go back before {floor:,}: the next block's time must pass "
                f"the tip's median time past, and would then be over 2 hours ahead of the clock",
            )
        self.clock.set_offset(offset)

    async def set_time(self, unix: int) -> ClockState:
        return await self._shift(lambda: self._move_back(unix - int(self.clock.base())))

    async def advance_time(self, seconds: int) -> ClockState:
        return await self._shift(lambda: self.clock.advance(seconds))

    async def reset_time(self) -> ClockState:
        return await self._shift(lambda: self._move_back(0))

    # --- automine -------------------------------------------------------------------------------

    def _decode(self, address: str) -> bytes:
        try:
            return decode_address(address, self.params)
        except AddressError as err:
            raise CommandError("bad-address", f"{err.reason}: {err}") from None

    def payout(self, address: str | None, what: str) -> bytes:
        """The key hash to pay: ``address``, else the automine's last, else ``--mine-to``'s."""
        if address is not None:
            return self._decode(address)
        if self.automine.pubkey_hash is not None:
            return self.automine.pubkey_hash
        if self._mine_to is not None:
            return self._decode(self._mine_to)
        raise CommandError(
            "bad-address",
            f'{what} needs an address to pay: give "address", or start the node with --mine-to',
        )

    def automine_state(self) -> AutomineState:
        a = self.automine
        return AutomineState(a.mode, a.interval, a.address)

    async def set_automine(
        self, mode: AutomineMode, address: str | None, interval: float | None
    ) -> AutomineState:
        """Switch modes; answers once the previous mode's last block, if any, is in the chain."""
        pubkey_hash = None if mode == "off" else self.payout(address, "automine")
        await self.automine.settle(self.automine.set(mode, pubkey_hash, interval))
        return self.automine_state()

    # --- the mempool ----------------------------------------------------------------------------

    def _clear(self, txids: list[bytes] | None) -> int:
        if txids is None:
            removed = self.mempool.clear()
        else:
            removed = sum(len(self.mempool.remove_with_descendants(t, "evicted")) for t in txids)
        if removed:
            log.info("mempool cleared by hand: %d transaction(s) removed", removed)
        return removed

    async def clear_mempool(self, txids: list[bytes] | None) -> int:
        """Remove every transaction (``None``), or ``txids`` and their descendants; how many."""
        return int(await self._call(self._clear, txids))

    # --- reorg ----------------------------------------------------------------------------------

    def _plan(self, depth: int, drop: list[bytes]) -> _ReorgPlan:
        chain = self.chainstate
        tip = chain.tip
        if not 1 <= depth <= tip.height:
            raise CommandError(
                "bad-request",
                f"depth must be from 1 to the chain's height, {tip.height} (the genesis block "
                f"stays), not {depth}",
            )
        fork = chain.ancestor(tip, tip.height - depth)
        disconnected: list[bytes] = []
        txids: set[bytes] = set()
        cur = tip
        while cur.height > fork.height:
            disconnected.append(cur.hash)
            block = chain.get_block(cur.hash)
            if block is None:
                raise CommandError("bad-request", f"block {cur.hash[::-1].hex()} has no body")
            txids.update(tx.txid() for tx in block.txs[1:])
            parent = chain.get_entry(cur.prev_hash)
            assert parent is not None  # an active block's parent is indexed
            cur = parent
        for txid in drop:
            if txid not in txids:
                raise CommandError(
                    "bad-request",
                    f"{txid[::-1].hex()} is not a transaction of the {depth} block(s) the reorg "
                    "disconnects (a coinbase never returns to the mempool)",
                )
        return _ReorgPlan(tip.hash, fork, tuple(disconnected))

    def _next_block(
        self, plan: _ReorgPlan, branch: list[Block], pubkey_hash: bytes
    ) -> BlockTemplate:
        """The next block of the branch, its nonce not yet found (state thread)."""
        fork = plan.fork

        def time_at(height: int) -> int:
            if height <= fork.height:
                return self.chainstate.ancestor(fork, height).header.time
            return branch[height - fork.height - 1].header.time

        parent = branch[-1].header if branch else fork.header
        return build_block_on(
            self.params,
            branch[-1].hash() if branch else fork.hash,
            fork.height + 1 + len(branch),
            parent.bits,
            time_at,
            pubkey_hash,
            now=self.clock.now(),
            extra_nonce=secrets.randbits(64),  # unlike the coinbase it replaces at that height
        )

    async def _solve(self, template: BlockTemplate) -> Block:
        """The template with its proof of work, found in the searcher's worker processes."""
        for _ in range(SEARCH_ATTEMPTS):
            header = await self.searcher.search(template.block.header, template.target)
            if header is not None:
                return Block(header, template.block.txs)
        raise CommandError("tip-moved", "the proof-of-work search kept being cancelled; try again")

    def _apply(self, plan: _ReorgPlan, branch: list[Block], drop: list[bytes]) -> ReorgResult:
        chain = self.chainstate
        if chain.tip.hash != plan.old_tip:
            raise CommandError(
                "tip-moved",
                "another block took the tip while the branch was built; nothing changed",
            )
        for block in branch:
            chain.process_block(block)
        if chain.tip.hash != branch[-1].hash():  # cannot happen: the branch has more work
            raise CommandError("tip-moved", "the new branch did not become the best chain")
        dropped: list[bytes] = []
        for txid in drop:
            dropped += self.mempool.remove_with_descendants(txid, "reorg")
        log.info(
            "scripted reorg: %d block(s) replaced by %d from height %d; %d transaction(s) dropped",
            len(plan.disconnected),
            len(branch),
            plan.fork.height + 1,
            len(dropped),
        )
        return ReorgResult(
            plan.old_tip, chain.tip.hash, chain.height, plan.disconnected, tuple(dropped)
        )

    async def reorg(self, depth: int, drop: list[bytes], address: str | None) -> ReorgResult:
        """Replace the last ``depth`` blocks by ``depth + 1`` coinbase-only ones paying
        ``address`` (see ``payout``), then take ``drop`` out of the mempool."""
        pubkey_hash = self.payout(address, "reorg")
        drop = list(dict.fromkeys(drop))
        async with self._reorg_lock, self.automine.paused():
            plan: _ReorgPlan = await self._call(self._plan, depth, drop)
            branch: list[Block] = []
            for _ in range(depth + 1):
                template = await self._call(self._next_block, plan, branch, pubkey_hash)
                branch.append(await self._solve(template))
            result: ReorgResult = await self._call(self._apply, plan, branch, drop)
        log.info(
            "new tip %s at height %d (paid to %s)",
            result.new_tip[::-1].hex(),
            result.height,
            encode_address(pubkey_hash, self.params),
        )
        return result
