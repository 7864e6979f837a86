"""Headers-first sync: headers, block download, stall detection (SPEC 3.4).

Job: while some peer is believed to have more work than our tip, ask the one believed to have
the most for headers after our block locator (``getheaders``, up to ``MAX_HEADERS``, answered
within ``HEADERS_TIMEOUT``), check them (each one's proof of work, each linked to the one before,
the first to a block we have: headers must connect to a known header), then download the blocks
we lack in windows of ``DOWNLOAD_WINDOW``, in batches of ``DOWNLOAD_BATCH`` spread over every
peer believed to be ahead, and connect them in order while the next window downloads.

A peer's claimed work counts only as far as its connected headers show it (``Peer.shown``): a
peer whose answer is empty, late, or does not connect, or that sends nothing beyond what we
have, or whose blocks cannot be had, has failed its claim and is not chosen again for
``CLAIM_RETRY`` seconds (so one peer cannot stall sync, and a peer with nothing new does not make
sync spin), unless it sends a block whose parent we lack. Headers that do not connect
also score ``SCORE_UNCONNECTED_HEADERS``. A batch not delivered in ``BLOCK_REQUEST_TIMEOUT``
(or delivered in part) is asked of the next peer: a stalled download moves on.

Progress is logged against the best header known (the last header of the current round), not
against a height some peer once claimed.

State: the sync lock and the wake-up event, on the event loop thread; chain only through
``call``. Leaves to others: processing each block (``relay.receive_block``, which also scores),
the peer set (``peers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from consensus import (
    Block,
    BlockHeader,
    NetworkParams,
    ValidationError,
    block_work,
    check_block_header,
)
from node.chainstate import BlockIndexEntry, Chainstate
from node.p2p import policy
from node.p2p.banman import BanMan
from node.p2p.peers import Peer, PeerError, PeerSet, Transport
from node.p2p.relay import Relay

log = logging.getLogger(__name__)

StateCall = Callable[..., Awaitable[Any]]


class Sync:
    """Catching up with peers that have more work."""

    def __init__(
        self,
        params: NetworkParams,
        chain: Chainstate,
        call: StateCall,
        peers: PeerSet,
        transport: Transport,
        banman: BanMan,
        relay: Relay,
        *,
        tip: Callable[[], BlockIndexEntry],
    ) -> None:
        self.params = params
        self.chain = chain
        """Touched only in functions handed to ``call`` (the state thread)."""
        self.tip = tip
        """The tip the state thread last published: what the event loop reads."""
        self.call = call
        self.peers = peers
        self.transport = transport
        self.banman = banman
        self.relay = relay
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self.running = False
        self.downloading: set[bytes] = set()
        """Block hashes the current sync round is downloading (relay leaves them to it)."""
        """True while blocks of a sync download (relay holds transaction requests meanwhile:
        their inputs may be in those blocks). Not while headers are asked for, so a peer that
        claims work it does not have cannot hold up transaction relay."""
        self.rounds = 0
        """``getheaders`` rounds so far (for tests of spinning)."""

    def want(self) -> None:
        self._wanted.set()

    async def syncer(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self.sync()
            except Exception:
                log.exception("sync failed")

    def ahead(self) -> list[Peer]:
        ours = self.tip().chainwork
        return [p for p in self.peers.peers.values() if p.ahead_of(ours)]

    async def sync(self) -> None:
        """Catch up with the peers believed to have more work than us, headers first."""
        async with self._lock:
            while True:
                ahead = self.ahead()
                if not ahead:
                    return
                source = max(ahead, key=lambda p: p.work)
                if not await self._sync_round(source):
                    self.peers.failed(source)  # it showed nothing more: believe what it showed

    async def _sync_round(self, source: Peer) -> bool:
        """One round of headers and blocks from ``source``; True if the tip moved."""
        self.rounds += 1
        locator = await self.call(self.chain.block_locator)
        try:
            answer = await self.transport.post(
                source.url,
                "getheaders",
                {"locator": locator, "stop": b"\x00" * 32},
                "headers",
                policy.HEADERS_TIMEOUT,
            )
        except PeerError as err:
            log.info("sync from %s: no headers (%s)", source.url, err)
            return False
        headers = [BlockHeader.deserialize(h) for h in answer["headers"]]
        if not headers:
            return False
        parent = await self.call(self.chain.get_entry, headers[0].prev_hash)
        if parent is None or parent.failed:
            self.banman.misbehaving(
                source.key, policy.SCORE_UNCONNECTED_HEADERS, "headers that connect to nothing"
            )
            return False
        work = parent.chainwork
        prev = headers[0].prev_hash
        for header in headers:
            if header.prev_hash != prev:
                self.banman.misbehaving(
                    source.key, policy.SCORE_INVALID_OBJECT, "headers do not link"
                )
                return False
            try:
                check_block_header(header, self.params)
            except ValidationError as err:
                self.banman.misbehaving(
                    source.key, policy.block_reject_score(err), f"invalid header: {err.code}"
                )
                return False
            prev = header.hash()
            work += block_work(header.bits)
        source.showed(work)
        best_height = parent.height + len(headers)
        hashes = [h.hash() for h in headers]
        missing = await self.call(self._blocks_lacking, hashes)
        # Blocks relay is fetching already (announced one by one) are not asked for twice.
        missing = [h for h in missing if not self.relay.tracker.requested(("block", h))]
        start_tip = self.tip().hash
        log.info(
            "syncing from %s: %d header(s) up to height %d, %d block(s) to download",
            source.url,
            len(headers),
            best_height,
            len(missing),
        )
        if not missing:
            return self.tip().hash != start_tip
        self.running = True
        # Marked in the same step as the filter above (no await between): relay, which asks
        # ``downloading`` before it requests an announced block, never fetches one of these too.
        self.downloading.update(missing)
        try:
            await self._download(source, missing, best_height)
        finally:
            self.running = False
            self.downloading.difference_update(missing)
        return self.tip().hash != start_tip

    def _blocks_lacking(self, hashes: list[bytes]) -> list[bytes]:
        """The blocks among ``hashes`` whose bodies we have not stored."""
        lacking = []
        for h in hashes:
            entry = self.chain.get_entry(h)
            if entry is None or not entry.have_data:
                lacking.append(h)
        return lacking

    async def _download(self, source: Peer, missing: list[bytes], best_height: int) -> None:
        windows = [
            missing[i : i + policy.DOWNLOAD_WINDOW]
            for i in range(0, len(missing), policy.DOWNLOAD_WINDOW)
        ]
        # The next window downloads while the current one connects (the state thread does
        # the connecting; the event loop is free to wait on the network meanwhile).
        following: asyncio.Future[Any] | None = asyncio.ensure_future(
            self._fetch_window(windows[0], source)
        )
        try:
            for n in range(len(windows)):
                assert following is not None
                results = await following
                following = (
                    asyncio.ensure_future(self._fetch_window(windows[n + 1], source))
                    if n + 1 < len(windows)
                    else None
                )
                if results is None or not await self._connect_window(results):
                    return
                height = self.tip().height
                log.info(
                    "sync progress: height %d of %d (%d%%)",
                    height,
                    best_height,
                    min(100, 100 * height // max(1, best_height)),
                )
        finally:
            if following is not None:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)

    async def _fetch_window(
        self, hashes: list[bytes], source: Peer
    ) -> list[tuple[Peer, bytes]] | None:
        """Fetch ``hashes`` in batches spread over the peers ahead, each block with its sender
        in order; None if no peer could send them."""
        batches = [
            hashes[i : i + policy.DOWNLOAD_BATCH]
            for i in range(0, len(hashes), policy.DOWNLOAD_BATCH)
        ]
        live = [p for p in self.ahead() if p is not source]
        if source.url in self.peers.peers and not source.stalled():
            live = [source, *live]
        if not live:
            return None

        async def fetch(n: int, batch: list[bytes]) -> list[tuple[Peer, bytes]]:
            want = list(batch)
            got: dict[bytes, tuple[Peer, bytes]] = {}
            for attempt in range(len(live)):
                peer = live[(n + attempt) % len(live)]
                if peer.url not in self.peers.peers or peer.stalled():
                    continue
                try:
                    answer = await self.transport.post(
                        peer.url,
                        "getdata",
                        {"kind": "block", "hashes": want},
                        "items",
                        policy.BLOCK_REQUEST_TIMEOUT,
                    )
                except PeerError as err:
                    if not peer.stalled():
                        log.info("block download from %s stalled (%s): next peer", peer.url, err)
                    self.peers.failed(peer)  # not asked for blocks (nor synced from) for a while
                    continue
                by_hash: dict[bytes, bytes] = {}
                for raw in answer["items"]:
                    try:
                        by_hash[Block.deserialize(raw).hash()] = raw
                    except ValidationError:
                        self.banman.misbehaving(
                            peer.key, policy.SCORE_INVALID_OBJECT, "undecodable block"
                        )
                for h in want:
                    if h in by_hash:
                        got[h] = (peer, by_hash[h])
                want = [h for h in want if h not in got]
                if not want:
                    break
            if want:
                raise PeerError(f"no peer could send {len(want)} block(s)")
            return [got[h] for h in batch]

        try:
            results = await asyncio.gather(*(fetch(n, b) for n, b in enumerate(batches)))
        except PeerError as err:
            log.info("block download failed: %s", err)
            return None
        return [pair for pairs in results for pair in pairs]

    async def _connect_window(self, results: list[tuple[Peer, bytes]]) -> bool:
        """Process downloaded blocks in order; False if one was refused."""
        return await self.relay.receive_downloaded_blocks(results)
