"""Payment requests and watching for payments (SPEC 4 ``request``, ``watch``).

``request_address`` picks the address a request asks to be paid to: the current receive address
if the node has seen nothing paid to it and no earlier request used it (a request labels its
address), else a fresh one, within the gap limit as ``address --new``.

``watch`` waits for a payment to an address: *seen* once transactions paying it (in the mempool
or in blocks) add up to the requested amount (any payment when no amount is asked), *confirmed*
once those with at least ``confirmations`` confirmations do. Progress is reported through a
callback as it changes (``Progress``); a ``timeout`` ends the wait with ``WatchTimeoutError``.

What the node says is read by ``poll_received`` (the address's history, ``/address/{a}/txs``,
newest first, at most ``MAX_WATCH_PAGES`` pages). When to read it again is the event stream's
call (SPEC 3.6, ``client.events``): ``StreamWaker`` subscribes to the address and to blocks and
wakes the watch at each event that concerns it, re-reading at least every ``STREAM_RECHECK``
seconds; if the stream cannot be opened or drops, the watch polls every ``POLL_SECONDS``.

Left to others: the URI's text (``wallet.uri``), the QR code (``wallet.qr``), paying (``send``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from client import models as m
from client.events import EventStreamError, iter_events
from client.http import Client
from wallet.keys import RECEIVE, KeyId
from wallet.uri import format_tly

if TYPE_CHECKING:
    from wallet.service import Wallet

POLL_SECONDS = 0.5
"""How often ``watch`` asks the node while polling (when the event stream is not there)."""
STREAM_RECHECK = 30.0
"""With the event stream, ``watch`` re-reads the address at least this often anyway."""
STREAM_OPEN_TIMEOUT = 10.0
"""Seconds to wait for the stream's ``subscribed`` before polling instead."""
MAX_WATCH_PAGES = 4
"""Pages of an address's history (25 each, newest first) a poll reads at most."""
REQUEST_LABEL = "payment request"
"""The label a request gives its address when it has neither ``--label`` nor ``--message``."""


class WatchTimeoutError(Exception):
    """No (confirmed) payment within the time allowed; the message says what was seen."""


@dataclass(frozen=True)
class Received:
    """One transaction paying the watched address."""

    txid: str
    amount: int
    confirmations: int


@dataclass(frozen=True)
class Progress:
    """What ``watch`` reports: ``stage`` is ``seen`` or ``confirmed``."""

    stage: str
    received: int
    confirmations: int
    txids: tuple[str, ...]


def request_address(wallet: Wallet) -> tuple[KeyId, str]:
    """The address to put in a new request (see the module docstring)."""
    key, address = wallet.receive_address()
    summary = wallet.client.address(address)
    used = summary.chain_stats.tx_count or summary.mempool_stats.tx_count
    if used or address in wallet.meta.label_map:
        key, address = wallet.new_receive_address()
        if key.chain != RECEIVE:  # pragma: no cover - new_receive_address is on chain 0
            raise AssertionError("receive chain expected")
    return key, address


def poll_received(client: Client, address: str) -> list[Received]:
    """Transactions paying ``address`` and their confirmations, newest first (polling)."""
    found: list[Received] = []
    after: str | None = None
    for _ in range(MAX_WATCH_PAGES):
        page = client.address_txs(address, after)
        for tx in page:
            amount = sum(o.amount for o in tx.outputs if o.address == address)
            if amount:
                status = tx.status
                confirmations = status.confirmations if isinstance(status, m.TxConfirmed) else 0
                found.append(Received(tx.txid, amount, confirmations))
        if len(page) < 25:
            break
        after = page[-1].txid
    return found


class Waker(Protocol):
    """What ``watch`` waits on between two reads of the address."""

    def wait(self, seconds: float) -> None: ...

    def close(self) -> None: ...


