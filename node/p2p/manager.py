"""The peer manager: who we talk to, what we relay, how we sync, and whom we ban (SPEC 3.4).

Peers speak HTTP to each other: every message is a POST to the other node's ``/p2p/`` routes
(``node.p2p.routes``), carrying the sender's listening URL in the ``X-Tally-Peer`` header. A peer
is *connected* once a handshake succeeded in either direction; after that either side may send
the other announcements.

- Handshake: network magic, genesis hash, protocol version, best height and work, the listening
  URL and a random nonce; a different network or genesis is refused, and a handshake carrying
  our own nonce is a connection to ourselves, dropped.
- Gossip: new blocks (on the active chain) and transactions are announced by hash (``inv``) to
  every peer not known to have them; the receiver fetches only what it lacks (``getdata``) from
  the announcer, and never asks for a hash already being fetched, so an object crosses each link
  at most once.
- Sync: when a peer has more work, headers-first: ``getheaders`` from our block locator in
  batches of up to 2,000, each header's proof of work and linkage checked, then the blocks
  downloaded in parallel from every peer that has at least that much work, and connected in
  order. A block whose parent is unknown also starts a sync from its sender.
- Discovery: ``addr`` exchanges known URLs after each handshake; the connector keeps up to
  ``max_outbound`` outbound peers, reconnecting with exponential backoff.
- Misbehaviour: an invalid block or consensus-invalid transaction costs 100 points, a malformed
  message 20; at 100 the peer is banned for 24 hours (kept in the database, key ``B``). Peers are
  identified by their URL, or by remote address when they give none. Each peer also has a rate
  limit (token bucket), and every outbound request a timeout.

Chain and mempool are reached only through the service's state thread (``call``); their events
arrive on that thread and are handed to the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from consensus import (
    BlockHeader,
    NetworkParams,
    Transaction,
    ValidationError,
    check_block_header,
)
from consensus import errors as codes
from node.chainstate import BlockConnected, ChainEvent, Chainstate
from node.mempool import Mempool, MempoolEntry
from node.metrics import NodeMetrics
from node.p2p import messages as m
from node.storage import KeyValueStore

log = logging.getLogger(__name__)

P_BAN = b"B"
"""Key prefix of bans in the node's database: ``B`` + peer key (UTF-8) -> expiry, u64 BE."""
BAN_SECONDS = 24 * 60 * 60
BAN_SCORE = 100
SCORE_INVALID_OBJECT = 100
SCORE_MALFORMED = 20
MAX_OUTBOUND = 8
REQUEST_TIMEOUT = 30.0
PING_INTERVAL = 10.0
CONNECT_INTERVAL = 1.0
BACKOFF_MAX = 60.0
KNOWN_LIMIT = 50_000
DOWNLOAD_BATCH = 16
DOWNLOAD_WINDOW = 128
RATE_PER_SECOND = 200.0
RATE_BURST = 2_000.0

# Refusals that say nothing bad about the sender.
HARMLESS_BLOCK_CODES = {codes.DUPLICATE, codes.PREV_BLK_NOT_FOUND, codes.TIME_TOO_NEW}
POLICY_TX_CODES = {
    codes.TXN_ALREADY_KNOWN,
    codes.TXN_MEMPOOL_CONFLICT,
    codes.INSUFFICIENT_FEE,
    codes.MIN_RELAY_FEE_NOT_MET,
    codes.MEMPOOL_FULL,
    codes.TOO_LONG_MEMPOOL_CHAIN,
    codes.TX_SIZE,  # policy, not validity: a node with another limit may relay it
    codes.BAD_TXNS_INPUTS_MISSINGORSPENT,  # may be a race with a block, not malice
    codes.BAD_TXNS_NONFINAL,
    codes.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
}


MAX_ADDRESSES = 1_000
"""Learned peer addresses kept at most (configured ones always)."""


def usable_url(url: str) -> bool:
    """An http(s) URL with a host and a valid port, as a peer's listening address."""
    if not url.startswith(("http://", "https://")) or len(url) > m.MAX_URL:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return bool(parts.hostname) and (port is None or 0 < port < 65536) and not parts.query


