"""The address book: peer URLs we know and when to dial each next (SPEC 3.4, Core's addrman).

Job: keep configured URLs (``--peer``, ``add-peer``) for ever and at most ``MAX_ADDRESSES``
learned ones (from ``addr`` messages and handshakes), each with its failure count and the time of
its next dial attempt (exponential backoff with jitter, capped at ``BACKOFF_MAX``). A full book
makes room for a new address by forgetting a learned one that is neither configured nor
connected: the oldest that failed to answer if any, else the newest, so junk can neither freeze
the book nor push out what was learned before it.

State: the ``addresses`` table, on the event loop thread. Leaves to others: dialling
(``peers``), deciding who is banned (``banman``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from urllib.parse import urlsplit

from node.p2p import policy
from node.p2p.policy import MAX_ADDRESSES

__all__ = ["MAX_ADDRESSES", "AddrMan", "Dial", "usable_url"]


def usable_url(url: str) -> bool:
    """An http(s) URL with a host and a valid port, as a peer's listening address."""
    if not url.startswith(("http://", "https://")) or len(url) > policy.MAX_URL:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return bool(parts.hostname) and (port is None or 0 < port < 65536) and not parts.query


@dataclass
class Dial:
    """Connection attempts to one URL: when to try next."""

    failures: int = 0
    next_attempt: float = 0.0


class AddrMan:
    """Known peer addresses."""

    def __init__(
        self,
        own_url: str,
        configured: list[str],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        limit: int = MAX_ADDRESSES,
    ) -> None:
        self.own_url = own_url.rstrip("/")
        self.monotonic = monotonic
        self.limit = limit
        self.addresses: dict[str, Dial] = {u.rstrip("/"): Dial() for u in configured}
        self.configured = {u.rstrip("/") for u in configured}

    def __contains__(self, url: object) -> bool:
        return url in self.addresses

    def __len__(self) -> int:
        return len(self.addresses)

    def add_configured(self, url: str) -> None:
        url = url.rstrip("/")
        self.configured.add(url)
        self.addresses.setdefault(url, Dial())

    def get(self, url: str) -> Dial:
        """The dial record of ``url`` (created for a URL we connect to without knowing it)."""
        return self.addresses.setdefault(url.rstrip("/"), Dial())

    def forget(self, url: str) -> None:
        self.addresses.pop(url.rstrip("/"), None)
        self.configured.discard(url.rstrip("/"))

    def succeeded(self, url: str) -> None:
        self.get(url).failures = 0

    def failed(self, url: str) -> None:
        """Back off: the next attempt after 2^failures seconds (jittered, capped)."""
        dial = self.get(url)
        dial.failures += 1
        delay = min(policy.BACKOFF_MAX, 2 ** min(dial.failures, 6))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not security)
        dial.next_attempt = self.monotonic() + delay

    def learn(self, urls: list[str], connected: Container[str]) -> None:
        for url in urls:
            url = url.rstrip("/")
            if not usable_url(url) or url == self.own_url or url in self.addresses:
                continue
            if len(self.addresses) >= self.limit and not self._make_room(connected):
                continue
            self.addresses[url] = Dial()

    def _make_room(self, connected: Container[str]) -> bool:
        spare = [u for u in self.addresses if u not in self.configured and u not in connected]
        if not spare:
            return False
        failed = [u for u in spare if self.addresses[u].failures]
        del self.addresses[failed[0] if failed else spare[-1]]
        return True

    def due(self) -> list[str]:
        """URLs whose next attempt is due, configured ones first."""
        now = self.monotonic()
        due = [u for u, d in self.addresses.items() if d.next_attempt <= now]
        return sorted(due, key=lambda u: u not in self.configured)
