"""Reads from their own records answer as before, and an older data directory is upgraded by
``tally-node reindex`` (issue 17, item 1), against real ``tally-node`` processes.

Schema 3 answers ``/tx/``, address pages and summaries, block summaries and block pages from
per-transaction and per-block records instead of decoding blocks. Here a node holds a block of 61
transactions, 60 of them paying one address; its answers are checked against the blocks
themselves (``/block/{hash}/raw``, decoded here) and against what the test built. The data
directory is then marked as written by schema 2: ``tally-node run`` refuses it, changing
nothing, with a message naming ``tally-node reindex``; ``reindex`` rebuilds it, and every answer
is then exactly what it was.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import msgpack

from consensus import Block, OutPoint, Transaction, TxOut, block_subsidy
from node.chainstate import schema as k
from node.storage import LevelDBStore
from tests.functional.node_process import NodeProcess, address_of, free_port, tally_node_command
from tests.helpers import REGTEST, key, spend

API = "/api/v1"
MINER, PAYER, PAYEE = key(0), key(1), key(2)
A_MINER, A_PAYEE = address_of(MINER.pubkey_hash), address_of(PAYEE.pubkey_hash)
FEE = 1_000
PAYMENTS = 60


def get(node: NodeProcess, path: str) -> Any:
    r = node.get(API + path)
    assert r.status == 200, (path, r.body)
    return r.json()


def display(h: bytes) -> str:
    return h[::-1].hex()


def build(node: NodeProcess) -> tuple[list[Transaction], str]:
    """101 blocks to the miner, a fan-out of the first coinbase to the payer, then one block of
    ``PAYMENTS`` payments to the payee; the payments and that block's hash."""
    hashes = node.generate(REGTEST.coinbase_maturity + 1, A_MINER)
    first = Block.deserialize(node.get(f"{API}/block/{hashes[0]}/raw").body)
    cb = first.txs[0]
    fan = spend(
        [(OutPoint(cb.txid(), 0), cb.outputs[0], MINER)],
        [TxOut(10_000_000, PAYER.pubkey_hash)] * PAYMENTS,
    )
    assert node.post_raw(API + "/tx", fan.serialize()).status == 200
    node.generate(1, A_MINER)
    payments = [
        spend(
            [(OutPoint(fan.txid(), n), fan.outputs[n], PAYER)],
            [TxOut(10_000_000 - FEE, PAYEE.pubkey_hash)],
        )
        for n in range(PAYMENTS)
    ]
    r = node.post_raw(API + "/txs", msgpack.packb([t.serialize() for t in payments]))
    assert r.status == 200 and all("txid" in x for x in r.json()), r.body
    (block_hash,) = node.generate(1, A_MINER)
    return payments, block_hash


def answers(node: NodeProcess, payments: list[Transaction], block_hash: str) -> dict[str, Any]:
    """Every read this change touches, by path."""
    paths = [
        f"/tx/{display(payments[0].txid())}",
        f"/tx/{display(payments[-1].txid())}",
        f"/tx/{display(payments[7].txid())}/status",
        f"/address/{A_PAYEE}",
        f"/address/{A_MINER}",
        f"/block/{block_hash}",
        f"/block/{block_hash}/txids",
        f"/block/{block_hash}/txs",
        f"/block/{block_hash}/txs?start_index=25",
        f"/block/{block_hash}/txs?start_index=50",
        "/blocks",
    ]
    out = {path: get(node, path) for path in paths}
    after = ""
    for _ in range(4):
        path = f"/address/{A_PAYEE}/txs" + (f"?after_txid={after}" if after else "")
        rows = get(node, path)
        out[path] = rows
        if not rows:
            break
        after = rows[-1]["txid"]
    return out


def check_against_the_blocks(
    node: NodeProcess, payments: list[Transaction], block_hash: str, seen: dict[str, Any]
) -> None:
    block = Block.deserialize(node.get(f"{API}/block/{block_hash}/raw").body)
    assert [t.txid() for t in block.txs[1:]] == sorted(
        (t.txid() for t in payments), key=lambda h: [t.txid() for t in block.txs].index(h)
    )
    summary = seen[f"/block/{block_hash}"]
    assert summary["tx_count"] == len(block.txs) == PAYMENTS + 1
    assert summary["size"] == block.size()
    assert summary["total_fees"] == PAYMENTS * FEE
    assert seen[f"/block/{block_hash}/txids"] == [display(t.txid()) for t in block.txs]
    paged = [
        t["txid"]
        for start in ("", "?start_index=25", "?start_index=50")
        for t in seen[f"/block/{block_hash}/txs{start}"]
    ]
    assert paged == [display(t.txid()) for t in block.txs]
    tx = seen[f"/tx/{display(payments[0].txid())}"]
    assert tx["fee"] == FEE and tx["size"] == payments[0].size()
    assert tx["inputs"][0]["amount"] == 10_000_000
    assert tx["inputs"][0]["address"] == address_of(PAYER.pubkey_hash)
    assert tx["outputs"] == [{"address": A_PAYEE, "amount": 10_000_000 - FEE, "spent": False}]
    assert tx["status"]["block_hash"] == block_hash and tx["status"]["confirmations"] == 1
    payee = seen[f"/address/{A_PAYEE}"]
    assert payee["chain_stats"] == {
        "funded_sum": PAYMENTS * (10_000_000 - FEE),
        "spent_sum": 0,
        "tx_count": PAYMENTS,
    }
    rows = [
        r["txid"]
        for path, page in seen.items()
        if "/txs" in path and "address" in path
        for r in page
    ]
    assert sorted(rows) == sorted(display(t.txid()) for t in payments)
    assert len(rows) == PAYMENTS
    # The miner's immature balance: the coinbases of the last 99 blocks (heights 5..103).
    height = 103
    oldest = height - REGTEST.coinbase_maturity + 2
    immature = sum(block_subsidy(h, REGTEST) for h in range(oldest, height + 1))
    immature += PAYMENTS * FEE  # block 103's coinbase claimed the payments' fees...
    immature += block_subsidy(1, REGTEST) - PAYMENTS * 10_000_000  # ...block 102's the fan-out's
    assert seen[f"/address/{A_MINER}"]["balance"]["immature"] == immature


def test_reads_answer_from_their_records_and_survive_an_upgrade(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    node = NodeProcess(datadir).start()
    try:
        payments, block_hash = build(node)
        before = answers(node, payments, block_hash)
        check_against_the_blocks(node, payments, block_hash, before)
    finally:
        assert node.stop() == 0

    # As a schema-2 Tally left it: refused by `run`, untouched, with the way out named.
    path = datadir / "chainstate"
    with LevelDBStore(path, create_if_missing=False) as db:
        with db.write_batch() as batch:
            batch.put(k.K_VERSION, k.u32(2))
        snapshot = dict(db.iterate(b""))
    refused = subprocess.run(
        [
            *tally_node_command(),
            "run",
            "--network",
            "regtest",
            "--datadir",
            str(datadir),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "tally-node reindex" in refused.stderr and "Traceback" not in refused.stderr
    with LevelDBStore(path, create_if_missing=False) as db:
        assert dict(db.iterate(b"")) == snapshot

    upgraded = subprocess.run(
        [*tally_node_command(), "reindex", "--network", "regtest", "--datadir", str(datadir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    with LevelDBStore(path, create_if_missing=False) as db:
        assert k.read_u32(db.get(k.K_VERSION) or b"") == k.SCHEMA_VERSION

    node = NodeProcess(datadir).start()
    try:
        assert answers(node, payments, block_hash) == before
    finally:
        assert node.stop() == 0
