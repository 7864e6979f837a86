"""Inbound connections of the node's HTTP server: idle and slow ones closed, and bounded
(SPEC 3.4 "timeouts on idle and slow connections"; issue 16 defect 7).

Job: every connection the server accepts is watched (``_Watched`` sits between the event loop
and aiohttp's own protocol, only observing) and closed when it is

- silent for ``FIRST_REQUEST_TIMEOUT`` seconds after it was accepted, or idle (no request in
  progress) for ``IDLE_TIMEOUT`` seconds after its last answer,
- part-way through a request's headers ``HEADER_TIMEOUT`` seconds after their first byte, or
- part-way through a request's body ``BODY_TIMEOUT`` seconds after its headers arrived.

At most ``MAX_CONNECTIONS`` are open at once and ``MAX_CONNECTIONS_PER_IP`` from one address
(addresses inside ``--whitelist`` networks only count towards the total); a connection over
either bound takes the place of the oldest idle one (of that address, for the per-address
bound), or is closed at once when none is idle. So idle sockets, however many, neither keep a
client out nor exhaust the process's open files, and a trickled request is cut off.

A request reaches the guard through ``middleware`` (outermost: marks the connection busy while
its handler runs) and ``cut_middleware`` (innermost: a handler whose connection the guard cut
mid-body answers a quiet 408 instead of logging a crash); long-lived answers (the events
stream) are busy, not idle, and never cut off once their request has arrived whole.

State: the open connections, on the event loop thread. Leaves to others: what the requests
say (the routes), who is banned (``banman``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientConnectionResetError, web

from node.p2p import policy

log = logging.getLogger(__name__)


class _Watched(asyncio.Protocol):
    """One accepted connection: forwards everything to aiohttp's protocol, noting activity."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.ip = ""
        self.admitted = False
        now = guard.monotonic()
        self.idle_since: float | None = now
        self.pending_since: float | None = None
        self.busy = 0
        self.request: web.BaseRequest | None = None
        self.started = now
        self.cut = False
        self.served = 0
        """Closed by the guard mid-request (the handler's read then fails: not a crash)."""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self.guard.admit(self):
            transport.abort()
            return
        self.admitted = True
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        if not self.busy and self.pending_since is None:
            self.pending_since = self.guard.monotonic()
            self.idle_since = None
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if not self.admitted:
            return None
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.closed(self)
        if self.admitted:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.admitted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.admitted:
            self.inner.resume_writing()

    # the guard's view
    def is_idle(self) -> bool:
        return not self.busy and self.pending_since is None

    def close(self, why: str) -> None:
        log.debug("closing a connection from %s: %s", self.ip, why)
        if self.transport is not None:
            self.transport.abort()


class ConnectionGuard:
    """The open connections of one server, and the watchdog that closes the stuck ones."""

    def __init__(
        self,
        whitelisted: Callable[[str], bool] = lambda ip: False,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_connections: int = policy.MAX_CONNECTIONS,
        max_per_ip: int = policy.MAX_CONNECTIONS_PER_IP,
    ) -> None:
        self.whitelisted = whitelisted
        self.monotonic = monotonic
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.open: dict[asyncio.BaseTransport, _Watched] = {}
        self._watchdog: asyncio.Task[None] | None = None

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Watched(self, inner())

    def admit(self, conn: _Watched) -> bool:
        assert conn.transport is not None
        if not self.whitelisted(conn.ip):
            same = [c for c in self.open.values() if c.ip == conn.ip]
            if len(same) >= self.max_per_ip and not self._evict(same):
                return False
        if len(self.open) >= self.max_connections and not self._evict(list(self.open.values())):
            return False
        self.open[conn.transport] = conn
        return True

    def _evict(self, among: list[_Watched]) -> bool:
        idle = [c for c in among if c.is_idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since or 0.0)
        self.open.pop(oldest.transport, None)  # type: ignore[arg-type]
        oldest.close("making room for a new connection")
        return True

    def closed(self, conn: _Watched) -> None:
        if conn.transport is not None:
            self.open.pop(conn.transport, None)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        conn = self.open.get(request.transport) if request.transport is not None else None
        if conn is None:
            return await handler(request)
        conn.busy += 1
        conn.pending_since = None
        conn.idle_since = None
        conn.request = request
        conn.started = self.monotonic()
        try:
            return await handler(request)
        finally:
            conn.busy -= 1
            conn.served += 1
            if not conn.busy:
                conn.request = None
                conn.idle_since = self.monotonic()

    @web.middleware
    async def cut_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Innermost: a handler whose request the guard cut off gets a quiet 408 (nobody reads
        it), not an error logged as a crash further out."""
        try:
            return await handler(request)
        except (ConnectionError, ClientConnectionResetError):
            conn = self.open.get(request.transport) if request.transport is not None else None
            if (
                conn is None
                or conn.cut
                or request.transport is None
                or request.transport.is_closing()
            ):
                return web.Response(status=408, text="the request came too slowly")
            raise

    def check(self) -> None:
        """Close every connection past its time (the watchdog calls this each second)."""
        now = self.monotonic()
        for conn in list(self.open.values()):
            if conn.busy:
                request = conn.request
                body_done = request is None or request.content.is_eof()
                if not body_done and now - conn.started > policy.BODY_TIMEOUT:
                    conn.cut = True
                    conn.close("request body too slow")
            elif conn.pending_since is not None:
                if now - conn.pending_since > policy.HEADER_TIMEOUT:
                    conn.close("request headers too slow")
            elif conn.idle_since is not None:
                limit = policy.IDLE_TIMEOUT if conn.served else policy.FIRST_REQUEST_TIMEOUT
                if now - conn.idle_since > limit:
                    conn.close("idle")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.check()
            except Exception:  # the watchdog must outlive any one connection's oddity
                log.exception("checking connections failed")

    def start(self) -> None:
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)


class GuardedSite(web.TCPSite):
    """A ``TCPSite`` whose accepted connections go through a ``ConnectionGuard``, each served
    by a ``handler_class`` (aiohttp's ``RequestHandler`` or a subclass of it)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        handler_class: type[web.RequestHandler] = web.RequestHandler,
    ) -> None:
        super().__init__(runner, host, port)
        self.guard = guard
        self.handler_class = handler_class

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server: Any = self._runner.server
        assert server is not None
        handler_class = self.handler_class

        def protocol() -> asyncio.Protocol:
            # What ``web.Server.__call__`` does, with ``handler_class``: the runner's handler
            # arguments (``max_line_size``, ``keepalive_timeout``...) are the server's kwargs.
            return handler_class(server, loop=loop, **server._kwargs)

        self._server = await loop.create_server(
            self.guard.factory(protocol), self._host, self._port, backlog=self._backlog
        )
        self.guard.start()
