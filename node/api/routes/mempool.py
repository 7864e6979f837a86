"""Routes of the mempool and fees: ``/mempool``, ``/mempool/txids``, ``/mempool/recent`` and
``/fee-estimates`` (SPEC 3.5).

Invariants: ``after_txid`` is 64 hex digits (400) and a txid in the mempool (404 otherwise);
fee rates are base units per byte for each target of ``node.fees.TARGETS``. Left to others:
the shapes and paging (``node.api.views``), the estimates (``node.fees``).
"""

from __future__ import annotations

from aiohttp import web

from client import models as m
from client.models import API
from node.api.http import json_response, parse_hash
from node.api.routes import Api


def add(r: web.RouteTableDef, api: Api) -> None:
    service, views, call = api.service, api.views, api.call

    @r.get(f"{API}/mempool")
    async def mempool(request: web.Request) -> web.Response:
        return json_response(await call(views.mempool_summary))

    @r.get(f"{API}/mempool/txids")
    async def mempool_txids(request: web.Request) -> web.Response:
        raw = request.query.get("after_txid")
        after = None if raw is None else parse_hash(raw, "after_txid")
        return json_response(await call(views.mempool_txids, after))

    @r.get(f"{API}/mempool/recent")
    async def mempool_recent(request: web.Request) -> web.Response:
        return json_response(await call(views.mempool_recent))

    @r.get(f"{API}/fee-estimates")
    async def fee_estimates(request: web.Request) -> web.Response:
        return json_response(m.fee_estimates(await call(service.fees.estimates)))
