"""The peer set: connections, handshakes, dialling and pinging (SPEC 3.4).

Job: talk HTTP to other nodes (``Transport``: one client session whose pool holds at most
``MAX_CONNECTIONS_PER_PEER`` connections to any one peer and ``MAX_CLIENT_CONNECTIONS`` in all,
every request with its own timeout), know who is connected (``PeerSet.peers``, keyed by
listening URL), handshake (network magic, genesis, version, best height and work, URL, a nonce
that detects a connection to ourselves; a peer's new nonce is a new session of it: its old
record is dropped), keep up to ``max_outbound`` outbound peers from the
address book (``addrman``) with backoff, and ping every peer each ``PING_INTERVAL`` (dropping
the silent ones).

A peer's claimed work (from its handshake) is only a hint: ``Peer.shown`` is the most work its
connected headers or blocks proved, and a peer that failed to back its claim (an empty, late or
unconnected answer, or blocks it would not send) is not believed ahead of us for
``CLAIM_RETRY`` seconds (``Peer.ahead_of``).

State: ``peers``, on the event loop thread. Leaves to others: what to send (``relay``,
``sync``), scores and bans (``banman``: it is told about malformed answers, and the peer set is
told about bans through ``drop_key``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from consensus import NetworkParams
from node.chainstate import BlockIndexEntry
from node.metrics import NodeMetrics
from node.p2p import messages as m
from node.p2p import policy
from node.p2p.addrman import AddrMan
from node.p2p.banman import BanMan

log = logging.getLogger(__name__)


class PeerError(Exception):
    """A peer could not be reached or answered wrongly; ``str`` says it in words."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def in_words(err: BaseException) -> str:
    """What went wrong with a request, for an operator (not aiohttp's exception text)."""
    if isinstance(err, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "it did not answer in time"
    if isinstance(err, aiohttp.ClientConnectorError):
        return "the connection was refused or could not be made"
    if isinstance(err, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "it closed the connection"
    if isinstance(err, aiohttp.ClientPayloadError):
        return "its answer was cut short"
    if isinstance(err, ValueError | aiohttp.InvalidURL):
        return "its address cannot be used"
    if isinstance(err, aiohttp.ClientError):
        return "the request failed"
    return "the network failed"


@dataclass
class Peer:
    url: str
    key: str
    """Its identity for scores and bans (``banman``)."""
    outbound: bool
    height: int = 0
    claimed: int = 0
    """The work its last handshake claimed."""
    shown: int = 0
    """The most work its connected headers or blocks proved."""
    failed_until: float = 0.0
    """Until then (monotonic seconds) its claim is not believed: it failed to back it."""
    version: int = 0
    connected_at: float = 0.0
    known: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    nonce: bytes = b""
    """The nonce of its last handshake: a new one means a new session (it restarted, or
    reverted its state), so what we recorded of it (``known``) is forgotten."""

    @property
    def work(self) -> int:
        """The most work it claimed or showed."""
        return max(self.claimed, self.shown)

    def ahead_of(self, work: int) -> bool:
        """Believed to have more than ``work``: it claims so and has not failed to back a
        claim within the last ``CLAIM_RETRY`` seconds."""
        return self.work > work and time.monotonic() >= self.failed_until

    def knows(self, h: bytes) -> bool:
        return h in self.known

    def learn(self, h: bytes) -> None:
        self.known[h] = None
        if len(self.known) > policy.KNOWN_LIMIT:
            self.known.popitem(last=False)

    def showed(self, work: int) -> None:
        self.shown = max(self.shown, work)

    def stalled(self) -> bool:
        """It failed a claim or a download recently (within ``CLAIM_RETRY``)."""
        return time.monotonic() < self.failed_until

    def failed_claim(self) -> None:
        """It had nothing (or nothing it would send) to back its claimed work."""
        self.failed_until = time.monotonic() + policy.CLAIM_RETRY

    def trust_again(self) -> None:
        self.failed_until = 0.0


class Transport:
    """HTTP requests to peers: msgpack in and out, bounded pool, a timeout each."""

    def __init__(
        self, own_url: str, on_malformed: Callable[[str, str], None] | None = None
    ) -> None:
        self.own_url = own_url
        self.on_malformed = on_malformed
        self._session: aiohttp.ClientSession | None = None
        self.refused: set[str] = set()
        """Peer URLs this node is partitioned from (``PeerManager.partition``): no request is
        sent to them."""

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=policy.MAX_CLIENT_CONNECTIONS,
            limit_per_host=policy.MAX_CONNECTIONS_PER_PEER,
            keepalive_timeout=policy.CLIENT_KEEPALIVE,
        )
        timeout = aiohttp.ClientTimeout(total=60, connect=policy.CONNECT_TIMEOUT)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(
        self, url: str, route: str, message: dict[str, Any], answer: str, timeout: float
    ) -> Any:
        """POST ``message`` to ``url``'s ``/p2p/<route>``; the answer parsed as ``answer``."""
        if self._session is None:
            raise PeerError("not started")
        if url in self.refused:
            raise PeerError(f"{route}: partitioned from {url}")
        headers = {"Content-Type": "application/msgpack", "X-Tally-Peer": self.own_url}
        try:
            async with self._session.post(
                f"{url}/p2p/{route}",
                data=m.encode(message),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout, connect=policy.CONNECT_TIMEOUT),
            ) as response:
                body = await response.read()
                if response.status != 200:
                    raise PeerError(f"{route} refused with HTTP {response.status}", response.status)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
            # ValueError: a URL aiohttp cannot use (bad port, bad host): the peer is unreachable
            log.debug("%s to %s: %s %s", route, url, type(err).__name__, err)
            raise PeerError(f"{route}: {in_words(err)}") from None
        try:
            return m.parse(answer, body)
        except m.ProtocolError as err:
            if self.on_malformed is not None:
                self.on_malformed(url, f"malformed {route} answer: {err}")
            raise PeerError(f"{route}: a malformed answer") from None


