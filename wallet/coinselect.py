"""Coin selection: which coins pay for which outputs, the change, and the exact fee. Pure.

``select_coins`` picks from the wallet's unspent outputs enough to pay the payments plus a fee of
``ceil(fee_rate x size)``, where ``size`` is the exact serialized size of the signed transaction:
the encoding (SPEC 2.1) has fixed-size public keys (33 bytes) and signatures (64 bytes), so the
size follows from the structure alone (``tx_size``); only integer widths vary, and the change
amount's width is solved exactly rather than guessed.

Rules it keeps:

- never an immature coinbase output: a coinbase output of height ``h`` is spendable in a block of
  height ``next_height`` only if ``next_height >= h + coinbase_maturity`` (``next_height`` is the
  tip's height + 1); an unconfirmed output is never a coinbase;
- confirmed coins first, largest first; unconfirmed ones (the wallet's own change, or payments not
  yet mined) only when the confirmed ones are not enough; ``required`` coins are always spent
  (``bump-fee`` keeps the inputs of the transaction it replaces);
- the change goes to the ``change_pubkey_hash`` the caller gives (a fresh internal address), as the
  last output; change below ``dust_threshold(fee_rate)`` (the larger of ``DUST_LIMIT`` and the
  fee that spending it later would cost) is not made: it is added to the fee instead;
- ``min_fee(size)`` is a floor for replace-by-fee: the fee is ``max(ceil(rate x size),
  min_fee(size))``.

The fee is exactly ``ceil(rate x size)`` (and ``rate x size`` for an integer rate) except in two
documented cases: dust change folded into the fee, and a change amount sitting right on an integer
width boundary, where no amount is consistent with its own size; then the change is capped at the
largest amount of the smaller width and the fee exceeds ``rate x size`` by at most ``rate x 4``.

Left to others: where coins come from (``wallet.service``), signing (``wallet.builder``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from consensus import MAX_MONEY, TxOut
from consensus.policy import MAX_STANDARD_TX_SIZE

PUBKEY_SIZE = 33
SIGNATURE_SIZE = 64
TXID_SIZE = 32
PUBKEY_HASH_SIZE = 20
TX_VERSION = 1
TX_LOCKTIME = 0
DUST_LIMIT = 1_000
"""Change below this many base units is never made (it goes to the fee)."""
MAX_TX_SIZE = MAX_STANDARD_TX_SIZE
"""The default largest transaction ``select_coins`` makes: the standard size of
``consensus.policy``. A wallet passes the size its node relays (``max_standard_tx_size`` of the
node's ``/info``, ``tx-size`` beyond); an unsigned file's sizes are bounded by this one."""


class SelectionError(Exception):
    """No valid transaction can be made; the message is for the person sending."""


class InsufficientFundsError(SelectionError):
    """The spendable coins do not cover the payments plus the fee."""

    def __init__(self, message: str, needed: int, available: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available


@dataclass(frozen=True)
class Utxo:
    """One unspent output the wallet owns. ``txid`` in internal byte order; ``height`` is None
    while unconfirmed."""

    txid: bytes
    index: int
    amount: int
    pubkey_hash: bytes
    height: int | None
    coinbase: bool = False

    def spendable(self, next_height: int, maturity: int) -> bool:
        """Whether this output may be spent in a block at ``next_height``."""
        if not self.coinbase:
            return True
        return self.height is not None and next_height >= self.height + maturity


@dataclass(frozen=True)
class Payment:
    pubkey_hash: bytes
    amount: int


@dataclass(frozen=True)
class Selection:
    """The chosen coins and outputs; ``outputs[change_position]`` is the change, if any."""

    inputs: tuple[Utxo, ...]
    outputs: tuple[TxOut, ...]
    change_position: int | None
    fee: int
    size: int
    fee_rate: Decimal

    @property
    def change(self) -> int:
        return 0 if self.change_position is None else self.outputs[self.change_position].amount

    @property
    def total_in(self) -> int:
        return sum(u.amount for u in self.inputs)


# --- exact sizes of the msgpack encoding -------------------------------------------------------


def uint_size(n: int) -> int:
    """Bytes msgpack uses for a non-negative integer."""
    if n < 0:
        raise ValueError("negative")
    if n < 0x80:
        return 1
    if n <= 0xFF:
        return 2
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFF_FFFF:
        return 5
    return 9


def array_header_size(n: int) -> int:
    return 1 if n < 16 else 3 if n <= 0xFFFF else 5


def bin_size(n: int) -> int:
    """A ``bin`` of ``n`` bytes, header included."""
    return n + (2 if n <= 0xFF else 3 if n <= 0xFFFF else 5)


def input_size(prev_index: int) -> int:
    """A signed input: ``[txid, index, pubkey33, signature64]``."""
    return (
        1
        + bin_size(TXID_SIZE)
        + uint_size(prev_index)
        + bin_size(PUBKEY_SIZE)
        + bin_size(SIGNATURE_SIZE)
    )


def output_size(amount: int) -> int:
    """``[amount, pubkey_hash20]``."""
    return 1 + uint_size(amount) + bin_size(PUBKEY_HASH_SIZE)


def tx_size_from(inputs_bytes: int, n_inputs: int, outputs_bytes: int, n_outputs: int) -> int:
    """A transaction's size from the summed sizes of its inputs and outputs."""
    return (
        1
        + uint_size(TX_VERSION)
        + array_header_size(n_inputs)
        + inputs_bytes
        + array_header_size(n_outputs)
        + outputs_bytes
        + uint_size(TX_LOCKTIME)
    )


def tx_size(prev_indexes: Iterable[int], amounts: Iterable[int]) -> int:
    """The exact size of a signed transaction spending outputs at ``prev_indexes`` and paying
    ``amounts`` (version 1, locktime 0)."""
    ins = [input_size(i) for i in prev_indexes]
    outs = [output_size(a) for a in amounts]
    return tx_size_from(sum(ins), len(ins), sum(outs), len(outs))


# --- fees ---------------------------------------------------------------------------------------


def fee_for(size: int, fee_rate: Decimal) -> int:
    """``ceil(fee_rate x size)`` in base units."""
    return math.ceil(fee_rate * size)


def dust_threshold(fee_rate: Decimal) -> int:
    """Change below this is folded into the fee: ``DUST_LIMIT``, or what spending it would cost."""
    return max(DUST_LIMIT, fee_for(input_size(0xFFFF), fee_rate))


_WIDTH_MAX = {1: 0x7F, 2: 0xFF, 3: 0xFFFF, 5: 0xFFFF_FFFF, 9: MAX_MONEY}


def _no_floor(size: int) -> int:
    return 0


def _solve_change(
    available: int, size_without_change: int, n_outputs: int, fee_of: Callable[[int], int]
) -> tuple[int, int, int] | None:
    """``(change, fee, size)`` for a change output taking what ``available`` leaves after the
    fee, or None if nothing positive is left. ``size_without_change`` counts ``n_outputs``."""
    header_delta = array_header_size(n_outputs + 1) - array_header_size(n_outputs)
    base = size_without_change + header_delta + 1 + bin_size(PUBKEY_HASH_SIZE)
    exact: tuple[int, int, int] | None = None
    capped: tuple[int, int, int] | None = None
    for width in sorted(_WIDTH_MAX):
        size = base + width
        fee = fee_of(size)
        change = available - fee
        if change <= 0:
            continue
        if uint_size(change) == width:
            exact = (change, fee, size)  # widest consistent solution: largest change
        elif uint_size(change) > width:
            # Too much change for this width: the widest such width is the boundary below.
            capped = (_WIDTH_MAX[width], available - _WIDTH_MAX[width], size)
    if exact is not None:
        return exact
    return capped


def select_coins(
    utxos: Sequence[Utxo],
    payments: Sequence[Payment],
    fee_rate: Decimal,
    change_pubkey_hash: bytes,
    next_height: int,
    coinbase_maturity: int,
    *,
    required: Sequence[Utxo] = (),
    min_fee: Callable[[int], int] = _no_floor,
    max_size: int = MAX_TX_SIZE,
) -> Selection:
    """Choose coins paying ``payments`` at ``fee_rate`` (see the module doc for the rules),
    in a transaction of at most ``max_size`` bytes (what the node relays)."""
    if not payments:
        raise SelectionError("nothing to send")
    for p in payments:
        if not 0 < p.amount <= MAX_MONEY:
            raise SelectionError(f"amount {p.amount} is not between 1 and MAX_MONEY base units")
    if fee_rate <= 0:
        raise SelectionError("the fee rate must be positive")
    total_out = sum(p.amount for p in payments)
    if total_out > MAX_MONEY:
        raise SelectionError("the amounts add up to more than can ever exist")

    def fee_of(size: int) -> int:
        return max(fee_for(size, fee_rate), min_fee(size))

    taken = {(u.txid, u.index) for u in required}
    eligible = [
        u
        for u in utxos
        if (u.txid, u.index) not in taken and u.spendable(next_height, coinbase_maturity)
    ]
    eligible.sort(key=lambda u: (u.height is None, -u.amount, u.txid, u.index))
    outputs = [TxOut(p.amount, p.pubkey_hash) for p in payments]
    outputs_bytes = sum(output_size(p.amount) for p in payments)
    dust = dust_threshold(fee_rate)

    chosen = list(required)
    inputs_bytes = sum(input_size(u.index) for u in chosen)
    total_in = sum(u.amount for u in chosen)
    pending = iter(eligible)
    while True:
        if chosen:
            size = tx_size_from(inputs_bytes, len(chosen), outputs_bytes, len(outputs))
            if size > max_size:
                raise SelectionError(
                    f"the transaction would need {len(chosen)} inputs and {size} bytes, more than "
                    f"a node relays ({max_size:,}); send a smaller amount first to consolidate "
                    "coins"
                )
            fee = fee_of(size)
            if total_in >= total_out + fee:
                solved = _solve_change(total_in - total_out, size, len(outputs), fee_of)
                if solved is not None and solved[0] >= dust:
                    change, fee_c, size_c = solved
                    return Selection(
                        tuple(chosen),
                        (*outputs, TxOut(change, change_pubkey_hash)),
                        len(outputs),
                        fee_c,
                        size_c,
                        fee_rate,
                    )
                # No change worth making: the remainder goes to the fee.
                return Selection(
                    tuple(chosen), tuple(outputs), None, total_in - total_out, size, fee_rate
                )
        coin = next(pending, None)
        if coin is None:
            break
        chosen.append(coin)
        inputs_bytes += input_size(coin.index)
        total_in += coin.amount

    size = tx_size_from(inputs_bytes, max(1, len(chosen)), outputs_bytes, len(outputs))
    needed = total_out + fee_of(size)
    immature = sum(u.amount for u in utxos if not u.spendable(next_height, coinbase_maturity))
    note = f" (and {_tly(immature)} TLY of mined coins not mature yet)" if immature else ""
    raise InsufficientFundsError(
        f"not enough funds: sending {_tly(total_out)} TLY plus a fee of "
        f"{_tly(needed - total_out)} TLY needs {_tly(needed)} TLY, but only {_tly(total_in)} TLY "
        f"is spendable{note}",
        needed,
        total_in,
    )


def _tly(units: int) -> str:
    whole, frac = divmod(units, 100_000_000)
    return f"{whole}.{frac:08d}"
