"""The node's event stream (SPEC 3.6): one sequence of events, a replay ring, bounded clients.

Job: ``EventHub`` turns what the state thread already publishes (the chainstate's events, the
mempool's changes through ``Mempool.watch``) into the stream's events (``client.models``'
``NodeEvent``: ``block_connected``, ``block_disconnected``, ``tip_changed``, ``tx_added``,
``tx_removed``, ``address``), numbers them, keeps the latest ``EVENT_RING`` for replay, and
hands them to the connected clients (``Subscriber``), which the transports of
``node.api.routes.events`` (WebSocket and Server-Sent Events) write out.

Invariants:
- the state thread never waits for the event loop or a client: its listeners append what
  happened to a list under a lock and schedule one ``flush`` on the loop (``call_soon_threadsafe``)
  when none is pending; everything else runs on the event loop;
- ``seq`` is assigned in one place, ``_append`` on the loop, in the order the state thread
  produced the changes: it rises by exactly 1 per event of the node, whatever any client
  subscribed to (a client that filters sees jumps; docs/DECISIONS.md, "Event stream"). An
  ``address`` event is made only for an address some client subscribes to, right after the
  event it comes from, and takes the next seq like any other;
- memory is bounded: the ring holds ``EVENT_RING`` encoded events; a client holds only its
  place in the ring (``cursor``), its topics (at most ``MAX_EVENT_SUBSCRIPTIONS``) and a few
  replies (``MAX_REPLIES``); at most ``MAX_EVENT_CLIENTS`` clients at once;
- a client more than ``EVENT_CLIENT_QUEUE`` events behind what it asked for (events not yet
  written to its connection) whose connection has taken nothing for ``EVENT_STALL_SECONDS``,
  or whose place the ring has overwritten, is dropped: sent ``gap`` (``behind``) and
  disconnected, so a client that stops reading costs the node nothing more, while one that
  reads on is never dropped for a burst (a block confirming thousands of transactions);
- hashes and txids are display hex, as everywhere in the API.

Left to others: the transports and the HTTP route (``node.api.routes.events``), the client
side (``client.events``), what the events mean (``client.models``, docs/API.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from client import models as m
from client.models import (
    ADDRESS_TOPIC,
    EVENT_CLIENT_QUEUE,
    EVENT_RING,
    EVENT_STALL_SECONDS,
    EVENT_TOPICS,
    MAX_EVENT_CLIENTS,
    MAX_EVENT_SUBSCRIPTIONS,
)
from consensus import AddressError, Block, Coin, NetworkParams, Transaction, decode_address
from node.chainstate.events import BlockConnected, BlockDisconnected, ChainEvent, TipChanged
from node.mempool import MempoolEntry

log = logging.getLogger(__name__)

MAX_REPLIES = 16
"""Answers to a client's messages (``subscribed``, ``error``) waiting to be written; a client
that sends more without reading them is dropped."""
MESSAGE_RATE = 10.0
MESSAGE_BURST = 20
"""A client's messages are followed at ``MESSAGE_RATE`` a second, in bursts of up to
``MESSAGE_BURST`` (a token bucket); one beyond is answered ``too-many-requests`` and ignored
(each ``subscribe`` costs up to ``MAX_EVENT_SUBSCRIPTIONS`` address decodings on the loop)."""

_encode = msgspec.json.Encoder().encode


class StreamFullError(Exception):
    """``MAX_EVENT_CLIENTS`` clients are connected already."""


class TopicError(ValueError):
    """A subscription the node cannot follow (the message says why)."""


@dataclass(frozen=True)
class Stored:
    """One event as the ring keeps it: its seq, the topic it belongs to, its JSON text."""

    seq: int
    topic: str
    text: str


# --- what the state thread hands over (immutable, built there, read on the loop) ----------------


@dataclass(frozen=True)
class _Block:
    connected: bool
    block: Block
    height: int
    spent: tuple[tuple[Coin, ...], ...]


@dataclass(frozen=True)
class _Tip:
    hash: bytes
    height: int


@dataclass(frozen=True)
class _TxAdded:
    tx: Transaction
    fee: int
    size: int
    spent: tuple[Coin, ...]


@dataclass(frozen=True)
class _TxRemoved:
    tx: Transaction
    spent: tuple[Coin, ...]
    reason: m.RemovalReason


_Change = _Block | _Tip | _TxAdded | _TxRemoved


def _hex(h: bytes) -> str:
    return h[::-1].hex()


def _pubkey_hashes(tx: Transaction, spent: Iterable[Coin]) -> set[bytes]:
    return {o.pubkey_hash for o in tx.outputs} | {c.output.pubkey_hash for c in spent}


class Subscriber:
    """One client's place in the stream (event loop only).

    ``cursor`` is the next seq to consider; ``until`` the latest seq when the client last asked
    for a replay (``since``): it may be behind that point by any amount the ring still holds,
    and beyond it by ``EVENT_CLIENT_QUEUE`` events while its writes go through (see the module's
    invariants). ``take`` gives what to write next; the writer sets ``write_started`` while it
    waits for the connection to take a message.
    """

    def __init__(self, hub: EventHub, topics: frozenset[str], cursor: int) -> None:
        self._hub = hub
        self.topics = topics
        self.cursor = cursor
        self.until = cursor - 1
        self.replies: deque[str] = deque()
        self.dropped = False
        self.closed = False
        self.shutdown = False
        """Dropped because the node stops (the transport says "going away")."""
        self._tokens = float(MESSAGE_BURST)
        self._refilled: float | None = None
        self.write_started: float | None = None
        """The loop's time when the write under way began (``None``: no write waiting)."""
        self.behind_dropped = False
        """Dropped for falling behind: its last words are ``gap``."""
        self.delivered = cursor - 1
        """The seq of the latest event written to the connection (the transport says so)."""
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        """The task writing to this client: cancelled when the client is dropped (it may be
        waiting on a connection the client no longer reads)."""

    # --- the client's requests ------------------------------------------------------------------

    def subscribe(self, topics: list[str]) -> None:
        """Replace the topics (``TopicError`` if one is not a topic, nothing changed then).
        A client that left (or was dropped) changes nothing: its topics are gone with it."""
        wanted = self._hub.parse_topics(topics)
        if self.closed:
            return
        self._hub.retopic(self, wanted)
        self._reply(m.SubscribedNotice(sorted(wanted), self._hub.seq))

    def since(self, seq: int) -> None:
        """Replay the events after ``seq`` that the ring still holds, then go on live."""
        hub = self._hub
        if seq > hub.seq:
            self._reply(m.GapNotice(seq, hub.seq + 1, "unknown"))
            self.cursor = hub.seq + 1
        else:
            if seq + 1 < hub.oldest:
                self._reply(m.GapNotice(seq, hub.oldest, "too-old"))
            self.cursor = max(seq + 1, hub.oldest)
        self.until = hub.seq
        self.wake.set()

    def allow_message(self, now: float) -> bool:
        """Whether a message arriving at ``now`` (the loop's clock) is within the rate."""
        if self._refilled is not None:
            elapsed = max(0.0, now - self._refilled)
            self._tokens = min(float(MESSAGE_BURST), self._tokens + elapsed * MESSAGE_RATE)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def error(self, code: str, message: str) -> None:
        self._reply(m.ErrorNotice(m.ErrorBody(code, message)))

    def _reply(self, notice: m.StreamNotice) -> None:
        if len(self.replies) >= MAX_REPLIES:
            self._hub.drop(self)
            return
        self.replies.append(_encode(notice).decode())
        self.wake.set()

    # --- the writer's side ----------------------------------------------------------------------

    def behind(self) -> int:
        """Events past the replay point not yet taken (what the per-client bound counts)."""
        return self._hub.seq - max(self.cursor - 1, self.until)

    @property
    def hub(self) -> EventHub:
        return self._hub

    def last_words(self) -> list[str]:
        """What a dropped client is still sent: its pending replies, then ``gap`` if it fell
        behind (``after``: the last event it was written; ``next``: where ``since`` would
        resume, if the ring still holds it by then)."""
        words = list(self.replies)
        self.replies.clear()
        if self.behind_dropped:
            resume = max(self._hub.oldest, self.delivered + 1)
            words.append(_encode(m.GapNotice(self.delivered, resume, "behind")).decode())
        return words

    def take(self, limit: int = 256) -> list[tuple[int | None, str]]:
        """What to write next, as (seq, JSON text): replies first (seq ``None``), then the
        matching events, at most ``limit``; an empty list when there is nothing yet (wait on
        ``wake``)."""
        self.wake.clear()
        texts: list[tuple[int | None, str]] = [(None, text) for text in self.replies]
        self.replies.clear()
        if self.dropped:
            return texts
        hub = self._hub
        if self.cursor < hub.oldest:  # the ring moved past this client: it cannot catch up
            hub.drop(self, behind=True)
            return texts
        for stored in hub.events_from(self.cursor, limit):
            self.cursor = stored.seq + 1
            if stored.topic in self.topics:
                texts.append((stored.seq, stored.text))
        if self.cursor <= hub.seq:
            self.wake.set()  # more to take
        return texts


