"""Misbehaviour scores and bans (SPEC 3.4), as Core's ``banman`` keeps them.

Job: decide *who* a peer is for scoring (``key_for_request``, ``key_for_url``), add up its
misbehaviour points, ban it for 24 hours at ``BAN_SCORE``, persist bans in the node's database
(key ``B`` + key, value: expiry as u64 BE seconds) and answer ``is_banned``.

Identity: a peer is its IP address, so changing the port or path of its claimed URL changes
nothing. Addresses inside a ``--whitelist`` network (a loopback devnet, where every node shares
127.0.0.1) are scored per listening URL instead: the URL a request claims in ``X-Tally-Peer`` is
believed only when its host is the address the request came from, otherwise the key is
``ip:<address>``. A peer we dial is keyed by its URL's host (an IP literal, or the host name
as given) unless that host is whitelisted.

Bounds: at most ``MAX_SCORES`` scores (a score untouched for ``SCORE_SECONDS`` is forgotten, the
oldest first when full) and ``MAX_BANS`` bans (expired ones swept, the soonest to end lifted
first when full). Bad input never raises here: keys are stored as UTF-8 with backslash escapes.

State: the tables, on the event loop thread. The store belongs to the state thread
(``node.state``): the tables are read from it in the constructor, which the node runs there, and
every later write goes through ``persist``, which the node gives as "run this on the state
thread, in order, without waiting" (a storage error there stops the node, SPEC 3.1); without
``persist`` (tests on one thread) writes are made at once. Leaves to others: dropping banned
peers' connections (the ``on_banned`` callback), refusing their requests (the routes).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from node.p2p import policy
from node.storage import KeyValueStore

log = logging.getLogger(__name__)

P_BAN = b"B"
"""Key prefix of bans in the node's database."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """``--whitelist`` values (CIDR, or a bare address) as networks; ``ValueError`` if bad."""
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in specs if s.strip())


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _at_once(write: Callable[[], None]) -> None:
    write()


def _key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "backslashreplace")


