"""Spending control: sweeps, fees from the amount, named coins, frozen coins, CPFP, the fee cap.

Pure selection functions beside ``wallet.coinselect``'s, with the same exact-size rules:

- ``sweep_selection``: every given coin into one output, the fee taken from it (``sendall``);
- ``subtract_fee_selection``: coins enough for the payments; the fee is taken from the payments
  (split equally, the first paying the remainder), so the payee gets the amount minus the fee
  (``send --subtract-fee``); change below the dust threshold goes to the fee;
- ``named_coins``: exactly the coins ``--from TXID:N`` names, each the wallet's, unspent,
  mature and not frozen (a frozen coin is never spent, even when named: unfreeze it first);
- ``cpfp``: a child of a stuck unconfirmed parent, spending the parent's outputs to this wallet,
  paying for both so the two together reach the fee rate asked for.

The fee in these is ``ceil(rate x size)`` computed on the size *before* the fee is taken from an
output: taking it can only shorten an amount's integer encoding, so the fee is at least
``rate x`` the final size, and exceeds it by at most ``rate x 8`` (an amount's width shrinking).

``check_max_fee``: every command that signs refuses a fee above ``--max-fee`` (default
``DEFAULT_MAX_FEE``, 0.1 TLY as Bitcoin Core's ``maxtxfee``) before signing, saying the fee and
why it is that high. Left to others: scanning and signing (``wallet.service``, ``wallet.builder``);
the types and checks shared with ``wallet.service`` are ``wallet.model``'s, imported from there
(this module never imports ``wallet.service`` but for type annotations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from client import models as m
from client.http import NodeError
from consensus import MAX_MONEY, TxOut, encode_address
from wallet.amounts import format_amount
from wallet.builder import build_signed, unsigned_transaction
from wallet.coinselect import (
    InsufficientFundsError,
    Payment,
    Selection,
    SelectionError,
    Utxo,
    dust_threshold,
    fee_for,
    tx_size,
)
from wallet.keys import CHANGE, KeyId
from wallet.model import (
    Scan,
    SendResult,
    WalletError,
    fee_rate_check,
    outpoint_text,
    parse_address,
)

if TYPE_CHECKING:
    from wallet.service import Wallet

DEFAULT_MAX_FEE = 10_000_000
"""``--max-fee`` when none is given: 0.1 TLY (Bitcoin Core's ``maxtxfee`` default)."""


class FeeCapError(Exception):
    """The fee is above ``--max-fee``; nothing was signed."""


def check_max_fee(fee: int, max_fee: int, reason: str) -> None:
    """``FeeCapError`` (with the fee and ``reason``) if ``fee`` exceeds ``max_fee``."""
    if fee > max_fee:
        raise FeeCapError(
            f"the fee would be {format_amount(fee)} TLY ({reason}), above --max-fee "
            f"{format_amount(max_fee)} TLY; nothing was signed (raise --max-fee to pay it)"
        )


def parse_outpoint(text: str) -> str:
    """``TXID:N`` normalised (lower-case hex), or ``SelectionError`` saying what is wrong."""
    txid, sep, index = text.strip().lower().partition(":")
    if not sep or len(txid) != 64 or any(c not in "0123456789abcdef" for c in txid):
        raise SelectionError(f"{text!r} is not a coin: write TXID:N (64 hex characters, ':', N)")
    if not index.isdigit() or len(index) > 10 or int(index) >= 2**32:
        raise SelectionError(f"{text!r} is not a coin: N must be an output number")
    return f"{txid}:{int(index)}"


def named_coins(
    scan: Scan, outpoints: Sequence[str], next_height: int, maturity: int
) -> list[Utxo]:
    """The wallet's coins that ``outpoints`` name, in that order (see the module docstring)."""
    mine = {outpoint_text(u): u for u in scan.utxos}
    frozen = {outpoint_text(u) for u in scan.frozen}
    out: list[Utxo] = []
    for text in dict.fromkeys(parse_outpoint(o) for o in outpoints):
        if text in frozen:
            raise SelectionError(f"coin {text} is frozen: unfreeze it to spend it")
        coin = mine.get(text)
        if coin is None:
            raise SelectionError(f"coin {text} is not an unspent coin of this wallet")
        if not coin.spendable(next_height, maturity):
            raise SelectionError(f"coin {text} is a mined coin not mature yet")
        out.append(coin)
    return out


def _check_rate(rate: Decimal) -> None:
    if rate <= 0:
        raise SelectionError("the fee rate must be positive")


def sweep_selection(coins: Sequence[Utxo], pubkey_hash: bytes, rate: Decimal) -> Selection:
    """All of ``coins`` to one output of ``pubkey_hash``, the fee taken from it."""
    _check_rate(rate)
    if not coins:
        raise SelectionError("nothing to sweep: no spendable coins")
    total = sum(u.amount for u in coins)
    indexes = [u.index for u in coins]
    fee = fee_for(tx_size(indexes, [total]), rate)
    amount = total - fee
    if amount < dust_threshold(rate):
        raise InsufficientFundsError(
            f"sweeping {format_amount(total)} TLY would leave {format_amount(max(amount, 0))} "
            f"TLY after the fee of {format_amount(fee)} TLY: too little to send",
            fee,
            total,
        )
    size = tx_size(indexes, [amount])
    return Selection(tuple(coins), (TxOut(amount, pubkey_hash),), None, fee, size, rate)


def subtract_fee_selection(
    coins: Sequence[Utxo],
    payments: Sequence[Payment],
    rate: Decimal,
    change_pubkey_hash: bytes,
    next_height: int,
    maturity: int,
    required: Sequence[Utxo] = (),
) -> Selection:
    """Pay ``payments`` minus the fee (see the module docstring); coins as ``select_coins``."""
    _check_rate(rate)
    if not payments:
        raise SelectionError("nothing to send")
    total_out = sum(p.amount for p in payments)
    if total_out > MAX_MONEY:
        raise SelectionError("the amounts add up to more than can ever exist")
    taken = {(u.txid, u.index) for u in required}
    eligible = [
        u for u in coins if (u.txid, u.index) not in taken and u.spendable(next_height, maturity)
    ]
    eligible.sort(key=lambda u: (u.height is None, -u.amount, u.txid, u.index))
    chosen = list(required)
    for coin in eligible:
        if sum(u.amount for u in chosen) >= total_out:
            break
        chosen.append(coin)
    total_in = sum(u.amount for u in chosen)
    if total_in < total_out:
        raise InsufficientFundsError(
            f"not enough funds: sending {format_amount(total_out)} TLY (the fee taken from it) "
            f"needs that much, but only {format_amount(total_in)} TLY is spendable",
            total_out,
            total_in,
        )
    indexes = [u.index for u in chosen]
    change = total_in - total_out
    dust = dust_threshold(rate)
    amounts = [p.amount for p in payments]
    with_change = change >= dust
    fee = fee_for(tx_size(indexes, amounts + ([change] if with_change else [])), rate)
    share, rest = divmod(fee, len(payments))
    reduced = [a - share - (rest if n == 0 else 0) for n, a in enumerate(amounts)]
    if any(a < dust for a in reduced):
        raise SelectionError(
            f"the fee of {format_amount(fee)} TLY would leave a payment below "
            f"{format_amount(dust)} TLY"
        )
    outputs = [TxOut(a, p.pubkey_hash) for a, p in zip(reduced, payments, strict=True)]
    if with_change:
        outputs.append(TxOut(change, change_pubkey_hash))
    size = tx_size(indexes, [o.amount for o in outputs])
    actual_fee = total_in - sum(o.amount for o in outputs)  # the fee, plus dust change if any
    return Selection(
        tuple(chosen),
        tuple(outputs),
        len(payments) if with_change else None,
        actual_fee,
        size,
        rate,
    )


def cpfp(
    wallet: Wallet, txid: str, fee_rate: Decimal | None, max_fee: int, dry_run: bool
) -> SendResult:
    """Child pays for parent: spend ``txid``'s unconfirmed outputs to this wallet into a fresh
    change address, with a fee making the parent and the child together pay ``fee_rate``
    (default: above the parent's rate and at least the node's estimate)."""
    txid = txid.strip().lower()
    if len(txid) != 64 or any(c not in "0123456789abcdef" for c in txid):
        raise WalletError(f"{txid!r} is not a transaction id (64 hex characters)")
    try:
        parent = wallet.client.tx(txid)
    except NodeError as err:
        if err.status == 404:
            raise WalletError(f"the node does not know transaction {txid}") from None
        raise
    if isinstance(parent.status, m.TxConfirmed):
        raise WalletError(f"transaction {txid} is already confirmed; it needs no child")
    scan = wallet.scan()
    coins = [u for u in scan.utxos if u.txid[::-1].hex() == txid]
    if not coins:
        raise WalletError(
            f"no unspent output of {txid} is this wallet's (or they are frozen): only a "
            "transaction paying this wallet can get a child from it"
        )
    if parent.fee is None:
        raise WalletError(f"the node does not know the fee of {txid} (its inputs are unknown)")
    parent_fee, parent_size = parent.fee, parent.size
    parent_rate = Decimal(parent_fee) / Decimal(parent_size)
    if fee_rate is None:
        rate = max(wallet.default_fee_rate(), Decimal(math.floor(parent_rate)) + 1)
    else:
        rate = fee_rate
    if rate <= parent_rate:
        raise WalletError(
            f"the parent already pays {parent_rate:.3f} base units per byte; a child helps only "
            f"at a higher rate than --fee-rate {rate}"
        )
    change_key = KeyId(CHANGE, wallet.store.change_index)
    change_hash = wallet.account.pubkey_hash(change_key.chain, change_key.index)
    selection = child_selection(
        coins, parent_fee, parent_size, rate, change_hash, wallet.min_relay_fee_rate
    )
    check_max_fee(
        selection.fee,
        max_fee,
        f"it pays for its parent's {parent_size} bytes as well as its own "
        f"{selection.size}, at {rate} base units per byte",
    )
    tx = build_signed(selection, wallet.key_for(scan), wallet.params)
    change_address = encode_address(change_hash, wallet.params)
    child = tx.txid()[::-1].hex()
    if dry_run:
        return SendResult(child, tx, selection, change_address, False)
    wallet.save(wallet.store.with_indexes(change_index=change_key.index + 1))
    return SendResult(wallet.client.post_tx(tx.serialize()), tx, selection, change_address, True)


def child_selection(
    coins: Sequence[Utxo],
    parent_fee: int,
    parent_size: int,
    rate: Decimal,
    pubkey_hash: bytes,
    min_rate: Decimal = Decimal(1),
) -> Selection:
    """A child spending ``coins`` (outputs of one parent) into one output of ``pubkey_hash``,
    paying ``ceil(rate x (parent_size + child_size)) - parent_fee``, and at least ``min_rate``
    of its own size (what the node relays: its minimum relay fee rate)."""
    _check_rate(rate)
    total = sum(u.amount for u in coins)
    indexes = [u.index for u in coins]
    child_size = tx_size(indexes, [total])
    fee = max(fee_for(parent_size + child_size, rate) - parent_fee, fee_for(child_size, min_rate))
    amount = total - fee
    if amount < dust_threshold(rate):
        raise InsufficientFundsError(
            f"the child would pay {format_amount(fee)} TLY of fee from "
            f"{format_amount(total)} TLY: too little left",
            fee,
            total,
        )
    size = tx_size(indexes, [amount])
    return Selection(tuple(coins), (TxOut(amount, pubkey_hash),), 0, fee, size, rate)


def sendall(
    wallet: Wallet,
    address: str,
    fee_rate: Decimal | None,
    max_fee: int,
    dry_run: bool,
    sign: bool = True,
) -> SendResult:
    """Sweep every spendable, unfrozen coin to ``address`` in one output."""
    pubkey_hash = parse_address(address, wallet.params)
    fee_rate_check(fee_rate, wallet.min_relay_fee_rate)
    scan = wallet.scan()
    rate = wallet.default_fee_rate() if fee_rate is None else fee_rate
    next_height = scan.tip + 1
    coins = [u for u in scan.utxos if u.spendable(next_height, wallet.params.coinbase_maturity)]
    selection = sweep_selection(coins, pubkey_hash, rate)
    check_max_fee(
        selection.fee,
        max_fee,
        f"{len(coins)} inputs, {selection.size} bytes at {rate} base units per byte",
    )
    if not sign:
        tx = unsigned_transaction(selection)
        return SendResult(tx.txid()[::-1].hex(), tx, selection, None, False)
    tx = build_signed(selection, wallet.key_for(scan), wallet.params)
    txid = tx.txid()[::-1].hex()
    if dry_run:
        return SendResult(txid, tx, selection, None, False)
    return SendResult(wallet.client.post_tx(tx.serialize()), tx, selection, None, True)
