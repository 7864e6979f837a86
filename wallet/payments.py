"""Payment requests and watching for payments (SPEC 4 ``request``, ``watch``).

``request_address`` picks the address a request asks to be paid to: the current receive address
if the node has seen nothing paid to it and no earlier request used it (a request labels its
address), else a fresh one, within the gap limit as ``address --new``.

``watch`` waits for a payment to an address: *seen* once transactions paying it (in the mempool
or in blocks) add up to the requested amount (any payment when no amount is asked), *confirmed*
once those with at least ``confirmations`` confirmations do. Progress is reported through a
callback as it changes (``Progress``); a ``timeout`` ends the wait with ``WatchTimeoutError``.

What the node says is read by ``poll_received``, the only function that talks to the node here:
for now it polls the address's history (``/address/{a}/txs``, newest first, at most
``MAX_WATCH_PAGES`` pages) every ``POLL_SECONDS``, as the node has no event stream yet (SPEC 3.6;
docs/DECISIONS.md); an event-stream client replaces this one function.

Left to others: the URI's text (``wallet.uri``), the QR code (``wallet.qr``), paying (``send``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from client import models as m
from client.http import Client
from wallet.keys import RECEIVE, KeyId
from wallet.uri import format_tly

if TYPE_CHECKING:
    from wallet.service import Wallet

POLL_SECONDS = 0.5
"""How often ``watch`` asks the node while polling (until the event stream exists)."""
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


def watch(
    client: Client,
    address: str,
    amount: int | None,
    confirmations: int,
    timeout: float | None,
    report: Callable[[Progress], None],
    poll: Callable[[Client, str], list[Received]] = poll_received,
    poll_seconds: float = POLL_SECONDS,
) -> Progress:
    """Wait until ``address`` is paid ``amount`` (or anything) with ``confirmations``; the final
    progress. ``report`` is called once when seen and once when confirmed (and when the count
    of confirmations changes in between)."""
    wanted = 1 if amount is None else amount
    deadline = None if timeout is None else time.monotonic() + timeout
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
        time.sleep(poll_seconds)


def _seen(received: list[Received]) -> Progress:
    return Progress(
        "seen",
        sum(r.amount for r in received),
        min((r.confirmations for r in received), default=0),
        tuple(r.txid for r in received),
    )


def _tly(units: int) -> str:
    return format_tly(units)