class BanMan:
    """Scores and bans of one node."""

    def __init__(
        self,
        store: KeyValueStore,
        *,
        whitelist: tuple[Network, ...] = (),
        clock: Callable[[], float] = time.time,
        on_banned: Callable[[str, str], None] | None = None,
        count_points: Callable[[int], None] | None = None,
        persist: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.store = store
        self._persist = persist if persist is not None else _at_once
        self.whitelist = whitelist
        self.clock = clock
        self.on_banned = on_banned
        self.count_points = count_points
        self.scores: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.bans: dict[str, float] = {}
        self._load()

    # --- identity -------------------------------------------------------------------------------

    def whitelisted(self, host: str) -> bool:
        ip = _ip(host)
        return ip is not None and any(ip in net for net in self.whitelist)

    def identify(self, remote: str, claimed_url: str) -> tuple[str, str | None]:
        """Who sent a request from ``remote`` claiming ``claimed_url`` (maybe empty): its key
        for scores, bans and rates, and the claimed URL if it is believed (its host is the
        address the request came from), else None."""
        url: str | None = claimed_url.strip().rstrip("/")
        if not (
            url
            and url.startswith(("http://", "https://"))
            and len(url) <= policy.MAX_URL
            and url.isascii()
            and url.isprintable()
        ):
            url = None
        else:
            try:
                host = (urlsplit(url).hostname or "").lower()
            except ValueError:
                host = ""
            loopback = {"127.0.0.1", "::1"}
            if not (host == remote or (host == "localhost" and remote in loopback)):
                url = None
        if self.whitelisted(remote):
            return (url if url is not None else f"ip:{remote}"), url
        ip = _ip(remote)
        return (str(ip) if ip is not None else f"ip:{remote}"), url

    def key_for_url(self, url: str) -> str:
        """The key of a peer we reach at ``url``."""
        url = url.rstrip("/")
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return url
        if not host or self.whitelisted(host):
            return url
        ip = _ip(host)
        return str(ip) if ip is not None else host

    # --- scores and bans ------------------------------------------------------------------------

    def misbehaving(self, key: str, points: int, reason: str) -> bool:
        """Add ``points`` to ``key``'s score; True if that banned it."""
        if points <= 0:
            return False
        now = self.clock()
        self._prune_scores(now)
        score = self.scores.pop(key, (0, now))[0] + points
        self.scores[key] = (score, now)
        while len(self.scores) > policy.MAX_SCORES:
            self.scores.popitem(last=False)
        if self.count_points is not None:
            self.count_points(points)
        log.info("peer %s misbehaved (+%d = %d): %s", key, points, score, reason)
        if score >= policy.BAN_SCORE:
            self.ban(key, reason)
            return True
        return False

    def score(self, key: str) -> int:
        return self.scores.get(key, (0, 0.0))[0]

    def ban(self, key: str, reason: str, seconds: float = policy.BAN_SECONDS) -> None:
        now = self.clock()
        self.sweep(now)
        until = now + seconds
        while len(self.bans) >= policy.MAX_BANS and key not in self.bans:
            soonest = min(self.bans, key=self.bans.__getitem__)
            self._unban(soonest)
        self.bans[key] = until
        self.scores.pop(key, None)
        record = P_BAN + _key_bytes(key), int(until).to_bytes(8, "big")
        self._persist(lambda: self.store.put(*record))
        log.warning("peer %s banned for %d hours: %s", key, round(seconds / 3600), reason)
        if self.on_banned is not None:
            self.on_banned(key, reason)

    def is_banned(self, key: str) -> bool:
        until = self.bans.get(key)
        if until is None:
            return False
        if until < self.clock():
            self._unban(key)
            return False
        return True

    def persist_all(self) -> None:
        """Write the ban table as it stands over the store's ban records: after the store's
        contents were replaced (a devnet revert), the bans in force stay in force across a
        restart too (they are about peers, not about the chain)."""
        records = [(P_BAN + _key_bytes(k), int(u).to_bytes(8, "big")) for k, u in self.bans.items()]

        def write() -> None:
            with self.store.write_batch(sync=False) as batch:
                for key, _ in self.store.iterate(P_BAN):
                    batch.delete(key)
                for key, value in records:
                    batch.put(key, value)

        self._persist(write)

    def sweep(self, now: float | None = None) -> None:
        """Lift every ban that has ended."""
        now = self.clock() if now is None else now
        for key in [k for k, until in self.bans.items() if until < now]:
            self._unban(key)

    def _unban(self, key: str) -> None:
        self.bans.pop(key, None)
        record = P_BAN + _key_bytes(key)
        self._persist(lambda: self.store.delete(record))

    def _prune_scores(self, now: float) -> None:
        while self.scores:
            key, (_, stamp) = next(iter(self.scores.items()))
            if now - stamp < policy.SCORE_SECONDS:
                break
            del self.scores[key]

    def _load(self) -> None:
        now = self.clock()
        stale: list[bytes] = []
        for raw_key, value in list(self.store.iterate(P_BAN)):
            key = raw_key[len(P_BAN) :].decode("utf-8", "replace")
            until = int.from_bytes(value, "big")
            if until > now and len(self.bans) < policy.MAX_BANS:
                self.bans[key] = until
            else:
                stale.append(raw_key)
        for raw_key in stale:
            self.store.delete(raw_key)


class RateLimiter:
    """A token bucket per key (``RATE_PER_SECOND``, bursts of ``RATE_BURST``), at most
    ``MAX_SCORES`` keys (the least recently seen forgotten first)."""

    def __init__(
        self,
        rate: float = policy.RATE_PER_SECOND,
        burst: float = policy.RATE_BURST,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.monotonic = monotonic
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> bool:
        now = self.monotonic()
        tokens, stamp = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        allowed = tokens >= 1
        self.buckets[key] = (tokens - 1 if allowed else tokens, now)
        while len(self.buckets) > policy.MAX_SCORES:
            self.buckets.popitem(last=False)
        return allowed
