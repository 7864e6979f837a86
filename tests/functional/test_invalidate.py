"""``POST /admin/invalidate`` and ``/admin/reconsider``, mutated blocks over ``POST /block``, and
the merkle proof of a wtxid, against a real ``tally-node`` process (SPEC 2.4, 3.5; issue 16).

One node for the module. ``chain`` generates 101 blocks to key 0, posts a spend of the first
coinbase and generates two blocks on it: ``h102`` (holding the spend) and ``h103``.

- invalidating ``h102`` moves the tip back to 101, puts the spend back in the mempool, and marks
  the block: ``GET /block`` says it is off the best chain, posting it again is ``duplicate``;
  the mark survives a restart; reconsidering it returns to 103, the spend confirmed again;
- the routes need the admin token (401), a known hash (404), a well-formed one (400), and refuse
  the genesis (400 ``not-allowed``);
- a block whose signature bit a relayer flipped is refused ``bad-txnmrklroot`` and leaves no mark:
  the genuine block is accepted after it (under the old rule both were refused for ever);
- ``/tx/{txid}/merkle-proof`` proves the wtxid under the header's root; the txid does not verify.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consensus import COIN, Block, OutPoint, Transaction, TxIn, TxOut, verify_merkle_proof
from tests.functional.node_process import NodeProcess, Response, address_of
from tests.helpers import key, mine_block, spend

API = "/api/v1"
MINER = key(0)
FEE = 10_000


def internal(display: str) -> bytes:
    return bytes.fromhex(display)[::-1]


def expect_error(r: Response, status: int, code: str) -> dict[str, Any]:
    assert r.status == status, (r.status, r.body[:300])
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    return err


def coinbase_coin(node: NodeProcess, height: int) -> tuple[OutPoint, TxOut]:
    block_hash = node.get(f"{API}/block-height/{height}").body.decode()
    txid = node.get(f"{API}/block/{block_hash}/txids").json()[0]
    amount = node.get(f"{API}/tx/{txid}").json()["outputs"][0]["amount"]
    return OutPoint(internal(txid), 0), TxOut(amount, MINER.pubkey_hash)


def payment(node: NodeProcess, height: int) -> Transaction:
    outpoint, out = coinbase_coin(node, height)
    return spend([(outpoint, out, MINER)], [TxOut(out.amount - FEE, key(1).pubkey_hash)])


@dataclass
class Chain:
    node: NodeProcess
    datadir: Path
    spend: Transaction
    hashes: dict[int, str]  # height -> display hash, 101 to 103

    def info(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.node.get(f"{API}/info").json()
        return answer

    def mark(self, route: str, block_hash: str, admin: bool = True) -> Response:
        return self.node.post_json(f"{API}/admin/{route}", {"hash": block_hash}, admin=admin)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    datadir = tmp_path_factory.mktemp("invalidate") / "node"
    node = NodeProcess(datadir).start()
    try:
        miner = address_of(MINER.pubkey_hash)
        node.generate(101, miner)
        tx = payment(node, 1)
        r = node.post_raw(f"{API}/tx", tx.serialize())
        assert r.status == 200, r.body
        node.generate(2, miner)
        hashes = {h: node.get(f"{API}/block-height/{h}").body.decode() for h in (101, 102, 103)}
        assert node.get(f"{API}/tx/{tx.txid()[::-1].hex()}").json()["status"]["block_height"] == 102
        yield Chain(node, datadir, tx, hashes)
    finally:
        node.stop()


def tx_status(chain: Chain) -> dict[str, Any]:
    status: dict[str, Any] = chain.node.get(f"{API}/tx/{chain.spend.txid()[::-1].hex()}").json()[
        "status"
    ]
    return status


def test_invalidate_then_reconsider(chain: Chain) -> None:
    node = chain.node
    r = chain.mark("invalidate", chain.hashes[102])
    assert r.status == 200, r.body
    assert r.json() == {"hash": chain.hashes[102], "best_hash": chain.hashes[101], "height": 101}
    info = chain.info()
    assert (info["height"], info["best_hash"]) == (101, chain.hashes[101])
    assert node.get(f"{API}/block/{chain.hashes[102]}").json()["in_best_chain"] is False
    # The spend is back in the mempool.
    assert tx_status(chain)["confirmed"] is False
    assert chain.spend.txid()[::-1].hex() in node.get(f"{API}/mempool/txids").json()
    # The block, posted again, is refused: it is marked (not a peer's fault: "duplicate").
    raw = node.get(f"{API}/block/{chain.hashes[102]}/raw").body
    expect_error(node.post_raw(f"{API}/block", raw), 400, "duplicate")
    # Invalidating again is harmless.
    assert chain.mark("invalidate", chain.hashes[103]).json()["height"] == 101

    # The mark is on disk: a restart keeps the tip at 101.
    assert node.stop() == 0
    node.start()
    assert chain.info()["height"] == 101

    r = chain.mark("reconsider", chain.hashes[102])
    assert r.status == 200, r.body
    assert r.json() == {"hash": chain.hashes[102], "best_hash": chain.hashes[103], "height": 103}
    assert chain.info()["best_hash"] == chain.hashes[103]
    assert tx_status(chain)["block_height"] == 102
    assert node.get(f"{API}/block/{chain.hashes[102]}").json()["in_best_chain"] is True


def test_routes_need_the_token_and_a_known_hash(chain: Chain) -> None:
    for route in ("invalidate", "reconsider"):
        expect_error(chain.mark(route, chain.hashes[102], admin=False), 401, "unauthorized")
        expect_error(chain.mark(route, "ab" * 32), 404, "not-found")
        expect_error(chain.mark(route, "xyz"), 400, "bad-request")
        expect_error(chain.mark(route, "ab" * 33), 400, "bad-request")
        r = chain.node.post_json(f"{API}/admin/{route}", {}, admin=True)
        expect_error(r, 400, "bad-request")
        r = chain.node.post_json(f"{API}/admin/{route}", {"hash": 5}, admin=True)
        expect_error(r, 400, "bad-request")
        r = chain.node.post_json(f"{API}/admin/{route}", ["not", "an", "object"], admin=True)
        expect_error(r, 400, "bad-request")
    genesis = chain.node.get(f"{API}/block-height/0").body.decode()
    expect_error(chain.mark("invalidate", genesis), 400, "not-allowed")
    assert chain.mark("reconsider", genesis).status == 200  # nothing to clear
    assert chain.info()["best_hash"] == chain.hashes[103]


def flip_signature(tx: Transaction) -> Transaction:
    txin = tx.inputs[0]
    sig = txin.signature[:-1] + bytes([txin.signature[-1] ^ 0x01])
    return Transaction(tx.version, (TxIn(txin.prevout, txin.pubkey, sig),), tx.outputs, tx.locktime)


def test_a_mutated_block_leaves_no_mark(chain: Chain) -> None:
    node = chain.node
    tip = chain.info()
    height = tip["height"] + 1
    tip_time = node.get(f"{API}/block/{tip['best_hash']}").json()["time"]
    pay = payment(node, 2)
    genuine = mine_block(
        internal(tip["best_hash"]), height, [pay], tip_time + 1, key(2).pubkey_hash, fees=FEE
    )
    mutated = Block(genuine.header, (genuine.txs[0], flip_signature(pay)))
    assert mutated.hash() == genuine.hash()
    for _ in range(2):
        expect_error(node.post_raw(f"{API}/block", mutated.serialize()), 400, "bad-txnmrklroot")
    expect_error(node.get(f"{API}/block/{genuine.hash_hex()}"), 404, "not-found")
    r = node.post_raw(f"{API}/block", genuine.serialize())
    assert r.status == 200, r.body
    assert r.json() == {"hash": genuine.hash_hex(), "status": "active", "height": height}
    # Its merkle proof: the leaf is the wtxid.
    txid = pay.txid()[::-1].hex()
    proof = node.get(f"{API}/tx/{txid}/merkle-proof").json()
    assert (proof["block_hash"], proof["pos"]) == (genuine.hash_hex(), 1)
    branch = [internal(h) for h in proof["merkle"]]
    root = internal(node.get(f"{API}/block/{genuine.hash_hex()}").json()["merkle_root"])
    wtxid = internal(node.get(f"{API}/tx/{txid}").json()["wtxid"])
    assert wtxid == pay.wtxid() != pay.txid()
    assert verify_merkle_proof(wtxid, 1, branch, root)
    assert not verify_merkle_proof(pay.txid(), 1, branch, root)
    assert genuine.txs[1].outputs[0].amount == 50 * COIN - FEE