class StreamWaker:
    """Wakes a watch at each event of the node's stream about ``address`` or a block: a thread
    reads ``client.events.iter_events`` and sets a flag that ``wait`` waits on. Without a
    stream (it could not open, or dropped: ``active`` False) ``wait`` sleeps ``POLL_SECONDS``."""

    def __init__(self, client: Client, address: str) -> None:
        self._events: Iterator[m.StreamMessage] = iter_events(
            client.url, subscribe=["blocks", f"address:{address}"], timeout=None
        )
        self._woken = threading.Event()
        self._subscribed = threading.Event()
        self._alive = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        # Subscribed before the first read of the address, so no payment falls in between.
        if not self._subscribed.wait(STREAM_OPEN_TIMEOUT):
            self._alive = False

    def _read(self) -> None:
        try:
            for _ in self._events:
                self._subscribed.set()
                self._woken.set()
        except (EventStreamError, OSError, RuntimeError):
            pass
        finally:
            self._alive = False
            self._woken.set()

    @property
    def active(self) -> bool:
        return self._alive

    def wait(self, seconds: float) -> None:
        """Until an event comes, ``seconds`` pass, or ``STREAM_RECHECK``; at most
        ``POLL_SECONDS`` without a stream."""
        limit = min(seconds, STREAM_RECHECK if self._alive else POLL_SECONDS)
        if self._alive:
            self._woken.wait(max(0.0, limit))
            self._woken.clear()
        else:
            time.sleep(max(0.0, limit))

    def close(self) -> None:
        """Ends the stream (the reader thread is a daemon: a stream that does not close in
        time is left to the process's exit)."""
        self._alive = False
        close = getattr(self._events, "close", None)
        if close is not None and not self._thread.is_alive():
            close()


def watch(
    client: Client,
    address: str,
    amount: int | None,
    confirmations: int,
    timeout: float | None,
    report: Callable[[Progress], None],
    poll: Callable[[Client, str], list[Received]] = poll_received,
    waker: Callable[[Client, str], Waker] = StreamWaker,
) -> Progress:
    """Wait until ``address`` is paid ``amount`` (or anything) with ``confirmations``; the final
    progress. ``report`` is called once when seen and once when confirmed (and when the count
    of confirmations changes in between). The address is read again at each event of the
    stream that concerns it (``StreamWaker``), or every ``POLL_SECONDS`` without a stream."""
    wanted = 1 if amount is None else amount
    deadline = None if timeout is None else time.monotonic() + timeout
    wake = waker(client, address)
    try:
        return _watch(client, address, wanted, confirmations, timeout, deadline, report, poll, wake)
    finally:
        wake.close()


def _watch(
    client: Client,
    address: str,
    wanted: int,
    confirmations: int,
    timeout: float | None,
    deadline: float | None,
    report: Callable[[Progress], None],
    poll: Callable[[Client, str], list[Received]],
    wake: Waker,
) -> Progress:
    last: Progress | None = None
    while True:
        received = poll(client, address)
        total = sum(r.amount for r in received)
        deep = [r for r in received if r.confirmations >= confirmations]
        if sum(r.amount for r in deep) >= wanted:
            done = Progress(
                "confirmed",
                sum(r.amount for r in deep),
                min(r.confirmations for r in deep),
                tuple(r.txid for r in deep),
            )
            if last is None or last.stage != "seen":
                report(_seen(received))
            report(done)
            return done
        if total >= wanted:
            now = _seen(received)
            if now != last:
                report(now)
                last = now
        if deadline is not None and time.monotonic() >= deadline:
            what = (
                f"seen {_tly(total)} TLY in {len(received)} transactions, not yet "
                f"{confirmations} confirmations"
                if received
                else "nothing seen"
            )
            raise WatchTimeoutError(
                f"no payment of {_tly(wanted)} TLY to {address} confirmed within {timeout:g} s "
                f"({what})"
            )
        left = STREAM_RECHECK if deadline is None else deadline - time.monotonic()
        wake.wait(max(0.0, left))


def _seen(received: list[Received]) -> Progress:
    return Progress(
        "seen",
        sum(r.amount for r in received),
        min((r.confirmations for r in received), default=0),
        tuple(r.txid for r in received),
    )


def _tly(units: int) -> str:
    return format_tly(units)
