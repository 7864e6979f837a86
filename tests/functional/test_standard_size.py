"""A real node refuses a transaction over the standard size (issue 17 item 2; SPEC 2.5 ``tx-size``).

Before, a 999,936-byte transaction paying 95.8 units/B was accepted and never mined (the template
keeps room for the coinbase), so a pool of them refused honest payments for 14 days. Now
``POST /tx`` answers 400 ``tx-size`` above 100,000 bytes and the mempool is unchanged; a
transaction of exactly 100,000 bytes is accepted and mined in the next block.
"""

from __future__ import annotations

from pathlib import Path

from consensus import Block, OutPoint
from consensus.policy import MAX_STANDARD_TX_SIZE
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key
from tests.unit.test_mempool_standard_size import sized

API = "/api/v1"
K0 = key(0)


def test_post_tx_over_the_standard_size_is_tx_size(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "n") as node:
        node.generate(102, address_of(K0.pubkey_hash))
        coins = []
        for height in (1, 2):
            h = node.get(f"{API}/block-height/{height}").body.decode()
            cb = Block.deserialize(node.get(f"{API}/block/{h}/raw").body).txs[0]
            coins.append((OutPoint(cb.txid(), 0), cb.outputs[0], K0))
        over = sized(coins[0], MAX_STANDARD_TX_SIZE + 1)
        r = node.post_raw(API + "/tx", over.serialize())
        assert r.status == 400, r.body[:300]
        assert r.json()["error"]["code"] == "tx-size"
        assert node.get(API + "/mempool").json()["count"] == 0
        limit = sized(coins[1], MAX_STANDARD_TX_SIZE)
        r = node.post_raw(API + "/tx", limit.serialize())
        assert r.status == 200, r.body[:300]
        txid = r.json()["txid"]
        node.generate(1, address_of(K0.pubkey_hash))
        status = node.get(f"{API}/tx/{txid}/status").json()
        assert status["confirmed"] is True and status["block_height"] == 103
