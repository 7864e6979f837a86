"""The event stream's route, ``GET /api/v1/events`` (SPEC 3.6): WebSocket, Server-Sent Events,
or the stream's state as JSON.

Job: one route, three answers, chosen by the request: a WebSocket upgrade (``Upgrade:
websocket``) gets a WebSocket whose client may send ``{"subscribe": [...]}`` and
``{"since": seq}`` (``client.models.EventsRequest``); ``Accept: text/event-stream`` gets
Server-Sent Events, each node event with ``id: <seq>`` (so a browser's ``EventSource``
reconnects with ``Last-Event-ID``, which then counts as ``since``); anything else gets
``EventsInfo`` (latest seq, oldest replayable seq, clients), a plain JSON answer. The query
parameters ``subscribe`` (topics, comma-separated or repeated; default ``blocks,mempool``) and
``since`` apply to both streams and are checked (400) for all three answers.

Invariants:
- a WebSocket upgrade carrying an ``Origin`` must come from the node's own origin
  (``node.api.guards`` refuses it with 403 before this handler: cross-site WebSocket
  hijacking); a full stream (``MAX_EVENT_CLIENTS``) is 429 before any upgrade;
- one task writes to a connection (``_pump``); the WebSocket's reader only parses the
  client's messages (each at most ``MAX_EVENT_MESSAGE`` bytes, aiohttp closes with 1009 beyond)
  and queues the answers; a bad message is answered ``{"type": "error"}``, never a crash;
- a dropped client (``node.events``: too far behind) is sent ``gap`` and disconnected: the
  close is attempted for ``DROP_GRACE`` seconds, then the connection is aborted, so a client
  that never reads holds nothing for long; every connection is pinged or sent a comment every
  ``HEARTBEAT`` seconds, so a vanished one is noticed.

Left to others: numbering, the ring and the per-client bounds (``node.events``), the origin
guard (``node.api.guards``), the shapes (``client.models``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import WSMsgType, web

from client import models as m
from client.models import API, EVENT_TOPICS
from node.api.http import ApiError, json_response, parse_int
from node.api.routes import Api
from node.events import MESSAGE_RATE, EventHub, StreamFullError, Subscriber, TopicError

log = logging.getLogger(__name__)

SSE = "text/event-stream"
MAX_SUBSCRIBE_TEXT = 2_048
"""The longest ``subscribe`` query parameter (all its values together, in characters): room
for about 45 address topics, and short of the URL limit even percent-encoded (a WebSocket
message takes all ``MAX_EVENT_SUBSCRIPTIONS``)."""
MAX_SEQ = 2**63 - 1
"""The largest ``since`` taken."""
HEARTBEAT = 20.0
"""Seconds between WebSocket pings, and between SSE comment lines when nothing else is sent."""
DROP_GRACE = 10.0
"""Seconds a dropped client's connection gets to take its ``gap`` and close before it is cut."""
SEND_BUFFER = 16 * 1024
"""The kernel's send buffer of a stream connection, and the most its transport buffers before
the writer waits, in bytes (fixed: Linux would otherwise let the first grow to megabytes for a
client that does not read, before the node sees it fall behind)."""
CLOSE_BEHIND = 1008
"""The WebSocket close code of a dropped client (policy violation: it did not keep up)."""
CLOSE_GOING_AWAY = 1001
"""The close code when the node stops."""
STOP_GRACE = 1.0
"""``DROP_GRACE`` when the node stops (a client that does not read must not hold it up)."""
SSE_RETRY_MS = 2000
"""The reconnection delay an ``EventSource`` is told (``retry:``)."""

_request_decoder = msgspec.json.Decoder(m.EventsRequest)


def parse_topics(hub: EventHub, values: list[str]) -> frozenset[str]:
    """The ``subscribe`` query parameter (comma-separated, repeatable), checked (400)."""
    if not values:
        return frozenset(EVENT_TOPICS)
    if sum(len(v) + 1 for v in values) > MAX_SUBSCRIBE_TEXT:
        raise ApiError(400, f"subscribe: at most {MAX_SUBSCRIBE_TEXT:,} characters")
    if not any(values):
        raise ApiError(400, "subscribe names no topic (leave it out for blocks,mempool)")
    topics = [t for v in values for t in v.split(",") if t]
    try:
        return hub.parse_topics(topics)
    except TopicError as err:
        raise ApiError(400, f"subscribe: {err}") from None


def parse_since(text: str | None, what: str = "since") -> int | None:
    return None if text is None else parse_int(text, what, 0, MAX_SEQ)


def add(r: web.RouteTableDef, api: Api) -> None:
    @r.get(f"{API}/events")
    async def events(request: web.Request) -> web.StreamResponse:
        hub: EventHub = api.service.events
        topics = parse_topics(hub, request.query.getall("subscribe", []))
        since = parse_since(request.query.get("since"))
        ws = web.WebSocketResponse(
            max_msg_size=m.MAX_EVENT_MESSAGE,
            heartbeat=HEARTBEAT,
            autoping=True,
            compress=False,
            writer_limit=SEND_BUFFER,
        )  # no compression: each client's copy of each event would cost a compression
        if ws.can_prepare(request).ok:
            return await serve_websocket(request, ws, join(hub, topics, since))
        if request.method == "GET" and SSE in request.headers.get("Accept", ""):
            last = request.headers.get("Last-Event-ID")
            if last is not None:
                since = parse_since(last.strip(), "Last-Event-ID")
            return await serve_sse(request, join(hub, topics, since))
        return json_response(hub.info())


