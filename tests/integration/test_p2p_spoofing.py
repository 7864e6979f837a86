"""Regression: a client could get an honest peer banned by sending garbage with that peer's URL
in ``X-Tally-Peer``. A claimed URL now counts only when its host is the request's own address."""

from __future__ import annotations

from pathlib import Path

from tests.functional.node_process import NodeProcess, http

VICTIM = "http://10.213.99.7:18844"  # a peer on another host; never contacted by this test


def test_garbage_in_another_hosts_name_scores_the_sender_not_that_host(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "n") as node:
        for _ in range(5):  # 5 x 20 points: enough for a ban
            r = http(
                node.url + "/p2p/addr",
                "POST",
                b"\xc1garbage",
                {"Content-Type": "application/msgpack", "X-Tally-Peer": VICTIM},
            )
            assert r.status in (400, 403)
        banned = {b["peer"] for b in node.get("/api/v1/peers").json()["banned"]}
        assert VICTIM not in banned
        assert "ip:127.0.0.1" in banned  # the one who really sent it
        # and the claimed identity cannot shed the sender's ban either
        r = http(
            node.url + "/p2p/addr",
            "POST",
            b"\x81\xa4urls\x90",
            {"Content-Type": "application/msgpack", "X-Tally-Peer": "http://10.213.99.8:1"},
        )
        assert r.status == 403
