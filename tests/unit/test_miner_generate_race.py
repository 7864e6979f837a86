"""``generate`` returns only blocks that became the tip (issue 17, item 9).

When another block takes the tip between the end of a proof-of-work search and the submission of
the block found, that block is stored on a side branch. ``generate`` used to count it anyway, so
``POST /admin/generate`` answered hashes with ``in_best_chain: false``. The race is made exact
here: the state call that submits the miner's first block first connects a rival block on the
same parent, which (equal work, first seen) keeps the tip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from consensus import Block
from node.miner.miner import Miner
from node.miner.pow import PowSearcher
from tests.helpers import key, mine_block
from tests.unit.test_miner import FAR_FUTURE, make_node


def test_a_block_that_lost_the_race_is_not_returned_and_another_is_mined() -> None:
    async def scenario() -> None:
        chain, pool = make_node()
        rivals: list[Block] = []

        async def call(fn: Callable[..., Any], *args: Any) -> Any:
            if fn == chain.process_block and not rivals:
                mined: Block = args[0]
                rival = mine_block(
                    chain.tip.hash, chain.height + 1, [], mined.header.time, key(9).pubkey_hash
                )
                rivals.append(rival)
                assert chain.process_block(rival).status == "active"
            return fn(*args)

        async with PowSearcher(workers=1) as searcher:
            miner = Miner(chain, pool, searcher, clock=lambda: FAR_FUTURE - 10**6, call=call)
            chain.subscribe(miner.on_chain_event)
            hashes = await miner.generate(2, key(0).pubkey_hash)
        assert len(hashes) == 2 and len(rivals) == 1
        assert rivals[0].hash() not in hashes
        # Both returned blocks are on the best chain, on top of the rival that won the race.
        assert chain.height == 3 and chain.tip.hash == hashes[-1]
        for height, h in enumerate(hashes, start=2):
            assert chain.hash_at_height(height) == h
        assert chain.hash_at_height(1) == rivals[0].hash()

    asyncio.run(scenario())