def _key_bytes(key: str) -> bytes:
    """A peer key as stored bytes, whatever characters it holds."""
    return key.encode("utf-8", "backslashreplace")


class PeerError(Exception):
    """A peer could not be reached or answered wrongly."""


@dataclass
class TokenBucket:
    rate: float = RATE_PER_SECOND
    burst: float = RATE_BURST
    tokens: float = RATE_BURST
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Peer:
    url: str
    outbound: bool
    height: int = 0
    work: int = 0
    version: int = 0
    connected_at: float = 0.0
    known: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    def knows(self, h: bytes) -> bool:
        return h in self.known

    def learn(self, h: bytes) -> None:
        self.known[h] = None
        if len(self.known) > KNOWN_LIMIT:
            self.known.popitem(last=False)


@dataclass
class Dial:
    """Connection attempts to one URL: when to try next."""

    failures: int = 0
    next_attempt: float = 0.0


StateCall = Callable[..., Awaitable[Any]]


class PeerManager:
    """Peers, relay, sync, discovery and bans of one node."""

    def __init__(
        self,
        params: NetworkParams,
        chainstate: Chainstate,
        mempool: Mempool,
        store: KeyValueStore,
        metrics: NodeMetrics,
        call: StateCall,
        *,
        own_url: str,
        configured: list[str],
        max_outbound: int = MAX_OUTBOUND,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.chain = chainstate
        self.mempool = mempool
        self.store = store
        self.metrics = metrics
        self.call = call
        self.own_url = own_url.rstrip("/")
        self.max_outbound = max_outbound
        self.clock = clock
        self.nonce = os.urandom(8)
        self.peers: dict[str, Peer] = {}
        self.addresses: dict[str, Dial] = {u.rstrip("/"): Dial() for u in configured}
        self.configured = {u.rstrip("/") for u in configured}
        self.scores: dict[str, int] = {}
        self.bans: dict[str, float] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.in_flight: set[bytes] = set()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sync_lock = asyncio.Lock()
        self._sync_wanted = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._load_bans()

    # --- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT, connect=5)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._tasks = [
            asyncio.create_task(self._connector(), name="p2p-connector"),
            asyncio.create_task(self._pinger(), name="p2p-pinger"),
            asyncio.create_task(self._syncer(), name="p2p-syncer"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # --- events from the chain and the mempool (state thread) -----------------------------------

    def on_chain_event(self, event: ChainEvent) -> None:
        if isinstance(event, BlockConnected) and self._loop is not None:
            block_hash = event.block.hash()
            self._loop.call_soon_threadsafe(self._announce, "block", block_hash)

    def on_mempool_accept(self, entry: MempoolEntry) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._announce, "tx", entry.txid)

    def _announce(self, kind: str, h: bytes) -> None:
        for peer in list(self.peers.values()):
            if not peer.knows(h):
                peer.learn(h)
                asyncio.get_running_loop().create_task(self._send_inv(peer, kind, [h]))

    async def _send_mempool(self, peer: Peer) -> None:
        txids = [t for t in list(self.mempool.entries) if not peer.knows(t)]
        for t in txids:
            peer.learn(t)
        for start in range(0, len(txids), m.MAX_INV):
            await self._send_inv(peer, "tx", txids[start : start + m.MAX_INV])

    async def _send_inv(self, peer: Peer, kind: str, hashes: list[bytes]) -> None:
        try:
            await self._post(peer.url, "inv", {"kind": kind, "hashes": hashes}, "empty")
        except PeerError as err:
            log.debug("announcing to %s failed: %s", peer.url, err)

    # --- talking to peers -----------------------------------------------------------------------

    async def _post(self, url: str, route: str, message: dict[str, Any], answer: str) -> Any:
        if self._session is None:
            raise PeerError("not started")
        headers = {"Content-Type": "application/msgpack", "X-Tally-Peer": self.own_url}
        try:
            async with self._session.post(
                f"{url}/p2p/{route}", data=m.encode(message), headers=headers
            ) as response:
                body = await response.read()
                if response.status != 200:
                    raise PeerError(f"{route}: HTTP {response.status} {body[:200]!r}")
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
            # ValueError: a URL aiohttp cannot use (bad port, bad host): the peer is unreachable
            raise PeerError(f"{route} to {url}: {type(err).__name__} {err}") from None
        try:
            return m.parse(answer, body)
        except m.ProtocolError as err:
            self.misbehaving(url, SCORE_MALFORMED, f"malformed {route} answer: {err}")
            raise PeerError(str(err)) from None

    def handshake_message(self) -> dict[str, Any]:
        tip = self.chain.tip
        return {
            "magic": self.params.magic,
            "genesis": self.params.genesis_hash,
            "version": m.PROTOCOL_VERSION,
            "height": tip.height,
            "work": tip.chainwork.to_bytes(32, "big"),
            "url": self.own_url,
            "nonce": self.nonce,
        }

    def check_handshake(self, message: dict[str, Any]) -> None:
        """Refuse another network, another genesis, or ourselves."""
        if message["magic"] != self.params.magic:
            raise m.ProtocolError("another network (magic differs)", "wrong-network")
        if message["genesis"] != self.params.genesis_hash:
            raise m.ProtocolError("another genesis block", "wrong-genesis")
        if message["nonce"] == self.nonce:
            raise m.ProtocolError("this is a connection to myself", "self-connection")

    def register(self, message: dict[str, Any], outbound: bool) -> Peer:
        url = message["url"].rstrip("/")
        peer = self.peers.get(url)
        if peer is None:
            peer = Peer(url, outbound, connected_at=self.clock())
            self.peers[url] = peer
            # A new peer hears of our whole mempool once (after a restart, say, it may lack it).
            asyncio.get_running_loop().create_task(self._send_mempool(peer))
            log.info(
                "peer %s joined (%s, height %d)",
                url,
                "outbound" if outbound else "inbound",
                message["height"],
            )
        peer.height = message["height"]
        peer.work = int.from_bytes(message["work"], "big")
        peer.version = message["version"]
        self.addresses.setdefault(url, Dial()).failures = 0
        self.metrics.peers.set(len(self.peers))
        if peer.work > self.chain.tip.chainwork:
            self._sync_wanted.set()
        return peer

    def drop(self, url: str, reason: str) -> None:
        if self.peers.pop(url, None) is not None:
            log.info("peer %s left: %s", url, reason)
            self.metrics.peers.set(len(self.peers))

    async def connect(self, url: str) -> Peer | None:
        """Handshake with ``url``; the peer, or None if refused or unreachable."""
        url = url.rstrip("/")
        if self.is_banned(url):
            return None
        dial = self.addresses.setdefault(url, Dial())
        try:
            answer = await self._post(url, "handshake", self.handshake_message(), "handshake")
            self.check_handshake(answer)
        except m.ProtocolError as err:
            if err.code == "self-connection":
                log.info("%s is this node itself: not connecting", url)
                self.addresses.pop(url, None)
                self.configured.discard(url)
            else:
                log.warning("peer %s refused: %s", url, err)
                self._backoff(dial)
            return None
        except PeerError as err:
            log.debug("cannot reach %s: %s", url, err)
            self._backoff(dial)
            return None
        if answer["url"].rstrip("/") != url:
            self.addresses.setdefault(answer["url"].rstrip("/"), Dial())
        peer = self.register({**answer, "url": url}, outbound=True)
        asyncio.get_running_loop().create_task(self._exchange_addresses(peer))
        return peer

    def _backoff(self, dial: Dial) -> None:
        dial.failures += 1
        delay = min(BACKOFF_MAX, 2 ** min(dial.failures, 6)) * random.uniform(0.5, 1.0)  # noqa: S311
        dial.next_attempt = time.monotonic() + delay

    async def _exchange_addresses(self, peer: Peer) -> None:
        try:
            answer = await self._post(peer.url, "addr", {"urls": self.known_urls()}, "addr")
        except PeerError:
            return
        self.learn_urls(answer["urls"])

    def known_urls(self) -> list[str]:
        urls = [self.own_url, *self.peers]
        return urls[: m.MAX_ADDRS]

    def learn_urls(self, urls: list[str]) -> None:
        for url in urls:
            url = url.rstrip("/")
            if not usable_url(url) or url == self.own_url or url in self.addresses:
                continue
            if len(self.addresses) >= MAX_ADDRESSES and not self._forget_an_address():
                continue
            self.addresses[url] = Dial()

    def _forget_an_address(self) -> bool:
        """Make room in a full address book for a newly learned address.

        Drops a learned address that is neither configured nor connected: the oldest one that
        failed to answer if any (junk is dialled within seconds and fails), else the newest one,
        so a flood of junk can neither freeze the book (new peers still get in) nor push out the
        addresses learned before it.
        """
        spare = [u for u in self.addresses if u not in self.configured and u not in self.peers]
        if not spare:
            return False
        failed = [u for u in spare if self.addresses[u].failures]
        del self.addresses[failed[0] if failed else spare[-1]]
        return True

    # --- background loops -----------------------------------------------------------------------

    async def _connector(self) -> None:
        while True:
            try:
                await self._connect_some()
            except Exception:  # a background loop must outlive any one peer's oddity
                log.exception("connecting to peers failed")
            await asyncio.sleep(CONNECT_INTERVAL)

    async def _connect_some(self) -> None:
        """Dial known addresses until there are enough outbound peers."""
        outbound = sum(1 for p in self.peers.values() if p.outbound)
        now = time.monotonic()
        for url, dial in list(self.addresses.items()):
            if outbound >= self.max_outbound:
                break
            if url in self.peers or dial.next_attempt > now or self.is_banned(url):
                continue
            if await self.connect(url) is not None:
                outbound += 1

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL)
            for peer in list(self.peers.values()):
                try:
                    answer = await self._post(
                        peer.url, "handshake", self.handshake_message(), "handshake"
                    )
                    self.check_handshake(answer)
                    self.register({**answer, "url": peer.url}, peer.outbound)
                except (PeerError, m.ProtocolError) as err:
                    self.drop(peer.url, f"no answer ({err})")
                    self._backoff(self.addresses.setdefault(peer.url, Dial()))
                except Exception:  # never let one peer stop the pinging of the others
                    log.exception("pinging %s failed", peer.url)
                    self.drop(peer.url, "ping failed")

    async def _syncer(self) -> None:
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted.clear()
            try:
                await self.sync()
            except Exception:
                log.exception("sync failed")

    # --- inbound messages (called by the routes) ------------------------------------------------

    async def on_inv(self, sender: str, kind: str, hashes: list[bytes]) -> None:
        peer = self.peers.get(sender)
        if peer is None:
            return  # not connected: ignore (the sender handshakes first)
        for h in hashes:
            peer.learn(h)
        fresh = [h for h in hashes if h not in self.in_flight]
        lacking = await self.call(self._lacking, kind, fresh) if fresh else []
        # Checked again after the await: another inv may have claimed some meanwhile.
        wanted = [h for h in lacking if h not in self.in_flight]
        self.in_flight.update(wanted)  # claimed until processed, not merely downloaded
        if wanted:
            asyncio.get_running_loop().create_task(self._fetch(peer, kind, wanted))

    def _lacking(self, kind: str, hashes: list[bytes]) -> list[bytes]:
        """The hashes we have neither stored nor in the mempool (one trip to the state thread)."""
        if kind == "tx":
            return [
                h for h in hashes if h not in self.mempool and self.chain.get_tx_location(h) is None
            ]
        return [h for h in hashes if self.chain.get_entry(h) is None]

    async def serve_getdata(self, kind: str, hashes: list[bytes]) -> list[bytes]:
        """The raw objects we have among ``hashes`` (blocks stored, mempool transactions)."""
        return await self.call(self._lookup, kind, hashes)  # type: ignore[no-any-return]

    def _lookup(self, kind: str, hashes: list[bytes]) -> list[bytes]:
        found: list[bytes] = []
        for h in hashes:
            if kind == "tx":
                entry = self.mempool.get(h)
                if entry is not None:
                    found.append(entry.tx.serialize())
            else:
                raw = self.chain.get_block_bytes(h)
                if raw is not None:
                    found.append(raw)
        return found

    async def _fetch(self, peer: Peer, kind: str, hashes: list[bytes]) -> None:
        """Download ``hashes`` (already claimed in ``in_flight``) and process them."""
        try:
            try:
                answer = await self._post(
                    peer.url, "getdata", {"kind": kind, "hashes": hashes}, "items"
                )
            except PeerError as err:
                log.debug("getdata from %s failed: %s", peer.url, err)
                return
            for raw in answer["items"]:
                self.metrics.p2p_downloaded.labels(kind).inc()
                if kind == "tx":
                    await self._receive_tx(peer, raw)
                else:
                    await self._receive_block(peer, raw)
        finally:
            self.in_flight.difference_update(hashes)

    async def _receive_tx(self, peer: Peer, raw: bytes) -> None:
        try:
            tx = Transaction.deserialize(raw)
            peer.learn(tx.txid())
            await self.call(self.mempool.accept, tx)
        except ValidationError as err:
            if err.code not in POLICY_TX_CODES:
                self.misbehaving(peer.url, SCORE_INVALID_OBJECT, f"invalid transaction: {err.code}")

    async def _receive_block(self, peer: Peer, raw: bytes) -> str | None:
        """Process one block from ``peer``; its status, or None if refused."""
        from consensus import Block

        try:
            block = Block.deserialize(raw)
            peer.learn(block.hash())
            result = await self.call(self.chain.process_block, block)
        except ValidationError as err:
            self.metrics.blocks_rejected.labels(err.code).inc()
            if err.code not in HARMLESS_BLOCK_CODES:
                self.misbehaving(peer.url, SCORE_INVALID_OBJECT, f"invalid block: {err.code}")
            return None
        if result.status == "orphan":
            self._sync_wanted.set()  # we miss its ancestors: ask for headers
        return str(result.status)

    # --- headers-first sync ---------------------------------------------------------------------

    async def sync(self) -> None:
        """Catch up with the peers that have more work than us, headers first."""
        async with self._sync_lock:
            while True:
                ours = self.chain.tip.chainwork
                ahead = [p for p in self.peers.values() if p.work > ours]
                if not ahead:
                    return
                source = max(ahead, key=lambda p: p.work)
                progressed = await self._sync_round(source, ahead)
                if not progressed:
                    return

    async def _sync_round(self, source: Peer, helpers: list[Peer]) -> bool:
        locator = await self.call(self.chain.block_locator)
        try:
            answer = await self._post(
                source.url, "getheaders", {"locator": locator, "stop": b"\x00" * 32}, "headers"
            )
        except PeerError as err:
            log.info("sync from %s failed: %s", source.url, err)
            self.drop(source.url, "sync failed")
            return False
        headers = [BlockHeader.deserialize(h) for h in answer["headers"]]
        if not headers:
            source.work = min(source.work, self.chain.tip.chainwork)  # nothing new after all
            return False
        prev = headers[0].prev_hash
        for header in headers:
            if header.prev_hash != prev:
                self.misbehaving(source.url, SCORE_INVALID_OBJECT, "headers do not link")
                return False
            try:
                check_block_header(header, self.params)
            except ValidationError as err:
                self.misbehaving(source.url, SCORE_INVALID_OBJECT, f"invalid header: {err.code}")
                return False
            prev = header.hash()
        hashes = [h.hash() for h in headers]
        missing = await self.call(self._blocks_lacking, hashes)
        start_height = self.chain.height
        log.info(
            "syncing from %s: %d header(s), %d block(s) to download, height %d",
            source.url,
            len(headers),
            len(missing),
            start_height,
        )
        windows = [
            missing[i : i + DOWNLOAD_WINDOW] for i in range(0, len(missing), DOWNLOAD_WINDOW)
        ]
        peers = helpers or [source]
        self.in_flight.update(missing)
        try:
            # The next window downloads while the current one connects (the state thread does
            # the connecting; the event loop is free to wait on the network meanwhile).
            following = (
                asyncio.ensure_future(self._fetch_window(windows[0], peers)) if windows else None
            )
            for n in range(len(windows)):
                assert following is not None
                results = await following
                following = (
                    asyncio.ensure_future(self._fetch_window(windows[n + 1], peers))
                    if n + 1 < len(windows)
                    else None
                )
                if results is None or not await self._connect_window(results):
                    if following is not None:
                        following.cancel()
                        await asyncio.gather(following, return_exceptions=True)
                    return False
                log.info(
                    "sync progress: height %d (%d%%)",
                    self.chain.height,
                    min(100, 100 * self.chain.height // max(1, source.height or 1)),
                )
        finally:
            self.in_flight.difference_update(missing)  # only once processed
        return len(headers) == m.MAX_HEADERS or self.chain.tip.chainwork < source.work

    def _blocks_lacking(self, hashes: list[bytes]) -> list[bytes]:
        """The blocks among ``hashes`` whose bodies we have not stored."""
        lacking = []
        for h in hashes:
            entry = self.chain.get_entry(h)
            if entry is None or not entry.have_data:
                lacking.append(h)
        return lacking

    async def _fetch_window(
        self, hashes: list[bytes], peers: list[Peer]
    ) -> list[tuple[Peer, list[bytes]]] | None:
        """Fetch ``hashes`` in batches spread over ``peers``; None if no peer could send them."""
        batches = [hashes[i : i + DOWNLOAD_BATCH] for i in range(0, len(hashes), DOWNLOAD_BATCH)]
        live = [p for p in peers if p.url in self.peers]
        if not live:
            return None

        async def fetch(n: int, batch: list[bytes]) -> tuple[Peer, list[bytes]]:
            for attempt in range(len(live)):
                peer = live[(n + attempt) % len(live)]
                try:
                    answer = await self._post(
                        peer.url, "getdata", {"kind": "block", "hashes": batch}, "items"
                    )
                except PeerError:
                    continue
                if len(answer["items"]) == len(batch):
                    return peer, answer["items"]
            raise PeerError("no peer could send the blocks")

        try:
            return list(await asyncio.gather(*(fetch(n, b) for n, b in enumerate(batches))))
        except PeerError as err:
            log.info("block download failed: %s", err)
            return None

    async def _connect_window(self, results: list[tuple[Peer, list[bytes]]]) -> bool:
        """Process downloaded blocks in order; False if their sender was dropped for them."""
        for peer, items in results:
            for raw in items:
                self.metrics.p2p_downloaded.labels("block").inc()
                if await self._receive_block(peer, raw) is None and peer.url not in self.peers:
                    return False
        return True

    # --- misbehaviour and bans ------------------------------------------------------------------

    def misbehaving(self, key: str, points: int, reason: str) -> None:
        key = key.rstrip("/")
        score = self.scores.get(key, 0) + points
        self.scores[key] = score
        self.metrics.p2p_misbehaviour.inc(points)
        log.info("peer %s misbehaved (+%d = %d): %s", key, points, score, reason)
        if score >= BAN_SCORE:
            self.ban(key, reason)

    def ban(self, key: str, reason: str) -> None:
        until = self.clock() + BAN_SECONDS
        self.bans[key] = until
        self.store.put(P_BAN + _key_bytes(key), int(until).to_bytes(8, "big"))
        self.drop(key, "banned")
        self.addresses.pop(key, None)
        log.warning("peer %s banned for 24 hours: %s", key, reason)

    def is_banned(self, key: str) -> bool:
        until = self.bans.get(key.rstrip("/"))
        if until is None:
            return False
        if until < self.clock():
            del self.bans[key.rstrip("/")]
            self.store.delete(P_BAN + _key_bytes(key.rstrip("/")))
            return False
        return True

    def _load_bans(self) -> None:
        now = self.clock()
        for key, value in self.store.iterate(P_BAN):
            until = int.from_bytes(value, "big")
            if until > now:
                self.bans[key[1:].decode("utf-8", "replace")] = until

    def rate_ok(self, key: str) -> bool:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) > 10_000:
                self.buckets.clear()
            bucket = self.buckets[key] = TokenBucket()
        return bucket.take()

    def describe(self) -> dict[str, Any]:
        return {
            "connected": [
                {
                    "url": p.url,
                    "direction": "outbound" if p.outbound else "inbound",
                    "height": p.height,
                    "connected_at": int(p.connected_at),
                    "score": self.scores.get(p.url, 0),
                }
                for p in self.peers.values()
            ],
            "banned": [{"peer": k, "until": int(v)} for k, v in self.bans.items()],
        }

    def synced(self) -> bool:
        ours = self.chain.tip.chainwork
        return all(p.work <= ours for p in self.peers.values())
