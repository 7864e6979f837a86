"""Amounts as people type and read them: decimal TLY <-> integer base units (SPEC 4).

``parse_amount`` turns what a person typed (``1.5``, ``0.00000001``, ``21000000``) into base units
through ``decimal.Decimal``, exactly: never a float, so no amount is ever rounded. It refuses, with
a message that says what is wrong, anything that is not a plain positive decimal number: more
than 8 decimal places, zero, a negative number, exponents, ``NaN`` and infinities, and more than
``MAX_MONEY``. ``parse_fee_rate`` does the same for fee rates (base units per byte, which may have
decimals). ``format_amount`` is the inverse of ``parse_amount`` for display (always 8 decimals).

Pure functions; whether an amount is more than the balance is the coin selection's business.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from consensus import COIN, MAX_MONEY

DECIMALS = 8
"""1 base unit is 0.00000001 TLY."""
_PLAIN_DECIMAL = re.compile(r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
MAX_FEE_RATE = Decimal(1_000_000)
"""No fee rate above this many base units per byte is accepted (a typo guard)."""


class AmountError(ValueError):
    """Not a usable amount; the message is for the person who typed it."""


def parse_amount(text: str) -> int:
    """Base units in ``text``, a decimal number of TLY with at most 8 decimal places."""
    cleaned = text.strip()
    if cleaned.startswith("-") and _PLAIN_DECIMAL.match(cleaned[1:]):
        raise AmountError(f"amount {text!r} is negative: send a positive amount of TLY")
    if cleaned.startswith("+"):
        cleaned = cleaned[1:]
    if not _PLAIN_DECIMAL.match(cleaned):
        raise AmountError(f"amount {text!r} is not a decimal number of TLY such as 1.5")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:  # pragma: no cover - the pattern above admits only valid decimals
        raise AmountError(f"amount {text!r} is not a decimal number of TLY") from None
    if "." in cleaned and len(cleaned.split(".", 1)[1].rstrip("0")) > DECIMALS:
        raise AmountError(
            f"amount {text!r} has more than {DECIMALS} decimal places "
            "(the smallest amount is 0.00000001 TLY)"
        )
    units = value * COIN
    if units != units.to_integral_value():  # pragma: no cover - excluded by the check above
        raise AmountError(f"amount {text!r} has more than {DECIMALS} decimal places")
    result = int(units)
    if result == 0:
        raise AmountError(f"amount {text!r} is zero: send a positive amount of TLY")
    if result > MAX_MONEY:
        raise AmountError(f"amount {text!r} is more than the 21,000,000 TLY that can ever exist")
    return result


def format_amount(units: int, sign: bool = False) -> str:
    """``units`` base units as TLY with 8 decimals (``-0.00010000``); ``sign`` adds ``+``."""
    prefix = "-" if units < 0 else ("+" if sign and units > 0 else "")
    whole, frac = divmod(abs(units), COIN)
    return f"{prefix}{whole}.{frac:0{DECIMALS}d}"


def parse_fee_rate(text: str) -> Decimal:
    """A fee rate in base units per byte (``1``, ``2.5``): positive, plain decimal, not huge."""
    cleaned = text.strip()
    if not _PLAIN_DECIMAL.match(cleaned):
        raise AmountError(
            f"fee rate {text!r} is not a positive number of base units per byte such as 2"
        )
    rate = Decimal(cleaned)
    if rate <= 0:
        raise AmountError(f"fee rate {text!r} must be more than zero")
    if rate > MAX_FEE_RATE:
        raise AmountError(f"fee rate {text!r} is more than {MAX_FEE_RATE} base units per byte")
    return rate
