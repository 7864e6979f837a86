"""A peer speaking protocol version 1 (block merkle roots over txids) is refused at the handshake.

Issue 16, defect 1: the consensus change raised the protocol version; a node of the old rule
would otherwise connect and relay blocks that are all "mutated" here. Positive control: the same
handshake with the current version is answered.
"""

from __future__ import annotations

import os
from pathlib import Path

from consensus import get_params
from node.p2p import messages as m
from tests.functional.node_process import NodeProcess, http

P = get_params("regtest")


def hello(version: int, url: str) -> bytes:
    return m.encode(
        {
            "magic": P.magic,
            "genesis": P.genesis_hash,
            "version": version,
            "height": 0,
            "work": b"\x00" * 32,
            "url": url,
            "nonce": os.urandom(8),
        }
    )


def test_a_version_1_peer_is_refused_and_a_current_one_answered(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "n") as node:
        url = "http://127.0.0.1:1/old"
        headers = {"X-Tally-Peer": url, "Content-Type": "application/msgpack"}
        old = http(f"{node.url}/p2p/handshake", "POST", hello(1, url), headers)
        assert old.status == 400, old.body
        assert old.json()["error"]["code"] == "old-version"
        current = http(f"{node.url}/p2p/handshake", "POST", hello(m.PROTOCOL_VERSION, url), headers)
        assert current.status == 200, current.body
        assert m.parse("handshake", current.body)["version"] == m.PROTOCOL_VERSION
