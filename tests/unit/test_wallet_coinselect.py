"""Coin selection and building: never an immature coinbase, fresh change, fee = rate x size
exactly (checked against the real signed transaction), insufficient funds, several recipients,
dust change folded into the fee, replace-by-fee floors."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import (
    COIN,
    Coin,
    MemoryCoinsView,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    check_transaction,
    get_params,
    hash160,
    pubkey_from_privkey,
    sign_transaction,
    verify_tx_inputs,
)
from wallet.builder import BuildError, build_signed, unsigned_transaction
from wallet.coinselect import (
    DUST_LIMIT,
    InsufficientFundsError,
    Payment,
    Selection,
    SelectionError,
    Utxo,
    dust_threshold,
    fee_for,
    select_coins,
    tx_size,
)

PARAMS = get_params("regtest")
MATURITY = PARAMS.coinbase_maturity


def privkey(n: int) -> bytes:
    return hashlib.sha256(b"wallet coinselect %d" % n).digest()


KEYS = {hash160(pubkey_from_privkey(privkey(n))): privkey(n) for n in range(8)}
HASHES = list(KEYS)
MINE, CHANGE, OTHER = HASHES[0], HASHES[1], HASHES[2]


def utxo(
    amount: int,
    n: int = 0,
    height: int | None = 10,
    coinbase: bool = False,
    owner: bytes = MINE,
    index: int = 0,
) -> Utxo:
    return Utxo(hashlib.sha256(b"tx %d" % n).digest(), index, amount, owner, height, coinbase)


def signed(selection: Selection) -> Transaction:
    return build_signed(selection, KEYS.__getitem__, PARAMS)


def test_never_spends_immature_coinbase() -> None:
    tip = 200
    coins = [
        utxo(50 * COIN, 1, height=tip - 98, coinbase=True),  # spendable at tip + 2: immature
        utxo(50 * COIN, 2, height=tip, coinbase=True),
        utxo(10 * COIN, 3, height=tip - 99, coinbase=True),  # exactly mature for tip + 1
        utxo(1 * COIN, 4, height=5),
    ]
    sel = select_coins(coins, [Payment(OTHER, 10 * COIN)], Decimal(1), CHANGE, tip + 1, MATURITY)
    assert {u.txid for u in sel.inputs} == {coins[2].txid, coins[3].txid}
    assert all(u.spendable(tip + 1, MATURITY) for u in sel.inputs)
    with pytest.raises(InsufficientFundsError) as info:
        select_coins(coins, [Payment(OTHER, 12 * COIN)], Decimal(1), CHANGE, tip + 1, MATURITY)
    assert "100.00000000 TLY of mined coins not mature yet" in str(info.value)


def test_maturity_boundary() -> None:
    coin = utxo(COIN, height=100, coinbase=True)
    assert not coin.spendable(199, MATURITY)
    assert coin.spendable(200, MATURITY)
    assert utxo(COIN, height=None).spendable(0, MATURITY)
    assert not Utxo(b"\0" * 32, 0, 1, MINE, None, True).spendable(10**6, MATURITY)


def test_change_goes_to_the_given_fresh_address_last() -> None:
    sel = select_coins(
        [utxo(50 * COIN)], [Payment(OTHER, 20 * COIN)], Decimal(1), CHANGE, 500, MATURITY
    )
    assert sel.change_position == 1
    assert sel.outputs[1].pubkey_hash == CHANGE
    assert sel.outputs[0] == TxOut(20 * COIN, OTHER)
    assert sel.change == 30 * COIN - sel.fee


@pytest.mark.parametrize("rate", [Decimal(1), Decimal(2), Decimal(7), Decimal("1.5")])
def test_fee_is_rate_times_size_of_the_signed_transaction(rate: Decimal) -> None:
    coins = [utxo(3 * COIN, n, index=n * 70) for n in range(10)]
    payments = [Payment(OTHER, 7 * COIN), Payment(HASHES[3], 123_456)]
    sel = select_coins(coins, payments, rate, CHANGE, 500, MATURITY)
    tx = signed(sel)
    assert tx.size() == sel.size
    assert sel.fee == fee_for(tx.size(), rate)
    if rate == rate.to_integral_value():
        assert sel.fee == int(rate) * tx.size()
    assert sum(u.amount for u in sel.inputs) - tx.total_out() == sel.fee
    check_transaction(tx, PARAMS)


def test_builder_signs_exactly_as_consensus_sign_transaction() -> None:
    coins = [utxo(COIN, n, owner=HASHES[n % 3], index=n) for n in range(9)]
    sel = select_coins(coins, [Payment(OTHER, 8 * COIN)], Decimal(1), CHANGE, 500, MATURITY)
    reference = sign_transaction(
        unsigned_transaction(sel),
        [TxOut(u.amount, u.pubkey_hash) for u in sel.inputs],
        [KEYS[u.pubkey_hash] for u in sel.inputs],
        PARAMS,
    )
    assert signed(sel).serialize() == reference.serialize()


def test_builder_refuses_a_key_that_does_not_own_the_coin() -> None:
    sel = select_coins([utxo(COIN)], [Payment(OTHER, COIN // 2)], Decimal(1), CHANGE, 500, 100)
    with pytest.raises(BuildError, match="does not own"):
        build_signed(sel, lambda h: privkey(5), PARAMS)


def test_signed_transaction_is_valid_against_the_coins() -> None:
    coins = [utxo(2 * COIN, n, height=n + 1) for n in range(5)]
    sel = select_coins(coins, [Payment(OTHER, 5 * COIN)], Decimal(3), CHANGE, 500, MATURITY)
    tx = signed(sel)
    view = MemoryCoinsView()
    for u in sel.inputs:
        assert u.height is not None
        view.add_coin(
            OutPoint(u.txid, u.index), Coin(TxOut(u.amount, u.pubkey_hash), u.height, False)
        )
    fee = verify_tx_inputs(tx, view, 500, PARAMS)
    assert fee == sel.fee == 3 * tx.size()


def test_insufficient_funds() -> None:
    coins = [utxo(COIN, 1), utxo(COIN, 2)]
    with pytest.raises(InsufficientFundsError) as info:
        select_coins(coins, [Payment(OTHER, 2 * COIN)], Decimal(1), CHANGE, 500, MATURITY)
    assert info.value.available == 2 * COIN
    assert info.value.needed > 2 * COIN
    assert "not enough funds" in str(info.value)
    with pytest.raises(InsufficientFundsError):
        select_coins([], [Payment(OTHER, 1)], Decimal(1), CHANGE, 500, MATURITY)


def test_multiple_recipients() -> None:
    coins = [utxo(10 * COIN, n) for n in range(5)]
    payments = [Payment(HASHES[n], (n + 1) * COIN) for n in range(2, 7)]
    sel = select_coins(coins, payments, Decimal(2), CHANGE, 500, MATURITY)
    assert list(sel.outputs[:5]) == [TxOut(p.amount, p.pubkey_hash) for p in payments]
    assert sel.total_in == 30 * COIN  # largest first: three coins cover 25 TLY + fee
    assert sel.change == 5 * COIN - sel.fee
    assert signed(sel).size() == sel.size


def test_dust_change_is_folded_into_the_fee() -> None:
    rate = Decimal(1)
    size_no_change = tx_size([0], [COIN])
    exact = COIN + fee_for(size_no_change, rate)
    for extra in (0, 1, DUST_LIMIT // 2, dust_threshold(rate) + 30 - 1):
        sel = select_coins([utxo(exact + extra)], [Payment(OTHER, COIN)], rate, CHANGE, 9, 100)
        change_would_be = extra - (tx_size([0], [COIN, extra]) - size_no_change)
        if change_would_be < dust_threshold(rate):
            assert sel.change_position is None
            assert sel.fee == exact + extra - COIN
            assert len(sel.outputs) == 1
        assert signed(sel).size() == sel.size
    sel = select_coins(
        [utxo(exact + 10 * DUST_LIMIT)], [Payment(OTHER, COIN)], rate, CHANGE, 9, 100
    )
    assert sel.change_position == 1 and sel.change >= DUST_LIMIT


def test_confirmed_coins_are_preferred() -> None:
    coins = [utxo(100 * COIN, 1, height=None), utxo(2 * COIN, 2, height=3)]
    sel = select_coins(coins, [Payment(OTHER, COIN)], Decimal(1), CHANGE, 500, MATURITY)
    assert [u.txid for u in sel.inputs] == [coins[1].txid]
    sel = select_coins(coins, [Payment(OTHER, 5 * COIN)], Decimal(1), CHANGE, 500, MATURITY)
    assert len(sel.inputs) == 2


def test_required_inputs_and_fee_floor_for_replacement() -> None:
    original = utxo(COIN, 1)
    others = [utxo(5 * COIN, 2)]

    def floor(size: int) -> int:
        return 1000 + size

    sel = select_coins(
        others,
        [Payment(OTHER, COIN // 2)],
        Decimal(1),
        CHANGE,
        500,
        MATURITY,
        required=[original],
        min_fee=floor,
    )
    assert sel.inputs == (original,)
    assert sel.fee == 1000 + sel.size
    # a payment the required input cannot cover pulls in more coins
    sel = select_coins(
        others,
        [Payment(OTHER, COIN)],
        Decimal(1),
        CHANGE,
        500,
        MATURITY,
        required=[original],
        min_fee=floor,
    )
    assert sel.inputs[0] == original and len(sel.inputs) == 2
    assert signed(sel).size() == sel.size


def test_bad_requests() -> None:
    with pytest.raises(SelectionError):
        select_coins([utxo(COIN)], [], Decimal(1), CHANGE, 1, 100)
    with pytest.raises(SelectionError):
        select_coins([utxo(COIN)], [Payment(OTHER, 0)], Decimal(1), CHANGE, 1, 100)
    with pytest.raises(SelectionError):
        select_coins([utxo(COIN)], [Payment(OTHER, 1)], Decimal(0), CHANGE, 1, 100)


def test_change_width_boundary_is_consistent() -> None:
    """Around the 2**32 boundary of msgpack integer widths the change still matches the size."""
    rate = Decimal(3)
    for delta in range(-40, 40):
        amount = 2**32 + delta + fee_for(tx_size([0], [COIN, 2**32]), rate) + COIN
        sel = select_coins([utxo(amount)], [Payment(OTHER, COIN)], rate, CHANGE, 9, 100)
        tx = signed(sel)
        assert tx.size() == sel.size
        assert sel.fee >= fee_for(sel.size, rate)
        assert sel.fee - fee_for(sel.size, rate) <= 4 * 3


def test_size_formula_matches_real_encoding() -> None:
    for n_in in (1, 15, 16, 17):
        for n_out in (1, 15, 16):
            for index in (0, 127, 128, 255, 256, 65535, 65536):
                amounts = [1, 127, 128, 255, 256, 2**16, 2**32, 2**40][: max(1, n_out)]
                amounts = (amounts * n_out)[:n_out]
                tx = Transaction(
                    1,
                    tuple(
                        TxIn(OutPoint(bytes([i]) * 32, index), b"\2" * 33, b"\1" * 64)
                        for i in range(n_in)
                    ),
                    tuple(TxOut(a, b"\3" * 20) for a in amounts),
                    0,
                )
                assert tx.size() == tx_size([index] * n_in, amounts)


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=1, max_value=100 * COIN), min_size=1, max_size=12),
    pays=st.lists(st.integers(min_value=1, max_value=30 * COIN), min_size=1, max_size=4),
    rate=st.sampled_from([Decimal(1), Decimal(2), Decimal("2.5"), Decimal(10)]),
    indexes=st.lists(st.integers(min_value=0, max_value=70_000), min_size=12, max_size=12),
)
def test_property_exact_size_and_fee(
    amounts: list[int], pays: list[int], rate: Decimal, indexes: list[int]
) -> None:
    coins = [utxo(a, n, index=indexes[n]) for n, a in enumerate(amounts)]
    payments = [Payment(OTHER, p) for p in pays]
    try:
        sel = select_coins(coins, payments, rate, CHANGE, 500, MATURITY)
    except InsufficientFundsError:
        assert sum(amounts) < sum(pays) + fee_for(tx_size(indexes[: len(amounts)], pays), rate)
        return
    tx = signed(sel)
    assert tx.size() == sel.size
    assert sel.fee >= fee_for(sel.size, rate)
    if sel.change_position is not None:
        assert sel.fee - fee_for(sel.size, rate) <= 4 * rate
        assert sel.change >= dust_threshold(rate)
    else:
        assert sel.fee - fee_for(sel.size, rate) < dust_threshold(rate) + 10 * rate
    assert unsigned_transaction(sel).txid() == tx.txid()
