"""Orphan blocks posted to a real node do not grow its memory past the pool's byte bound
(issue 17, item 7, block half).

Forty orphan blocks of 996 KB posted to ``POST /block`` took a node from 48 to 398 MiB: the pool
kept up to 200 decoded blocks. Here 30 blocks of about 990 KB whose parent nobody has are
posted to a real ``tally-node``; each is answered ``orphan``, and the node's resident memory
(VmRSS) grows by much less than the 30 blocks would take decoded (about 260 MB): the pool holds
at most ``MAX_ORPHAN_BYTES`` (4 MB) of serialized blocks. The node then still answers and mines.
"""

from __future__ import annotations

from pathlib import Path

from consensus import (
    MAX_BLOCK_SIZE,
    Block,
    BlockHeader,
    OutPoint,
    TxOut,
    block_merkle_root,
    block_subsidy,
)
from node.chainstate.chainstate import MAX_ORPHAN_BYTES
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import REGTEST, coinbase, key, solve, spend

API = "/api/v1"
BLOCKS = 30
MISSING_PARENT = b"\x42" * 32
GROWTH_LIMIT_MB = 120


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def large_orphans(count: int) -> list[bytes]:
    """``count`` different blocks of about 990 KB on a parent that does not exist: each holds
    the same large transaction (valid out of context: its input is made up) and a coinbase of
    its own."""
    owner = key(1)
    fake = (OutPoint(b"\x11" * 32, 0), TxOut(10**12, owner.pubkey_hash), owner)
    per_output = len(TxOut(1000, owner.pubkey_hash).to_obj()[1]) + 6
    outputs = (MAX_BLOCK_SIZE - 15_000) // per_output
    big = spend([fake], [TxOut(1000, key(2).pubkey_hash)] * outputs)
    raws = []
    for n in range(count):
        cb = coinbase(5, key(0).pubkey_hash, block_subsidy(5, REGTEST), n.to_bytes(4, "big"))
        root, _ = block_merkle_root((cb, big))
        time = REGTEST.genesis_time + 300
        header = BlockHeader(1, MISSING_PARENT, root, time, REGTEST.pow_limit_bits, 0)
        raws.append(Block(solve(header, REGTEST), (cb, big)).serialize())
    return raws


def test_orphan_blocks_keep_the_nodes_memory_bounded(tmp_path: Path) -> None:
    raws = large_orphans(BLOCKS)
    size = len(raws[0])
    assert 900_000 < size <= MAX_BLOCK_SIZE
    assert BLOCKS * size > 5 * MAX_ORPHAN_BYTES
    with NodeProcess(tmp_path / "node") as node:
        assert node.proc is not None
        # Warm up the decoding path with one orphan, then measure from there.
        first = node.post_raw(API + "/block", raws[0])
        assert first.status == 200 and first.json()["status"] == "orphan", first.body
        before = rss_mb(node.proc.pid)
        for raw in raws[1:]:
            r = node.post_raw(API + "/block", raw)
            assert r.status == 200 and r.json()["status"] == "orphan", r.body
        grown = rss_mb(node.proc.pid) - before
        assert grown < GROWTH_LIMIT_MB, f"memory grew {grown:.0f} MB for {BLOCKS - 1} orphans"
        # Still serving, and a real block still connects.
        assert node.get(API + "/info").status == 200
        node.generate(1, address_of(key(0).pubkey_hash))
        assert node.get(API + "/info").json()["height"] == 1
