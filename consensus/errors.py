"""Reject codes and the one exception that carries them.

Every consensus and policy rule has one stable reject string (SPEC 2.5), named after Bitcoin
Core's where Core has one. Rules raise ``ValidationError(code, message)``; the API, the logs, the
P2P misbehaviour scoring and the tests all key on ``.code``, never on the message text.

This module only names the codes. Which rule uses which code is decided where the rule lives
(``consensus.validation``, ``consensus.encoding`` and, for policy codes, the node's mempool).

A block rejection also carries a ``BlockValidationResult`` (Core's enum of the same name), which
says what the rejection means for the block's *hash*: ``MUTATED`` when the body does not match
the header (the header may still be good, so the hash must never be marked), ``CACHED_INVALID``
when the hash was marked invalid before, ``CONSENSUS`` otherwise. ``ValidationError.mutated`` is
the one test callers need (the chainstate, to drop a body; the P2P layer, to score its sender).
Only ``consensus.validation.check_block_merkle_root`` raises a mutated rejection.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

# Encoding (SPEC 2.1)
BAD_ENCODING: Final = "bad-encoding"

# Context-free transaction rules (check_transaction)
BAD_TXNS_VIN_EMPTY: Final = "bad-txns-vin-empty"
BAD_TXNS_VOUT_EMPTY: Final = "bad-txns-vout-empty"
BAD_TXNS_OVERSIZE: Final = "bad-txns-oversize"
BAD_TXNS_VOUT_NEGATIVE: Final = "bad-txns-vout-negative"
BAD_TXNS_VOUT_TOOLARGE: Final = "bad-txns-vout-toolarge"
BAD_TXNS_TXOUTTOTAL_TOOLARGE: Final = "bad-txns-txouttotal-toolarge"
BAD_TXNS_INPUTS_DUPLICATE: Final = "bad-txns-inputs-duplicate"
BAD_TXNS_PREVOUT_NULL: Final = "bad-txns-prevout-null"

# Rules checked against a coins view (verify_tx_inputs)
BAD_TXNS_INPUTS_MISSINGORSPENT: Final = "bad-txns-inputs-missingorspent"
BAD_TXNS_PREMATURE_SPEND_OF_COINBASE: Final = "bad-txns-premature-spend-of-coinbase"
BAD_TXNS_IN_BELOWOUT: Final = "bad-txns-in-belowout"
BAD_TXNS_SIGNATURE: Final = "bad-txns-signature"
BAD_TXNS_NONFINAL: Final = "bad-txns-nonfinal"

# Block rules
BAD_CB_MISSING: Final = "bad-cb-missing"
BAD_CB_MULTIPLE: Final = "bad-cb-multiple"
BAD_CB_HEIGHT: Final = "bad-cb-height"
BAD_CB_LENGTH: Final = "bad-cb-length"
BAD_CB_AMOUNT: Final = "bad-cb-amount"
BAD_BLK_LENGTH: Final = "bad-blk-length"
BAD_TXNMRKLROOT: Final = "bad-txnmrklroot"
BAD_TXNS_DUPLICATE: Final = "bad-txns-duplicate"

# Header rules
HIGH_HASH: Final = "high-hash"
BAD_DIFFBITS: Final = "bad-diffbits"
TIME_TOO_OLD: Final = "time-too-old"
TIME_TOO_NEW: Final = "time-too-new"

# Chain placement (decided by the node's chainstate, named here so the set is complete)
BAD_PREVBLK: Final = "bad-prevblk"
PREV_BLK_NOT_FOUND: Final = "prev-blk-not-found"
DUPLICATE: Final = "duplicate"

# Mempool policy (decided by the node's mempool)
TXN_ALREADY_KNOWN: Final = "txn-already-known"
TXN_MEMPOOL_CONFLICT: Final = "txn-mempool-conflict"
INSUFFICIENT_FEE: Final = "insufficient-fee"
MIN_RELAY_FEE_NOT_MET: Final = "min-relay-fee-not-met"
MEMPOOL_FULL: Final = "mempool-full"
TOO_LONG_MEMPOOL_CHAIN: Final = "too-long-mempool-chain"
TX_SIZE: Final = "tx-size"
"""Larger than the standard size (``consensus.policy.MAX_STANDARD_TX_SIZE``)."""
COINBASE: Final = "coinbase"
"""A coinbase sent to the mempool (Bitcoin Core's code): it is only valid in a block."""

CONSENSUS_CODES: Final = frozenset(
    {
        BAD_ENCODING,
        BAD_TXNS_VIN_EMPTY,
        BAD_TXNS_VOUT_EMPTY,
        BAD_TXNS_OVERSIZE,
        BAD_TXNS_VOUT_NEGATIVE,
        BAD_TXNS_VOUT_TOOLARGE,
        BAD_TXNS_TXOUTTOTAL_TOOLARGE,
        BAD_TXNS_INPUTS_DUPLICATE,
        BAD_TXNS_PREVOUT_NULL,
        BAD_TXNS_INPUTS_MISSINGORSPENT,
        BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
        BAD_TXNS_IN_BELOWOUT,
        BAD_TXNS_SIGNATURE,
        BAD_TXNS_NONFINAL,
        BAD_CB_MISSING,
        BAD_CB_MULTIPLE,
        BAD_CB_HEIGHT,
        BAD_CB_LENGTH,
        BAD_CB_AMOUNT,
        BAD_BLK_LENGTH,
        BAD_TXNMRKLROOT,
        BAD_TXNS_DUPLICATE,
        HIGH_HASH,
        BAD_DIFFBITS,
        TIME_TOO_OLD,
        TIME_TOO_NEW,
    }
)
"""Codes a rule in ``consensus`` can raise. Chain placement and policy codes are the node's."""

POLICY_CODES: Final = frozenset(
    {
        TXN_ALREADY_KNOWN,
        TXN_MEMPOOL_CONFLICT,
        INSUFFICIENT_FEE,
        MIN_RELAY_FEE_NOT_MET,
        MEMPOOL_FULL,
        TOO_LONG_MEMPOOL_CHAIN,
        TX_SIZE,
        COINBASE,
    }
)

ALL_CODES: Final = CONSENSUS_CODES | POLICY_CODES | {BAD_PREVBLK, PREV_BLK_NOT_FOUND, DUPLICATE}


class BlockValidationResult(Enum):
    """What a block rejection says about the block's hash (Bitcoin Core's enum of that name).

    Meaningless for transactions, whose errors keep the default ``CONSENSUS``.
    """

    CONSENSUS = "consensus"
    """The block the header commits to breaks a rule (or the header itself does): the hash is
    invalid, and so is every block built on it."""
    MUTATED = "mutated"
    """The body does not match the header (``bad-txnmrklroot``, or ``bad-txns-duplicate`` from
    a duplicated subtree, CVE-2012-2459): a relayer changed it. It says nothing about the hash:
    drop the body, never mark the hash; the genuine body is still welcome."""
    CACHED_INVALID = "cached-invalid"
    """The hash was marked invalid earlier (by a rule, or by hand): nothing was validated."""


class ValidationError(Exception):
    """A rule was broken. ``code`` is the stable reject string; ``message`` is for people;
    ``result`` (blocks only) says whether the hash itself is invalid (see
    ``BlockValidationResult``)."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        result: BlockValidationResult = BlockValidationResult.CONSENSUS,
    ) -> None:
        if code not in ALL_CODES:
            raise ValueError(f"unknown reject code {code!r}")
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code
        self.result = result

    @property
    def mutated(self) -> bool:
        """The rejected body does not match its header: the header (and hash) may be good."""
        return self.result is BlockValidationResult.MUTATED
