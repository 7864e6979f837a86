"""Every route of the HTTP API (SPEC 3.5) against a real ``tally-node`` process.

One node per module. The ``world`` fixture does everything once, in this order, and keeps what
it did (and a few snapshots taken on the way) so every test compares the API's answers with it:

1. ``admin/generate`` 101 blocks to A0: heights 1..101 each pay a 50 TLY coinbase to A0.
2. ``spend1`` (POST /tx, msgpack) spends the coinbase of block 1: 1 TLY to A1, 30 outputs of
   0.1 TLY to A3, the change to A0, fee ``FEE1``. Snapshot "S101" (tip 101, spend1 pooled).
3. Block 102, mined here with ``tests.helpers.mine_block`` (coinbase to A2, spend1 inside, its
   fee claimed), is submitted with POST /block.
4. 30 ``fans`` spend the A3 outputs (POST /txs, JSON); ``admin/generate`` 1 block to A2 mines
   them: block 103 holds 31 transactions (two pages of /block/{h}/txs).
5. ``spend2`` (POST /tx, JSON ``{"raw"}``) spends coinbase 2; POST /txs (JSON) submits
   [``spend3`` (coinbase 3: ok), ``premature`` (coinbase 5: immature)]; POST /txs (msgpack)
   submits [``spend3`` again (already known), ``child`` (spends spend3's change)].

Final state: tip 103, mempool [spend2, spend3, child]. The admin routes that move the chain
(generate, mining, stop) run on nodes of their own so they cannot disturb these figures.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from consensus import (
    COIN,
    Block,
    OutPoint,
    Transaction,
    TxOut,
    block_subsidy,
    block_work,
    policy,
    verify_merkle_proof,
)
from tests.functional.node_process import NodeProcess, Response, address_of, http
from tests.helpers import REGTEST, Key, key, mine_block, spend

API = "/api/v1"
K0, K1, K2, K3, K4 = (key(i) for i in range(5))
A0, A1, A2, A3, A4 = (address_of(k.pubkey_hash) for k in (K0, K1, K2, K3, K4))
SUBSIDY = 50 * COIN
FEE1 = 20_000
FAN_AMOUNT = 10_000_000
FAN_FEE = 1_000
FEE = 10_000
MATURITY = REGTEST.coinbase_maturity
BLOCK_KEYS = {
    "hash",
    "height",
    "version",
    "prev_hash",
    "next_hash",
    "merkle_root",
    "time",
    "median_time",
    "bits",
    "nonce",
    "tx_count",
    "size",
    "total_fees",
    "confirmations",
    "in_best_chain",
}
TX_KEYS = {"txid", "wtxid", "version", "locktime", "size", "fee", "inputs", "outputs", "status"}


def hx(h: bytes) -> str:
    """Internal byte order to display hex."""
    return h[::-1].hex()


def internal(display: str) -> bytes:
    return bytes.fromhex(display)[::-1]


def tid(tx: Transaction) -> str:
    return hx(tx.txid())


def coin(tx: Transaction, index: int, owner: Key) -> tuple[OutPoint, TxOut, Key]:
    return OutPoint(tx.txid(), index), tx.outputs[index], owner


def ok(r: Response) -> Any:
    assert r.status == 200, (r.status, r.body[:500])
    return r.json()


def error_of(r: Response, status: int) -> dict[str, Any]:
    assert r.status == status, (r.status, r.body[:500])
    err: dict[str, Any] = r.json()["error"]
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    return err


def metrics_of(node: NodeProcess) -> dict[str, float]:
    """``name{labels}`` -> value of every sample in the Prometheus text."""
    r = node.get("/metrics")
    assert r.status == 200
    samples: dict[str, float] = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def load_chain(node: NodeProcess) -> tuple[list[str], list[Block]]:
    """The display hash and the decoded block (from /raw) of every height."""
    height = int(node.get(API + "/blocks/tip/height").body)
    hashes = [node.get(f"{API}/block-height/{h}").body.decode() for h in range(height + 1)]
    blocks = []
    for h in hashes:
        r = node.get(f"{API}/block/{h}/raw")
        assert r.status == 200
        blocks.append(Block.deserialize(r.body))
    return hashes, blocks


@dataclass
class World:
    node: NodeProcess
    hashes: list[str]  # display hash by height
    blocks: list[Block]  # decoded /raw by height
    snap: dict[str, Response]  # S101 snapshots, by path
    answers: dict[str, Response]  # the answers to what was submitted
    spend1: Transaction
    block102: Block
    fans: list[Transaction]
    spend2: Transaction
    spend3: Transaction
    premature: Transaction
    child: Transaction

    @property
    def tip(self) -> int:
        return len(self.hashes) - 1

    def coinbase(self, height: int) -> Transaction:
        return self.blocks[height].txs[0]

    def get(self, path: str) -> Any:
        return ok(self.node.get(API + path))


def _build(node: NodeProcess) -> World:
    snap: dict[str, Response] = {}
    answers: dict[str, Response] = {}
    # 1. 101 coinbases to A0
    assert len(node.generate(101, A0)) == 101
    _, blocks = load_chain(node)

    def cb(height: int) -> Transaction:
        return blocks[height].txs[0]

    # 2. spend1: coinbase 1 -> A1, 30 x A3, change to A0
    change1 = SUBSIDY - COIN - 30 * FAN_AMOUNT - FEE1
    spend1 = spend(
        [coin(cb(1), 0, K0)],
        [TxOut(COIN, K1.pubkey_hash)]
        + [TxOut(FAN_AMOUNT, K3.pubkey_hash)] * 30
        + [TxOut(change1, K0.pubkey_hash)],
    )
    answers["spend1"] = node.post_raw(API + "/tx", spend1.serialize())
    for path in (
        "/info",
        "/mempool",
        f"/tx/{tid(spend1)}",
        f"/tx/{tid(spend1)}/status",
        f"/tx/{tid(spend1)}/merkle-proof",
        f"/tx/{tid(cb(1))}/outspends",
        f"/address/{A0}",
    ):
        snap[path] = node.get(API + path)
    snap["/metrics"] = node.get("/metrics")
    # 3. block 102 mined here, with spend1 and its fee
    tip = blocks[101]
    block102 = mine_block(
        tip.hash(), 102, [spend1], tip.header.time + 1, K2.pubkey_hash, REGTEST, FEE1
    )
    answers["block102"] = node.post_raw(API + "/block", block102.serialize())
    answers["block102-again"] = node.post_raw(API + "/block", block102.serialize())
    # 4. 30 fans, mined into block 103
    fans = [
        spend([coin(spend1, i, K3)], [TxOut(FAN_AMOUNT - FAN_FEE, K4.pubkey_hash)])
        for i in range(1, 31)
    ]
    answers["fans"] = node.post_json(API + "/txs", [{"raw": t.serialize().hex()} for t in fans])
    assert len(node.generate(1, A2)) == 1
    # 5. the mempool of the final state (tip 103: coinbases up to height 4 are mature)
    spend2 = spend(
        [coin(cb(2), 0, K0)],
        [TxOut(2 * COIN, K1.pubkey_hash), TxOut(SUBSIDY - 2 * COIN - FEE, K0.pubkey_hash)],
    )
    answers["spend2"] = node.post_json(API + "/tx", {"raw": spend2.serialize().hex()})
    spend3 = spend(
        [coin(cb(3), 0, K0)],
        [TxOut(3 * COIN, K1.pubkey_hash), TxOut(SUBSIDY - 3 * COIN - FEE, K0.pubkey_hash)],
    )
    premature = spend([coin(cb(5), 0, K0)], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)])
    answers["txs-json"] = node.post_json(
        API + "/txs", [{"raw": spend3.serialize().hex()}, {"raw": premature.serialize().hex()}]
    )
    change3 = spend3.outputs[1].amount
    child = spend(
        [coin(spend3, 1, K0)],
        [TxOut(COIN // 2, K1.pubkey_hash), TxOut(change3 - COIN // 2 - FEE, K0.pubkey_hash)],
    )
    answers["txs-msgpack"] = node.post_raw(
        API + "/txs", msgpack.packb([spend3.serialize(), child.serialize()])
    )
    hashes, blocks = load_chain(node)
    return World(
        node,
        hashes,
        blocks,
        snap,
        answers,
        spend1,
        block102,
        fans,
        spend2,
        spend3,
        premature,
        child,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    node = NodeProcess(tmp_path_factory.mktemp("api") / "n")
    node.start()
    try:
        yield _build(node)
    finally:
        node.stop()


# --- chain ---------------------------------------------------------------------------------------


def test_info_at_101_with_the_spend_pooled(world: World) -> None:
    info = ok(world.snap["/info"])
    assert info["height"] == 101
    assert info["best_hash"] == world.hashes[101]
    assert info["mempool"] == {"count": 1, "bytes": world.spend1.size()}
    assert info["network"] == "regtest"


def test_info_final(world: World) -> None:
    info = world.get("/info")
    assert set(info) == {
        "network",
        "height",
        "best_hash",
        "chainwork",
        "peers",
        "mempool",
        "synced",
        "version",
        "policy",
    }
    assert info["policy"] == {
        "min_relay_fee_rate": policy.MIN_RELAY_FEE_RATE,
        "incremental_relay_fee_rate": policy.INCREMENTAL_RELAY_FEE_RATE,
        "max_standard_tx_size": policy.MAX_STANDARD_TX_SIZE,
    }
    assert info["height"] == 103 == world.tip
    assert info["best_hash"] == world.hashes[103]
    # every regtest block, genesis included, carries pow_limit bits
    assert int(info["chainwork"], 16) == 104 * block_work(REGTEST.pow_limit_bits)
    pooled = [world.spend2, world.spend3, world.child]
    assert info["mempool"] == {"count": 3, "bytes": sum(t.size() for t in pooled)}
    assert info["peers"] == 0
    assert info["synced"] is True
    assert isinstance(info["version"], str) and info["version"]


def test_tip_height_and_hash(world: World) -> None:
    assert world.node.get(API + "/blocks/tip/height").body == b"103"
    assert world.node.get(API + "/blocks/tip/hash").body.decode() == world.hashes[103]


def test_blocks_pages_newest_first(world: World) -> None:
    newest = world.get("/blocks")
    assert [b["height"] for b in newest] == list(range(103, 93, -1))
    assert [b["hash"] for b in newest] == [world.hashes[h] for h in range(103, 93, -1)]
    assert newest[0] == world.get(f"/block/{world.hashes[103]}")
    page = world.get("/blocks?start_height=50")
    assert [b["height"] for b in page] == list(range(50, 40, -1))
    assert [b["height"] for b in world.get("/blocks?start_height=5")] == [5, 4, 3, 2, 1, 0]
    assert world.get("/blocks?start_height=103") == newest
    assert world.get("/blocks?start_height=100000") == newest  # above the tip: from the tip


def test_block_summary_of_every_height(world: World) -> None:
    times = [b.header.time for b in world.blocks]
    for height, block in enumerate(world.blocks):
        got = world.get(f"/block/{world.hashes[height]}")
        assert set(got) == BLOCK_KEYS
        h = block.header
        assert got["hash"] == hx(block.hash()) == world.hashes[height]
        assert got["height"] == height
        assert got["version"] == h.version
        assert got["prev_hash"] == hx(h.prev_hash)
        if height:
            assert got["prev_hash"] == world.hashes[height - 1]
        assert got["next_hash"] == (world.hashes[height + 1] if height < 103 else None)
        assert got["merkle_root"] == hx(h.merkle_root)
        assert got["time"] == h.time
        # Bitcoin's median time past: the middle of the sorted times of this block and up
        # to 10 before it (the upper middle for an even count, near genesis)
        window = sorted(times[max(0, height - 10) : height + 1])
        assert got["median_time"] == window[len(window) // 2]
        assert got["bits"] == h.bits == REGTEST.pow_limit_bits
        assert got["nonce"] == h.nonce
        assert got["tx_count"] == len(block.txs)
        assert got["size"] == len(block.serialize())
        assert got["confirmations"] == 103 - height + 1
        assert got["in_best_chain"] is True
        expected_fees = {102: FEE1, 103: 30 * FAN_FEE}.get(height, 0)
        assert got["total_fees"] == expected_fees, height
        if height:
            assert block.txs[0].total_out() == block_subsidy(height, REGTEST) + expected_fees


def test_block_txids(world: World) -> None:
    txids = world.get(f"/block/{world.hashes[102]}/txids")
    assert txids == [tid(world.block102.txs[0]), tid(world.spend1)]
    txids = world.get(f"/block/{world.hashes[103]}/txids")
    assert len(txids) == 31
    assert txids == [tid(t) for t in world.blocks[103].txs]
    assert set(txids[1:]) == {tid(t) for t in world.fans}


def test_block_txs_pages_of_25(world: World) -> None:
    h = world.hashes[103]
    txids = [tid(t) for t in world.blocks[103].txs]
    first = world.get(f"/block/{h}/txs")
    assert world.get(f"/block/{h}/txs?start_index=0") == first
    second = world.get(f"/block/{h}/txs?start_index=25")
    assert [t["txid"] for t in first] == txids[:25]
    assert [t["txid"] for t in second] == txids[25:]
    for item in first[1:] + second:
        assert set(item) == TX_KEYS
        assert item["fee"] == FAN_FEE
        assert item["status"]["block_height"] == 103
        assert item == world.get(f"/tx/{item['txid']}")
    assert first[0]["fee"] == 0 and first[0]["inputs"][0]["coinbase"] is True
    error_of(world.node.get(f"{API}/block/{h}/txs?start_index=50"), 404)  # past the end
    error_of(world.node.get(f"{API}/block/{h}/txs?start_index=7"), 404)  # not a page start
    error_of(world.node.get(f"{API}/block/{h}/txs?start_index=-1"), 400)
    error_of(world.node.get(f"{API}/block/{h}/txs?start_index=x"), 400)


def test_block_raw(world: World) -> None:
    for height in (0, 1, 102, 103):
        r = world.node.get(f"{API}/block/{world.hashes[height]}/raw")
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/msgpack")
        assert hx(Block.deserialize(r.body).hash()) == world.hashes[height]
    raw = world.node.get(f"{API}/block/{world.hashes[102]}/raw").body
    assert raw == world.block102.serialize()


def test_block_height(world: World) -> None:
    for height in (0, 1, 50, 101, 102, 103):
        r = world.node.get(f"{API}/block-height/{height}")
        assert r.status == 200 and r.body.decode() == world.hashes[height]
    error_of(world.node.get(f"{API}/block-height/104"), 404)


def test_post_block_mined_elsewhere(world: World) -> None:
    assert ok(world.answers["block102"]) == {
        "hash": hx(world.block102.hash()),
        "status": "active",
        "height": 102,
    }
    assert world.hashes[102] == hx(world.block102.hash())
    assert error_of(world.answers["block102-again"], 400)["code"] == "duplicate"
    # and once more now that another block is on top of it
    r = world.node.post_raw(API + "/block", world.block102.serialize())
    assert error_of(r, 400)["code"] == "duplicate"
    # the JSON form too
    r = world.node.post_json(API + "/block", {"raw": world.block102.serialize().hex()})
    assert error_of(r, 400)["code"] == "duplicate"
    assert world.get("/info")["best_hash"] == world.hashes[103]


# --- transactions --------------------------------------------------------------------------------


def _expected_outputs(tx: Transaction, spent: set[int]) -> list[dict[str, Any]]:
    return [
        {"address": address_of(o.pubkey_hash), "amount": o.amount, "spent": n in spent}
        for n, o in enumerate(tx.outputs)
    ]


def test_tx_unconfirmed_then_confirmed(world: World) -> None:
    s1 = world.spend1
    cb1 = world.coinbase(1)
    fee = cb1.outputs[0].amount - s1.total_out()
    assert fee == FEE1
    before = ok(world.snap[f"/tx/{tid(s1)}"])
    expected_inputs = [
        {"txid": tid(cb1), "index": 0, "address": A0, "amount": SUBSIDY, "coinbase": False}
    ]
    assert set(before) == TX_KEYS
    assert before["txid"] == tid(s1)
    assert before["wtxid"] == hx(s1.wtxid())
    assert (before["version"], before["locktime"]) == (s1.version, s1.locktime)
    assert before["size"] == s1.size()
    assert before["fee"] == fee
    assert before["inputs"] == expected_inputs
    assert before["outputs"] == _expected_outputs(s1, set())
    unconfirmed = {
        "confirmed": False,
        "block_hash": None,
        "block_height": None,
        "block_time": None,
        "confirmations": 0,
    }
    assert before["status"] == unconfirmed
    assert ok(world.snap[f"/tx/{tid(s1)}/status"]) == unconfirmed

    after = world.get(f"/tx/{tid(s1)}")
    confirmed = {
        "confirmed": True,
        "block_hash": world.hashes[102],
        "block_height": 102,
        "block_time": world.block102.header.time,
        "confirmations": 2,
    }
    assert after["status"] == confirmed
    assert world.get(f"/tx/{tid(s1)}/status") == confirmed
    assert after["fee"] == fee and after["inputs"] == expected_inputs
    assert after["outputs"] == _expected_outputs(s1, set(range(1, 31)))


def test_tx_in_mempool_with_pooled_parent(world: World) -> None:
    child = world.get(f"/tx/{tid(world.child)}")
    assert child["inputs"] == [
        {
            "txid": tid(world.spend3),
            "index": 1,
            "address": A0,
            "amount": world.spend3.outputs[1].amount,
            "coinbase": False,
        }
    ]
    assert child["fee"] == FEE
    assert child["status"]["confirmed"] is False
    spend3 = world.get(f"/tx/{tid(world.spend3)}")
    assert [o["spent"] for o in spend3["outputs"]] == [False, True]


def test_coinbase_tx(world: World) -> None:
    cb = world.coinbase(7)
    got = world.get(f"/tx/{tid(cb)}")
    assert got["fee"] == 0
    assert got["inputs"][0]["coinbase"] is True and got["inputs"][0]["address"] is None
    assert got["outputs"] == [{"address": A0, "amount": SUBSIDY, "spent": False}]
    assert got["status"]["confirmations"] == 103 - 7 + 1


def test_tx_raw(world: World) -> None:
    for tx in (world.spend1, world.spend2, world.coinbase(1), world.fans[3]):
        r = world.node.get(f"{API}/tx/{tid(tx)}/raw")
        assert r.status == 200
        assert r.body == tx.serialize()
        assert Transaction.deserialize(r.body).txid() == tx.txid()


def test_merkle_proof(world: World) -> None:
    assert error_of(world.snap[f"/tx/{tid(world.spend1)}/merkle-proof"], 404)
    error_of(world.node.get(f"{API}/tx/{tid(world.spend2)}/merkle-proof"), 404)  # pooled
    cases = [(world.spend1, 102, 1)] + [(t, 103, i) for i, t in enumerate(world.blocks[103].txs)]
    for tx, height, pos in cases:
        proof = world.get(f"/tx/{tid(tx)}/merkle-proof")
        assert proof["block_height"] == height
        assert proof["block_hash"] == world.hashes[height]
        assert proof["pos"] == pos
        branch = [internal(h) for h in proof["merkle"]]
        root = world.blocks[height].header.merkle_root
        assert verify_merkle_proof(tx.wtxid(), pos, branch, root)  # the leaf is the wtxid
        assert not verify_merkle_proof(
            tx.wtxid(), pos, branch, world.blocks[101].header.merkle_root
        )
        if not tx.is_coinbase():  # a coinbase's txid is its wtxid; a spend's is not
            assert not verify_merkle_proof(tx.txid(), pos, branch, root)
    assert len(world.get(f"/tx/{tid(world.fans[0])}/merkle-proof")["merkle"]) == 5  # 31 leaves


def test_outspends(world: World) -> None:
    cb1 = tid(world.coinbase(1))
    s1 = tid(world.spend1)
    assert ok(world.snap[f"/tx/{cb1}/outspends"]) == [
        {"spent": True, "txid": s1, "vin": 0, "confirmed": False}
    ]
    assert world.get(f"/tx/{cb1}/outspends") == [
        {"spent": True, "txid": s1, "vin": 0, "confirmed": True}
    ]
    by_fan = {t.inputs[0].prevout.index: tid(t) for t in world.fans}
    expected: list[dict[str, Any]] = [{"spent": False}]
    expected += [
        {"spent": True, "txid": by_fan[i], "vin": 0, "confirmed": True} for i in range(1, 31)
    ]
    expected += [{"spent": False}]
    assert world.get(f"/tx/{s1}/outspends") == expected
    assert world.get(f"/tx/{tid(world.spend3)}/outspends") == [
        {"spent": False},
        {"spent": True, "txid": tid(world.child), "vin": 0, "confirmed": False},
    ]


def test_post_tx_msgpack_and_json(world: World) -> None:
    assert ok(world.answers["spend1"]) == {"txid": tid(world.spend1)}
    assert ok(world.answers["spend2"]) == {"txid": tid(world.spend2)}
    assert tid(world.spend2) in world.get("/mempool/txids")


def test_post_txs_answers_in_order(world: World) -> None:
    assert ok(world.answers["fans"]) == [{"txid": tid(t)} for t in world.fans]
    json_form = ok(world.answers["txs-json"])
    assert json_form[0] == {"txid": tid(world.spend3)}
    assert set(json_form[1]) == {"error"}
    assert json_form[1]["error"]["code"] == "bad-txns-premature-spend-of-coinbase"
    packed = ok(world.answers["txs-msgpack"])
    assert set(packed[0]) == {"error"}
    assert packed[0]["error"]["code"] == "txn-already-known"
    assert packed[1] == {"txid": tid(world.child)}
    assert len(json_form) == len(packed) == 2


# --- addresses -----------------------------------------------------------------------------------

# Maturity: a coinbase of height h may be spent by a block of height >= h + MATURITY
# (consensus: spend_height - h >= 100). What an address can spend now is what the *next*
# block (tip + 1) may spend, so at tip T the coinbases of heights h <= T + 1 - 100 are mature
# and those of heights T + 2 - 100 .. T are immature.
#   At tip 101: heights 1 and 2 mature; 3..101 immature = 99 coinbases (not 100: block 102
#   may already spend the coinbase of height 2).
#   At tip 103: heights 1..4 mature; 5..101 immature = 97 coinbases. The API agrees with
#   consensus on the boundary: coinbase 3 was accepted into the mempool at tip 103 (spend3)
#   and coinbase 5 was refused as premature.


def test_address_balance_at_101(world: World) -> None:
    got = ok(world.snap[f"/address/{A0}"])
    change1 = world.spend1.outputs[-1].amount
    immature = (101 - (101 + 2 - MATURITY) + 1) * SUBSIDY
    assert immature == 99 * SUBSIDY
    assert got == {
        "address": A0,
        "chain_stats": {"funded_sum": 101 * SUBSIDY, "spent_sum": 0, "tx_count": 101},
        "mempool_stats": {"funded_sum": change1, "spent_sum": SUBSIDY, "tx_count": 1},
        "balance": {
            # coinbases 1 and 2; coinbase 1 is being spent, but only in the mempool
            "confirmed": 2 * SUBSIDY,
            "unconfirmed": change1 - SUBSIDY,
            "immature": immature,
        },
    }


def test_address_balance_final(world: World) -> None:
    change1 = world.spend1.outputs[-1].amount
    pooled = [world.spend2, world.spend3, world.child]
    mempool_funded = sum(
        o.amount for t in pooled for o in t.outputs if o.pubkey_hash == K0.pubkey_hash
    )
    # spend2 and spend3 spend coinbases 2 and 3; child spends spend3's change
    mempool_spent = 2 * SUBSIDY + world.spend3.outputs[1].amount
    immature = (101 - (103 + 2 - MATURITY) + 1) * SUBSIDY
    assert immature == 97 * SUBSIDY
    funded = 101 * SUBSIDY + change1
    got = world.get(f"/address/{A0}")
    assert got == {
        "address": A0,
        "chain_stats": {"funded_sum": funded, "spent_sum": SUBSIDY, "tx_count": 102},
        "mempool_stats": {
            "funded_sum": mempool_funded,
            "spent_sum": mempool_spent,
            "tx_count": 3,
        },
        "balance": {
            # mature and unspent on the chain: coinbases 2, 3, 4 and spend1's change
            "confirmed": 3 * SUBSIDY + change1,
            "unconfirmed": mempool_funded - mempool_spent,
            "immature": immature,
        },
    }
    assert got["balance"]["confirmed"] + immature == funded - SUBSIDY
    # A1 only ever received: 1 TLY confirmed; 2 + 3 + 0.5 TLY pooled
    a1 = world.get(f"/address/{A1}")
    assert a1["chain_stats"] == {"funded_sum": COIN, "spent_sum": 0, "tx_count": 1}
    assert a1["mempool_stats"] == {
        "funded_sum": 5 * COIN + COIN // 2,
        "spent_sum": 0,
        "tx_count": 3,
    }
    assert a1["balance"] == {"confirmed": COIN, "unconfirmed": 5 * COIN + COIN // 2, "immature": 0}
    # A2 got the coinbases of 102 (with spend1's fee) and 103 (with the fans' fees): immature
    a2 = world.get(f"/address/{A2}")
    assert a2["balance"] == {
        "confirmed": 0,
        "unconfirmed": 0,
        "immature": 2 * SUBSIDY + FEE1 + 30 * FAN_FEE,
    }


def test_address_txs_cursor_pages(world: World) -> None:
    expected = [tid(world.child), tid(world.spend3), tid(world.spend2), tid(world.spend1)]
    expected += [tid(world.coinbase(h)) for h in range(101, 0, -1)]
    assert len(expected) == 105
    seen: list[str] = []
    sizes: list[int] = []
    page = world.get(f"/address/{A0}/txs")
    while page:
        sizes.append(len(page))
        seen += [t["txid"] for t in page]
        page = world.get(f"/address/{A0}/txs?after_txid={seen[-1]}")
        assert len(sizes) < 10
    assert sizes == [25, 25, 25, 25, 5]
    assert len(seen) == len(set(seen))  # no duplicate
    assert seen == expected  # newest first, no gap
    first = world.get(f"/address/{A0}/txs")
    assert len(first) == 25 and first[0] == world.get(f"/tx/{tid(world.child)}")
    # a cursor in the mempool part
    after = world.get(f"/address/{A0}/txs?after_txid={tid(world.spend3)}")
    assert [t["txid"] for t in after] == expected[2:27]


def test_address_utxo(world: World) -> None:
    got = world.get(f"/address/{A0}/utxo")
    expected = []
    for h in range(4, 102):  # coinbases 1 (spent), 2 and 3 (spent in the mempool) are gone
        expected.append(
            {
                "txid": tid(world.coinbase(h)),
                "index": 0,
                "amount": SUBSIDY,
                "height": h,
                "coinbase": True,
                "confirmations": 103 - h + 1,
            }
        )
    expected.append(
        {
            "txid": tid(world.spend1),
            "index": 31,
            "amount": world.spend1.outputs[31].amount,
            "height": 102,
            "coinbase": False,
            "confirmations": 2,
        }
    )
    for tx in (world.spend2, world.child):  # spend3's change is spent by child
        expected.append(
            {
                "txid": tid(tx),
                "index": 1,
                "amount": tx.outputs[1].amount,
                "height": None,
                "coinbase": False,
                "confirmations": 0,
            }
        )

    def order(u: dict[str, Any]) -> tuple[str, int]:
        return u["txid"], u["index"]

    assert sorted(got, key=order) == sorted(expected, key=order)
    a4 = world.get(f"/address/{A4}/utxo")
    assert sorted((u["txid"], u["amount"]) for u in a4) == sorted(
        (tid(t), FAN_AMOUNT - FAN_FEE) for t in world.fans
    )


# --- mempool, fees, search, UTXO set, peers ------------------------------------------------------


def test_mempool(world: World) -> None:
    pooled = [world.spend2, world.spend3, world.child]
    snap = ok(world.snap["/mempool"])
    assert snap["count"] == 1 and snap["bytes"] == world.spend1.size()
    assert snap["total_fee"] == FEE1
    got = world.get("/mempool")
    assert got["count"] == 3
    assert got["bytes"] == sum(t.size() for t in pooled)
    assert got["total_fee"] == 3 * FEE
    buckets: dict[int, int] = {}
    for t in pooled:
        rate = FEE // t.size()
        bucket = 1 << (rate.bit_length() - 1)
        buckets[bucket] = buckets.get(bucket, 0) + t.size()
    assert got["fee_histogram"] == [[r, s] for r, s in sorted(buckets.items(), reverse=True)]
    assert world.get("/mempool/txids") == [tid(t) for t in pooled]
    assert world.get("/mempool/recent") == [
        {"txid": tid(t), "fee": FEE, "size": t.size(), "value": t.total_out()}
        for t in reversed(pooled)
    ]


def test_fee_estimates(world: World) -> None:
    got = world.get("/fee-estimates")
    assert set(got) == {"1", "3", "6", "12", "25"}
    for rate in got.values():
        assert isinstance(rate, int) and rate >= 1


def test_search(world: World) -> None:
    def search(q: str) -> Any:
        return world.get(f"/search?q={q}")

    assert search("103") == {"type": "block", "id": world.hashes[103], "height": 103}
    assert search("0") == {"type": "block", "id": world.hashes[0], "height": 0}
    assert search(world.hashes[42]) == {"type": "block", "id": world.hashes[42], "height": 42}
    assert search(tid(world.spend1)) == {"type": "tx", "id": tid(world.spend1)}
    assert search(tid(world.child)) == {"type": "tx", "id": tid(world.child)}  # pooled
    assert search(A3) == {"type": "address", "id": A3}
    for unknown in ("104", "0" * 64, "nothing", tid(world.premature)):
        error_of(world.node.get(f"{API}/search?q={unknown}"), 404)


def test_utxo_set_info(world: World) -> None:
    got = world.get("/utxo-set-info")
    assert got["height"] == 103 and got["best_hash"] == world.hashes[103]
    # genesis coinbase (unspendable, but in the set) + coinbases 2..101 + the coinbases of 102
    # and 103 + spend1's outputs 0 and 31 + the 30 fans' outputs
    assert got["count"] == 1 + 100 + 2 + 2 + 30
    # fees move coins, they do not make them: the total is every subsidy so far
    assert got["total_amount"] == sum(block_subsidy(h, REGTEST) for h in range(104))
    assert re.fullmatch("[0-9a-f]{64}", got["hash"])
    assert world.get("/utxo-set-info") == got


def test_peers(world: World) -> None:
    assert world.get("/peers") == {"connected": [], "banned": [], "partitioned": []}


# --- outside /api/v1 -----------------------------------------------------------------------------


def test_openapi_served(world: World) -> None:
    doc = world.get("/openapi.json")
    assert doc["openapi"].startswith("3.")
    assert isinstance(doc["paths"], dict)


def test_openapi_covers_every_route(world: World) -> None:
    """SPEC 3.5: the description "covers every route, P2P and admin included"."""
    paths = set(world.get("/openapi.json")["paths"])
    routes = [
        "/info",
        "/blocks/tip/height",
        "/blocks/tip/hash",
        "/blocks",
        "/block/{hash}",
        "/block/{hash}/txids",
        "/block/{hash}/txs",
        "/block/{hash}/raw",
        "/block-height/{height}",
        "/block",
        "/tx/{txid}",
        "/tx/{txid}/status",
        "/tx/{txid}/raw",
        "/tx/{txid}/merkle-proof",
        "/tx/{txid}/outspends",
        "/tx",
        "/txs",
        "/address/{address}",
        "/address/{address}/txs",
        "/address/{address}/utxo",
        "/mempool",
        "/mempool/txids",
        "/mempool/recent",
        "/fee-estimates",
        "/search",
        "/utxo-set-info",
        "/peers",
        "/admin/generate",
        "/admin/peers",
        "/admin/mining",
        "/admin/stop",
    ]

    def described(route: str) -> bool:
        shape = re.sub(r"\{[^}]+\}", "{}", route)
        return any(re.sub(r"\{[^}]+\}", "{}", p) in (shape, API + shape) for p in paths)

    missing = [r for r in routes if not described(r)]
    assert not missing, f"openapi.json does not describe {missing}"


def test_metrics(world: World) -> None:
    before = world.snap["/metrics"]
    assert before.status == 200 and before.headers["Content-Type"].startswith("text/plain")
    assert re.search(rb"^tally_height 101(\.0)?$", before.body, re.M)
    m = metrics_of(world.node)
    assert m["tally_height"] == 103
    assert m["tally_mempool_transactions"] == 3
    assert m["tally_mempool_bytes"] == sum(
        t.size() for t in (world.spend2, world.spend3, world.child)
    )
    assert m["tally_peers"] == 0
    # spend1, 30 fans, spend2, spend3, child
    assert m["tally_transactions_accepted_total"] == 34
    rejected = {k: v for k, v in m.items() if k.startswith("tally_transactions_rejected_total")}
    assert rejected == {
        'tally_transactions_rejected_total{code="bad-txns-premature-spend-of-coinbase"}': 1,
        'tally_transactions_rejected_total{code="txn-already-known"}': 1,
    }
    # 101 + 1 generated, block 102 posted; block 102 posted twice more: duplicates
    assert m["tally_blocks_accepted_total"] == 103
    assert m['tally_blocks_rejected_total{code="duplicate"}'] >= 2
    assert any(k.startswith("tally_validation_seconds_count") for k in m)
    assert any(k.startswith("tally_http_request_seconds_count") for k in m)


def test_explorer_page(world: World) -> None:
    r = world.node.get("/")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert b"<html" in r.body.lower()


# --- admin routes, on nodes of their own ---------------------------------------------------------


@pytest.fixture(scope="module")
def admin_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path_factory.mktemp("admin") / "n")
    node.start()
    try:
        yield node
    finally:
        assert node.stop() == 0


def _height(node: NodeProcess) -> int:
    return int(ok(node.get(API + "/info"))["height"])


def test_admin_generate(admin_node: NodeProcess) -> None:
    start = _height(admin_node)
    previous = admin_node.get(API + "/blocks/tip/hash").body.decode()
    r = admin_node.post_json(API + "/admin/generate", {"count": 3, "address": A1}, admin=True)
    hashes = ok(r)["hashes"]
    assert len(hashes) == 3
    assert _height(admin_node) == start + 3
    for i, h in enumerate(hashes):
        assert admin_node.get(f"{API}/block-height/{start + 1 + i}").body.decode() == h
        assert ok(admin_node.get(f"{API}/block/{h}"))["prev_hash"] == previous
        previous = h
    cb = ok(admin_node.get(f"{API}/block/{hashes[0]}/txs"))[0]
    assert cb["outputs"] == [{"address": A1, "amount": SUBSIDY, "spent": False}]


def test_admin_peers(admin_node: NodeProcess, tmp_path: Path) -> None:
    """``admin/peers`` connects to a real second node, which then follows our chain."""
    other = NodeProcess(tmp_path / "peer")
    other.start()
    try:
        r = admin_node.post_json(API + "/admin/peers", {"url": other.url}, admin=True)
        assert ok(r) == {"added": other.url, "connected": True}
        peers = ok(admin_node.get(API + "/peers"))
        assert [p["url"] for p in peers["connected"]] == [other.url]
        assert peers["banned"] == []
        assert ok(admin_node.get(API + "/info"))["peers"] == 1
        assert metrics_of(admin_node)["tally_peers"] == 1
        height = _height(admin_node)
        assert _wait_height(other, height, 20) == height
        assert (
            other.get(API + "/blocks/tip/hash").body
            == admin_node.get(API + "/blocks/tip/hash").body
        )
        # an unreachable peer: added, not connected
        dead = "http://127.0.0.1:9"
        r = admin_node.post_json(API + "/admin/peers", {"url": dead}, admin=True)
        assert ok(r) == {"added": dead, "connected": False}
    finally:
        assert other.stop() == 0


def _wait_height(node: NodeProcess, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    height = _height(node)
    while height < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
        height = _height(node)
    return height


def test_admin_mining_on_then_off(admin_node: NodeProcess) -> None:
    start = _height(admin_node)
    on = {"enabled": True, "address": A2, "block_time": 1}
    assert ok(admin_node.post_json(API + "/admin/mining", on, admin=True)) == {"enabled": True}
    try:
        began = time.monotonic()
        reached = _wait_height(admin_node, start + 3, 15)
        elapsed = time.monotonic() - began
        assert reached >= start + 3, "mining with block_time 1 s did not make 3 blocks in 15 s"
        # about one block a second, not back to back
        assert reached - start <= elapsed + 2
    finally:
        off = admin_node.post_json(API + "/admin/mining", {"enabled": False}, admin=True)
    assert ok(off) == {"enabled": False}
    stopped_at = _settle_after_mining(admin_node)
    # Positive control: while on, the miner made a block every ``interval`` seconds; one still
    # running would make another within that. Three intervals (at least 3 s) pass without one.
    interval = elapsed / max(1, reached - start)
    deadline = time.monotonic() + max(3.0, 3 * interval)
    while time.monotonic() < deadline:
        assert _height(admin_node) == stopped_at, "blocks keep coming after mining was disabled"
        time.sleep(0.2)
    mined = admin_node.get(f"{API}/block-height/{stopped_at - 1}").body.decode()
    block = ok(admin_node.get(f"{API}/block/{mined}/txs"))
    assert block[0]["outputs"][0]["address"] == A2


def _settle_after_mining(node: NodeProcess) -> int:
    """After mining is turned off, a block the miner had already handed to the node's state
    thread may still land; one block generated (to A0) now goes through that thread after it,
    so once it is the tip, nothing the stopped miner found is still to come. The height."""
    [barrier] = node.generate(1, A0)
    assert node.get(API + "/blocks/tip/hash").body.decode() == barrier
    return _height(node)


def test_metrics_count_mined_blocks(admin_node: NodeProcess) -> None:
    """``tally_blocks_accepted`` counts blocks "accepted (stored), any source": the periodic
    miner's blocks too, so with no side chains it equals the height."""
    on = {"enabled": True, "address": A2, "block_time": 0.5}
    start = _height(admin_node)
    ok(admin_node.post_json(API + "/admin/mining", on, admin=True))
    try:
        assert _wait_height(admin_node, start + 2, 15) >= start + 2
    finally:
        ok(admin_node.post_json(API + "/admin/mining", {"enabled": False}, admin=True))
    _settle_after_mining(admin_node)
    m = metrics_of(admin_node)
    assert m["tally_height"] == _height(admin_node)
    assert m["tally_blocks_accepted_total"] == m["tally_height"]


def test_admin_stop_exits_zero(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "stop")
    node.start()
    try:
        cookie = node.datadir / ".cookie"
        assert cookie.exists()
        assert ok(node.post_json(API + "/admin/stop", {}, admin=True)) == {"stopping": True}
        assert node.proc is not None
        assert node.proc.wait(30) == 0
        assert not cookie.exists()
        with pytest.raises(OSError):
            http(node.url + API + "/info", timeout=2)
        assert "Traceback" not in node.log()
    finally:
        node.kill()


def test_json_bodies_are_json(world: World) -> None:
    """Every JSON answer says so in its content type."""
    r = world.node.get(API + "/info")
    assert r.headers["Content-Type"].startswith("application/json")
    json.loads(r.body)
