"""The admin routes, ``/api/v1/admin/...``: operator commands behind the cookie's token
(SPEC 3.5).

Job: ``admin_middleware`` refuses a request under ``/api/v1/admin/`` without
``Authorization: Bearer <token>`` (401, compared in constant time); the handlers mine now
(``generate``, at most ``MAX_GENERATE`` blocks), add a peer, start or stop background mining
(``block_time`` at most ``MAX_BLOCK_TIME`` seconds), invalidate or reconsider a block, stop
the node. Each takes a JSON object checked field by field (400 with a sentence). Left to
others: what the commands do (``NodeCommands``), the token (written by ``node.cli``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from client import models as m
from client.models import API
from node.api.http import ApiError, json_response, parse_hash, read_object
from node.api.routes import Api
from node.chainstate import UnknownBlockError

if TYPE_CHECKING:
    from node.interfaces import NodeCommands

MAX_GENERATE = 10_000
"""Blocks one ``/admin/generate`` mines at most."""
MAX_BLOCK_TIME = 86_400
"""The longest ``block_time`` of ``/admin/mining``, in seconds."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def admin_middleware(service: NodeCommands) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(f"{API}/admin/"):
            token = service.token
            header = request.headers.get("Authorization", "")
            given = header[7:] if header.startswith("Bearer ") else ""
            if not given or not hmac.compare_digest(given.encode(), token.encode()):
                raise ApiError(
                    401, "admin routes need 'Authorization: Bearer <token from .cookie>'"
                )
        return await handler(request)

    return middleware


def add(r: web.RouteTableDef, api: Api) -> None:
    service = api.service

    @r.post(f"{API}/admin/generate")
    async def generate(request: web.Request) -> web.Response:
        data = await read_object(request)
        count = data.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_GENERATE:
            raise ApiError(400, f"count must be an integer from 1 to {MAX_GENERATE}")
        hashes = await service.generate(count, data.get("address"))
        return json_response(m.Generated(hashes=[h[::-1].hex() for h in hashes]))

    @r.post(f"{API}/admin/peers")
    async def add_peer(request: web.Request) -> web.Response:
        data = await read_object(request)
        url = data.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ApiError(400, "url must be an http:// URL")
        connected = await service.add_peer(url)
        return json_response(m.PeerAdded(added=url, connected=connected))

    @r.post(f"{API}/admin/mining")
    async def mining(request: web.Request) -> web.Response:
        data = await read_object(request)
        enabled = data.get("enabled")
        if not isinstance(enabled, bool):
            raise ApiError(400, "enabled must be true or false")
        block_time = data.get("block_time")
        if block_time is not None and (
            isinstance(block_time, bool)
            or not isinstance(block_time, int | float)
            or not 0 < block_time <= MAX_BLOCK_TIME
        ):
            raise ApiError(
                400, f"block_time must be a number of seconds from 0 to {MAX_BLOCK_TIME}"
            )
        service.set_mining(enabled, data.get("address"), block_time)
        return json_response(m.MiningState(enabled=service.mining))

    async def set_block_mark(request: web.Request, invalid: bool) -> web.Response:
        data = await read_object(request)
        text = data.get("hash")
        if not isinstance(text, str):
            raise ApiError(400, "hash must be a block hash (64 hex digits)")
        block_hash = parse_hash(text, "block hash")
        mark = service.invalidate_block if invalid else service.reconsider_block
        try:
            tip_hash, tip_height = await mark(block_hash)
        except UnknownBlockError:
            raise ApiError(404, f"no block {text.lower()} is known") from None
        return json_response(
            m.BlockMarked(hash=text.lower(), best_hash=tip_hash[::-1].hex(), height=tip_height)
        )

    @r.post(f"{API}/admin/invalidate")
    async def invalidate(request: web.Request) -> web.Response:
        return await set_block_mark(request, True)

    @r.post(f"{API}/admin/reconsider")
    async def reconsider(request: web.Request) -> web.Response:
        return await set_block_mark(request, False)

    @r.post(f"{API}/admin/stop")
    async def stop(request: web.Request) -> web.Response:
        service.request_stop()
        return json_response(m.Stopping(stopping=True))
