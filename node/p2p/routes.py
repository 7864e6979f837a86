"""The ``/p2p/`` routes: msgpack in, msgpack out, every message checked (SPEC 3.4).

Each handler identifies the sender (``BanMan.identify``: its IP, or under ``--whitelist`` its
``X-Tally-Peer`` URL when that URL's host is the request's address), refuses a banned sender
(403 ``banned``), a sender this node is partitioned from (403 ``partitioned``: its believed
``X-Tally-Peer`` URL is refused, ``PeerManager.partition``; or, for a while after a devnet
revert, a peer still in the session of before, ``PeerSet.hold``) or one over its rate (429),
enforces the route's body limit (413, ``policy.BODY_LIMITS``), decodes the message strictly
(400 and a misbehaviour score when malformed), then hands it to the ``PeerManager``. ``inv``
and ``getdata`` are acted on only for a connected peer (one that handshook from the host of its
URL); ``getdata`` from anyone else is answered with no items.
Errors use the API's shape, ``{"error": {"code", "message"}}``, in JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from node.p2p import messages as m
from node.p2p.manager import PeerManager
from node.p2p.policy import BODY_LIMITS, MAX_HEADERS, SCORE_MALFORMED

__all__ = ["BODY_LIMITS", "add_p2p_routes"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True)
class Sender:
    """Who sent a request: its key for scores and bans, its listening URL if believed (the
    URL's host is the address the request came from), and that address."""

    key: str
    url: str | None
    remote: str


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _answer(message: dict[str, object]) -> web.Response:
    return web.Response(body=m.encode(message), content_type="application/msgpack")


def add_p2p_routes(app: web.Application, manager: PeerManager) -> None:
    def route(
        name: str, handle: Callable[[Sender, dict[str, object]], Awaitable[web.Response]]
    ) -> None:
        limit = BODY_LIMITS[name]

        async def handler(request: web.Request) -> web.Response:
            sender, url = manager.identify(
                request.remote or "unknown", request.headers.get("X-Tally-Peer", "")
            )
            if manager.is_banned(sender):
                return _error(403, "banned", "this peer is banned")
            if manager.is_partitioned(url) or (name != "handshake" and manager.held_back(url)):
                return _error(403, "partitioned", "this node is partitioned from that peer")
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
                return await handle(Sender(sender, url, request.remote or "unknown"), message)
            except m.ProtocolError as err:
                manager.misbehaving(sender, SCORE_MALFORMED, f"{name}: {err}")
                return _error(400, err.code, str(err))

        app.router.add_post(f"/p2p/{name}", handler)

    async def handshake(sender: Sender, message: dict[str, object]) -> web.Response:
        if message["nonce"] == manager.nonce:  # ourselves: let the dialer see its own nonce
            return _answer(manager.handshake_message())
        manager.check_handshake(message)
        claimed = str(message["url"])
        key, url = manager.identify(sender.remote, claimed)
        nonce = message["nonce"]
        if manager.held_back(url, nonce if isinstance(nonce, bytes) else None):
            return _error(403, "partitioned", "this node reverted: that session is refused")
        if url is not None:  # a peer is registered under its URL only from that URL's host
            manager.register({**message, "url": url}, outbound=False, key=key)
            manager.learn_urls([url])
        return _answer(manager.handshake_message())

    async def inv(sender: Sender, message: dict[str, object]) -> web.Response:
        peer = manager.connected_peer(sender.key, sender.url)
        if peer is not None:  # not connected: ignored (the sender handshakes first)
            await manager.on_inv(peer, str(message["kind"]), list(message["hashes"]))  # type: ignore[call-overload]
        return _answer({})

    async def getdata(sender: Sender, message: dict[str, object]) -> web.Response:
        if manager.connected_peer(sender.key, sender.url) is None:
            return _answer({"items": []})  # nothing for a sender that did not handshake
        items = await manager.serve_getdata(str(message["kind"]), list(message["hashes"]))  # type: ignore[call-overload]
        return _answer({"items": items})

    async def getheaders(sender: Sender, message: dict[str, object]) -> web.Response:
        headers = await manager.call(
            manager.chain.headers_after, message["locator"], message["stop"], MAX_HEADERS
        )
        return _answer({"headers": headers})

    async def addr(sender: Sender, message: dict[str, object]) -> web.Response:
        manager.learn_urls(list(message["urls"]))  # type: ignore[call-overload]
        return _answer({"urls": manager.known_urls()})

    async def mempool(sender: Sender, message: dict[str, object]) -> web.Response:
        return _answer(
            {"txids": await manager.call(manager.relay.mempool_txids, m.MAX_MEMPOOL_TXIDS)}
        )

    route("handshake", handshake)
    route("inv", inv)
    route("getdata", getdata)
    route("getheaders", getheaders)
    route("addr", addr)
    route("mempool", mempool)