class PeerSet:
    """The connected peers of one node, and the loops that keep them."""

    def __init__(
        self,
        params: NetworkParams,
        tip: Callable[[], BlockIndexEntry],
        metrics: NodeMetrics,
        transport: Transport,
        addrman: AddrMan,
        banman: BanMan,
        *,
        own_url: str,
        max_outbound: int = policy.MAX_OUTBOUND,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.tip = tip
        """The tip the state thread last published (read here, on the event loop)."""
        self.metrics = metrics
        self.transport = transport
        self.addrman = addrman
        self.banman = banman
        self.own_url = own_url.rstrip("/")
        self.max_outbound = max_outbound
        self.clock = clock
        self.nonce = os.urandom(8)
        self.peers: dict[str, Peer] = {}
        self._held: dict[str, tuple[bytes, float]] = {}
        """Peers refused after a revert (``hold``): URL -> (their nonce then, until when,
        monotonic). At most the peers connected then."""
        self._distrusted: dict[str, float] = {}
        """``Peer.failed_until`` of peers that left, by URL: reconnecting does not clear it."""
        self.on_joined: Callable[[Peer], None] = lambda peer: None
        self.on_left: Callable[[Peer], None] = lambda peer: None
        self.on_work: Callable[[Peer], None] = lambda peer: None

    # --- handshakes -------------------------------------------------------------------------------

    def handshake_message(self) -> dict[str, Any]:
        tip = self.tip()
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
        """Refuse another network, another genesis, an older protocol, or ourselves."""
        if message["magic"] != self.params.magic:
            raise m.ProtocolError("another network (magic differs)", "wrong-network")
        if message["genesis"] != self.params.genesis_hash:
            raise m.ProtocolError("another genesis block", "wrong-genesis")
        if message["version"] < m.MIN_PEER_VERSION:
            raise m.ProtocolError(
                f"protocol version {message['version']} is older than {m.MIN_PEER_VERSION}: "
                "that node follows an earlier block rule (merkle roots over txids); upgrade it",
                "old-version",
            )
        if message["nonce"] == self.nonce:
            raise m.ProtocolError("this is a connection to myself", "self-connection")

    def register(self, message: dict[str, Any], outbound: bool, key: str | None = None) -> Peer:
        """Record a successful handshake with the peer listening at ``message["url"]``."""
        url = message["url"].rstrip("/")
        peer = self.peers.get(url)
        nonce = bytes(message.get("nonce", b""))
        if peer is not None and peer.nonce and nonce != peer.nonce:
            self.drop(url, "it handshook with a new nonce (restarted or reverted)")
            peer = None
        if peer is None:
            peer = Peer(
                url,
                key if key is not None else self.banman.key_for_url(url),
                outbound,
                connected_at=self.clock(),
            )
            peer.failed_until = self._distrusted.pop(url, 0.0)
            self.peers[url] = peer
            log.info(
                "peer %s joined (%s, height %d)",
                url,
                "outbound" if outbound else "inbound",
                message["height"],
            )
            self.on_joined(peer)
        peer.nonce = nonce
        peer.height = message["height"]
        peer.claimed = int.from_bytes(message["work"], "big")
        peer.version = message["version"]
        self.addrman.succeeded(url)
        self.metrics.peers.set(len(self.peers))
        if peer.ahead_of(self.tip().chainwork):
            self.on_work(peer)
        return peer

    def failed(self, peer: Peer) -> None:
        """``peer`` failed to back its claim or stalled a download: not believed ahead, nor
        asked for blocks, for ``CLAIM_RETRY`` seconds, even if it reconnects meanwhile."""
        peer.failed_claim()
        current = self.peers.get(peer.url)
        if current is not None:
            current.failed_until = max(current.failed_until, peer.failed_until)
        elif len(self._distrusted) < policy.MAX_ADDRESSES:
            self._distrusted[peer.url] = peer.failed_until

    def drop(self, url: str, reason: str) -> None:
        peer = self.peers.pop(url, None)
        if peer is not None:
            now = time.monotonic()
            if peer.failed_until > now:
                self._distrusted[url] = peer.failed_until
                if len(self._distrusted) > policy.MAX_ADDRESSES:
                    self._distrusted = {u: t for u, t in self._distrusted.items() if t > now}
                    while len(self._distrusted) > policy.MAX_ADDRESSES:
                        del self._distrusted[next(iter(self._distrusted))]
            log.info("peer %s left: %s", url, reason)
            self.metrics.peers.set(len(self.peers))
            self.on_left(peer)

    def hold(self, peers: list[Peer], seconds: float) -> None:
        """Refuse these peers (dropped already) for ``seconds``, unless one comes back with a
        new nonce: a session of theirs from before our revert (``policy.REVERT_HOLD``)."""
        now = time.monotonic()
        self._held = {u: h for u, h in self._held.items() if h[1] > now}  # bounded: the expired go
        for peer in peers:
            self._held[peer.url] = (peer.nonce, now + seconds)

    def held_back(self, url: str | None, nonce: bytes | None = None) -> bool:
        """Whether ``url`` is refused by a hold: its hold is running and ``nonce`` (of its
        handshake; None for any other request) is the nonce it had. A new nonce lifts it."""
        if url is None or url not in self._held:
            return False
        old, until = self._held[url]
        if time.monotonic() >= until or (nonce is not None and nonce != old):
            del self._held[url]
            return False
        return True

    def release_holds(self) -> list[str]:
        """Lift every hold; the URLs that were held."""
        urls = list(self._held)
        self._held.clear()
        return urls

    def new_session(self) -> None:
        """Handshake with a new nonce from now on: every peer then takes us for a new peer and
        forgets what it recorded of us (what we have, ``Peer.known``), and hears our whole
        mempool again (after a revert, or a healed partition)."""
        self.nonce = os.urandom(8)

    def forget_distrust(self, urls: list[str] | None = None) -> None:
        """Believe the claims of ``urls`` (all peers if None) again: what they failed to back
        was judged against a chain or a link that is gone (a revert, a healed partition)."""
        if urls is None:
            self._distrusted.clear()
        else:
            for url in urls:
                self._distrusted.pop(url, None)

    def drop_key(self, key: str, reason: str) -> None:
        """Drop every peer known by ``key`` (all peers at a banned IP, say)."""
        for peer in [p for p in self.peers.values() if p.key == key or p.url == key]:
            self.drop(peer.url, reason)
            self.addrman.forget(peer.url)

    def is_banned_url(self, url: str) -> bool:
        return self.banman.is_banned(self.banman.key_for_url(url))

    async def connect(self, url: str) -> Peer | None:
        """Handshake with ``url``; the peer, or None if refused or unreachable."""
        url = url.rstrip("/")
        if self.is_banned_url(url) or url in self.transport.refused:
            return None  # refused by us: no failure to back off from
        try:
            answer = await self.transport.post(
                url, "handshake", self.handshake_message(), "handshake", policy.HANDSHAKE_TIMEOUT
            )
            self.check_handshake(answer)
            if self.held_back(url, answer["nonce"]):
                return None  # the session we reverted away from: not a failure, try later
        except m.ProtocolError as err:
            if err.code == "self-connection":
                log.info("%s is this node itself: not connecting", url)
                self.addrman.forget(url)
            else:
                log.warning("peer %s refused: %s", url, err)
                self.addrman.failed(url)
            return None
        except PeerError as err:
            log.debug("cannot reach %s: %s", url, err)
            self.addrman.failed(url)
            return None
        if answer["url"].rstrip("/") != url:
            self.addrman.learn([answer["url"]], self.peers)
        peer = self.register({**answer, "url": url}, outbound=True)
        asyncio.get_running_loop().create_task(self._exchange_addresses(peer))
        return peer

    async def _exchange_addresses(self, peer: Peer) -> None:
        try:
            answer = await self.transport.post(
                peer.url, "addr", {"urls": self.known_urls()}, "addr", policy.ADDR_TIMEOUT
            )
        except PeerError:
            return
        self.addrman.learn(answer["urls"], self.peers)

    def known_urls(self) -> list[str]:
        urls = [self.own_url, *self.peers]
        return urls[: policy.MAX_ADDRS]

    # --- background loops -------------------------------------------------------------------------

    async def connector(self) -> None:
        while True:
            try:
                await self._connect_some()
            except Exception:  # a background loop must outlive any one peer's oddity
                log.exception("connecting to peers failed")
            await asyncio.sleep(policy.CONNECT_INTERVAL)

    async def _connect_some(self) -> None:
        """Dial known addresses until there are enough outbound peers."""
        outbound = sum(1 for p in self.peers.values() if p.outbound)
        for url in self.addrman.due():
            if outbound >= self.max_outbound:
                break
            if url in self.peers or self.is_banned_url(url):
                continue
            if await self.connect(url) is not None:
                outbound += 1

    async def pinger(self) -> None:
        while True:
            await asyncio.sleep(policy.PING_INTERVAL)
            await asyncio.gather(
                *(self._ping(peer) for peer in list(self.peers.values())), return_exceptions=True
            )

    async def _ping(self, peer: Peer) -> None:
        try:
            answer = await self.transport.post(
                peer.url,
                "handshake",
                self.handshake_message(),
                "handshake",
                policy.HANDSHAKE_TIMEOUT,
            )
            self.check_handshake(answer)
            if peer.url in self.peers:
                self.register({**answer, "url": peer.url}, peer.outbound, peer.key)
        except (PeerError, m.ProtocolError) as err:
            self.drop(peer.url, f"no answer to a ping ({err})")
            self.addrman.failed(peer.url)
        except Exception:  # never let one peer stop the pinging of the others
            log.exception("pinging %s failed", peer.url)
            self.drop(peer.url, "ping failed")
