"""``node.p2p.banman``: bans per IP, per URL only under ``--whitelist``, bounded and pruned tables,
bans persisted in a real LevelDB (SPEC 3.4; issue 16 defect 11).

All loopback test nodes share 127.0.0.1, so per-IP banning is tested here (and across hosts in
``tests/integration/test_multihost.py``); the integration tests run their nodes whitelisted.
"""

from __future__ import annotations

from pathlib import Path

from node.p2p import policy
from node.p2p.banman import BanMan, RateLimiter, parse_networks
from node.storage import LevelDBStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_changing_port_or_path_does_not_dodge_a_ban(tmp_path: Path) -> None:
    """Regression (issue 16, defect 11): 1,000 requests with new ports and paths made 201
    bans; now every one of them is the same peer, the IP, banned once."""
    store = LevelDBStore(tmp_path / "db")
    bans = BanMan(store)
    for n in range(1_000):
        key, url = bans.identify("203.0.113.7", f"http://203.0.113.7:{1_000 + n}/p{n}")
        assert key == "203.0.113.7" and url == f"http://203.0.113.7:{1_000 + n}/p{n}"
        if not bans.is_banned(key):
            bans.misbehaving(key, policy.SCORE_MALFORMED, "garbage")
    assert list(bans.bans) == ["203.0.113.7"]
    assert bans.is_banned(bans.key_for_url("http://203.0.113.7:9999"))
    assert not bans.is_banned("203.0.113.8")
    store.close()


def test_whitelisted_addresses_are_scored_per_url(tmp_path: Path) -> None:
    store = LevelDBStore(tmp_path / "db")
    bans = BanMan(store, whitelist=parse_networks(["127.0.0.0/8"]))
    a, url_a = bans.identify("127.0.0.1", "http://127.0.0.1:1111")
    b, _ = bans.identify("127.0.0.1", "http://127.0.0.1:2222")
    assert (a, url_a, b) == (
        "http://127.0.0.1:1111",
        "http://127.0.0.1:1111",
        "http://127.0.0.1:2222",
    )
    assert bans.misbehaving(a, 100, "invalid block")
    assert bans.is_banned(a) and not bans.is_banned(b)
    # a URL on another host is not believed: the key is the address it came from
    assert bans.identify("127.0.0.1", "http://10.0.0.1:1111") == ("ip:127.0.0.1", None)
    # outside the whitelist, still per IP
    assert bans.identify("198.51.100.2", "http://198.51.100.2:1") == (
        "198.51.100.2",
        "http://198.51.100.2:1",
    )
    assert bans.key_for_url("http://127.0.0.1:1111/") == "http://127.0.0.1:1111"
    store.close()


def test_bans_survive_a_restart_and_expire(tmp_path: Path) -> None:
    clock = Clock()
    store = LevelDBStore(tmp_path / "db")
    BanMan(store, clock=clock).ban("192.0.2.1", "test")
    store.close()
    store = LevelDBStore(tmp_path / "db")
    again = BanMan(store, clock=clock)
    assert again.is_banned("192.0.2.1")
    clock.now += policy.BAN_SECONDS + 1
    again.sweep()
    assert not again.bans
    assert list(store.iterate(b"B")) == []  # pruned from the database too
    store.close()


def test_ban_table_is_bounded(tmp_path: Path, monkeypatch: object) -> None:
    import node.p2p.policy as pol

    clock = Clock()
    store = LevelDBStore(tmp_path / "db")
    bans = BanMan(store, clock=clock)
    setattr(pol, "MAX_BANS", 50)  # noqa: B010
    try:
        for n in range(200):
            clock.now += 1
            bans.ban(f"10.1.{n // 256}.{n % 256}", "flood")
        assert len(bans.bans) == 50
        assert "10.1.0.199" in bans.bans and "10.1.0.0" not in bans.bans  # soonest ended first
        assert len(list(store.iterate(b"B"))) == 50
    finally:
        setattr(pol, "MAX_BANS", 10_000)  # noqa: B010
    store.close()


def test_score_table_is_bounded_and_old_scores_forgotten(tmp_path: Path) -> None:
    clock = Clock()
    store = LevelDBStore(tmp_path / "db")
    bans = BanMan(store, clock=clock)
    for n in range(policy.MAX_SCORES + 500):
        bans.misbehaving(f"ip:{n}", 20, "garbage")
    assert len(bans.scores) == policy.MAX_SCORES
    assert bans.score("ip:0") == 0 and bans.score(f"ip:{policy.MAX_SCORES + 499}") == 20
    clock.now += policy.SCORE_SECONDS + 1
    bans.misbehaving("ip:new", 20, "garbage")
    assert list(bans.scores) == ["ip:new"]
    store.close()


def test_rate_limiter_is_per_key_and_bounded() -> None:
    now = [0.0]
    rates = RateLimiter(rate=10, burst=5, monotonic=lambda: now[0])
    assert [rates.take("a") for _ in range(6)] == [True] * 5 + [False]
    assert rates.take("b")
    now[0] += 0.1
    assert rates.take("a") and not rates.take("a")
    for n in range(policy.MAX_SCORES + 10):
        rates.take(f"k{n}")
    assert len(rates.buckets) == policy.MAX_SCORES
