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

Every code also has a ``RejectCategory`` (``CATEGORIES``, the one table from code to category;
``ValidationError.category``): who, if anyone, is to blame for the rejected object, in the
spirit of Core's ``TxValidationResult`` / ``BlockValidationResult``. The P2P misbehaviour score
(``node.p2p.policy``) is decided from the category alone, never from a list of codes.

``CONSENSUS_CODES`` and ``POLICY_CODES`` say where a rule *lives* (``consensus``, or the node's
mempool), not who is to blame: ``coinbase`` is raised by the mempool but is the sender's fault
(Core's ``TX_CONSENSUS``), and ``bad-txns-inputs-missingorspent`` is raised by ``consensus`` but
is no fault of the sender of a loose transaction (it may have lost a race with a block).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
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
"""Codes the node's mempool raises (where the rule lives; who is to blame is ``CATEGORIES``)."""

ALL_CODES: Final = CONSENSUS_CODES | POLICY_CODES | {BAD_PREVBLK, PREV_BLK_NOT_FOUND, DUPLICATE}


class RejectCategory(Enum):
    """Who, if anyone, is to blame for a rejected object (Core's ``TxValidationResult`` and
    ``BlockValidationResult``, folded into one list). ``CATEGORIES`` gives each code its own."""

    CONSENSUS = "consensus"
    """The object breaks a consensus rule whatever the chain: its sender misbehaved (Core's
    ``TX_CONSENSUS``, ``BLOCK_CONSENSUS``, ``BLOCK_INVALID_HEADER``, ``BLOCK_INVALID_PREV``)."""
    CONTEXT = "context"
    """The object breaks a rule against the chain it was checked on: an input missing or spent,
    a locktime not reached, a coinbase not mature. In a block, whose parent fixes that chain, the
    block is invalid and its sender to blame, as for ``CONSENSUS``; a loose transaction may be
    valid on another tip or a block later (a race with a block, a reorganisation): nobody is to
    blame (Core's ``TX_MISSING_INPUTS``, ``TX_PREMATURE_SPEND``)."""
    POLICY = "policy"
    """Our relay policy refuses it (fees, size, mempool limits), though a block may hold it:
    nobody is to blame (Core's ``TX_NOT_STANDARD``, ``TX_MEMPOOL_POLICY``)."""
    MUTATED = "mutated"
    """The body does not match what its header commits to: a relayer may have changed it. The
    sender is to blame, the hash is never marked invalid (Core's ``BLOCK_MUTATED``)."""
    KNOWN = "known"
    """We have it already (or marked it by hand): not an error for the sender (Core's
    ``TX_CONFLICT`` for ``txn-already-in-mempool``)."""
    MISSING_PARENT = "missing-parent"
    """Its parent is unknown: kept as an orphan (SPEC 2.5), not an error for the sender."""
    TIME_FUTURE = "time-future"
    """Too far ahead of our clock (which may be the wrong one): it may become valid later, so it
    is neither marked nor blamed (Core's ``BLOCK_TIME_FUTURE``)."""


CATEGORIES: Final[Mapping[str, RejectCategory]] = MappingProxyType(
    {
        # Encoding and the context-free transaction rules
        BAD_ENCODING: RejectCategory.CONSENSUS,
        BAD_TXNS_VIN_EMPTY: RejectCategory.CONSENSUS,
        BAD_TXNS_VOUT_EMPTY: RejectCategory.CONSENSUS,
        BAD_TXNS_OVERSIZE: RejectCategory.CONSENSUS,
        BAD_TXNS_VOUT_NEGATIVE: RejectCategory.CONSENSUS,
        BAD_TXNS_VOUT_TOOLARGE: RejectCategory.CONSENSUS,
        BAD_TXNS_TXOUTTOTAL_TOOLARGE: RejectCategory.CONSENSUS,
        BAD_TXNS_INPUTS_DUPLICATE: RejectCategory.CONSENSUS,
        BAD_TXNS_PREVOUT_NULL: RejectCategory.CONSENSUS,
        # Against a coins view: whatever the chain (amounts, keys, signatures) ...
        BAD_TXNS_IN_BELOWOUT: RejectCategory.CONSENSUS,
        BAD_TXNS_SIGNATURE: RejectCategory.CONSENSUS,
        # ... or only against this chain, now
        BAD_TXNS_INPUTS_MISSINGORSPENT: RejectCategory.CONTEXT,
        BAD_TXNS_PREMATURE_SPEND_OF_COINBASE: RejectCategory.CONTEXT,
        BAD_TXNS_NONFINAL: RejectCategory.CONTEXT,
        # Block rules
        BAD_CB_MISSING: RejectCategory.CONSENSUS,
        BAD_CB_MULTIPLE: RejectCategory.CONSENSUS,
        BAD_CB_HEIGHT: RejectCategory.CONSENSUS,
        BAD_CB_LENGTH: RejectCategory.CONSENSUS,
        BAD_CB_AMOUNT: RejectCategory.CONSENSUS,
        BAD_BLK_LENGTH: RejectCategory.CONSENSUS,
        BAD_TXNMRKLROOT: RejectCategory.MUTATED,
        BAD_TXNS_DUPLICATE: RejectCategory.CONSENSUS,  # MUTATED from a duplicated subtree
        # Header rules
        HIGH_HASH: RejectCategory.CONSENSUS,
        BAD_DIFFBITS: RejectCategory.CONSENSUS,
        TIME_TOO_OLD: RejectCategory.CONSENSUS,
        TIME_TOO_NEW: RejectCategory.TIME_FUTURE,
        # Chain placement
        BAD_PREVBLK: RejectCategory.CONSENSUS,
        PREV_BLK_NOT_FOUND: RejectCategory.MISSING_PARENT,
        DUPLICATE: RejectCategory.KNOWN,
        # Mempool
        TXN_ALREADY_KNOWN: RejectCategory.KNOWN,
        COINBASE: RejectCategory.CONSENSUS,  # only valid in a block (Core: TX_CONSENSUS)
        TXN_MEMPOOL_CONFLICT: RejectCategory.POLICY,
        INSUFFICIENT_FEE: RejectCategory.POLICY,
        MIN_RELAY_FEE_NOT_MET: RejectCategory.POLICY,
        MEMPOOL_FULL: RejectCategory.POLICY,
        TOO_LONG_MEMPOOL_CHAIN: RejectCategory.POLICY,
        TX_SIZE: RejectCategory.POLICY,
    }
)
"""The category of each reject code: the one table (``ValidationError.category`` reads it).

One code has two: ``bad-txns-duplicate`` is ``CONSENSUS`` (the same transaction twice in a
list the header commits to), except when ``check_block_merkle_root`` raises it for a duplicated
subtree (CVE-2012-2459), with ``result=BlockValidationResult.MUTATED``: then ``MUTATED``."""

MAY_BE_MUTATED: Final = frozenset(
    {code for code, category in CATEGORIES.items() if category is RejectCategory.MUTATED}
    | {BAD_TXNS_DUPLICATE}
)
"""The codes a ``MUTATED`` rejection may carry."""


def category_of(code: str) -> RejectCategory:
    """The category of ``code`` as the table gives it (``KeyError`` for an unknown code).

    For a code carried in a message rather than an exception; an error's own ``category`` also
    knows whether that rejection was mutated."""
    return CATEGORIES[code]


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
    ``BlockValidationResult``; by default ``MUTATED`` for a code whose category is, else
    ``CONSENSUS``); ``category`` says who is to blame (see ``RejectCategory``)."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        result: BlockValidationResult | None = None,
    ) -> None:
        if code not in ALL_CODES:
            raise ValueError(f"unknown reject code {code!r}")
        if result is None:
            mutated = CATEGORIES[code] is RejectCategory.MUTATED
            result = BlockValidationResult.MUTATED if mutated else BlockValidationResult.CONSENSUS
        elif result is BlockValidationResult.MUTATED and code not in MAY_BE_MUTATED:
            raise ValueError(f"reject code {code!r} is never a mutated rejection")
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code
        self.result = result

    @property
    def mutated(self) -> bool:
        """The rejected body does not match its header: the header (and hash) may be good."""
        return self.result is BlockValidationResult.MUTATED

    @property
    def category(self) -> RejectCategory:
        """Who is to blame for this rejection: ``CATEGORIES[code]``, or ``MUTATED`` for a
        mutated one. (A mutated code whose hash was marked anyway, ``CACHED_INVALID`` from an
        older version's mark, counts as ``CONSENSUS``: the mark is what is reported.)"""
        if self.mutated:
            return RejectCategory.MUTATED
        category = CATEGORIES[self.code]
        return RejectCategory.CONSENSUS if category is RejectCategory.MUTATED else category
