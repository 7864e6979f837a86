"""``node.p2p.addrman``: the bounded address book and dial backoff (SPEC 3.4)."""

from __future__ import annotations

from node.p2p.addrman import AddrMan, usable_url


def test_full_book_forgets_failed_learned_addresses_first() -> None:
    now = [0.0]
    book = AddrMan("http://127.0.0.1:1", ["http://127.0.0.1:2"], monotonic=lambda: now[0], limit=4)
    book.learn(["http://127.0.0.1:3", "http://127.0.0.1:4", "http://127.0.0.1:5"], set())
    assert len(book) == 4
    book.failed("http://127.0.0.1:4")
    book.learn(["http://127.0.0.1:6"], set())
    assert "http://127.0.0.1:4" not in book and "http://127.0.0.1:6" in book
    book.learn(
        ["http://127.0.0.1:7"], {"http://127.0.0.1:6", "http://127.0.0.1:3", "http://127.0.0.1:5"}
    )
    assert "http://127.0.0.1:7" not in book  # nothing spare: configured and connected stay
    assert "http://127.0.0.1:2" in book


def test_backoff_and_due_order() -> None:
    now = [100.0]
    book = AddrMan("http://h:1", ["http://h:2"], monotonic=lambda: now[0])
    book.learn(["http://h:3", "http://h:1", "ftp://h:4", "http://h:99999"], set())
    assert set(book.addresses) == {"http://h:2", "http://h:3"}
    book.failed("http://h:2")
    assert book.due() == ["http://h:3"]
    now[0] += 2.0
    assert book.due() == ["http://h:2", "http://h:3"]  # configured first
    assert not usable_url("http://h:1?x=1") and usable_url("https://h")
