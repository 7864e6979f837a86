"""The SDK's subscriber to a node's event stream (SPEC 3.6), over aiohttp's WebSocket client.

Job: ``EventStream``, an async context manager and async iterator over the messages of
``GET /api/v1/events`` (``client.models.StreamMessage``: the node's events and the notices
``gap``, ``subscribed``, ``error``), decoded with ``msgspec`` into their typed models; it can
change its topics (``subscribe``) and ask for a replay (``since``) while it runs, and keeps the
latest seq it received (``last_seq``), which is what to pass as ``since`` when reconnecting.
``iter_events`` is the synchronous form: a generator over the same messages (the stream runs on
a private event loop in a thread), each wait bounded by a timeout; for command lines
(``tally-wallet watch``) and ``client.testing``.

Invariants:
- only the node's own URL is contacted; a connection carries no ``Origin`` (the node refuses a
  foreign one);
- what is held is bounded: aiohttp's reader and, for ``iter_events``, ``QUEUE`` messages
  between the thread and the consumer (a consumer that stops reading makes the node drop the
  stream with ``gap``, which is the last message it then gets);
- a message that is not one of the documented shapes raises ``EventStreamError``, as does a
  node that closes the stream or cannot be reached.

Left to others: what the events mean (``client.models``), the HTTP routes (``client.http``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType

import aiohttp
import msgspec

from client import models as m
from client.models import API

TIMEOUT = 30.0
"""Seconds to connect, and by default the longest wait for a message in ``iter_events``."""
QUEUE = 1_000
"""Messages ``iter_events`` holds between its thread and the consumer."""
MAX_MESSAGE = 2**20
"""The largest message read from a node (events are a few hundred bytes)."""

_decoder = msgspec.json.Decoder(m.StreamMessage)


class EventStreamError(Exception):
    """The stream could not be opened, was closed by the node, or sent something unreadable."""


def events_url(base_url: str) -> str:
    """The WebSocket URL of a node's event stream, from its base URL (``http://host:port``)."""
    url = base_url.rstrip("/") + f"{API}/events"
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    raise EventStreamError(f"not an http(s) URL: {base_url!r}")


class EventStream:
    """One WebSocket subscription to a node's events.

    ``subscribe`` (topics: ``blocks``, ``mempool``, ``address:<address>``; the node's default
    is ``blocks`` and ``mempool``) and ``since`` (replay the events after that seq) are sent
    as the stream opens; the first message is then the node's ``subscribed`` answer, if topics
    were given."""

    def __init__(
        self,
        base_url: str,
        *,
        subscribe: Iterable[str] | None = None,
        since: int | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = events_url(base_url)
        self._topics = None if subscribe is None else list(subscribe)
        self._since = since
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.last_seq: int | None = since
        """The seq of the latest node event received (or the ``since`` given)."""

    async def __aenter__(self) -> EventStream:
        await self.open()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=self._timeout)
        )
        try:
            self._ws = await self._session.ws_connect(
                self.url, max_msg_size=MAX_MESSAGE, heartbeat=None, autoping=True
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            await self._session.close()
            raise EventStreamError(f"cannot open {self.url}: {err}") from None
        if self._topics is not None:
            await self.subscribe(self._topics)
        if self._since is not None:
            await self.since(self._since)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _send(self, message: m.EventsRequest) -> None:
        if self._ws is None:
            raise EventStreamError("the stream is not open")
        await self._ws.send_str(msgspec.json.encode(message).decode())

    async def subscribe(self, topics: Iterable[str]) -> None:
        """Replace the topics (the node answers ``subscribed``, or ``error``)."""
        await self._send(m.EventsRequest(subscribe=list(topics)))

    async def since(self, seq: int) -> None:
        """Replay the events after ``seq`` the node still holds (``gap`` first if it holds
        fewer), then go on live."""
        await self._send(m.EventsRequest(since=seq))

    def __aiter__(self) -> AsyncIterator[m.StreamMessage]:
        return self

    async def __anext__(self) -> m.StreamMessage:
        return await self.receive()

    async def receive(self, timeout: float | None = None) -> m.StreamMessage:
        """The next message (``TimeoutError`` after ``timeout`` seconds; ``StopAsyncIteration``
        once the node closed the stream normally)."""
        if self._ws is None:
            raise EventStreamError("the stream is not open")
        message = await self._ws.receive(timeout=timeout)
        if message.type is aiohttp.WSMsgType.TEXT:
            try:
                decoded = _decoder.decode(message.data)
            except msgspec.DecodeError as err:
                raise EventStreamError(f"an unreadable message: {err}") from None
            if isinstance(decoded, m.Event):
                self.last_seq = decoded.seq
            return decoded
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
            raise StopAsyncIteration
        if message.type is aiohttp.WSMsgType.CLOSED:
            raise StopAsyncIteration
        raise EventStreamError(f"unexpected WebSocket message {message.type.name}")


_END = object()


def iter_events(
    base_url: str,
    *,
    subscribe: Iterable[str] | None = None,
    since: int | None = None,
    timeout: float | None = TIMEOUT,
) -> Iterator[m.StreamMessage]:
    """The stream's messages, synchronously: a generator that raises ``TimeoutError`` when no
    message comes within ``timeout`` seconds (``None``: wait for ever) and ends when the node
    closes the stream. Closing the generator closes the stream."""
    items: queue.Queue[object] = queue.Queue(QUEUE)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        try:
            async with EventStream(base_url, subscribe=subscribe, since=since) as stream:
                reader = asyncio.ensure_future(_forward(stream, items))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for task in (reader, stopper):
                    task.cancel()
                await asyncio.gather(reader, stopper, return_exceptions=True)
        except BaseException as err:
            await _put(items, err)
        await _put(items, _END)

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = items.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no event within {timeout} s") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]  # only messages besides the two above
    finally:
        loop.call_soon_threadsafe(stop.set)
        while thread.is_alive():  # let ``run`` finish its puts
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.1)
        thread.join()
        loop.close()


async def _put(items: queue.Queue[object], item: object) -> None:
    """Put ``item`` without blocking the stream's loop on a full queue for long at once."""
    while True:
        try:
            items.put_nowait(item)
            return
        except queue.Full:
            await asyncio.sleep(0.05)


async def _forward(stream: EventStream, items: queue.Queue[object]) -> None:
    async for message in stream:
        await _put(items, message)
