"""Regtest goes on past height 4,950, where the subsidy reaches 0 (issue 16, defect 12).

A real ``tally-node``: ``admin/generate`` mines to height 4,949 (the last block with a subsidy,
1 base unit), then on: the coinbases of 4,950 and later pay 0 (SPEC 2.3 allows a zero coinbase
output; it was ``bad-txns-vout-negative`` and the node could make no more blocks). A block with
a fee-paying spend there pays its miner exactly the fee. About 12 s on an idle machine.
"""

from __future__ import annotations

from pathlib import Path

from consensus import OutPoint, TxOut, block_subsidy
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import REGTEST, key, spend

API = "/api/v1"
ZERO_FROM = 4_950
CHUNK = 1_000  # blocks per request, so that one request stays short on a busy machine
FEE = 12_345


def coinbase_outputs(node: NodeProcess, height: int) -> list[dict[str, object]]:
    block_hash = node.get(f"{API}/block-height/{height}").body.decode()
    txid = node.get(f"{API}/block/{block_hash}/txids").json()[0]
    outputs: list[dict[str, object]] = node.get(f"{API}/tx/{txid}").json()["outputs"]
    return outputs


def test_blocks_after_the_subsidy_is_gone(tmp_path: Path) -> None:
    assert block_subsidy(ZERO_FROM - 1, REGTEST) == 1 and block_subsidy(ZERO_FROM, REGTEST) == 0
    miner = key(0)
    address = address_of(miner.pubkey_hash)
    with NodeProcess(tmp_path / "node") as node:
        height = 0
        while height < ZERO_FROM - 1:
            count = min(CHUNK, ZERO_FROM - 1 - height)
            node.generate(count, address)
            height += count
        assert node.get(f"{API}/info").json()["height"] == ZERO_FROM - 1
        assert coinbase_outputs(node, ZERO_FROM - 1)[0]["amount"] == 1

        node.generate(2, address)  # 4,950 and 4,951: no subsidy, no fees
        assert node.get(f"{API}/info").json()["height"] == ZERO_FROM + 1
        for h in (ZERO_FROM, ZERO_FROM + 1):
            assert [o["amount"] for o in coinbase_outputs(node, h)] == [0]

        # A spend of the first coinbase: the next coinbase pays exactly its fee.
        block1 = node.get(f"{API}/block-height/1").body.decode()
        cb_txid = node.get(f"{API}/block/{block1}/txids").json()[0]
        amount = node.get(f"{API}/tx/{cb_txid}").json()["outputs"][0]["amount"]
        coin = (OutPoint(bytes.fromhex(cb_txid)[::-1], 0), TxOut(amount, miner.pubkey_hash), miner)
        tx = spend([coin], [TxOut(amount - FEE, key(1).pubkey_hash)])
        r = node.post_raw(f"{API}/tx", tx.serialize())
        assert r.status == 200, r.body
        node.generate(1, address_of(key(2).pubkey_hash))
        assert [o["amount"] for o in coinbase_outputs(node, ZERO_FROM + 2)] == [FEE]
        status = node.get(f"{API}/tx/{tx.txid()[::-1].hex()}/status").json()
        assert status["block_height"] == ZERO_FROM + 2
