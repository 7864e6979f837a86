"""Amount parsing: decimal TLY to base units exactly, and clear refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consensus import COIN, MAX_MONEY
from wallet.amounts import AmountError, format_amount, parse_amount, parse_fee_rate


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("1", COIN),
        ("1.5", 150_000_000),
        ("0.00000001", 1),
        ("0.1", 10_000_000),
        ("0.3", 30_000_000),  # 0.1 + 0.2 style float traps do not exist here
        ("12.34567891", 1_234_567_891),
        ("1.", COIN),
        (".5", 50_000_000),
        (" 2 ", 2 * COIN),
        ("+3", 3 * COIN),
        ("1.50000000", 150_000_000),
        ("1.500000000000", 150_000_000),  # trailing zeros are not extra precision
        ("21000000", MAX_MONEY),
        ("0020.5", 2_050_000_000),
    ],
)
def test_parse_amount(text: str, units: int) -> None:
    assert parse_amount(text) == units


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.000000001", "more than 8 decimal places"),
        ("1.123456789", "more than 8 decimal places"),
        ("0", "is zero"),
        ("0.00000000", "is zero"),
        ("-1", "is negative"),
        ("-0.5", "is negative"),
        ("NaN", "not a decimal number"),
        ("nan", "not a decimal number"),
        ("Infinity", "not a decimal number"),
        ("-inf", "not a decimal number"),
        ("1e3", "not a decimal number"),
        ("1,5", "not a decimal number"),
        ("0x10", "not a decimal number"),
        ("", "not a decimal number"),
        (".", "not a decimal number"),
        ("1.2.3", "not a decimal number"),
        ("one", "not a decimal number"),
        ("21000000.00000001", "more than the 21,000,000 TLY"),
        ("99999999999999999999", "more than the 21,000,000 TLY"),
    ],
)
def test_parse_amount_refusals(text: str, message: str) -> None:
    with pytest.raises(AmountError) as info:
        parse_amount(text)
    assert message in str(info.value)


@given(st.integers(min_value=1, max_value=MAX_MONEY))
def test_format_and_parse_round_trip(units: int) -> None:
    text = format_amount(units)
    assert parse_amount(text) == units
    assert Decimal(text) * COIN == units


def test_format_amount() -> None:
    assert format_amount(0) == "0.00000000"
    assert format_amount(1) == "0.00000001"
    assert format_amount(-150_000_000) == "-1.50000000"
    assert format_amount(5, sign=True) == "+0.00000005"


@pytest.mark.parametrize(("text", "rate"), [("1", Decimal(1)), ("2.5", Decimal("2.5"))])
def test_parse_fee_rate(text: str, rate: Decimal) -> None:
    assert parse_fee_rate(text) == rate


@pytest.mark.parametrize("text", ["0", "-1", "abc", "NaN", "1e2", "10000001"])
def test_parse_fee_rate_refusals(text: str) -> None:
    with pytest.raises(AmountError):
        parse_fee_rate(text)
