"""Routes of the node itself: ``/info``, ``/search``, ``/utxo-set-info``, ``/peers``,
and outside the API ``/metrics``, ``/`` and the explorer's ``/static/`` files.

(``/openapi.json`` is ``node.api.app``'s: the document describes the whole application.)

Invariants: ``/info`` reads the status the state thread published (no trip there once it is);
``q`` is at most ``MAX_QUERY`` characters and not blank (400); ``/static/`` serves only plain
names (``STATIC_NAME``) inside the explorer's folder (404 otherwise). Left to others: the
shapes (``node.api.views``), metrics (``node.metrics``).
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
from aiohttp import web

from client import models as m
from client.models import API
from node.api.http import ApiError, json_response
from node.api.routes import Api
from node.metrics import CONTENT_TYPE

MAX_QUERY = 200
"""The longest ``q`` of ``/search``."""
EXPLORER = Path(__file__).resolve().parent.parent.parent / "explorer" / "static"
STATIC_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}")
"""The explorer page's files (plain HTML, CSS and JavaScript, no build step)."""


def add(r: web.RouteTableDef, api: Api) -> None:
    service, views, call = api.service, api.views, api.call

    @r.get(f"{API}/info")
    async def info(request: web.Request) -> web.Response:
        peers, synced = len(service.p2p.peers), service.p2p.synced()
        status = service.status  # published by the state thread after each call: no trip there
        if status is None:  # not yet published (the call that opened the state publishes it)
            return json_response(await call(views.info, peers, synced, api.version))
        return json_response(views.info_of(status, peers, synced, api.version))

    @r.get(f"{API}/search")
    async def search(request: web.Request) -> web.Response:
        query = request.query.get("q", "")
        if not query.strip() or len(query) > MAX_QUERY:
            raise ApiError(400, "q must be a height, block hash, txid or address")
        return json_response(await call(views.search, query))

    @r.get(f"{API}/utxo-set-info")
    async def utxo_set_info(request: web.Request) -> web.Response:
        return json_response(await call(views.utxo_set_info))

    @r.get(f"{API}/peers")
    async def peers(request: web.Request) -> web.Response:
        return json_response(msgspec.convert(service.p2p.describe(), m.Peers))

    @r.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        await call(service.refresh_gauges)
        return web.Response(body=service.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    @r.get("/")
    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(EXPLORER / "index.html")

    @r.get("/static/{filename}")
    async def static(request: web.Request) -> web.FileResponse:
        """A file of the explorer page; only plain names inside its folder."""
        name = request.match_info["filename"]
        path = EXPLORER / name
        if not STATIC_NAME.fullmatch(name) or not path.is_file():
            raise ApiError(404, f"no file {name!r}")
        return web.FileResponse(path)
