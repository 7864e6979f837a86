"""The HTTP API (SPEC 3.5): routes under ``/api/v1/``, admin routes, ``/metrics`` and ``/``.

Handlers are thin: parse and check the request, call one service method or view (on the state
thread), shape the answer. Every error has the shape ``{"error": {"code", "message"}}``: the
reject code for a refused transaction or block, otherwise the HTTP reason as a slug
(``bad-request``, ``not-found``, ``unauthorized``, ``forbidden``, ``payload-too-large``,
``uri-too-long``, ``unsupported-media-type``). Bad input never produces a 500: anything
unexpected is logged and answered as one, which the tests treat as a bug.

Limits: request bodies are capped at ``MAX_BODY`` bytes (413 beyond); ``POST /txs`` takes at most
1,000 transactions. Admin routes need ``Authorization: Bearer <token>`` (the cookie's token).
Before any of that, ``node.api.guards`` refuses a URL over 8,190 bytes (414), a foreign ``Host``
or ``Origin`` (403) and a body that is neither JSON nor msgpack (415), on every route, P2P
included; what aiohttp's parser itself refuses is answered in the same shape by
``node.api.parser_errors``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import msgspec
from aiohttp import web

from consensus import (
    ExtendedKeyError,
    ExtendedPublicKey,
    OutPoint,
    ValidationError,
    decode_xpub,
)
from node.api import models as m
from node.api.accounts import Accounts, AccountTooLargeError
from node.api.guards import HostPolicy, make_guards_middleware
from node.api.qr import address_qr_svg
from node.api.views import NotFoundError, Views
from node.chainstate import UnknownBlockError
from node.metrics import CONTENT_TYPE
from node.p2p.routes import add_p2p_routes
from node.service import VERSION, CommandError, NodeService
from node.storage import StorageError

log = logging.getLogger(__name__)

API = "/api/v1"
MAX_BODY = 4 * 1024 * 1024
MAX_BATCH = 1_000
MAX_GENERATE = 10_000
MAX_HEIGHT = 2**31
"""The largest height a ``start_height`` or ``/block-height/{height}`` may name."""
MAX_START_INDEX = 10**6
"""The largest ``start_index`` of ``/block/{hash}/txs``."""
MAX_QUERY = 200
"""The longest ``q`` of ``/search``."""
MAX_BLOCK_TIME = 86_400
"""The longest ``block_time`` of ``/admin/mining``, in seconds."""
MSGPACK = "application/msgpack"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICE: web.AppKey[NodeService] = web.AppKey("service", NodeService)

_REASONS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    414: "uri-too-long",
    415: "unsupported-media-type",
    429: "too-many-requests",
    431: "request-header-fields-too-large",
    500: "internal-error",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _REASONS.get(status, "error")
        self.message = message


def json_response(
    answer: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A model of ``node.api.models`` (or a list of them) as the JSON answer."""
    return web.Response(
        body=msgspec.json.encode(answer),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(m.error(code, message), status, headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure in the documented error shape, and request latency into the metrics."""
    started = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message)
    except ValidationError as err:
        return error_response(400, err.code, err.message)
    except CommandError as err:
        return error_response(400, err.code, err.message)
    except NotFoundError as err:
        return error_response(404, "not-found", str(err))
    except StorageError:
        # The node is stopping (NodeService.fail); nothing was half-written.
        return error_response(503, "unavailable", "the node's storage failed; it is stopping")
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = _REASONS.get(err.status, "error")
        # A 405 keeps aiohttp's ``Allow`` (the methods the route serves; RFC 9110 15.5.6).
        allow = {"Allow": err.headers["Allow"]} if "Allow" in err.headers else None
        return error_response(err.status, code, err.reason, allow)
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(500, "internal-error", "unexpected error; see the node's log")
    finally:
        service = request.app[SERVICE]
        service.metrics.request_seconds.labels(request.method, name).observe(
            time.perf_counter() - started
        )


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(f"{API}/admin/"):
        token = request.app[SERVICE].token
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(401, "admin routes need 'Authorization: Bearer <token from .cookie>'")
    return await handler(request)


# --- parsing -------------------------------------------------------------------------------------


HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def parse_hash(text: str, what: str = "hash") -> bytes:
    """Display hex (exactly 64 hex digits) to internal bytes; 400 otherwise."""
    if not HEX64.fullmatch(text):
        raise ApiError(400, f"a {what} is 64 hex digits, got {text[:80]!r}")
    return bytes.fromhex(text)[::-1]


_ASCII_INT = re.compile(r"-?[0-9]{1,19}")
"""An integer parameter: ASCII digits, an optional minus, at most 19 digits (beyond every bound)."""


def parse_outpoint(text: str, what: str) -> OutPoint:
    """``TXID:N`` (display hex, then the output index) as an ``OutPoint``."""
    txid, sep, index = text.partition(":")
    if not sep:
        raise ApiError(400, f"{what} is TXID:N, got {text[:80]!r}")
    return OutPoint(parse_hash(txid, what), parse_int(index, f"{what}'s index", 0, 2**32 - 1))


def parse_int(text: str | None, what: str, low: int, high: int, default: int | None = None) -> int:
    if text is None:
        if default is None:
            raise ApiError(400, f"{what} is required")
        return default
    # ASCII digits only: int() would also take "٣٣", " 7", "1_000" and "+5".
    if not _ASCII_INT.fullmatch(text):
        raise ApiError(400, f"{what} must be an integer written in ASCII digits")
    value = int(text)
    if not low <= value <= high:
        raise ApiError(400, f"{what} must be between {low} and {high}")
    return value


def parse_hex(value: Any, what: str = "raw") -> bytes:
    if not isinstance(value, str):
        raise ApiError(400, f"{what} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ApiError(400, f"{what} is not hex") from None


async def read_json(request: web.Request) -> Any:
    body = await request.read()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "the body is not valid JSON") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def is_msgpack(request: web.Request) -> bool:
    """The guards let only JSON and msgpack bodies through (``node.api.guards``)."""
    return request.content_type == MSGPACK


async def read_raw_object(request: web.Request) -> bytes:
    """A serialized transaction or block: a msgpack body, or JSON ``{"raw": hex}``."""
    if is_msgpack(request):
        body = await request.read()
        if not body:
            raise ApiError(400, "empty body")
        return body
    data = await read_object(request)
    return parse_hex(data.get("raw"))


def pubkey_hash(service: NodeService, text: str) -> bytes:
    try:
        return service.pubkey_hash_of(text)
    except CommandError as err:
        raise ApiError(400, err.message, "bad-address") from None


def parse_xpub(service: NodeService, text: str) -> ExtendedPublicKey:
    try:
        return decode_xpub(text, service.params)
    except ExtendedKeyError as err:
        raise ApiError(400, f"{err.reason}: {err}", "bad-xpub") from None


async def account_call(
    call: Callable[..., Awaitable[Any]], fn: Callable[..., Any], *args: Any
) -> Any:
    """An account query on the state thread, its refusals shaped as 400s."""
    try:
        return await call(fn, *args)
    except ExtendedKeyError as err:
        raise ApiError(400, f"{err.reason}: {err}", "bad-xpub") from None
    except AccountTooLargeError as err:
        raise ApiError(400, str(err), "xpub-too-large") from None


def raw_response(data: bytes, content_type: str = MSGPACK) -> web.Response:
    return web.Response(body=data, content_type=content_type)


def text_response(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/plain")


# --- handlers ------------------------------------------------------------------------------------


def make_app(service: NodeService) -> web.Application:
    s = service.settings
    guards = make_guards_middleware(
        HostPolicy.for_bind(s.bind, s.port, s.allow_host), error_response
    )
    app = web.Application(
        client_max_size=MAX_BODY, middlewares=[errors_middleware, guards, admin_middleware]
    )
    app[SERVICE] = service
    views: Views = service.views
    call = service.read  # queries: bounded in number ahead of the node's own work
    r = web.RouteTableDef()

    @r.get(f"{API}/info")
    async def info(request: web.Request) -> web.Response:
        peers, synced = len(service.p2p.peers), service.p2p.synced()
        status = service.status  # published by the state thread after each call: no trip there
        if status is None:  # not yet published (the call that opened the state publishes it)
            return json_response(await call(views.info, peers, synced, VERSION))
        return json_response(views.info_of(status, peers, synced, VERSION))

    @r.get(f"{API}/blocks/tip/height")
    async def tip_height(request: web.Request) -> web.Response:
        return text_response(str(service.chainstate.height))

    @r.get(f"{API}/blocks/tip/hash")
    async def tip_hash(request: web.Request) -> web.Response:
        return text_response(service.chainstate.tip.hash[::-1].hex())

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
        if is_msgpack(request):
            try:
                items = msgpack.unpackb(
                    await request.read(), raw=True, max_map_len=0, max_ext_len=0
                )
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
        answers: list[m.TxsItem] = []
        for res in await service.submit_txs(raws):
            if isinstance(res, ValidationError):
                answers.append(m.error(res.code, res.message))
            else:
                answers.append(m.TxidResult(txid=res.txid[::-1].hex()))
        return json_response(answers)

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

    accounts = Accounts(views)

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
        estimates = await call(service.fees.estimates)
        return json_response(m.fee_estimates(estimates))

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

    @r.get(f"{API}/openapi.json")
    async def openapi(request: web.Request) -> web.Response:
        from node.api.openapi import openapi_json  # it describes this module's routes

        return web.Response(
            body=openapi_json(service.params), content_type="application/json", charset="utf-8"
        )

    # --- admin ---

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
        address = data.get("address")
        service.set_mining(enabled, address, block_time)
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

    # --- outside the API ---

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

    app.add_routes(r)
    add_p2p_routes(app, service.p2p)
    return app


EXPLORER = Path(__file__).resolve().parent.parent / "explorer" / "static"
STATIC_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}")
"""The explorer page's files (plain HTML, CSS and JavaScript, no build step)."""
