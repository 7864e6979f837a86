"""What every route of the HTTP API shares: its prefix, its error type, answers and parsers.

Job: ``ApiError`` (a refusal with its status and code), the answer helpers (``json_response``
encodes a model of ``client.models`` with msgspec; ``error_response`` is the one error shape
``{"error": {"code", "message"}}``), and the parsers of path, query and body values, each a 400
with a sentence on bad input: a hash is exactly 64 hex digits, an integer ASCII digits within
bounds, an output ``TXID:N``, a body JSON or msgpack as ``node.api.guards`` let it through.

Invariants: a parser either returns a value the handler can use or raises ``ApiError`` (never
anything a caller would answer with a 500); what ``node.api.openapi`` documents for a parameter
(pattern, length, bounds) is what these parsers take. Left to others: routing and the error
middleware (``node.api.app``), what a value means (the views, the service).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from client import models as m
from consensus import (
    AddressError,
    ExtendedKeyError,
    ExtendedPublicKey,
    OutPoint,
    decode_address,
    decode_xpub,
)
from consensus.errors import RejectCategory
from node.api.accounts import AccountTooLargeError

if TYPE_CHECKING:
    from node.interfaces import NodeCommands

MSGPACK = "application/msgpack"
MAX_BODY = 4 * 1024 * 1024
"""The largest request body, in bytes (413 beyond; aiohttp's ``client_max_size``)."""

REASONS = {
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
"""The error code of each status when no reject code applies: the HTTP reason as a slug."""

REJECT_STATUS: dict[RejectCategory, int] = {
    RejectCategory.CONSENSUS: 400,
    RejectCategory.MUTATED: 400,
    RejectCategory.CONTEXT: 400,
    RejectCategory.POLICY: 400,
    RejectCategory.KNOWN: 400,
    RejectCategory.MISSING_PARENT: 400,
    RejectCategory.TIME_FUTURE: 400,
}
"""The status of a refused transaction or block, from its reject category (the one place the API
decides it, as ``node.p2p.policy`` decides a peer's score from the same category). SPEC 3.5 gives
a refusal its reject code in a 400, and Esplora and Core's REST answer 400 for each of them, so
every category is 400 today (docs/DECISIONS.md, "Status codes of refusals"); the code in the body
tells the cases apart."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or REASONS.get(status, "error")
        self.message = message


# --- answers -------------------------------------------------------------------------------------


def json_response(
    answer: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A model of ``client.models`` (or a list of them) as the JSON answer."""
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


def raw_response(data: bytes, content_type: str = MSGPACK) -> web.Response:
    return web.Response(body=data, content_type=content_type)


def text_response(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/plain")


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


def pubkey_hash(service: NodeCommands, text: str) -> bytes:
    """The key hash of an address of the node's network; 400 ``bad-address`` with the reason."""
    try:
        return decode_address(text, service.params)
    except AddressError as err:
        raise ApiError(400, f"{err.reason}: {err}", "bad-address") from None


def parse_xpub(service: NodeCommands, text: str) -> ExtendedPublicKey:
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
