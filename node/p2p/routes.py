"""The ``/p2p/`` routes: msgpack in, msgpack out, every message checked (SPEC 3.4).

Each handler identifies the sender (``X-Tally-Peer`` URL, else the remote address), refuses a
banned sender (403) or one over its rate (429), enforces the route's body limit (413), decodes
the message strictly (400 and a misbehaviour score when malformed), then hands it to the
``PeerManager``. Errors use the API's shape, ``{"error": {"code", "message"}}``, in JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from node.p2p import messages as m
from node.p2p.manager import SCORE_MALFORMED, PeerManager

log = logging.getLogger(__name__)

BODY_LIMITS = {
    "handshake": 1_024,
    "inv": 64 * 1_024,
    "getdata": 32 * 1_024,
    "getheaders": 4 * 1_024,
    "addr": 32 * 1_024,
    "mempool": 64,
}

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _answer(message: dict[str, object]) -> web.Response:
    return web.Response(body=m.encode(message), content_type="application/msgpack")


LOOPBACK = {"127.0.0.1", "::1"}


def sender_of(request: web.Request) -> str:
    """Who sent this request, as the key for scores, bans and rates.

    The ``X-Tally-Peer`` URL is believed only when its host is the address the request came
    from; otherwise the key is ``ip:<remote address>``. So a client cannot get an honest peer on
    another host banned by sending garbage in its name, nor shed its own score by changing the
    header. (Processes on one host share an address and can still speak for each other.)
    """
    remote = request.remote or "unknown"
    url = request.headers.get("X-Tally-Peer", "").strip().rstrip("/")
    if (
        url.startswith(("http://", "https://"))
        and len(url) <= m.MAX_URL
        and url.isascii()
        and url.isprintable()
    ):
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            host = ""
        if host == remote or (host == "localhost" and remote in LOOPBACK):
            return url
    return f"ip:{remote}"


def add_p2p_routes(app: web.Application, manager: PeerManager) -> None:
    def route(
        name: str, handle: Callable[[str, dict[str, object]], Awaitable[web.Response]]
    ) -> None:
        limit = BODY_LIMITS[name]

        async def handler(request: web.Request) -> web.Response:
            sender = sender_of(request)
            if manager.is_banned(sender):
                return _error(403, "banned", "this peer is banned")
            if not manager.rate_ok(sender):
                return _error(429, "too-many-requests", "slow down")
            if request.content_length is not None and request.content_length > limit:
                manager.misbehaving(sender, SCORE_MALFORMED, f"{name}: body over {limit} bytes")
                return _error(413, "payload-too-large", f"{name} bodies are at most {limit} bytes")
            body = b""
            while len(body) <= limit:  # a body may arrive in pieces: read to its end
                chunk = await request.content.read(limit + 1 - len(body))
                if not chunk:
                    break
                body += chunk
            if len(body) > limit:
                manager.misbehaving(sender, SCORE_MALFORMED, f"{name}: body over {limit} bytes")
                return _error(413, "payload-too-large", f"{name} bodies are at most {limit} bytes")
            try:
                message = m.parse(name, body)
                return await handle(sender, message)
            except m.ProtocolError as err:
                manager.misbehaving(sender, SCORE_MALFORMED, f"{name}: {err}")
                return _error(400, err.code, str(err))

        app.router.add_post(f"/p2p/{name}", handler)

    async def handshake(sender: str, message: dict[str, object]) -> web.Response:
        if message["nonce"] == manager.nonce:  # ourselves: let the dialer see its own nonce
            return _answer(manager.handshake_message())
        manager.check_handshake(message)
        manager.register(message, outbound=False)
        manager.learn_urls([str(message["url"])])
        return _answer(manager.handshake_message())

    async def inv(sender: str, message: dict[str, object]) -> web.Response:
        await manager.on_inv(sender, str(message["kind"]), list(message["hashes"]))  # type: ignore[call-overload]
        return _answer({})

    async def getdata(sender: str, message: dict[str, object]) -> web.Response:
        items = await manager.serve_getdata(str(message["kind"]), list(message["hashes"]))  # type: ignore[call-overload]
        return _answer({"items": items})

    async def getheaders(sender: str, message: dict[str, object]) -> web.Response:
        headers = await manager.call(
            manager.chain.headers_after, message["locator"], message["stop"], m.MAX_HEADERS
        )
        return _answer({"headers": headers})

    async def addr(sender: str, message: dict[str, object]) -> web.Response:
        manager.learn_urls(list(message["urls"]))  # type: ignore[call-overload]
        return _answer({"urls": manager.known_urls()})

    async def mempool(sender: str, message: dict[str, object]) -> web.Response:
        return _answer({"txids": list(manager.mempool.entries)[:100_000]})

    route("handshake", handshake)
    route("inv", inv)
    route("getdata", getdata)
    route("getheaders", getheaders)
    route("addr", addr)
    route("mempool", mempool)
