"""Spending-control selections against the real signed transaction: a sweep is one output with
the fee from it; subtract-fee pays amount minus fee; both with fee >= rate x size (the signed
size, checked by ``build_signed``) and at most 8 x rate above; named coins are exactly those
named, never frozen ones; the fee cap refuses with the fee and the reason. And ``watch``'s
sequence (seen, then confirmed; a timeout saying what was seen) with an injected poll."""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import get_params, hash160, pubkey_from_privkey
from wallet import payments, spending
from wallet.builder import build_signed
from wallet.coinselect import InsufficientFundsError, Payment, SelectionError, Utxo
from wallet.service import Scan

PARAMS = get_params("regtest")


def privkey(n: int) -> bytes:
    return hashlib.sha256(b"wallet spending %d" % n).digest()


KEYS = {hash160(pubkey_from_privkey(privkey(n))): privkey(n) for n in range(3)}
MINE, CHANGE, OTHER = list(KEYS)


def coin(amount: int, n: int = 0, index: int = 0) -> Utxo:
    return Utxo(hashlib.sha256(b"c%d" % n).digest(), index, amount, MINE, 10)


amounts = st.integers(min_value=10_000, max_value=10**12)
rates = st.sampled_from([Decimal(1), Decimal(2), Decimal("3.5"), Decimal(17)])


@settings(max_examples=60, deadline=None)
@given(st.lists(amounts, min_size=1, max_size=6), rates)
def test_sweep_is_one_output_fee_from_it(values: list[int], rate: Decimal) -> None:
    coins = [coin(a, n, n % 3) for n, a in enumerate(values)]
    s = spending.sweep_selection(coins, OTHER, rate)
    tx = build_signed(s, KEYS.__getitem__, PARAMS)  # checks size and fee exactly
    assert len(tx.outputs) == 1 and tx.outputs[0].amount == sum(values) - s.fee
    assert rate * tx.size() <= s.fee <= rate * (tx.size() + 8) + 1


@settings(max_examples=60, deadline=None)
@given(st.lists(amounts, min_size=1, max_size=6), st.integers(10**5, 10**10), rates)
def test_subtract_fee_pays_amount_minus_fee(values: list[int], amount: int, rate: Decimal) -> None:
    coins = [coin(a, n) for n, a in enumerate(values)]
    try:
        s = spending.subtract_fee_selection(coins, [Payment(OTHER, amount)], rate, CHANGE, 200, 100)
    except InsufficientFundsError:
        assert sum(values) < amount
        return
    tx = build_signed(s, KEYS.__getitem__, PARAMS)
    paid = tx.outputs[0].amount
    assert rate * tx.size() <= amount - paid  # the payee bears the fee
    if s.change_position is not None:
        assert paid + s.fee == amount and tx.outputs[1].amount == s.total_in - amount
        assert s.fee <= rate * (tx.size() + 8) + 1
    else:  # dust change went to the fee as well
        assert paid + s.fee == s.total_in and len(tx.outputs) == 1


def test_subtract_fee_splits_between_payments() -> None:
    s = spending.subtract_fee_selection(
        [coin(10**9)], [Payment(OTHER, 10**8), Payment(CHANGE, 10**8)], Decimal(3), MINE, 200, 100
    )
    first, second = s.outputs[0].amount, s.outputs[1].amount
    assert first + second + s.fee == 2 * 10**8
    assert second - first == s.fee % 2  # equal shares, the first pays the remainder


def test_named_coins_are_exactly_those_and_never_frozen() -> None:
    a, b, c = coin(10**8, 1), coin(2 * 10**8, 2), coin(3 * 10**8, 3)
    scan = Scan(100, [], utxos=[a, b], frozen=[c])
    name = {u: f"{u.txid[::-1].hex()}:{u.index}" for u in (a, b, c)}
    assert spending.named_coins(scan, [name[b].upper(), name[a]], 101, 100) == [b, a]
    with pytest.raises(SelectionError, match="frozen"):
        spending.named_coins(scan, [name[c]], 101, 100)
    with pytest.raises(SelectionError, match="not an unspent coin"):
        spending.named_coins(scan, ["00" * 32 + ":0"], 101, 100)
    for bad in ("xyz", "00" * 32, "00" * 32 + ":-1", "00" * 31 + ":1"):
        with pytest.raises(SelectionError, match="not a coin"):
            spending.parse_outpoint(bad)


def test_fee_cap() -> None:
    spending.check_max_fee(100, 100, "exactly at the cap is allowed")
    with pytest.raises(spending.FeeCapError, match=r"0\.00000101 TLY \(why\), above --max-fee"):
        spending.check_max_fee(101, 100, "why")


class NoStream:
    """A waker without an event stream: ``watch`` polls (briefly, for the test)."""

    def __init__(self, client: object, address: str) -> None:
        pass

    def wait(self, seconds: float) -> None:
        time.sleep(min(seconds, 0.01))

    def close(self) -> None:
        pass


def test_watch_reports_seen_then_confirmed_and_times_out() -> None:
    answers = [
        [],
        [payments.Received("t1", 60, 0)],
        [payments.Received("t1", 60, 0), payments.Received("t2", 40, 0)],
        [payments.Received("t1", 60, 1), payments.Received("t2", 40, 0)],
        [payments.Received("t1", 60, 1), payments.Received("t2", 40, 1)],
    ]
    seen: list[payments.Progress] = []

    def poll(client: object, address: str) -> list[payments.Received]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    done = payments.watch(None, "addr", 100, 1, None, seen.append, poll, NoStream)  # type: ignore[arg-type]
    assert [p.stage for p in seen] == ["seen", "confirmed"]
    assert seen[0].received == 100 and done.txids == ("t1", "t2") and done.received == 100
    with pytest.raises(payments.WatchTimeoutError, match=r"seen 0\.0000006 TLY in 1 trans"):
        payments.watch(
            None,  # type: ignore[arg-type]
            "addr",
            100,
            1,
            0.05,
            lambda p: None,
            lambda c, a: [payments.Received("t1", 60, 3)],
            NoStream,
        )
