"""Logic written once: median time past, the subsidy, a fee from spent coins, shared policy.

Each piece has one definition in ``consensus`` that every user calls: ``median_time_past`` (and
``median_time_past_at`` for a height), ``AncestorTime``, ``INITIAL_SUBSIDY`` behind
``block_subsidy``, ``tx_fee`` (the fee estimator, the API and ``verify_tx_inputs``), and the relay
fee rates of ``consensus.policy`` that the mempool and the wallet share (the wallet never
imports the node). The rules that use them are tested, code by code, in ``test_rules.py``.
"""

from __future__ import annotations

import pytest

from client import models as m
from consensus import (
    COIN,
    Coin,
    MemoryCoinsView,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    ValidationError,
    block_subsidy,
    get_params,
    median_time_past,
    median_time_past_at,
    policy,
    pow,
    tx_fee,
    validation,
    verify_tx_inputs,
)
from consensus import errors as codes
from consensus.params import GENESIS_REWARD, INITIAL_SUBSIDY
from node.api.views import policy_model
from node.fees import FLOOR
from node.mempool import MempoolPolicy
from wallet import service

REGTEST = get_params("regtest")


# --- median time past -----------------------------------------------------------------------------


def test_median_time_past_at_takes_the_eleven_ancestors_below_the_height() -> None:
    times = [1_000 + 7 * h + (h % 3) * 50 for h in range(30)]
    for height in range(1, 30):
        first = max(0, height - 11)
        expected = sorted(times[first:height])[(height - first) // 2]
        assert median_time_past_at(height, times.__getitem__) == expected
        assert median_time_past(times[:height]) == expected


def test_median_time_past_at_asks_only_for_the_window() -> None:
    asked: list[int] = []

    def time_at(h: int) -> int:
        asked.append(h)
        return h

    assert median_time_past_at(100, time_at) == 94
    assert asked == list(range(89, 100))


def test_median_time_past_of_no_blocks_is_an_error() -> None:
    with pytest.raises(ValueError):
        median_time_past([])
    with pytest.raises(ValueError):
        median_time_past_at(0, lambda h: 0)


def test_ancestor_time_is_one_type() -> None:
    assert validation.AncestorTime is pow.AncestorTime


# --- the subsidy ----------------------------------------------------------------------------------


def test_the_subsidy_comes_from_one_constant() -> None:
    assert INITIAL_SUBSIDY == GENESIS_REWARD == 50 * COIN == block_subsidy(0, REGTEST)
    halving = REGTEST.halving_interval
    assert block_subsidy(halving, REGTEST) == INITIAL_SUBSIDY // 2
    assert REGTEST.genesis.txs[0].outputs[0].amount == INITIAL_SUBSIDY


# --- a fee from spent coins -----------------------------------------------------------------------


def _spending(amounts: list[int], pays: list[int]) -> tuple[Transaction, list[Coin]]:
    coins = [Coin(TxOut(a, b"\x11" * 20), 1, False) for a in amounts]
    tx = Transaction(
        1,
        tuple(TxIn(OutPoint(bytes([n + 1]) * 32, 0), b"", b"") for n in range(len(amounts))),
        tuple(TxOut(p, b"\x22" * 20) for p in pays),
        0,
    )
    return tx, coins


def test_tx_fee_is_what_the_spent_coins_hold_less_the_outputs() -> None:
    tx, coins = _spending([5_000, 7_000], [10_000, 1_500])
    assert tx_fee(tx, coins) == 500
    assert tx_fee(tx, tuple(coins)) == 500
    assert tx_fee(tx, iter(coins)) == 500


def test_verify_tx_inputs_refuses_a_negative_fee_with_the_sums_in_words() -> None:
    tx, coins = _spending([5_000], [5_001])
    view = MemoryCoinsView({txin.prevout: c for txin, c in zip(tx.inputs, coins, strict=True)})
    with pytest.raises(ValidationError) as info:
        verify_tx_inputs(tx, view, 200, REGTEST)
    assert info.value.code == codes.BAD_TXNS_IN_BELOWOUT
    assert "inputs 5000 < outputs 5001" in info.value.message


# --- relay policy shared by the mempool and the wallet --------------------------------------------


def test_the_mempool_and_the_wallet_share_the_relay_fee_rates() -> None:
    """The wallet keeps no copy of the node's policy: it reads what ``/info`` says, which is the
    mempool's own policy object (so a node started with another policy tells its wallets)."""
    defaults = MempoolPolicy()
    assert defaults.min_relay_fee_rate == policy.MIN_RELAY_FEE_RATE == FLOOR
    assert defaults.incremental_relay_fee_rate == policy.INCREMENTAL_RELAY_FEE_RATE
    assert defaults.max_standard_tx_size == policy.MAX_STANDARD_TX_SIZE
    other = MempoolPolicy(
        min_relay_fee_rate=3, incremental_relay_fee_rate=2, max_standard_tx_size=50_000
    )
    assert policy_model(other) == m.Policy(
        min_relay_fee_rate=3, incremental_relay_fee_rate=2, max_standard_tx_size=50_000
    )
    for name in ("MIN_RELAY_FEE_RATE", "INCREMENTAL_FEE_RATE"):
        assert not hasattr(service, name), f"wallet.service copies the node's {name}"
