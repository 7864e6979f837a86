"""In-flight tracking of announced objects: who announced what, who was asked, until when
(SPEC 3.4; Core's ``txrequest``).

Job: for every object (``(kind, hash)``) we lack and peers announced, remember each announcer in
the order their announcements came. At most one announcer is asked at a time; a request has an
expiry, and when it expires, or the peer answers without the object, or disconnects, that
announcement is *completed* and the next announcer becomes the one to ask. When every
announcer has been tried the object is forgotten (a new announcement starts again). An object
that arrives is forgotten at once (``received``), whoever sent it.

Bounds: ``MAX_ANNOUNCED_PER_PEER`` announcements per peer, ``MAX_TRACKED`` objects in all (new
announcements beyond them are ignored: the announcer may announce again later), and
``MAX_IN_FLIGHT_PER_PEER`` objects requested from one peer at once.

State: plain tables, no I/O, no clock of its own (``now`` is passed in), used on the event
loop thread by ``relay``. Leaves to others: sending the requests and processing the answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.p2p import policy

Key = tuple[str, bytes]
"""An object: its kind (``"tx"`` or ``"block"``) and hash."""


@dataclass
class _Announcement:
    requested_until: float | None = None
    """When the request to this announcer expires (None: not asked yet)."""
    completed: bool = False


class TxRequestTracker:
    """Announcements per object and per peer; requests with expiry."""

    def __init__(
        self,
        *,
        max_per_peer: int = policy.MAX_ANNOUNCED_PER_PEER,
        max_tracked: int = policy.MAX_TRACKED,
        max_in_flight: int = policy.MAX_IN_FLIGHT_PER_PEER,
    ) -> None:
        self.max_per_peer = max_per_peer
        self.max_tracked = max_tracked
        self.max_in_flight = max_in_flight
        self._objects: dict[Key, dict[str, _Announcement]] = {}
        self._by_peer: dict[str, dict[Key, None]] = {}
        self._in_flight: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._objects)

    def tracked(self, key: Key) -> bool:
        return key in self._objects

    def announcers(self, key: Key) -> list[str]:
        return list(self._objects.get(key, {}))

    def requested(self, key: Key) -> bool:
        """Some announcer is being asked for ``key`` now."""
        return any(
            a.requested_until is not None and not a.completed
            for a in self._objects.get(key, {}).values()
        )

    def in_flight(self, peer: str) -> int:
        return self._in_flight.get(peer, 0)

    def received_inv(self, peer: str, key: Key) -> bool:
        """``peer`` announced ``key``; False if it was not recorded (a bound was reached)."""
        anns = self._objects.get(key)
        if anns is None:
            if len(self._objects) >= self.max_tracked:
                return False
            anns = self._objects[key] = {}
        if peer in anns:
            return True
        mine = self._by_peer.setdefault(peer, {})
        if len(mine) >= self.max_per_peer:
            if not anns:
                del self._objects[key]
            return False
        anns[peer] = _Announcement()
        mine[key] = None
        return True

    def _best(self, key: Key) -> str | None:
        """The announcer to ask for ``key`` now: None while one is being asked."""
        for peer, ann in self._objects[key].items():
            if ann.requested_until is not None and not ann.completed:
                return None
            if not ann.completed:
                return peer
        return None

    def select(
        self, peer: str, now: float, timeout: float, limit: int, kind: str | None = None
    ) -> list[Key]:
        """Up to ``limit`` objects (of ``kind``, if given) to ask ``peer`` for now; marked as
        requested until ``now + timeout``."""
        room = min(limit, self.max_in_flight - self.in_flight(peer))
        chosen: list[Key] = []
        if room <= 0:
            return chosen
        for key in self._by_peer.get(peer, {}):
            if len(chosen) >= room:
                break
            if (kind is None or key[0] == kind) and self._best(key) == peer:
                chosen.append(key)
        for key in chosen:
            self._objects[key][peer].requested_until = now + timeout
        if chosen:
            self._in_flight[peer] = self.in_flight(peer) + len(chosen)
        return chosen

    def received(self, key: Key) -> None:
        """``key`` arrived (from anyone) or is no longer wanted: forget it."""
        anns = self._objects.pop(key, None)
        if anns is None:
            return
        for peer, ann in anns.items():
            self._release(peer, ann)
            mine = self._by_peer.get(peer)
            if mine is not None:
                mine.pop(key, None)
                if not mine:
                    del self._by_peer[peer]

    def not_delivered(self, peer: str, key: Key) -> None:
        """``peer`` was asked for ``key`` and did not send it: try the next announcer."""
        anns = self._objects.get(key)
        if anns is None or peer not in anns:
            return
        ann = anns[peer]
        self._release(peer, ann)
        ann.completed = True
        mine = self._by_peer.get(peer)
        if mine is not None:
            mine.pop(key, None)
            if not mine:
                del self._by_peer[peer]
        if all(a.completed for a in anns.values()):
            del self._objects[key]

    def expire(self, now: float) -> list[tuple[str, Key]]:
        """Requests whose time is up: completed, as if not delivered. Returns them."""
        expired = [
            (peer, key)
            for key, anns in self._objects.items()
            for peer, ann in anns.items()
            if ann.requested_until is not None and not ann.completed and ann.requested_until <= now
        ]
        for peer, key in expired:
            self.not_delivered(peer, key)
        return expired

    def disconnected(self, peer: str) -> None:
        """``peer`` left: its announcements go, its requests pass to the next announcer."""
        for key in list(self._by_peer.get(peer, {})):
            anns = self._objects.get(key)
            if anns is None or peer not in anns:
                continue
            self._release(peer, anns.pop(peer))
            if all(a.completed for a in anns.values()):
                del self._objects[key]
        self._by_peer.pop(peer, None)
        self._in_flight.pop(peer, None)

    def peers_with_work(self) -> list[str]:
        """Peers that have announcements waiting."""
        return list(self._by_peer)

    def _release(self, peer: str, ann: _Announcement) -> None:
        if ann.requested_until is not None and not ann.completed:
            left = self.in_flight(peer) - 1
            if left > 0:
                self._in_flight[peer] = left
            else:
                self._in_flight.pop(peer, None)
            ann.requested_until = None
