"""The node's composition root and its commands: everything wired together, with one owner.

``NodeService`` builds the pieces with their dependencies injected (store, signature cache,
chainstate, mempool, fee estimator, miner and its ``AutoMiner``, the devnet ``Toolkit``, the
event stream's hub), subscribes them to each other's events, and runs the HTTP server. It offers
the commands the API needs (submit a transaction or a block, generate, mining on/off, invalidate
and reconsider a block, stop, and the toolkit's), as ``node.interfaces.NodeCommands`` describes
them: the API imports that, never this module, and this module builds the app (``make_app``)
with the read models (``node.api.views.Views``) and P2P's routes.

Time: the chainstate, the mempool and the miner share one ``NodeClock`` (``node.clock``), the wall
clock plus the offset the devnet's ``POST /admin/time`` sets (loaded from the data directory on
regtest); P2P keeps the wall clock.

Threading: chainstate and mempool are touched only on one "state" thread (``call``), so the
event loop never runs validation and never sees them half-updated; libsecp256k1 releases the GIL,
so signature checks there leave the loop responsive. Proof of work runs in worker processes.
API reads go through ``read``: at most ``READS_IN_FLIGHT`` of them are queued on (or running on)
the state thread at once, the rest wait on the event loop, so a block or transaction from a peer
never waits behind more than that many reads, each of which costs what it returns (see
``node.api.views``). After every call the state thread publishes a ``NodeStatus`` (tip, mempool
count and bytes), an immutable object the event loop reads without a trip to the state thread:
``/info`` answers at once even while a block is validated (docs/DECISIONS.md, "Reads").

The devnet toolkit's snapshots (regtest only, SPEC 6): ``take_snapshot`` copies the store on the
state thread (``node.snapshots``); ``revert`` pauses mining, replaces the store's contents with
a snapshot's and rebuilds, still on the state thread and in the same objects, what start-up
builds from the store (chainstate, mempool, fee estimator: ``reload``/``reset``, so every
subscriber stays wired), then resumes mining and makes P2P drop and redial every peer
(``PeerManager.reconnect``). ``partition``/``heal`` are P2P's.

Start-up writes ``<datadir>/.cookie`` (``__cookie__:<token>``, mode 0600, a new token every
start, as bitcoind does); the admin routes require that token. Beside it, ``<datadir>/.url``
holds the API's URL, so client commands need only the data directory. Stop removes both.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from consensus import (
    AddressError,
    Block,
    Transaction,
    ValidationError,
    decode_address,
)
from node.api.app import make_app
from node.api.guards import MAX_HEADER_BYTES, PARSER_MAX_LINE
from node.api.parser_errors import ApiRequestHandler
from node.api.views import Views
from node.chainstate import (
    AcceptResult,
    BlockConnected,
    BlockIndexEntry,
    ChainEvent,
    Chainstate,
    GenesisBlockError,
)
from node.clock import NodeClock
from node.config import Settings
from node.events import EventHub
from node.fees import FeeEstimator
from node.interfaces import VERSION, CommandError, NodeStatus
from node.mempool import AcceptResult as TxAcceptResult
from node.mempool import ChainView, Mempool
from node.metrics import NodeMetrics
from node.miner.automine import AutoMiner
from node.miner.miner import Miner
from node.miner.pow import PowSearcher
from node.p2p import policy as p2p_policy
from node.p2p.banman import parse_networks
from node.p2p.listener import ConnectionGuard, GuardedSite
from node.p2p.manager import PeerManager
from node.p2p.routes import add_p2p_routes
from node.sigcache import SignatureCache
from node.sigpool import SignaturePool
from node.snapshots import SnapshotArea, SnapshotInfo
from node.storage import KeyValueStore, LevelDBStore, StorageError
from node.toolkit import Toolkit

log = logging.getLogger(__name__)

URL_FILE = ".url"
T = TypeVar("T")

READS_IN_FLIGHT = 4
"""API reads queued on (or running on) the state thread at once; more wait their turn on the
event loop. What a command (a block, a transaction) may find ahead of it, at most."""


def write_cookie(datadir: Path, token: str) -> Path:
    """Write ``__cookie__:<token>`` to ``<datadir>/.cookie`` with mode 0600."""
    path = datadir / ".cookie"
    tmp = datadir / ".cookie.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"__cookie__:{token}\n".encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def write_url(datadir: Path, url: str) -> Path:
    """Write the API's URL (``http://host:port``, one line) to ``<datadir>/.url``, atomically,
    for the client commands and tools that know only the data directory (SPEC 3.7)."""
    path = datadir / URL_FILE
    tmp = datadir / (URL_FILE + ".tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, path)
    return path


def read_url(datadir: Path) -> str | None:
    """The URL in ``<datadir>/.url``, or None if there is none (no node running there)."""
    try:
        text = (datadir / URL_FILE).read_text().strip()
    except OSError:
        return None
    return text if text.startswith(("http://", "https://")) else None


def read_cookie(datadir: Path) -> str:
    """The token in ``<datadir>/.cookie``."""
    return (datadir / ".cookie").read_text().strip().split(":", 1)[-1]


class NodeService:
    """One running node."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        open_store: Callable[[Path], KeyValueStore] = LevelDBStore,
    ) -> None:
        self.settings = settings
        self._open_store = open_store
        self.params = settings.params
        self.clock = NodeClock(clock)
        """The chain's clock (chainstate, mempool, miner); ``clock`` itself is P2P's."""
        self.metrics = NodeMetrics()
        self._tx_seconds = self.metrics.validation_seconds.labels("tx")
        self._block_seconds = self.metrics.validation_seconds.labels("block")
        self.token = secrets.token_hex(32)
        self.stopped = asyncio.Event()
        self.failure: str | None = None
        self._state = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state")
        self.sigpool = SignaturePool()  # a block's signatures, on every core (node.sigpool)
        self._read_slots = asyncio.Semaphore(READS_IN_FLIGHT)
        self.status: NodeStatus | None = None
        """Published by the state thread after every call (``None`` before the state opens)."""
        self._runner: web.AppRunner | None = None
        self._guard: ConnectionGuard | None = None
        self._searcher: PowSearcher | None = None
        self._reverting = asyncio.Lock()
        self._warmup: asyncio.Task[None] | None = None
        self.store: KeyValueStore
        self.chainstate: Chainstate
        self.mempool: Mempool
        self.fees: FeeEstimator
        self.miner: Miner
        self.automine: AutoMiner
        self.toolkit: Toolkit
        self.views: Views
        self.p2p: PeerManager
        self.events: EventHub
        """The event stream (``node.events``): fed by the state thread, served on the loop."""
        self.snapshots: SnapshotArea

    # --- life cycle -----------------------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the state thread.

        A storage failure (disk full, I/O error) stops the node: the write that failed was not
        applied (batches are atomic), and going on could only widen the gap between what is in
        memory and what is on disk. The error is re-raised to the caller as well.
        """
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._state, self._run_and_publish, fn, *args
            )
        except StorageError as err:
            self.fail(f"storage failed: {err}")
            raise

    def submit(self, fn: Callable[[], None]) -> None:
        """Event loop: run ``fn()`` on the state thread after the calls already queued, without
        waiting for it (a write the loop decided, such as a ban record). A storage failure stops
        the node, as in ``call``; any other error is logged."""
        future = asyncio.get_running_loop().run_in_executor(self._state, fn)

        def done(f: asyncio.Future[None]) -> None:
            if f.cancelled():
                return
            err = f.exception()
            if isinstance(err, StorageError):
                self.fail(f"storage failed: {err}")
            elif err is not None:
                log.error("state-thread write failed: %s", err, exc_info=err)

        future.add_done_callback(done)

    def published_tip(self) -> BlockIndexEntry:
        """The tip as the state thread last published it (event loop; after ``start``)."""
        status = self.status
        if status is None:
            raise RuntimeError("the state is not open yet")
        return status.tip

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the query ``fn(*args)`` on the state thread, behind at most
        ``READS_IN_FLIGHT - 1`` other reads (the API's reads come through here)."""
        async with self._read_slots:
            return await self.call(fn, *args)

    def _run_and_publish(self, fn: Callable[..., T], *args: Any) -> T:
        """On the state thread: run ``fn``, then publish the status it left."""
        try:
            return fn(*args)
        finally:
            if hasattr(self, "mempool"):
                self.status = NodeStatus(
                    self.chainstate.tip, len(self.mempool), self.mempool.total_bytes
                )

    def fail(self, reason: str) -> None:
        """Stop the node because it cannot go on safely; the exit status will be 1."""
        if self.failure is None:
            self.failure = reason
            log.critical("%s; stopping the node (nothing half-written: restart once fixed)", reason)
        self.stopped.set()

    def _open_state(self) -> None:
        datadir = self.settings.datadir
        datadir.mkdir(parents=True, exist_ok=True)
        if self.params.allow_generate:  # the devnet's clock shift: regtest only
            self.clock.load(datadir)
        self.store = self._open_store(datadir / "chainstate")
        sigcache = SignatureCache(pool=self.sigpool)
        self.chainstate = Chainstate(
            self.store,
            self.params,
            clock=self.clock,
            verify=sigcache.verify,
            batch_verify=sigcache.verify_batch,
        )
        chain = self.chainstate
        view = ChainView.of(chain)
        self.mempool = Mempool(
            view, self.params, verify=sigcache.verify, clock=self.clock, store=self.store
        )
        self.fees = FeeEstimator()
        chain.subscribe(self._count_block)
        chain.subscribe(self.events.on_chain_event)  # before the mempool: a block, then its txs
        chain.subscribe(self.mempool.on_chain_event)
        chain.subscribe(self.fees.on_chain_event)
        self.mempool.load()
        self.mempool.watch(self.events)  # from now on: what load restored is no event
        self.views = Views(chain, self.mempool)
        self.snapshots = SnapshotArea(datadir / "snapshots")

    async def start(self) -> None:
        """Open the database, start serving, write the cookie, start mining if configured."""
        s = self.settings
        log.info("starting Tally %s on the %s network, data in %s", VERSION, s.network, s.datadir)
        self.events = EventHub(asyncio.get_running_loop(), self.params)
        await self.call(self._open_state)
        self._searcher = PowSearcher()
        self._warmup = self._background(
            self._searcher.start(), "starting the proof-of-work workers"
        )
        self.miner = Miner(
            self.chainstate, self.mempool, self._searcher, clock=self.clock, call=self.call
        )
        self.automine = AutoMiner(self.miner, self._background, self.call)
        self.toolkit = Toolkit(
            chainstate=self.chainstate,
            mempool=self.mempool,
            clock=self.clock,
            automine=self.automine,
            searcher=self._searcher,
            call=self.call,
            mine_to=s.mine_to,
        )
        self.p2p = await self.call(self._make_p2p)
        await self.call(self._subscribe_miner_and_p2p)
        p2p = self.p2p
        app = make_app(self, self.views, [lambda a: add_p2p_routes(a, p2p)])
        self._guard = ConnectionGuard(self.p2p.banman.whitelisted)
        app.middlewares.insert(0, self._guard.middleware)
        app.middlewares.append(self._guard.cut_middleware)
        self._runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=p2p_policy.IDLE_TIMEOUT,
            max_line_size=PARSER_MAX_LINE,  # bounded; the guards answer 414 past MAX_URL_BYTES
            max_field_size=MAX_HEADER_BYTES,
        )
        await self._runner.setup()
        site = GuardedSite(self._runner, s.bind, s.port, self._guard, ApiRequestHandler)
        await site.start()
        write_cookie(s.datadir, self.token)
        write_url(s.datadir, self.own_url)
        log.info("listening on http://%s:%d", s.bind, s.port)
        await self.p2p.start()
        if s.mine_to:
            self.set_mining(True, s.mine_to, s.block_time)

    def _make_p2p(self) -> PeerManager:
        """State thread (its ban manager reads the store): the P2P layer."""
        s = self.settings
        return PeerManager(
            self.params,
            self.chainstate,
            self.mempool,
            self.store,
            self.metrics,
            self.call,
            tip=self.published_tip,
            persist=self.submit,
            own_url=self.own_url,
            configured=list(s.peers),
            whitelist=parse_networks(s.whitelist),
            clock=self.clock.base,
        )

    def _subscribe_miner_and_p2p(self) -> None:
        """State thread: the miner and P2P hear of chain and mempool events from now on."""
        self.chainstate.subscribe(self.miner.on_chain_event)
        self.mempool.subscribe(self.miner.on_mempool_accept)
        self.mempool.subscribe(self.automine.on_mempool_accept)
        self.chainstate.subscribe(self.p2p.on_chain_event)
        self.mempool.subscribe(self.p2p.on_mempool_accept)
        log.info(
            "chain tip at height %d (%s)",
            self.chainstate.height,
            self.chainstate.tip.hash[::-1].hex(),
        )

    async def stop(self) -> None:
        """Stop mining and serving, close the database, remove the cookie."""
        log.info("shutting down")
        if hasattr(self, "automine"):
            await self.automine.stop()
        if hasattr(self, "p2p"):
            await self.p2p.stop()
        if hasattr(self, "events"):
            self.events.shutdown()  # the stream's connections would hold the cleanup up
        if self._runner is not None:
            await self._runner.cleanup()
        if self._guard is not None:
            await self._guard.stop()
        if self._warmup is not None:
            await asyncio.gather(self._warmup, return_exceptions=True)
        if self._searcher is not None:
            await self._searcher.aclose()
        await self.call(self.store.close)
        self._state.shutdown(wait=True)
        self.sigpool.shutdown()
        (self.settings.datadir / ".cookie").unlink(missing_ok=True)
        (self.settings.datadir / URL_FILE).unlink(missing_ok=True)
        log.info("stopped")

    def _background(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        """Run ``work`` as a task whose failure is logged, not lost."""
        task = asyncio.get_running_loop().create_task(work)

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed: %s", what, t.exception(), exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def request_stop(self) -> None:
        self.stopped.set()

    # --- commands -------------------------------------------------------------------------------

    def pubkey_hash_of(self, address: Any) -> bytes:
        if not isinstance(address, str):
            raise CommandError("bad-address", "address must be a string")
        try:
            return decode_address(address, self.params)
        except AddressError as err:
            raise CommandError("bad-address", f"{err.reason}: {err}") from None

    def _accept_tx(self, raw: bytes) -> TxAcceptResult:
        started = time.perf_counter()
        try:
            tx = Transaction.deserialize(raw)
            result = self.mempool.accept(tx, keep_orphan=False)
        except ValidationError as err:
            self.metrics.txs_rejected.labels(err.code).inc()
            raise
        finally:
            self._tx_seconds.observe(time.perf_counter() - started)
        self.metrics.txs_accepted.inc()
        return result

    async def submit_tx(self, raw: bytes) -> TxAcceptResult:
        return await self.call(self._accept_tx, raw)

    def _accept_txs(self, raws: list[bytes]) -> list[TxAcceptResult | ValidationError]:
        results: list[TxAcceptResult | ValidationError] = []
        for raw in raws:
            try:
                results.append(self._accept_tx(raw))
            except ValidationError as err:
                results.append(err)
        return results

    async def submit_txs(self, raws: list[bytes]) -> list[TxAcceptResult | ValidationError]:
        return await self.call(self._accept_txs, raws)

    def _accept_block(self, raw: bytes) -> AcceptResult:
        started = time.perf_counter()
        try:
            result = self.chainstate.process_block(Block.deserialize(raw))
        except ValidationError as err:
            self.metrics.blocks_rejected.labels(err.code).inc()
            raise
        finally:
            self._block_seconds.observe(time.perf_counter() - started)
        return result

    async def submit_block(self, raw: bytes) -> AcceptResult:
        return await self.call(self._accept_block, raw)

    def _set_block_mark(self, block_hash: bytes, invalid: bool) -> tuple[bytes, int]:
        chain = self.chainstate
        try:
            if invalid:
                chain.invalidate_block(block_hash)
            else:
                chain.reconsider_block(block_hash)
        except GenesisBlockError as err:
            raise CommandError("not-allowed", str(err)) from None
        return chain.tip.hash, chain.tip.height

    async def invalidate_block(self, block_hash: bytes) -> tuple[bytes, int]:
        """Core's ``invalidateblock``: mark the block and its descendants invalid, leave them;
        the new tip (hash, height). ``UnknownBlockError`` for a hash the node does not know."""
        return await self.call(self._set_block_mark, block_hash, True)

    async def reconsider_block(self, block_hash: bytes) -> tuple[bytes, int]:
        """Core's ``reconsiderblock``: clear the marks, activate the most-work chain; the tip."""
        return await self.call(self._set_block_mark, block_hash, False)

    async def generate(self, count: int, address: Any) -> list[bytes]:
        if not self.params.allow_generate:
            raise CommandError("not-allowed", f"generate is for regtest, not {self.params.name}")
        pubkey_hash = self.pubkey_hash_of(address)
        return await self.miner.generate(count, pubkey_hash)

    def set_mining(self, enabled: bool, address: str | None, block_time: float | None) -> None:
        """``POST /admin/mining`` and ``--mine-to``: the automine's ``interval`` mode (back to
        back without ``block_time``), or ``off``."""
        if not enabled:
            self.automine.set("off", None)
            return
        if address is None:
            raise CommandError("bad-address", "mining needs an address")
        self.automine.set("interval", self.pubkey_hash_of(address), block_time)

    # --- devnet toolkit: snapshots, partitions (regtest only) -----------------------------------

    def _devnet_only(self, what: str) -> None:
        """The toolkit's commands exist on regtest alone (as ``generate``); the routes refuse
        them first, with 403 (``node.api.routes.snapshots``)."""
        if not self.params.allow_generate:
            raise CommandError("not-allowed", f"{what} is for regtest, not {self.params.name}")

    async def take_snapshot(self, name: str) -> SnapshotInfo:
        """Copy the whole state (chain, UTXO set, indexes, mempool) as snapshot ``name``,
        replacing one of that name. ``SnapshotLimitError`` past ``MAX_SNAPSHOTS`` names."""
        self._devnet_only("snapshot")
        async with self._reverting:
            return await self.call(self._take_snapshot, name)

    def _take_snapshot(self, name: str) -> SnapshotInfo:
        tip = self.chainstate.tip
        return self.snapshots.take(self.store, name, tip.height, tip.hash)

    async def list_snapshots(self) -> list[SnapshotInfo]:
        self._devnet_only("snapshots")
        return await self.call(self.snapshots.list)

    async def revert(self, name: str) -> SnapshotInfo:
        """Make chain, UTXO set, indexes and mempool exactly what they were at snapshot
        ``name`` (kept), without a restart. ``UnknownSnapshotError`` (nothing changed) if
        there is none. A storage failure half-way stops the node; the next start finds the old
        state or the snapshot's, whole (``node.storage.leveldb``)."""
        self._devnet_only("revert")
        async with self._reverting, self.automine.paused():
            info = await self.call(self._revert, name)
            await self.p2p.reconnect("the node reverted to a snapshot")
        return info

    def _revert(self, name: str) -> SnapshotInfo:
        """State thread: the store's contents replaced, then rebuilt as start-up builds them."""
        info = self.snapshots.restore(self.store, name)  # raises before any change if unknown
        self.chainstate.reload()
        self.fees.reset()
        self.mempool.reload()
        tip = self.chainstate.tip
        return SnapshotInfo(info.name, tip.height, tip.hash, info.created)

    def partition(self, urls: list[str]) -> list[str]:
        """Refuse the peers at ``urls`` both ways until ``heal``; every URL refused now."""
        self._devnet_only("partition")
        try:
            return self.p2p.partition(urls)
        except ValueError as err:
            raise CommandError("bad-request", str(err)) from None

    async def heal(self) -> tuple[list[str], list[str]]:
        """Lift every partition; the URLs healed and those connected again."""
        self._devnet_only("heal")
        return await self.p2p.heal()

    @property
    def mining(self) -> bool:
        return self.automine.running

    @property
    def own_url(self) -> str:
        """The URL peers reach this node at (a wildcard bind is advertised as loopback)."""
        host = self.settings.bind
        if host in ("0.0.0.0", "::", ""):  # noqa: S104
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.settings.port}"

    async def add_peer(self, url: str) -> bool:
        """Connect to ``url`` now (and keep it among the addresses to reconnect to)."""
        self.p2p.add_peer(url)
        return await self.p2p.connect(url) is not None

    def _count_block(self, event: ChainEvent) -> None:
        """Every block that joins the active chain, whatever its source (API, miner, peers)."""
        if isinstance(event, BlockConnected):
            self.metrics.blocks_accepted.inc()

    def refresh_gauges(self) -> None:
        """State thread: the gauges of the state it owns (P2P keeps its peer gauge itself, on the
        event loop that owns its tables)."""
        self.metrics.height.set(self.chainstate.height)
        self.metrics.mempool_transactions.set(len(self.mempool))
        self.metrics.mempool_bytes.set(self.mempool.total_bytes)
