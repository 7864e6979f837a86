"""The peer manager: the P2P layer's composition (SPEC 3.4), as Core's ``PeerManager`` wires
``net_processing``.

Peers speak HTTP to each other: every message is a POST to the other node's ``/p2p/`` routes
(``node.p2p.routes``), carrying the sender's listening URL in the ``X-Tally-Peer`` header. A peer
is *connected* once a handshake succeeded in either direction.

The jobs, one module each (each module's docstring says what it owns):

- ``addrman``: the bounded address book, dial backoff;
- ``banman``: who a peer is (its IP, or its URL under ``--whitelist``), scores, bans (bounded,
  pruned, persisted), rate limits;
- ``peers``: the transport (bounded client pool, a timeout per request), handshakes, the peer
  set, the connector and the pinger;
- ``txrequest`` + ``relay``: batched announcements, in-flight tracking per announcer with
  timeouts and retry from the next announcer, ``getdata`` in both directions;
- ``sync``: headers-first sync, block download with stall detection;
- ``policy``: every limit and interval both sides rely on.

Two devnet tools live here (SPEC 6): ``partition(urls)`` drops the peers at those URLs and
refuses them in both directions (the transport sends them nothing, the routes answer their
requests 403 ``partitioned``) until ``heal()``, which lifts every refusal and dials again those
of them the address book knows. ``reconnect()``, after a revert, drops every peer, so that no
record of what a peer knows (``Peer.known``), no request in flight and no distrust outlives the
state it was about, and holds them back (refused the same way) until they come back with a new
nonce (reverted too), for at most ``policy.REVERT_HOLD`` or until ``heal``: a devnet reverts
its nodes one after another, and the first must not take back from the others what the revert
undid. A revert or a heal also draws a new nonce (``PeerSet.new_session``): a peer seeing a
known URL with a new nonce drops its old record of us, so it neither skips announcing to us
what we lost nor believes we still have it. A request is matched to a URL by its believed
``X-Tally-Peer`` header (``BanMan.identify``): on a loopback devnet every node shares
127.0.0.1, so the address alone cannot tell them apart. A partition is a tool among
cooperating nodes, not a defence.

This class builds them with their dependencies, wires their callbacks, runs their loops, and
offers the routes and the service one small surface. Chain and mempool are reached only through
the service's state thread (``call``); their events arrive on that thread and are handed to the
event loop with ``call_soon_threadsafe``. Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from client.models import MAX_PARTITIONED
from consensus import NetworkParams
from node.chainstate import BlockConnected, BlockIndexEntry, ChainEvent, Chainstate
from node.mempool import Mempool, MempoolEntry
from node.metrics import NodeMetrics
from node.p2p import policy
from node.p2p.addrman import MAX_ADDRESSES, AddrMan, usable_url
from node.p2p.banman import BanMan, Network, RateLimiter
from node.p2p.peers import Peer, PeerError, PeerSet, Transport
from node.p2p.relay import Relay
from node.p2p.sync import Sync
from node.storage import KeyValueStore

__all__ = ["MAX_ADDRESSES", "PeerError", "PeerManager", "usable_url"]

log = logging.getLogger(__name__)

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
        tip: Callable[[], BlockIndexEntry],
        persist: Callable[[Callable[[], None]], None],
        own_url: str,
        configured: list[str],
        whitelist: tuple[Network, ...] = (),
        max_outbound: int = policy.MAX_OUTBOUND,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.chain = chainstate
        self.mempool = mempool
        self.metrics = metrics
        self.call = call
        self.own_url = own_url.rstrip("/")
        self.tip = tip
        """The tip the state thread last published: what the event loop reads (``chain`` is
        touched only on the state thread, through ``call``)."""
        self.banman = BanMan(
            store,
            persist=persist,
            whitelist=whitelist,
            clock=clock,
            on_banned=self._on_banned,
            count_points=metrics.p2p_misbehaviour.inc,
        )
        self.rates = RateLimiter()
        self.addrman = AddrMan(self.own_url, configured)
        self.transport = Transport(self.own_url, self._malformed_answer)
        self.peerset = PeerSet(
            params,
            tip,
            metrics,
            self.transport,
            self.addrman,
            self.banman,
            own_url=self.own_url,
            max_outbound=max_outbound,
            clock=clock,
        )
        self.relay = Relay(
            params, chainstate, mempool, metrics, call, self.peerset, self.transport, self.banman
        )
        self.sync = Sync(
            params, chainstate, call, self.peerset, self.transport, self.banman, self.relay, tip=tip
        )
        self.peerset.on_joined = self._joined
        self.peerset.on_left = self.relay.forget_peer
        self.peerset.on_work = lambda peer: self.sync.want()
        self.relay.on_orphan = self._orphan
        self.relay.sync_downloading = self.sync.downloading.__contains__
        self.relay.on_block_shown = lambda peer, work: peer.showed(work)
        self.relay.syncing = lambda: self.sync.running or bool(self.sync.ahead())
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- the surface the routes and the service use ---------------------------------------------

    @property
    def peers(self) -> dict[str, Peer]:
        return self.peerset.peers

    @property
    def nonce(self) -> bytes:
        return self.peerset.nonce

    @property
    def configured(self) -> set[str]:
        return self.addrman.configured

    def handshake_message(self) -> dict[str, Any]:
        return self.peerset.handshake_message()

    def check_handshake(self, message: dict[str, Any]) -> None:
        self.peerset.check_handshake(message)

    def register(self, message: dict[str, Any], outbound: bool, key: str | None = None) -> Peer:
        return self.peerset.register(message, outbound, key)

    def learn_urls(self, urls: list[str]) -> None:
        self.addrman.learn(urls, self.peers)

    def known_urls(self) -> list[str]:
        return self.peerset.known_urls()

    async def connect(self, url: str) -> Peer | None:
        return await self.peerset.connect(url)

    def add_peer(self, url: str) -> None:
        self.addrman.add_configured(url)

    def identify(self, remote: str, claimed_url: str) -> tuple[str, str | None]:
        return self.banman.identify(remote, claimed_url)

    def connected_peer(self, key: str, url: str | None) -> Peer | None:
        """The connected peer a request comes from, if it handshook: its believed URL is a
        peer's whose key is the request's."""
        if url is None:
            return None
        peer = self.peers.get(url)
        return peer if peer is not None and peer.key == key else None

    def misbehaving(self, key: str, points: int, reason: str) -> None:
        self.banman.misbehaving(key, points, reason)

    def is_banned(self, key: str) -> bool:
        return self.banman.is_banned(key)

    def rate_ok(self, key: str) -> bool:
        return self.rates.take(key)

    async def on_inv(self, peer: Peer, kind: str, hashes: list[bytes]) -> None:
        await self.relay.on_inv(peer, kind, hashes)

    async def serve_getdata(self, kind: str, hashes: list[bytes]) -> list[bytes]:
        return await self.relay.serve_getdata(kind, hashes)

    def describe(self) -> dict[str, Any]:
        return {
            "connected": [
                {
                    "url": p.url,
                    "direction": "outbound" if p.outbound else "inbound",
                    "height": p.height,
                    "connected_at": int(p.connected_at),
                    "score": self.banman.score(p.key),
                }
                for p in self.peers.values()
            ],
            "banned": [{"peer": k, "until": int(v)} for k, v in self.banman.bans.items()],
            "partitioned": sorted(self.transport.refused),
        }

    def synced(self) -> bool:
        return not self.sync.ahead()

    # --- devnet tools: partitions and reconnecting ------------------------------------------------

    def is_partitioned(self, url: str | None) -> bool:
        return url is not None and url in self.transport.refused

    def held_back(self, url: str | None, nonce: bytes | None = None) -> bool:
        """Refused for now after a revert (``PeerSet.held_back``)."""
        return self.peerset.held_back(url, nonce)

    def partition(self, urls: list[str]) -> list[str]:
        """Refuse ``urls`` (added to those refused already), dropping their connections; every
        URL refused now. ``ValueError`` for an unusable URL or past ``MAX_PARTITIONED``."""
        wanted = [u.rstrip("/") for u in urls]
        for url in wanted:
            if not usable_url(url):
                raise ValueError(f"{url!r} is not a peer URL")
        refused = self.transport.refused
        if len(refused | set(wanted)) > MAX_PARTITIONED:
            raise ValueError(f"at most {MAX_PARTITIONED} peers can be partitioned at once")
        refused.update(wanted)
        for url in wanted:
            if url in self.peers:
                self.peerset.drop(url, "partitioned")
        log.info("partitioned from %s", ", ".join(sorted(wanted)))
        return sorted(refused)

    async def heal(self) -> tuple[list[str], list[str]]:
        """Lift every refusal and dial at once those of the peers the address book knows; the
        URLs healed, and those connected again."""
        healed = sorted(self.transport.refused | set(self.peerset.release_holds()))
        self.transport.refused.clear()
        self.peerset.forget_distrust(healed)
        if healed:
            self.peerset.new_session()  # they forget what they believed we had meanwhile
        known = [u for u in healed if u in self.addrman]
        connected = await self._dial(known)
        if healed:
            log.info("healed: %s (connected again: %d)", ", ".join(healed), len(connected))
        return healed, connected

    async def reconnect(self, reason: str) -> list[str]:
        """After a revert: drop every peer and hold them (``policy.REVERT_HOLD``) until they
        handshake with a new nonce (they reverted too); dial them (those back already are
        connected, the others are tried again by the connector); the URLs connected."""
        peers = list(self.peers.values())
        urls = [p.url for p in peers]
        for url in urls:
            self.peerset.drop(url, reason)
        self.peerset.hold(peers, policy.REVERT_HOLD)
        self.peerset.forget_distrust()
        self.peerset.new_session()  # and they forget theirs of us (what we had before)
        self.banman.persist_all()  # the store's ban records are the snapshot's: bans stay
        return await self._dial([u for u in urls if u not in self.transport.refused])

    async def _dial(self, urls: list[str]) -> list[str]:
        for url in urls:
            dial = self.addrman.get(url)
            dial.failures, dial.next_attempt = 0, 0.0
        peers = await asyncio.gather(*(self.connect(u) for u in urls))
        return [u for u, p in zip(urls, peers, strict=True) if p is not None]

    # --- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.transport.start()
        self._tasks = [
            asyncio.create_task(self.peerset.connector(), name="p2p-connector"),
            asyncio.create_task(self.peerset.pinger(), name="p2p-pinger"),
            asyncio.create_task(self.sync.syncer(), name="p2p-syncer"),
            asyncio.create_task(self.relay.announcer(), name="p2p-announcer"),
            asyncio.create_task(self.relay.requester(), name="p2p-requester"),
            asyncio.create_task(self._sweeper(), name="p2p-ban-sweeper"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.relay.stop()
        await self.transport.close()

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.banman.sweep()

    # --- events from the chain and the mempool (state thread) -----------------------------------

    def on_chain_event(self, event: ChainEvent) -> None:
        if isinstance(event, BlockConnected) and self._loop is not None:
            block_hash = event.block.hash()
            self._loop.call_soon_threadsafe(self.relay.announce, "block", block_hash)

    def on_mempool_accept(self, entry: MempoolEntry) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.relay.announce, "tx", entry.txid)

    # --- wiring ---------------------------------------------------------------------------------

    def _joined(self, peer: Peer) -> None:
        self.relay.announce_mempool(peer)

    def _orphan(self, peer: Peer) -> None:
        peer.trust_again()  # it sent a block we cannot connect: its headers are worth asking
        ours = self.tip().chainwork
        if peer.work <= ours:
            peer.claimed = ours + 1  # it has at least one block more
        self.sync.want()

    def _on_banned(self, key: str, reason: str) -> None:
        self.peerset.drop_key(key, "banned")

    def _malformed_answer(self, url: str, reason: str) -> None:
        self.banman.misbehaving(self.banman.key_for_url(url), policy.SCORE_MALFORMED, reason)
