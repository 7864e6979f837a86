"""``node.p2p.txrequest``: in-flight tracking per announcer, expiry, the next announcer asked
(SPEC 3.4; Core's txrequest; issue 16 defect 4)."""

from __future__ import annotations

from node.p2p.txrequest import TxRequestTracker

T = ("tx", b"\x01" * 32)
U = ("tx", b"\x02" * 32)


def test_one_announcer_asked_at_a_time_then_the_next_after_expiry() -> None:
    t = TxRequestTracker()
    assert t.received_inv("withholder", T) and t.received_inv("honest", T)
    assert t.select("honest", 0.0, 5.0, 100) == []  # the first announcer goes first
    assert t.select("withholder", 0.0, 5.0, 100) == [T]
    assert t.select("honest", 1.0, 5.0, 100) == []  # in flight elsewhere
    assert t.expire(4.9) == []
    assert t.expire(5.0) == [("withholder", T)]
    assert t.select("honest", 5.0, 5.0, 100) == [T]
    t.received(T)
    assert not t.tracked(T) and t.in_flight("honest") == 0


def test_not_delivered_moves_on_and_the_last_failure_forgets() -> None:
    t = TxRequestTracker()
    t.received_inv("a", T)
    t.received_inv("b", T)
    assert t.select("a", 0.0, 5.0, 10) == [T]
    t.not_delivered("a", T)
    assert t.in_flight("a") == 0 and t.select("b", 0.0, 5.0, 10) == [T]
    t.not_delivered("b", T)
    assert not t.tracked(T)  # every announcer tried: a new announcement starts again
    assert t.received_inv("a", T) and t.select("a", 1.0, 5.0, 10) == [T]


def test_disconnect_passes_requests_on() -> None:
    t = TxRequestTracker()
    t.received_inv("a", T)
    t.received_inv("b", T)
    t.select("a", 0.0, 5.0, 10)
    t.disconnected("a")
    assert t.announcers(T) == ["b"] and t.select("b", 0.0, 5.0, 10) == [T]
    assert "a" not in t.peers_with_work()


def test_bounds_per_peer_in_flight_and_total() -> None:
    t = TxRequestTracker(max_per_peer=3, max_tracked=5, max_in_flight=2)
    keys = [("tx", bytes([n]) * 32) for n in range(10)]
    assert [t.received_inv("a", k) for k in keys[:4]] == [True, True, True, False]
    assert len(t.select("a", 0.0, 5.0, 10)) == 2  # in-flight bound
    assert t.select("a", 0.0, 5.0, 10) == []
    for k in keys[4:]:
        t.received_inv("b", k)
    assert len(t) == 5  # total bound
    assert t.select("a", 0.0, 5.0, 10, kind="block") == []


def test_duplicate_announcements_count_once() -> None:
    t = TxRequestTracker()
    for _ in range(3):
        t.received_inv("a", U)
    assert t.announcers(U) == ["a"] and len(t.select("a", 0.0, 1.0, 10)) == 1
