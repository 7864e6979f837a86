"""The wallet's plain types and errors, below both ``wallet.service`` and the modules it uses.

What the scan yields (``AddressState``, ``Balance``, ``Scan``), what a send yields
(``SendResult``), the error for people (``WalletError``) and the small checks every signing
command makes before anything is built (``parse_address``, ``fee_rate_check`` against the node's
minimum relay fee rate, which the node's ``/info`` gives: ``client.models.Policy``), with
``outpoint_text``, the ``TXID:N`` spelling of a coin. They live here so that ``wallet.service``
and the modules it calls (``wallet.spending``, ``wallet.watchonly``) share them without importing
each other back: this module imports only ``consensus``, ``client.models`` and the wallet's leaf
modules (``wallet.coinselect``, ``wallet.keys``), never a module above it.

Left to others: asking the node (``wallet.service.Wallet``, ``wallet.watchonly.scan_account``),
selecting and signing (``wallet.coinselect``, ``wallet.spending``, ``wallet.builder``).
``wallet.service`` re-exports every name here, where callers have always found them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from client import models as m
from consensus import AddressError, NetworkParams, Transaction, decode_address
from wallet.coinselect import Selection, Utxo
from wallet.keys import KeyId

_ADDRESS_REASONS = {
    "bad-checksum": "bad checksum",
    "bad-character": "bad character",
    "bad-length": "wrong length",
    "wrong-network": "another network's address",
}


class WalletError(Exception):
    """Something a person can fix; the message says what."""


def parse_address(text: str, params: NetworkParams) -> bytes:
    """The pubkey hash of ``text`` on ``params``' network, or ``WalletError`` saying which
    of bad characters, bad checksum, wrong length or another network is the problem."""
    try:
        return decode_address(text, params)
    except AddressError as err:
        reason = _ADDRESS_REASONS.get(err.reason, err.reason)
        raise WalletError(f"address {text!r} refused ({reason}): {err}") from None


def fee_rate_check(fee_rate: Decimal | None, minimum: Decimal) -> None:
    """``WalletError`` for a fee rate below ``minimum``, the node's minimum relay rate."""
    if fee_rate is not None and fee_rate < minimum:
        raise WalletError(
            f"fee rate {fee_rate} is below the node's minimum relay fee rate of "
            f"{minimum} base unit per byte"
        )


def outpoint_text(u: Utxo) -> str:
    """``"<txid>:<index>"`` (display hex), as ``--from`` and ``freeze`` take a coin."""
    return f"{u.txid[::-1].hex()}:{u.index}"


@dataclass
class AddressState:
    key: KeyId
    address: str
    pubkey_hash: bytes
    summary: m.AddressSummary
    """What the node says of it (``GET /address/{address}``)."""

    @property
    def used(self) -> bool:
        return bool(self.summary.chain_stats.tx_count or self.summary.mempool_stats.tx_count)

    @property
    def holds_coins(self) -> bool:
        chain = self.summary.chain_stats
        return bool(chain.funded_sum - chain.spent_sum or self.summary.mempool_stats.funded_sum)


@dataclass(frozen=True)
class Balance:
    confirmed: int
    unconfirmed: int
    immature: int

    @property
    def total(self) -> int:
        return self.confirmed + self.unconfirmed + self.immature


@dataclass
class Scan:
    """What the node says about the wallet's addresses at ``tip``."""

    tip: int
    addresses: list[AddressState]
    utxos: list[Utxo] = field(default_factory=list)
    """The coins that may be selected: frozen ones are in ``frozen`` instead."""
    totals: Balance | None = None
    """The node's own totals (a watch-only scan's ``/xpub``), else the addresses' sum."""
    frozen: list[Utxo] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_hash = {a.pubkey_hash: a for a in self.addresses}
        self.by_address = {a.address: a for a in self.addresses}

    def frozen_amount(self) -> int:
        return sum(u.amount for u in self.frozen)

    def balance(self) -> Balance:
        if self.totals is not None:
            return self.totals
        b = [a.summary.balance for a in self.addresses]
        return Balance(
            sum(x.confirmed for x in b),
            sum(x.unconfirmed for x in b),
            sum(x.immature for x in b),
        )

    def last_used(self, chain: int) -> int:
        return max(
            (a.key.index for a in self.addresses if a.key.chain == chain and a.used), default=-1
        )


@dataclass(frozen=True)
class SendResult:
    txid: str
    tx: Transaction
    selection: Selection
    change_address: str | None
    sent: bool
    replaces: str | None = None


__all__ = [
    "AddressState",
    "Balance",
    "Scan",
    "SendResult",
    "WalletError",
    "fee_rate_check",
    "outpoint_text",
    "parse_address",
]
