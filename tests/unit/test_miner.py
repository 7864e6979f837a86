"""The miner service: generate, mining on a schedule, and restarting the search when the tip
changes or better transactions arrive (issue: "a new tip restarts the search").

The proof-of-work search runs in real worker processes (``PowSearcher``). On the ``test``
network a block needs about 2**25 hashes, so a search there does not finish within a test: it is
the place to watch a search being restarted.
"""

from __future__ import annotations

import asyncio
import time

from consensus import OutPoint, TxOut, block_subsidy, get_params
from node.chainstate import Chainstate, TipChanged
from node.mempool import ChainView, Mempool
from node.miner.miner import Miner
from node.miner.pow import PowSearcher
from node.storage import MemoryStore
from tests.helpers import REGTEST, key, mine_block, spend

FAR_FUTURE = 2**31


def make_node(network: str = "regtest") -> tuple[Chainstate, Mempool]:
    params = get_params(network)
    chain = Chainstate(MemoryStore(), params, clock=lambda: FAR_FUTURE, sync=False)
    view = ChainView.of(chain)
    pool = Mempool(view, params, clock=lambda: FAR_FUTURE)
    chain.subscribe(pool.on_chain_event)
    return chain, pool


def test_generate_mines_blocks_with_mempool_transactions_and_fees() -> None:
    async def scenario() -> None:
        chain, pool = make_node()
        async with PowSearcher(workers=1) as searcher:
            miner = Miner(chain, pool, searcher, clock=lambda: FAR_FUTURE - 10**6)
            chain.subscribe(miner.on_chain_event)
            owner = key(0)
            hashes = await miner.generate(101, owner.pubkey_hash)
            assert len(hashes) == 101 and chain.height == 101
            assert chain.tip.hash == hashes[-1]
            block1 = chain.get_block(hashes[0])
            assert block1 is not None
            cb = block1.txs[0]
            coin = (OutPoint(cb.txid(), 0), cb.outputs[0], owner)
            tx = spend([coin], [TxOut(49 * 10**8, key(1).pubkey_hash)])
            fee = cb.outputs[0].amount - 49 * 10**8
            pool.accept(tx)
            [mined] = await miner.generate(1, owner.pubkey_hash)
            block = chain.get_block(mined)
            assert block is not None
            assert [t.txid() for t in block.txs[1:]] == [tx.txid()]
            assert block.txs[0].total_out() == block_subsidy(102, REGTEST) + fee
            assert len(pool) == 0

    asyncio.run(scenario())


def test_a_new_tip_stops_the_running_search() -> None:
    """On the test network the search cannot finish; a TipChanged ends it within a second, and
    mine_block reports that the tip moved (None), so the caller mines on the new tip."""

    async def scenario() -> None:
        chain, pool = make_node("test")
        async with PowSearcher(workers=1) as searcher:
            miner = Miner(chain, pool, searcher, clock=lambda: FAR_FUTURE - 10**6)
            task = asyncio.create_task(miner.mine_block(key(0).pubkey_hash))
            await asyncio.sleep(1.0)
            assert not task.done() and miner.templates_built == 1
            started = time.monotonic()
            miner.on_chain_event(TipChanged(chain.tip.hash, b"\x01" * 32, 1, 0))
            result = await asyncio.wait_for(task, timeout=5)
            assert result is None
            assert time.monotonic() - started < 2.0

    asyncio.run(scenario())


def test_better_transactions_rebuild_the_template_after_the_refresh_interval() -> None:
    async def scenario() -> None:
        chain, pool = make_node("test")
        async with PowSearcher(workers=1) as searcher:
            miner = Miner(
                chain, pool, searcher, clock=lambda: FAR_FUTURE - 10**6, refresh_seconds=0.3
            )
            task = asyncio.create_task(miner.mine_block(key(0).pubkey_hash))
            await asyncio.sleep(0.5)
            assert miner.templates_built == 1
            miner.on_mempool_accept(None)  # type: ignore[arg-type]  # the entry is not read
            deadline = time.monotonic() + 5
            while miner.templates_built < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert miner.templates_built == 2
            assert not task.done()  # still mining, on the new template
            miner.on_chain_event(TipChanged(chain.tip.hash, b"\x02" * 32, 1, 0))
            assert await asyncio.wait_for(task, timeout=5) is None

    asyncio.run(scenario())


def test_run_mines_on_a_block_that_arrived_from_elsewhere() -> None:
    async def scenario() -> None:
        chain, pool = make_node()
        async with PowSearcher(workers=1) as searcher:
            miner = Miner(chain, pool, searcher, clock=lambda: FAR_FUTURE - 10**6)
            chain.subscribe(miner.on_chain_event)
            # One block a second: after the first, there is a second's quiet to slip one in.
            runner = asyncio.create_task(miner.run(key(0).pubkey_hash, block_time=1.0))
            while chain.height < 1:
                await asyncio.sleep(0.02)
            tip = chain.tip
            foreign = mine_block(
                tip.hash, tip.height + 1, [], chain.median_time_past() + 1, key(7).pubkey_hash
            )
            assert chain.process_block(foreign).status == "active"
            while chain.height < tip.height + 2:
                await asyncio.sleep(0.02)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            on_top = chain.get_block(chain.hash_at_height(tip.height + 2) or b"")
            assert on_top is not None and on_top.header.prev_hash == foreign.hash()
            assert on_top.txs[0].outputs[0].pubkey_hash == key(0).pubkey_hash

    asyncio.run(scenario())


def test_mining_through_a_retarget_follows_bitcoins_rule() -> None:
    """The ``test`` network's retarget (every 60 blocks, 30 s spacing) through the whole stack:
    template bits, proof of work in worker processes, and the chainstate's checks. Real test
    network blocks take ~2**25 hashes each, so this runs its rules with an easy pow_limit (and a
    genesis solved for it); blocks 10 s apart make the target three times harder at height 60."""
    import dataclasses

    from consensus import bits_to_target, next_bits
    from consensus.params import build_genesis
    from tests.helpers import solve

    base = dataclasses.replace(get_params("test"), name="test", pow_limit_bits=0x207FFFFF)
    nonce = solve(build_genesis(base, 0).header, base).nonce
    params = dataclasses.replace(base, genesis_nonce=nonce)
    assert params.retarget_interval == 60 and params.target_spacing == 30

    async def scenario() -> None:
        now = [params.genesis_time]

        def clock() -> float:
            return now[0]

        chain = Chainstate(MemoryStore(), params, clock=lambda: FAR_FUTURE, sync=False)
        async with PowSearcher(workers=1) as searcher:
            miner = Miner(chain, None, searcher, clock=clock)
            while chain.height < 61:
                now[0] += 10
                assert await miner.mine_block(key(0).pubkey_hash) is not None
        first = chain.get_entry(chain.hash_at_height(0) or b"")
        last = chain.get_entry(chain.hash_at_height(59) or b"")
        at_60 = chain.get_entry(chain.hash_at_height(60) or b"")
        assert first and last and at_60
        expected = next_bits(params, last.header.bits, first.header.time, last.header.time)
        assert at_60.header.bits == expected != params.pow_limit_bits
        # 59 intervals of 10 s against 60 x 30 s: the target shrinks to 590/1800 of the limit
        # (up to the compact form's 3 significant bytes)
        exact = bits_to_target(params.pow_limit_bits) * 590 // 1800
        assert 0 <= exact - bits_to_target(expected) < exact >> 15
        for height in range(1, 60):
            entry = chain.get_entry(chain.hash_at_height(height) or b"")
            assert entry is not None and entry.header.bits == params.pow_limit_bits

    asyncio.run(scenario())