def join(hub: EventHub, topics: frozenset[str], since: int | None) -> Subscriber:
    try:
        return hub.join(topics, since)
    except StreamFullError as err:
        raise ApiError(429, f"the event stream is full: {err}; try again later") from None


Send = Callable[[int | None, str], Awaitable[None]]
"""Write one message: its seq (``None`` for a notice) and its JSON text."""


async def _pump(client: Subscriber, send: Send, idle: Callable[[], Awaitable[None]]) -> None:
    """Write what the client is to get until it is dropped or its connection fails."""
    loop = asyncio.get_running_loop()
    while not client.dropped:
        items = client.take()
        if not items:
            try:
                await asyncio.wait_for(client.wake.wait(), HEARTBEAT)
            except TimeoutError:
                await idle()
            continue
        for seq, text in items:
            if seq is not None:
                # Handed over: a transport writes a frame at once (a cancelled wait for its
                # buffer to drain does not take it back), so the gap starts after it.
                client.delivered = seq
            client.write_started = loop.time()
            await send(seq, text)
            client.write_started = None


async def _run_pump(
    request: web.Request,
    client: Subscriber,
    send: Send,
    idle: Callable[[], Awaitable[None]],
    finish: Callable[[], Awaitable[object]],
) -> None:
    """``_pump``; for a dropped client, its last words (``gap``) and ``finish`` (the close),
    given ``DROP_GRACE`` seconds before the connection is cut."""
    try:
        await _pump(client, send, idle)
    except asyncio.CancelledError:
        if not client.dropped:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    except (ConnectionError, RuntimeError):  # the client went away (aiohttp: closing transport)
        return
    if not client.dropped:
        return
    grace = STOP_GRACE if client.shutdown else DROP_GRACE
    transport = request.transport
    if transport is not None:  # a peer that never reads would keep a graceful close waiting
        asyncio.get_running_loop().call_later(grace, transport.abort)
    last = client.last_words()
    with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
        async with asyncio.timeout(grace):
            for text in last:
                await send(None, text)
            await finish()


def _bound_send_buffer(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=SEND_BUFFER)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


async def _nothing() -> None:
    return None


async def serve_websocket(
    request: web.Request, ws: web.WebSocketResponse, client: Subscriber
) -> web.WebSocketResponse:
    hub = client.hub
    try:
        await ws.prepare(request)
    except BaseException:
        hub.leave(client)
        raise
    _bound_send_buffer(request)

    async def send(seq: int | None, text: str) -> None:
        await ws.send_str(text)

    async def finish() -> None:  # wakes the reader below, too
        if client.shutdown:
            await ws.close(code=CLOSE_GOING_AWAY, message=b"the node is stopping")
        else:
            await ws.close(code=CLOSE_BEHIND, message=b"too far behind")

    loop = asyncio.get_running_loop()
    writer = loop.create_task(_run_pump(request, client, send, _nothing, finish))
    client.task = writer
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                handle_message(client, message.data)
            elif message.type is WSMsgType.BINARY:
                client.error("bad-request", "messages are JSON text, not binary")
            if client.dropped:
                break
    finally:
        hub.leave(client)
        if client.dropped:
            await asyncio.gather(writer, return_exceptions=True)
        else:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
    return ws


def handle_message(client: Subscriber, text: str) -> None:
    """One client message: ``subscribe`` (replacing the topics) then ``since``, or an error."""
    if not client.allow_message(asyncio.get_running_loop().time()):
        client.error("too-many-requests", f"at most {MESSAGE_RATE:g} messages a second")
        return
    try:
        request = _request_decoder.decode(text)
    except msgspec.ValidationError as err:
        client.error("bad-request", f"not a subscribe or since message: {err}")
        return
    except msgspec.DecodeError:
        client.error("bad-request", "a message is one JSON object")
        return
    if request.subscribe is None and request.since is None:
        client.error("bad-request", 'send {"subscribe": [topics]} or {"since": seq}')
        return
    if request.subscribe is not None:
        try:
            client.subscribe(request.subscribe)
        except TopicError as err:
            client.error("bad-request", str(err))
            return
    if request.since is not None:
        client.since(min(request.since, MAX_SEQ))


async def serve_sse(request: web.Request, client: Subscriber) -> web.StreamResponse:
    hub = client.hub
    response = web.StreamResponse(
        headers={"Content-Type": SSE, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    try:
        await response.prepare(request)
        await response.write(f"retry: {SSE_RETRY_MS}\n\n".encode())
    except BaseException:
        hub.leave(client)
        raise
    _bound_send_buffer(request)

    async def send(seq: int | None, text: str) -> None:
        # A node event carries its seq as the SSE id (what Last-Event-ID sends back); a notice
        # (gap, subscribed, error) has none, so it does not move the browser's place.
        head = "" if seq is None else f"id: {seq}\n"
        await response.write(f"{head}data: {text}\n\n".encode())

    async def idle() -> None:
        await response.write(b": keepalive\n\n")

    writer = asyncio.get_running_loop().create_task(
        _run_pump(request, client, send, idle, _nothing)
    )
    client.task = writer
    try:
        await asyncio.shield(writer)
    finally:
        hub.leave(client)
        if not writer.done():
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
    return response
