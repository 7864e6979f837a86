"""Relay: announcing what we have, fetching what peers announce, serving ``getdata`` (SPEC 3.4).

Job, outgoing: every new block on the active chain and every transaction accepted into the
mempool is queued for each peer not known to have it; the ``announcer`` loop sends each peer its
queue in one ``inv`` per kind per ``relay_interval`` (50 ms on regtest, 2 s elsewhere; at most
``MAX_INV`` hashes an ``inv``), blocks at once. An ``inv`` refused (429 for rate, or lost) goes
back to the front of the queue and is sent again later, so an honest node's relay stays inside
the rate limit it enforces itself and loses nothing. A new peer hears of our whole mempool this
way.

Job, incoming: an ``inv`` from a connected peer is checked against what we have (one trip to
the state thread per ``inv``), the lacking hashes are recorded in the ``TxRequestTracker`` and
the ``requester`` loop asks each announcer for its share in ``getdata`` of at most
``MAX_GETDATA`` items (blocks ``DOWNLOAD_BATCH`` at a time, one block request in flight per
peer, so blocks arrive in order), each with a timeout; what is not delivered (timeout, missing
from the answer, invalid, mutated) is asked of the next announcer. Transactions of one answer
are accepted ``ACCEPT_CHUNK`` a trip to the state thread. A block fetched this way is stored
only if its chain has more work than our tip (a low-work fork costs nothing but its download);
one whose parent we lack hands its sender to sync.

Serving: ``getdata`` answers each hash once, only to a connected peer, and stops adding items at
``MAX_GETDATA_ANSWER_BYTES``.

Scoring of received objects happens here and only here (``policy.block_reject_score``,
``tx_reject_score``, which decide from the reject category, ``consensus.errors.CATEGORIES``); a
mutated block body scores its sender and marks nothing.

State: announce queues and the tracker, on the event loop thread; chain and mempool only
through ``call`` (the state thread). Leaves to others: headers-first sync (``sync``), the peer
set (``peers``), bans (``banman``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from consensus import Block, NetworkParams, Transaction, ValidationError, block_work
from node.aio import wait_event
from node.chainstate import Chainstate
from node.mempool import Mempool
from node.metrics import NodeMetrics
from node.p2p import policy
from node.p2p.banman import BanMan
from node.p2p.peers import Peer, PeerError, PeerSet, Transport
from node.p2p.txrequest import TxRequestTracker

log = logging.getLogger(__name__)

StateCall = Callable[..., Awaitable[Any]]
KINDS = ("block", "tx")
LOW_WORK = "low-work"


@dataclass(frozen=True)
class BlockOutcome:
    """What became of one downloaded block on the state thread: its hash (None if it did not
    decode), its status and the chainwork it shows, or the refusal."""

    hash: bytes | None
    status: str
    work: int
    error: ValidationError | None


"""Status of an announced block not stored because its chain has no more work than our tip."""


class Relay:
    """Announcements out, requests for announced objects in."""

    def __init__(
        self,
        params: NetworkParams,
        chain: Chainstate,
        mempool: Mempool,
        metrics: NodeMetrics,
        call: StateCall,
        peers: PeerSet,
        transport: Transport,
        banman: BanMan,
        *,
        tracker: TxRequestTracker | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.params = params
        self.chain = chain
        self.mempool = mempool
        self.metrics = metrics
        self.call = call
        self.peers = peers
        self.transport = transport
        self.banman = banman
        self.tracker = tracker or TxRequestTracker()
        self.monotonic = monotonic
        self.interval = policy.relay_interval(params)
        self.queues: dict[str, dict[str, OrderedDict[bytes, None]]] = {}
        self._failures: dict[str, int] = {}
        self._sending: set[str] = set()
        self._fetching_blocks: set[str] = set()
        """Peers with a block request in flight: one at a time each, so blocks announced one
        after another arrive (and connect) in order instead of as orphans."""
        self._requests: set[asyncio.Task[None]] = set()
        self._flush = asyncio.Event()
        self._wake = asyncio.Event()
        self.on_orphan: Callable[[Peer], None] = lambda peer: None
        self.sync_downloading: Callable[[bytes], bool] = lambda block_hash: False
        """Whether headers-first sync is downloading this block now (wired by the manager)."""
        self.syncing: Callable[[], bool] = lambda: False
        """True while we are behind a peer (sync runs or is due): transactions wait (their
        inputs may be in the blocks still to come), as Core does not fetch transactions during
        initial download. Their announcements are kept meanwhile."""
        self.on_block_shown: Callable[[Peer, int], None] = lambda peer, work: None

    # --- outgoing -------------------------------------------------------------------------------

    def announce(self, kind: str, h: bytes) -> None:
        """Queue ``h`` for every peer not known to have it (event loop thread)."""
        for peer in list(self.peers.peers.values()):
            if not peer.knows(h):
                peer.learn(h)
                self._queue(peer.url, kind, [h])
        if kind == "block":
            self._flush.set()

    def announce_mempool(self, peer: Peer) -> None:
        """A new peer hears of our whole mempool (after a restart, say, it may lack it)."""
        self._spawn(self._announce_mempool(peer))

    async def _announce_mempool(self, peer: Peer) -> None:
        txids = await self.call(self.mempool_txids)  # read on the state thread that owns it
        if peer.url not in self.peers.peers:
            return
        fresh = [t for t in txids if not peer.knows(t)]
        for t in fresh:
            peer.learn(t)
        self._queue(peer.url, "tx", fresh)

    def mempool_txids(self, limit: int = policy.RELAY_QUEUE_LIMIT) -> list[bytes]:
        """State thread: the mempool's txids, oldest first, at most ``limit``."""
        return list(self.mempool.entries)[:limit]

    def _queue(self, url: str, kind: str, hashes: list[bytes]) -> None:
        queue = self.queues.setdefault(url, {}).setdefault(kind, OrderedDict())
        for h in hashes:
            queue[h] = None
        while len(queue) > policy.RELAY_QUEUE_LIMIT:
            queue.popitem(last=False)

    def forget_peer(self, peer: Peer) -> None:
        self.queues.pop(peer.url, None)
        self._failures.pop(peer.url, None)
        self.tracker.disconnected(peer.url)
        self._wake.set()

    async def announcer(self) -> None:
        """Each interval (or at once for a block), one ``inv`` per kind to each peer."""
        while True:
            await wait_event(self._flush, self.interval)
            self._flush.clear()
            try:
                for url in list(self.queues):
                    if url not in self._sending and any(self.queues[url].values()):
                        self._spawn(self._send_queue(url))
            except Exception:  # a background loop must outlive any one peer's oddity
                log.exception("announcing failed")

    async def _send_queue(self, url: str) -> None:
        self._sending.add(url)
        try:
            for kind in KINDS:
                queue = self.queues.get(url, {}).get(kind)
                if not queue:
                    continue
                batch: list[bytes] = []
                while queue and len(batch) < policy.MAX_INV:
                    batch.append(queue.popitem(last=False)[0])
                try:
                    await self.transport.post(
                        url, "inv", {"kind": kind, "hashes": batch}, "empty", policy.INV_TIMEOUT
                    )
                    self._failures.pop(url, None)
                except PeerError as err:
                    failures = self._failures.get(url, 0) + 1
                    self._failures[url] = failures
                    log.debug("announcing to %s failed (%d): %s", url, failures, err)
                    if url in self.peers.peers and failures <= policy.RELAY_RETRY_LIMIT:
                        requeue = self.queues.setdefault(url, {}).setdefault(kind, OrderedDict())
                        for h in reversed(batch):  # back to the front, in order
                            requeue[h] = None
                            requeue.move_to_end(h, last=False)
                        await asyncio.sleep(self.interval * 2**failures)
                    return
        finally:
            self._sending.discard(url)

    # --- incoming announcements ----------------------------------------------------------------

    async def on_inv(self, peer: Peer, kind: str, hashes: list[bytes]) -> None:
        for h in hashes:
            peer.learn(h)
        unique = list(dict.fromkeys(hashes))
        known = [h for h in unique if self.tracker.tracked((kind, h))]
        fresh = [h for h in unique if not self.tracker.tracked((kind, h))]
        lacking = await self.call(self._lacking, kind, fresh) if fresh else []
        if peer.url not in self.peers.peers:
            return
        for h in [*known, *lacking]:
            self.tracker.received_inv(peer.url, (kind, h))
        if known or lacking:
            self._wake.set()

    def _lacking(self, kind: str, hashes: list[bytes]) -> list[bytes]:
        """The hashes we have neither stored, nor in the mempool, nor waiting in the orphan pool
        (state thread)."""
        if kind == "tx":
            return [
                h for h in hashes if h not in self.mempool and self.chain.get_tx_location(h) is None
            ]
        out = []
        for h in hashes:
            if self.chain.has_orphan(h):
                continue  # its body is here, waiting for its parent: fetching it again is waste
            entry = self.chain.get_entry(h)
            if entry is None or not (entry.have_data or entry.failed):
                out.append(h)
        return out

    async def requester(self) -> None:
        """Ask announcers for what they announced; expire requests that took too long."""
        last_expiry = 0.0
        while True:
            await wait_event(self._wake, 0.25)
            self._wake.clear()
            try:
                now = self.monotonic()
                if now - last_expiry >= 0.25:
                    last_expiry = now
                    if self.tracker.expire(now):
                        self._wake.set()
                self._request_some(now)
            except Exception:
                log.exception("requesting announced objects failed")

    def _request_some(self, now: float) -> None:
        for url in self.tracker.peers_with_work():
            peer = self.peers.peers.get(url)
            if peer is None:
                self.tracker.disconnected(url)
                continue
            if url not in self._fetching_blocks:
                blocks = self.tracker.select(
                    url, now, policy.BLOCK_REQUEST_TIMEOUT, policy.DOWNLOAD_BATCH, "block"
                )
                wanted = []
                for _, h in blocks:
                    if self.sync_downloading(h):  # sync fetches it: never twice over one link
                        self.tracker.received(("block", h))
                    else:
                        wanted.append(h)
                if wanted:
                    self._fetching_blocks.add(url)
                    self._spawn(self._fetch(peer, "block", wanted))
            if self.syncing():
                continue
            txs = self.tracker.select(
                url, now, policy.TX_REQUEST_TIMEOUT, policy.MAX_IN_FLIGHT_PER_PEER, "tx"
            )
            for i in range(0, len(txs), policy.MAX_GETDATA):
                batch = [h for _, h in txs[i : i + policy.MAX_GETDATA]]
                self._spawn(self._fetch(peer, "tx", batch))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def stop(self) -> None:
        for task in list(self._requests):
            task.cancel()
        await asyncio.gather(*self._requests, return_exceptions=True)

    async def _fetch(self, peer: Peer, kind: str, hashes: list[bytes]) -> None:
        """Ask ``peer`` for ``hashes`` (marked requested in the tracker) and process them."""
        timeout = policy.TX_REQUEST_TIMEOUT if kind == "tx" else policy.BLOCK_REQUEST_TIMEOUT
        delivered: set[bytes] = set()
        try:
            if kind == "block":
                # An announcement checked as lacking may be stale by now (the block came from
                # another peer meanwhile): ask the state thread again, so a body crosses a link
                # once.
                still = set(await self.call(self._lacking, kind, hashes))
                for stale in hashes:
                    if stale not in still:
                        self.tracker.received(("block", stale))
                        delivered.add(stale)
                hashes = [h for h in hashes if h in still]
                if not hashes:
                    return
            answer = await self.transport.post(
                peer.url, "getdata", {"kind": kind, "hashes": hashes}, "items", timeout
            )
            wanted = set(hashes)
            if kind == "tx":
                delivered = await self._receive_txs(peer, answer["items"], wanted)
            else:
                for raw in answer["items"]:
                    h = await self.receive_block(peer, raw, wanted=wanted, requested=False)
                    if h is not None:
                        delivered.add(h)
        except PeerError as err:
            log.debug("getdata from %s failed: %s", peer.url, err)
        finally:
            for h in hashes:
                if h not in delivered:
                    self.tracker.not_delivered(peer.url, (kind, h))
            if kind == "block":
                self._fetching_blocks.discard(peer.url)
            self._wake.set()

    async def _receive_txs(self, peer: Peer, raws: list[bytes], wanted: set[bytes]) -> set[bytes]:
        """Accept the transactions of one answer, ``ACCEPT_CHUNK`` a trip; the txids delivered."""
        results: list[tuple[bytes | None, str | None]] = []
        for i in range(0, len(raws), policy.ACCEPT_CHUNK):
            results += await self.call(self._accept_txs, raws[i : i + policy.ACCEPT_CHUNK], wanted)
        delivered: set[bytes] = set()
        for txid, code in results:
            self.metrics.p2p_downloaded.labels("tx").inc()
            points = policy.tx_reject_score(code) if code is not None else 0
            if points:
                self.misbehaving(peer, points, f"invalid transaction: {code}")
            elif txid is not None:
                delivered.add(txid)
                self.tracker.received(("tx", txid))
            if txid is not None:
                peer.learn(txid)
        return delivered

    def _accept_txs(
        self, raws: list[bytes], wanted: set[bytes]
    ) -> list[tuple[bytes | None, str | None]]:
        """State thread: each wanted transaction into the mempool; (txid, reject code)."""
        out: list[tuple[bytes | None, str | None]] = []
        for raw in raws:
            txid: bytes | None = None
            try:
                tx = Transaction.deserialize(raw)
                txid = tx.txid()
                if txid not in wanted:
                    continue  # not asked for: not processed
                wanted.discard(txid)  # each once
                self.mempool.accept(tx)
            except ValidationError as err:
                out.append((txid, err.code))
                continue
            out.append((txid, None))
        return out

    async def receive_block(
        self, peer: Peer, raw: bytes, *, wanted: set[bytes] | None, requested: bool
    ) -> bytes | None:
        """Process one block from ``peer``; its hash if it was delivered as asked (valid, or
        refused harmlessly), None if not wanted, invalid or mutated.

        ``requested``: part of a headers-first download (a chain known to have more work), so
        stored whatever its own work; otherwise only if its chain has more work than our tip.
        """
        try:
            block = Block.deserialize(raw)
        except ValidationError as err:
            self.misbehaving(peer, policy.block_reject_score(err), f"invalid block: {err}")
            return None
        h = block.hash()
        if wanted is not None:
            if h not in wanted:
                return None
            wanted.discard(h)
        self.metrics.p2p_downloaded.labels("block").inc()
        peer.learn(h)
        try:
            status, work = await self.call(self._process_block, block, requested)
        except ValidationError as err:
            self.metrics.blocks_rejected.labels(err.code).inc()
            points = policy.block_reject_score(err)
            if points:
                self.misbehaving(peer, points, f"invalid block: {err.code}")
                return None
            self.tracker.received(("block", h))
            return h
        self.tracker.received(("block", h))
        if work:
            self.on_block_shown(peer, work)
        if status == "orphan":
            self.on_orphan(peer)  # we miss its ancestors: ask its sender for headers
        return h

    async def receive_downloaded_blocks(self, delivered: list[tuple[Peer, bytes]]) -> bool:
        """Headers-first download: process ``delivered`` (sender, raw block) in order, a chunk
        (``policy.CONNECT_CHUNK``, ``CONNECT_CHUNK_BYTES``) a trip to the state thread, decoded
        there; False at the first block refused for its sender's fault (those after it are not
        processed), as ``receive_block`` one by one would."""
        start = 0
        while start < len(delivered):
            end, size = start + 1, len(delivered[start][1])
            while (
                end < len(delivered)
                and end - start < policy.CONNECT_CHUNK
                and size + len(delivered[end][1]) <= policy.CONNECT_CHUNK_BYTES
            ):
                size += len(delivered[end][1])
                end += 1
            chunk = delivered[start:end]
            outcomes = await self.call(self._process_raw_blocks, [raw for _, raw in chunk])
            for (peer, _), outcome in zip(chunk, outcomes, strict=False):
                if not self._after_downloaded_block(peer, outcome):
                    return False
            start = end
        return True

    def _process_raw_blocks(self, raws: list[bytes]) -> list[BlockOutcome]:
        """State thread: decode and process each block, stopping after the first whose refusal
        blames its sender; one outcome per block processed."""
        outcomes: list[BlockOutcome] = []
        with self.chain.deferred_sync():
            self._process_chunk(raws, outcomes)
        return outcomes

    def _process_chunk(self, raws: list[bytes], outcomes: list[BlockOutcome]) -> None:
        for raw in raws:
            try:
                block = Block.deserialize(raw)
            except ValidationError as err:
                outcomes.append(BlockOutcome(None, "", 0, err))
                break
            h = block.hash()
            try:
                status, work = self._process_block(block, True)
            except ValidationError as err:
                outcomes.append(BlockOutcome(h, "", 0, err))
                if policy.block_reject_score(err):
                    break
                continue
            outcomes.append(BlockOutcome(h, status, work, None))

    def _after_downloaded_block(self, peer: Peer, outcome: BlockOutcome) -> bool:
        """Event loop: score, count and track one processed block as ``receive_block`` does;
        False if its sender is to blame."""
        err = outcome.error
        if outcome.hash is None:
            assert err is not None
            self.misbehaving(peer, policy.block_reject_score(err), f"invalid block: {err}")
            return False
        self.metrics.p2p_downloaded.labels("block").inc()
        peer.learn(outcome.hash)
        if err is not None:
            self.metrics.blocks_rejected.labels(err.code).inc()
            points = policy.block_reject_score(err)
            if points:
                self.misbehaving(peer, points, f"invalid block: {err.code}")
                return False
            self.tracker.received(("block", outcome.hash))
            return True
        self.tracker.received(("block", outcome.hash))
        if outcome.work:
            self.on_block_shown(peer, outcome.work)
        if outcome.status == "orphan":
            self.on_orphan(peer)
        return True

    def _process_block(self, block: Block, requested: bool) -> tuple[str, int]:
        """State thread: store and connect ``block`` unless it is an unrequested low-work one;
        its status and the chainwork it shows (0 if unknown)."""
        parent = self.chain.get_entry(block.header.prev_hash)
        work = parent.chainwork + block_work(block.header.bits) if parent is not None else 0
        if (
            not requested
            and parent is not None
            and work <= self.chain.tip.chainwork
            and self.chain.get_entry(block.hash()) is None
        ):
            return LOW_WORK, 0
        result = self.chain.process_block(block)
        return str(result.status), work

    def misbehaving(self, peer: Peer, points: int, reason: str) -> None:
        self.banman.misbehaving(peer.key, points, reason)

    # --- serving ----------------------------------------------------------------------------------

    async def serve_getdata(self, kind: str, hashes: list[bytes]) -> list[bytes]:
        """The raw objects we have among ``hashes``, each once, up to the answer's byte limit."""
        unique = list(dict.fromkeys(hashes))
        return await self.call(self._lookup, kind, unique)  # type: ignore[no-any-return]

    def _lookup(self, kind: str, hashes: list[bytes]) -> list[bytes]:
        found: list[bytes] = []
        size = 0
        for h in hashes:
            raw: bytes | None = None
            if kind == "tx":
                entry = self.mempool.get(h)
                if entry is not None:
                    raw = entry.tx.serialize()
            else:
                raw = self.chain.get_block_bytes(h)
            if raw is None:
                continue
            if found and size + len(raw) > policy.MAX_GETDATA_ANSWER_BYTES:
                break
            found.append(raw)
            size += len(raw)
        return found
