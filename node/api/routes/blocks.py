"""Routes of the chain's blocks: ``/blocks``, ``/blocks/tip/*``, ``/block/{hash}...``,
``/block-height/{height}`` and ``POST /block`` (SPEC 3.5).

Invariants: a block hash is 64 hex digits (400 otherwise), a height or ``start_height`` at most
``MAX_HEIGHT``, a ``start_index`` at most ``MAX_START_INDEX`` (404 unless a page starts there);
the tip routes answer text, ``/raw`` the block's msgpack bytes. Left to others: the shapes
(``node.api.views``), accepting a block (``NodeService.submit_block``).
"""

from __future__ import annotations

from aiohttp import web

from client import models as m
from client.models import API
from node.api.http import (
    json_response,
    parse_hash,
    parse_int,
    raw_response,
    read_raw_object,
    text_response,
)
from node.api.routes import Api

MAX_HEIGHT = 2**31
"""The largest height a ``start_height`` or ``/block-height/{height}`` may name."""
MAX_START_INDEX = 10**6
"""The largest ``start_index`` of ``/block/{hash}/txs``."""


def add(r: web.RouteTableDef, api: Api) -> None:
    service, views, call = api.service, api.views, api.call

    @r.get(f"{API}/blocks/tip/height")
    async def tip_height(request: web.Request) -> web.Response:
        return text_response(str(service.published_tip().height))

    @r.get(f"{API}/blocks/tip/hash")
    async def tip_hash(request: web.Request) -> web.Response:
        return text_response(service.published_tip().hash[::-1].hex())

    @r.get(f"{API}/blocks")
    async def blocks(request: web.Request) -> web.Response:
        raw = request.query.get("start_height")
        start = None if raw is None else parse_int(raw, "start_height", 0, MAX_HEIGHT)
        return json_response(await call(views.blocks, start))

    @r.get(API + "/block/{hash}")
    async def block(request: web.Request) -> web.Response:
        return json_response(await call(views.block, parse_hash(request.match_info["hash"])))

    @r.get(API + "/block/{hash}/txids")
    async def block_txids(request: web.Request) -> web.Response:
        block_hash = parse_hash(request.match_info["hash"])
        return json_response(await call(views.block_txids, block_hash))

    @r.get(API + "/block/{hash}/txs")
    async def block_txs(request: web.Request) -> web.Response:
        block_hash = parse_hash(request.match_info["hash"])
        start = parse_int(request.query.get("start_index"), "start_index", 0, MAX_START_INDEX, 0)
        return json_response(await call(views.block_txs, block_hash, start))

    @r.get(API + "/block/{hash}/raw")
    async def block_raw(request: web.Request) -> web.Response:
        return raw_response(await call(views.block_raw, parse_hash(request.match_info["hash"])))

    @r.get(API + "/block-height/{height}")
    async def block_height(request: web.Request) -> web.Response:
        height = parse_int(request.match_info["height"], "height", 0, MAX_HEIGHT)
        return text_response(await call(views.hash_at_height, height))

    @r.post(f"{API}/block")
    async def post_block(request: web.Request) -> web.Response:
        result = await service.submit_block(await read_raw_object(request))
        return json_response(
            m.SubmitBlockResult(
                hash=result.hash[::-1].hex(),
                status=result.status,  # type: ignore[arg-type]
                height=result.height,
            )
        )
