"""A coinbase output may be 0 (SPEC 2.3), so a chain goes on once the subsidy is gone.

Issue 16, defect 12: regtest's subsidy reaches 0 at height 4,950 (150-block halvings), and an
empty block's coinbase then pays 0, which ``bad-txns-vout-negative`` refused: the node could mine
no more blocks. Here:

- a coinbase output of 0 passes ``check_transaction``; below 0 it is still refused;
- an output of 0 in any other transaction is still ``bad-txns-vout-negative``;
- the miner's template builds a valid block when subsidy and fees are both 0: a chain on
  parameters with a one-block halving interval (subsidy 0 from height 33 on) grows through
  ``build_template`` and ``Chainstate.process_block`` well past it;
- the real regtest schedule: the subsidy is 0 from height 4,950, and a coinbase-only block there
  passes ``check_block`` and connects.
"""

from __future__ import annotations

import dataclasses

import pytest

from consensus import (
    COIN,
    Block,
    MemoryCoinsView,
    OutPoint,
    Transaction,
    TxOut,
    ValidationError,
    block_subsidy,
    check_block,
    check_transaction,
    connect_block,
)
from consensus import errors as codes
from node.chainstate import Chainstate
from node.miner.template import build_template
from node.storage import MemoryStore
from tests.helpers import REGTEST, ChainBuilder, coinbase, key, mine_block, solve, spend

FAST_HALVING = dataclasses.replace(REGTEST, halving_interval=1)
"""Regtest with a halving every block: 50 TLY >> 33 is 0, so the subsidy is gone at 33."""
LAST_PAID = 32
REGTEST_ZERO_SUBSIDY = 4_950


def test_subsidy_schedules() -> None:
    assert block_subsidy(LAST_PAID, FAST_HALVING) == 1
    assert block_subsidy(LAST_PAID + 1, FAST_HALVING) == 0
    assert block_subsidy(REGTEST_ZERO_SUBSIDY - 1, REGTEST) == 1
    assert block_subsidy(REGTEST_ZERO_SUBSIDY, REGTEST) == 0


def test_zero_coinbase_output_is_accepted() -> None:
    check_transaction(coinbase(REGTEST_ZERO_SUBSIDY, key(1).pubkey_hash, 0), REGTEST)
    two = coinbase(REGTEST_ZERO_SUBSIDY, key(1).pubkey_hash, 0)
    two = Transaction(two.version, two.inputs, (*two.outputs, TxOut(5, key(2).pubkey_hash)), 0)
    check_transaction(two, REGTEST)


def test_negative_coinbase_output_is_still_refused() -> None:
    with pytest.raises(ValidationError) as info:
        check_transaction(coinbase(5, key(1).pubkey_hash, -1), REGTEST)
    assert info.value.code == codes.BAD_TXNS_VOUT_NEGATIVE


def test_zero_output_outside_the_coinbase_is_refused() -> None:
    coin = (OutPoint(b"\x01" * 32, 0), TxOut(COIN, key(1).pubkey_hash), key(1))
    for outputs in (
        [TxOut(0, key(2).pubkey_hash)],
        [TxOut(COIN // 2, key(2).pubkey_hash), TxOut(0, key(3).pubkey_hash)],
        [TxOut(-1, key(2).pubkey_hash)],
    ):
        with pytest.raises(ValidationError) as info:
            check_transaction(spend([coin], outputs), REGTEST)
        assert info.value.code == codes.BAD_TXNS_VOUT_NEGATIVE, outputs
    check_transaction(spend([coin], [TxOut(1, key(2).pubkey_hash)]), REGTEST)  # the boundary


def test_a_block_with_a_zero_output_spend_is_refused() -> None:
    chain = ChainBuilder()
    chain.grow(REGTEST.coinbase_maturity + 1)
    bad = spend([chain.coinbase_coin(1)], [TxOut(0, key(2).pubkey_hash)])
    with pytest.raises(ValidationError) as info:
        check_block(chain.next_block([bad], fees=50 * COIN), REGTEST)
    assert info.value.code == codes.BAD_TXNS_VOUT_NEGATIVE


def test_regtest_block_at_4950_with_a_zero_coinbase_connects() -> None:
    """The block that stopped regtest: height 4,950, subsidy 0, no fees."""
    genesis = REGTEST.genesis
    view = MemoryCoinsView()
    connect_block(genesis, 0, view, REGTEST)
    block = mine_block(
        genesis.hash(), REGTEST_ZERO_SUBSIDY, [], REGTEST.genesis_time + 60, key(1).pubkey_hash
    )
    assert block.txs[0].outputs[0].amount == 0
    check_block(block, REGTEST)
    connect_block(block, REGTEST_ZERO_SUBSIDY, view, REGTEST)  # context: height only
    claim_one = mine_block(
        genesis.hash(),
        REGTEST_ZERO_SUBSIDY,
        [],
        REGTEST.genesis_time + 60,
        key(1).pubkey_hash,
        fees=1,
    )
    with pytest.raises(ValidationError) as info:
        connect_block(claim_one, REGTEST_ZERO_SUBSIDY, MemoryCoinsView(), REGTEST)
    assert info.value.code == codes.BAD_CB_AMOUNT


def test_template_mines_past_the_last_halving() -> None:
    """Through the miner's template and the chainstate, from subsidy 50 TLY down to 0."""
    cs = Chainstate(MemoryStore(), FAST_HALVING, clock=lambda: 2**31, sync=False)
    payout = key(4).pubkey_hash
    amounts = []
    for height in range(1, LAST_PAID + 8):
        now = FAST_HALVING.genesis_time + 60 * height
        template = build_template(cs, None, payout, now=now)
        assert template.height == height and template.fees == 0
        block = Block(solve(template.block.header, FAST_HALVING), template.block.txs)
        check_block(block, FAST_HALVING)
        result = cs.process_block(block)
        assert (result.status, result.height) == ("active", height)
        amounts.append(block.txs[0].total_out())
    assert amounts[LAST_PAID - 1] == 1 and set(amounts[LAST_PAID:]) == {0}
    assert cs.height == LAST_PAID + 7
    info = cs.utxo_set_info()
    assert info.total_amount == sum(amounts) + 50 * COIN  # the genesis coinbase counts too
