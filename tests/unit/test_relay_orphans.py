"""Relay does not fetch again a block whose body waits in the orphan pool.

Regression (found as a flaky ``test_line_of_five_relays_every_object_once``: a node downloaded 5
block bodies for 4 blocks): in a burst, a node got block N+1 from one peer before block N from
another; N+1 went to the orphan pool, and a later announcement of N+1 by a third peer found it
"lacking" (the block index has no entry for an orphan) and fetched its body a second time.
"""

from __future__ import annotations

from consensus import get_params
from node.chainstate import Chainstate
from node.metrics import NodeMetrics
from node.p2p.relay import Relay
from node.storage import MemoryStore
from tests.helpers import key, mine_block

REGTEST = get_params("regtest")
FAR_FUTURE = 2**31


def test_an_orphan_block_is_not_lacking_but_its_missing_parent_is() -> None:
    chain = Chainstate(MemoryStore(), REGTEST, clock=lambda: FAR_FUTURE, sync=False)
    genesis = chain.tip
    first = mine_block(genesis.hash, 1, [], REGTEST.genesis.header.time + 1, key(0).pubkey_hash)
    second = mine_block(first.hash(), 2, [], REGTEST.genesis.header.time + 2, key(0).pubkey_hash)
    assert chain.process_block(second).status == "orphan"
    assert chain.has_orphan(second.hash())
    relay = Relay(
        REGTEST,
        chain,
        None,  # type: ignore[arg-type]  (blocks only)
        NodeMetrics(),
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
    )
    assert relay._lacking("block", [second.hash(), first.hash()]) == [first.hash()]
    # Once the parent connects, both are stored: nothing is lacking.
    assert chain.process_block(first).status == "active"
    assert relay._lacking("block", [second.hash(), first.hash()]) == []
    assert chain.height == 2
