"""A scripted hostile peer for P2P integration tests (issue 16), built on ``fake_peer.FakePeer``.

``HostilePeer`` speaks the protocol like ``FakePeer`` but each answer can be scripted:

- ``claim_work`` / ``claim_height``: what its handshake claims (a huge work, say);
- ``headers``: the headers it answers ``getheaders`` with (a header of valid proof of work whose
  parent is random, headers the node already has, ...), after ``headers_delay`` seconds;
- ``withhold``: ``getdata`` is answered only after ``getdata_delay`` seconds (or never, until
  the peer stops), with nothing in it;
- ``slow_routes``: routes whose answer is held until the peer stops (a peer that answers slowly).

Held answers are released when the peer stops, so the tests end promptly. Every request is
recorded in ``requests`` like ``FakePeer``'s, with its arrival time in ``times``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiohttp import web

from consensus import BlockHeader, NetworkParams, get_params
from node.p2p import messages as m
from tests.helpers import solve
from tests.integration.fake_peer import FakePeer


def unconnected_header(params: NetworkParams | None = None) -> BlockHeader:
    """A header of valid proof of work whose parent is random (no node has it)."""
    params = params or get_params("regtest")
    header = BlockHeader(
        1, os.urandom(32), os.urandom(32), int(time.time()), params.pow_limit_bits, 0
    )
    return solve(header, params)


@dataclass
class HostilePeer(FakePeer):
    claim_work: int = 0
    claim_height: int = 0
    headers: list[bytes] = field(default_factory=list)
    headers_delay: float = 0.0
    withhold: bool = False
    getdata_delay: float | None = None
    """Seconds a withheld ``getdata`` is held (None: until the peer stops)."""
    slow_routes: set[str] = field(default_factory=set)
    times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._release: asyncio.Event | None = None

    def handshake_message(self) -> dict[str, Any]:
        hello = super().handshake_message()
        hello["work"] = self.claim_work.to_bytes(32, "big")
        hello["height"] = self.claim_height
        return hello

    async def _hold(self, seconds: float | None) -> None:
        assert self._release is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), seconds)

    async def _handle(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        if route == "handshake" or (
            route not in self.slow_routes and route not in ("getheaders", "getdata")
        ):
            self.times.append(time.monotonic())
            return await super()._handle(request)
        body = await request.read()
        try:
            message = msgpack.unpackb(body, raw=False)
        except Exception:
            message = body
        self.requests.append((route, message))
        self.times.append(time.monotonic())
        if route in self.slow_routes:
            await self._hold(None)
        if route == "getheaders":
            if self.headers_delay:
                await self._hold(self.headers_delay)
            answer: dict[str, Any] = {"headers": list(self.headers)}
        elif route == "getdata":
            if self.withhold:
                await self._hold(self.getdata_delay)
                answer = {"items": []}
            else:
                store = (
                    self.txs
                    if isinstance(message, dict) and message.get("kind") == "tx"
                    else self.blocks
                )
                hashes = message.get("hashes", []) if isinstance(message, dict) else []
                answer = {"items": [store[h] for h in hashes if h in store]}
        elif route == "addr":
            answer = {"urls": []}
        elif route == "mempool":
            answer = {"txids": []}
        else:
            answer = {}
        return web.Response(body=m.encode(answer), content_type="application/msgpack")

    async def _start(self) -> None:
        self._release = asyncio.Event()
        await super()._start()

    def stop(self) -> None:
        if self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)
        super().stop()

    def count(self, route: str) -> int:
        return sum(1 for r, _ in list(self.requests) if r == route)