class EventHub:
    """The node's stream: listeners for the state thread, the ring and the clients (loop)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        params: NetworkParams,
        *,
        ring: int = EVENT_RING,
        client_queue: int = EVENT_CLIENT_QUEUE,
        stall_seconds: float = EVENT_STALL_SECONDS,
        max_clients: int = MAX_EVENT_CLIENTS,
        on_drop: Callable[[Subscriber], None] | None = None,
    ) -> None:
        self._loop = loop
        self._params = params
        self._client_queue = client_queue
        self._stall_seconds = stall_seconds
        self.max_clients = max_clients
        self.ring: deque[Stored] = deque(maxlen=ring)
        self.seq = 0
        self.clients: set[Subscriber] = set()
        self._watched: dict[bytes, dict[str, int]] = {}
        """Public key hash -> the address topics naming it (one per spelling) -> clients."""
        self._lock = threading.Lock()
        self._pending: list[_Change] = []
        self._scheduled = False
        self._on_drop = on_drop
        self.dropped_count = 0

    # --- state thread: listeners (they only hand over) -------------------------------------------

    def on_chain_event(self, event: ChainEvent) -> None:
        """Subscribe this to the chainstate, before the mempool (a block's connect comes before
        the ``tx_removed`` of what it confirmed)."""
        if isinstance(event, BlockConnected | BlockDisconnected):
            connected = isinstance(event, BlockConnected)
            self._hand_over(_Block(connected, event.block, event.height, event.undo.spent))
        elif isinstance(event, TipChanged):
            self._hand_over(_Tip(event.new_hash, event.height))

    def added(self, entry: MempoolEntry) -> None:
        """``Mempool.watch``: a transaction entered the pool."""
        self._hand_over(_TxAdded(entry.tx, entry.fee, entry.size, entry.spent))

    def removed(self, tx: Transaction, spent: tuple[Coin, ...], reason: m.RemovalReason) -> None:
        """``Mempool.watch``: a transaction left the pool (or did not come back to it)."""
        self._hand_over(_TxRemoved(tx, spent, reason))

    def _hand_over(self, change: _Change) -> None:
        with self._lock:
            self._pending.append(change)
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # a closed loop: the node stops, none listens
            self._loop.call_soon_threadsafe(self.flush)

    # --- event loop: numbering and the ring ------------------------------------------------------

    def flush(self) -> None:
        """Number what the state thread handed over, keep it, wake the clients."""
        with self._lock:
            changes, self._pending = self._pending, []
            self._scheduled = False
        for change in changes:
            try:
                self._number(change)
            except Exception:  # a bug here must not lose the rest of the batch
                log.exception("event stream: could not number %s", type(change).__name__)
        if changes:
            self._wake_all()

    def _number(self, change: _Change) -> None:
        if isinstance(change, _Block):
            block = change.block
            block_hash = _hex(block.hash())
            if change.connected:
                self._append(
                    "blocks",
                    m.BlockConnectedEvent(self.seq + 1, block_hash, change.height, len(block.txs)),
                )
            else:
                self._append(
                    "blocks", m.BlockDisconnectedEvent(self.seq + 1, block_hash, change.height)
                )
            if self._watched:
                status: m.AddressStatus = "confirmed" if change.connected else "disconnected"
                for pos, tx in enumerate(block.txs):
                    spent = change.spent[pos - 1] if 0 < pos <= len(change.spent) else ()
                    self._address_events(tx, spent, status)
        elif isinstance(change, _Tip):
            self._append(
                "blocks", m.TipChangedEvent(self.seq + 1, _hex(change.hash), change.height)
            )
        elif isinstance(change, _TxAdded):
            txid = _hex(change.tx.txid())
            self._append("mempool", m.TxAddedEvent(self.seq + 1, txid, change.fee, change.size))
            self._address_events(change.tx, change.spent, "mempool")
        else:
            txid = _hex(change.tx.txid())
            self._append("mempool", m.TxRemovedEvent(self.seq + 1, txid, change.reason))
            if change.reason != "confirmed":  # confirmed: the block's own address event says so
                self._address_events(change.tx, change.spent, "removed")

    def _address_events(
        self, tx: Transaction, spent: Iterable[Coin], status: m.AddressStatus
    ) -> None:
        if not self._watched:
            return
        txid = None
        for pkh in sorted(_pubkey_hashes(tx, spent)):
            for topic in sorted(self._watched.get(pkh, ())):
                txid = txid or _hex(tx.txid())
                address = topic[len(ADDRESS_TOPIC) :]
                self._append(topic, m.AddressEvent(self.seq + 1, address, txid, status))

    def _append(self, topic: str, event: m.NodeEvent) -> None:
        """The one place a seq is taken."""
        self.seq += 1
        assert event.seq == self.seq
        self.ring.append(Stored(self.seq, topic, _encode(event).decode()))

    @property
    def oldest(self) -> int:
        """The oldest seq the ring holds (the next one while it is empty)."""
        return self.ring[0].seq if self.ring else self.seq + 1

    def events_from(self, seq: int, limit: int) -> list[Stored]:
        """Up to ``limit`` stored events from ``seq`` on (seqs are consecutive in the ring)."""
        start = seq - self.oldest
        if start < 0 or start >= len(self.ring):
            return []
        return list(itertools.islice(self.ring, start, start + limit))

    def _wake_all(self) -> None:
        now = self._loop.time()
        for client in list(self.clients):
            started = client.write_started
            stalled = started is not None and now - started > self._stall_seconds
            overwritten = client.cursor < self.oldest
            if overwritten or (stalled and client.behind() > self._client_queue):
                self.drop(client, behind=True)
            else:
                client.wake.set()

    # --- event loop: clients ---------------------------------------------------------------------

    def parse_topics(self, topics: object) -> frozenset[str]:
        """``topics`` checked: a list of at most ``MAX_EVENT_SUBSCRIPTIONS`` topic strings."""
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise TopicError("subscribe takes a list of topic strings")
        if len(topics) > MAX_EVENT_SUBSCRIPTIONS:
            raise TopicError(f"at most {MAX_EVENT_SUBSCRIPTIONS} topics per client")
        for topic in topics:
            if topic in EVENT_TOPICS:
                continue
            if not topic.startswith(ADDRESS_TOPIC):
                raise TopicError(
                    f"unknown topic {topic[:100]!r}: blocks, mempool or address:<address>"
                )
            try:
                decode_address(topic[len(ADDRESS_TOPIC) :], self._params)
            except AddressError as err:
                raise TopicError(f"{topic[:100]!r}: {err.reason}: {err}") from None
        return frozenset(topics)

    def join(self, topics: frozenset[str], since: int | None = None) -> Subscriber:
        """A new client (``StreamFullError`` at ``max_clients``): live from now, or replaying
        from after ``since``."""
        if len(self.clients) >= self.max_clients:
            raise StreamFullError(f"{self.max_clients} clients are connected already")
        client = Subscriber(self, frozenset(), self.seq + 1)
        self.clients.add(client)
        self.retopic(client, topics)
        if since is not None:
            client.since(since)
        return client

    def retopic(self, client: Subscriber, topics: frozenset[str]) -> None:
        for topic in client.topics - topics:
            self._unwatch(topic)
        for topic in topics - client.topics:
            if topic.startswith(ADDRESS_TOPIC):
                pkh = decode_address(topic[len(ADDRESS_TOPIC) :], self._params)
                spellings = self._watched.setdefault(pkh, {})
                spellings[topic] = spellings.get(topic, 0) + 1
        client.topics = topics

    def _unwatch(self, topic: str) -> None:
        if not topic.startswith(ADDRESS_TOPIC):
            return
        pkh = decode_address(topic[len(ADDRESS_TOPIC) :], self._params)
        spellings = self._watched.get(pkh, {})
        spellings[topic] = spellings.get(topic, 1) - 1
        if spellings[topic] <= 0:
            del spellings[topic]
        if not spellings:
            self._watched.pop(pkh, None)

    def leave(self, client: Subscriber) -> None:
        """The client's connection ended (idempotent)."""
        if client in self.clients:
            self.clients.discard(client)
            self.retopic(client, frozenset())
        client.closed = True

    def drop(self, client: Subscriber, behind: bool = False) -> None:
        """Give up on a client: its writer is stopped, its last words written (``gap`` if it
        fell ``behind``), and the transport closes the connection."""
        if client.dropped:
            return
        client.dropped = True
        if not client.shutdown:
            self.dropped_count += 1
        client.behind_dropped = behind
        if not client.shutdown:
            why = "behind" if behind else "too many unread answers"
            log.info("event stream: dropped a client (%s)", why)
        self.leave(client)
        client.wake.set()
        if client.task is not None and client.task is not asyncio.current_task():
            client.task.cancel()
        if self._on_drop is not None:
            self._on_drop(client)

    def shutdown(self) -> None:
        """The node stops: every client's writer ends, its connection is closed."""
        for client in list(self.clients):
            client.shutdown = True
            self.drop(client)

    def info(self) -> m.EventsInfo:
        ring = self.ring.maxlen or 0
        return m.EventsInfo(
            self.seq, self.oldest, ring, len(self.clients), self.max_clients, self.dropped_count
        )
