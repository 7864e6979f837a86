"""Routes of transactions: ``/tx/{txid}...`` and submitting them, ``POST /tx`` and
``POST /txs`` (SPEC 3.5).

Invariants: a txid is 64 hex digits (400 otherwise); a body is msgpack bytes or JSON
``{"raw": hex}`` (an array of them for ``/txs``, at most ``MAX_BATCH``); in a batch each
transaction is accepted or refused on its own, a refusal an ``Error`` item of the 200 answer.
Left to others: the shapes (``node.api.views``), acceptance (``NodeService.submit_tx[s]``).
"""

from __future__ import annotations

import msgpack
from aiohttp import web

from client import models as m
from client.models import API, MAX_BATCH
from consensus import ValidationError
from node.api.http import (
    ApiError,
    is_msgpack,
    json_response,
    parse_hash,
    parse_hex,
    raw_response,
    read_json,
    read_raw_object,
)
from node.api.routes import Api


def add(r: web.RouteTableDef, api: Api) -> None:
    service, views, call = api.service, api.views, api.call

    @r.get(API + "/tx/{txid}")
    async def tx(request: web.Request) -> web.Response:
        return json_response(await call(views.tx, parse_hash(request.match_info["txid"], "txid")))

    @r.get(API + "/tx/{txid}/status")
    async def tx_status(request: web.Request) -> web.Response:
        txid = parse_hash(request.match_info["txid"], "txid")
        return json_response(await call(views.tx_status_of, txid))

    @r.get(API + "/tx/{txid}/raw")
    async def tx_raw(request: web.Request) -> web.Response:
        txid = parse_hash(request.match_info["txid"], "txid")
        return raw_response(await call(views.tx_raw, txid))

    @r.get(API + "/tx/{txid}/merkle-proof")
    async def merkle_proof(request: web.Request) -> web.Response:
        txid = parse_hash(request.match_info["txid"], "txid")
        return json_response(await call(views.merkle_proof, txid))

    @r.get(API + "/tx/{txid}/outspends")
    async def outspends(request: web.Request) -> web.Response:
        txid = parse_hash(request.match_info["txid"], "txid")
        return json_response(await call(views.outspends, txid))

    @r.post(f"{API}/tx")
    async def post_tx(request: web.Request) -> web.Response:
        result = await service.submit_tx(await read_raw_object(request))
        return json_response(m.TxidResult(txid=result.txid[::-1].hex()))

    @r.post(f"{API}/txs")
    async def post_txs(request: web.Request) -> web.Response:
        raws = await read_batch(request)
        answers: list[m.TxsItem] = []
        for res in await service.submit_txs(raws):
            if isinstance(res, ValidationError):
                answers.append(m.error(res.code, res.message))
            else:
                answers.append(m.TxidResult(txid=res.txid[::-1].hex()))
        return json_response(answers)


async def read_batch(request: web.Request) -> list[bytes]:
    """The serialized transactions of a ``POST /txs`` body: a msgpack array of bin, or a JSON
    array of ``{"raw": hex}``; at most ``MAX_BATCH``."""
    if is_msgpack(request):
        try:
            items = msgpack.unpackb(await request.read(), raw=True, max_map_len=0, max_ext_len=0)
        except (ValueError, TypeError, msgpack.UnpackException):
            raise ApiError(400, "the body is not a msgpack array of bin") from None
        if not isinstance(items, list) or not all(isinstance(i, bytes) for i in items):
            raise ApiError(400, "the body must be a msgpack array of bin")
        raws: list[bytes] = items
    else:
        data = await read_json(request)
        if not isinstance(data, list):
            raise ApiError(400, 'the body must be a JSON array of {"raw": hex}')
        raws = []
        for item in data:
            if not isinstance(item, dict):
                raise ApiError(400, 'each item must be {"raw": hex}')
            raws.append(parse_hex(item.get("raw")))
    if len(raws) > MAX_BATCH:
        raise ApiError(400, f"at most {MAX_BATCH} transactions at once")
    return raws
