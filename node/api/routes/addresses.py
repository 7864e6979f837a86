"""Routes of addresses and accounts: ``/address/{address}...`` and ``/xpub/{xpub}...``
(SPEC 3.5).

Invariants: an address is one of the node's network (400 ``bad-address`` with the reason
otherwise), an account key this network's extended public key (400 ``bad-xpub``; an account
using too many addresses 400 ``xpub-too-large``); cursors are a txid (``after_txid``) or an
output ``TXID:N`` (``after``). Left to others: the shapes and paging (``node.api.views``,
``node.api.accounts``), the QR code (``node.api.qr``).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from client.models import API
from node.api.http import (
    account_call,
    json_response,
    parse_hash,
    parse_outpoint,
    parse_xpub,
    pubkey_hash,
)
from node.api.qr import address_qr_svg
from node.api.routes import Api


def add(r: web.RouteTableDef, api: Api) -> None:
    service, views, accounts, call = api.service, api.views, api.accounts, api.call

    @r.get(API + "/address/{address}")
    async def address(request: web.Request) -> web.Response:
        text = request.match_info["address"]
        pkh = pubkey_hash(service, text)
        return json_response(await call(views.address_summary, text, pkh))

    @r.get(API + "/address/{address}/txs")
    async def address_txs(request: web.Request) -> web.Response:
        pkh = pubkey_hash(service, request.match_info["address"])
        after_text = request.query.get("after_txid")
        after = None if after_text is None else parse_hash(after_text, "after_txid")
        return json_response(await call(views.address_txs, pkh, after))

    @r.get(API + "/address/{address}/qr.svg")
    async def address_qr(request: web.Request) -> web.Response:
        text = request.match_info["address"]
        pubkey_hash(service, text)  # a 400 bad-address unless it is this network's
        svg = await asyncio.get_running_loop().run_in_executor(None, address_qr_svg, text)
        return web.Response(
            body=svg, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
        )

    @r.get(API + "/address/{address}/utxo")
    async def address_utxo(request: web.Request) -> web.Response:
        pkh = pubkey_hash(service, request.match_info["address"])
        raw = request.query.get("after")
        after = None if raw is None else parse_outpoint(raw, "after")
        return json_response(await call(views.address_utxos, pkh, after))

    @r.get(API + "/xpub/{xpub}")
    async def xpub_summary(request: web.Request) -> web.Response:
        text = request.match_info["xpub"]
        key = parse_xpub(service, text)
        return json_response(await account_call(call, accounts.summary, text, key))

    @r.get(API + "/xpub/{xpub}/txs")
    async def xpub_txs(request: web.Request) -> web.Response:
        key = parse_xpub(service, request.match_info["xpub"])
        raw = request.query.get("after_txid")
        after = None if raw is None else parse_hash(raw, "after_txid")
        return json_response(await account_call(call, accounts.txs, key, after))

    @r.get(API + "/xpub/{xpub}/utxo")
    async def xpub_utxo(request: web.Request) -> web.Response:
        key = parse_xpub(service, request.match_info["xpub"])
        raw = request.query.get("after")
        after = None if raw is None else parse_outpoint(raw, "after")
        return json_response(await account_call(call, accounts.utxos, key, after))
