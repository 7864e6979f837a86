"""The consensus rules: context-free checks, checks against a view, and block connection.

Naming follows Bitcoin Core's split, and so does the order rules are applied in:

- ``check_transaction``, ``check_block_header``, ``check_block_merkle_root``, ``check_block``:
  context-free. They need nothing
  but the object and the network parameters, so a node runs them before it even knows where a
  block goes.
- ``verify_header``: a header against its place in a chain (bits, median time past, the clock;
  ``now`` is passed in). ``verify_block_context``: a block against its height (coinbase height,
  finality). ``verify_tx_inputs``: a transaction against a coins view, returning its fee.
- ``connect_block`` / ``disconnect_block``: state transitions of a coins view, with undo data.

Every rule raises ``ValidationError`` with its reject code (``consensus.errors``). Whether a block
extends the best chain, is an orphan or a duplicate is the node's chainstate's business.
``connect_block`` leaves the view untouched when it raises.

Signatures are checked through a ``SignatureVerifier`` passed in (default: the active engine's
``verify_signature``), so the node can put its signature cache in front.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from consensus import errors as codes
from consensus.block import Block, BlockHeader
from consensus.coins import (
    BlockUndo,
    Coin,
    CoinsView,
    CoinsViewCache,
    MutableCoinsView,
    tx_fee,
)
from consensus.crypto import verify_signature
from consensus.errors import BlockValidationResult, ValidationError
from consensus.hashing import hash160
from consensus.params import INITIAL_SUBSIDY
from consensus.pow import AncestorTime, check_proof_of_work, median_time_past_at, required_bits
from consensus.sighash import signature_hash
from consensus.tx import MAX_MONEY, OutPoint, Transaction

if TYPE_CHECKING:
    from consensus.params import NetworkParams

MAX_BLOCK_SIZE = 1_000_000
"""Largest serialized block, in bytes (``bad-blk-length``)."""
MAX_TX_SIZE = MAX_BLOCK_SIZE
"""A transaction must fit in a block (``bad-txns-oversize``)."""
COINBASE_HEIGHT_SIZE = 4
MAX_COINBASE_EXTRA_NONCE = 96
"""The coinbase ``signature``: 4 bytes of height, then at most this many bytes of extra nonce."""
MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60
"""A header may be at most this many seconds ahead of the validating node's clock."""
PUBKEY_SIZE = 33
SIGNATURE_SIZE = 64

SignatureVerifier = Callable[[bytes, bytes, bytes], bool]
"""``verify(pubkey33, sig64, digest32) -> bool``."""


def block_subsidy(height: int, params: NetworkParams) -> int:
    """New coins a block at ``height`` may create: ``INITIAL_SUBSIDY`` (50 TLY), halved every
    ``halving_interval`` blocks (Core's ``GetBlockSubsidy``)."""
    halvings = height // params.halving_interval
    if halvings >= 64:
        return 0
    return INITIAL_SUBSIDY >> halvings


def coinbase_height(tx: Transaction) -> int:
    """The height a coinbase commits to (its ``signature`` field's first 4 bytes)."""
    return int.from_bytes(tx.inputs[0].signature[:COINBASE_HEIGHT_SIZE], "little")


# --- context-free checks -----------------------------------------------------------------------


def check_transaction(tx: Transaction, params: NetworkParams) -> None:
    """Rules a transaction obeys on its own (Core's ``CheckTransaction``)."""
    del params  # the same on every network; kept for a uniform signature
    if not tx.inputs:
        raise ValidationError(codes.BAD_TXNS_VIN_EMPTY, "no inputs")
    if not tx.outputs:
        raise ValidationError(codes.BAD_TXNS_VOUT_EMPTY, "no outputs")
    if tx.size() > MAX_TX_SIZE:
        raise ValidationError(codes.BAD_TXNS_OVERSIZE, f"{tx.size()} bytes")
    total = 0
    # 0 is allowed in a coinbase only: once the subsidy is gone a block with no fees still needs
    # a coinbase (SPEC 2.3; regtest's subsidy reaches 0 at height 4,950).
    least = 0 if tx.is_coinbase() else 1
    for n, out in enumerate(tx.outputs):
        if out.amount < least:
            raise ValidationError(codes.BAD_TXNS_VOUT_NEGATIVE, f"output {n} amount {out.amount}")
        if out.amount > MAX_MONEY:
            raise ValidationError(codes.BAD_TXNS_VOUT_TOOLARGE, f"output {n} amount {out.amount}")
        total += out.amount
        if total > MAX_MONEY:
            raise ValidationError(codes.BAD_TXNS_TXOUTTOTAL_TOOLARGE, f"outputs total {total}")
    prevouts = {i.prevout for i in tx.inputs}
    if len(prevouts) != len(tx.inputs):
        raise ValidationError(codes.BAD_TXNS_INPUTS_DUPLICATE, "an output is spent twice")
    if tx.is_coinbase():
        cb = tx.inputs[0]
        size = len(cb.signature)
        if not COINBASE_HEIGHT_SIZE <= size <= COINBASE_HEIGHT_SIZE + MAX_COINBASE_EXTRA_NONCE:
            raise ValidationError(codes.BAD_CB_LENGTH, f"coinbase data of {size} bytes")
        if cb.pubkey:
            raise ValidationError(codes.BAD_CB_LENGTH, "a coinbase input has no public key")
        return
    for n, txin in enumerate(tx.inputs):
        if txin.prevout.is_null():
            raise ValidationError(
                codes.BAD_TXNS_PREVOUT_NULL, f"input {n} spends the null outpoint"
            )
        if len(txin.pubkey) != PUBKEY_SIZE or txin.pubkey[0] not in (2, 3):
            raise ValidationError(
                codes.BAD_TXNS_SIGNATURE, f"input {n}: not a compressed public key"
            )
        if len(txin.signature) != SIGNATURE_SIZE:
            raise ValidationError(codes.BAD_TXNS_SIGNATURE, f"input {n}: not a 64-byte signature")


def check_block_header(header: BlockHeader, params: NetworkParams) -> None:
    """The header's proof of work, against its own bits and the network's limit."""
    if not check_proof_of_work(header.hash(), header.bits, params.pow_limit):
        raise ValidationError(codes.HIGH_HASH, "proof of work does not meet the target")


def check_block_merkle_root(block: Block) -> None:
    """The body is the one the header commits to, or a *mutated* ``ValidationError``.

    The one place that decides a rejection is mutated (SPEC 2.4; Core's ``BLOCK_MUTATED``): the
    root over the wtxids differs from the header's (``bad-txnmrklroot``), or the wtxid list has a
    duplicated subtree that gives the header's root to a second list (``bad-txns-duplicate``,
    CVE-2012-2459). Either way a relayer changed the body, and the header may still be good.
    """
    root, mutated = block.compute_merkle_root()
    if root != block.header.merkle_root:
        raise ValidationError(
            codes.BAD_TXNMRKLROOT,
            "merkle root does not match the transactions",
            result=BlockValidationResult.MUTATED,
        )
    if mutated:
        raise ValidationError(
            codes.BAD_TXNS_DUPLICATE,
            "duplicated subtree of transactions (CVE-2012-2459)",
            result=BlockValidationResult.MUTATED,
        )


def check_block(block: Block, params: NetworkParams) -> None:
    """Rules a block obeys on its own (Core's ``CheckBlock``), proof of work included.

    Order matters: the proof of work (the header's own rule), then whether the body is the one
    the header commits to (a mutated rejection, see ``check_block_merkle_root``); every later
    rule is about the block the header commits to, so its failure condemns the hash.
    """
    check_block_header(block.header, params)
    check_block_merkle_root(block)
    wtxids = block.wtxids()
    if len(set(wtxids)) != len(wtxids):
        # Committed to by the header (no duplicated subtree, see above): the block is invalid.
        # (Two transactions with one txid and two wtxids spend the same inputs: connect_block
        # refuses them, bad-txns-inputs-missingorspent.)
        raise ValidationError(codes.BAD_TXNS_DUPLICATE, "the same transaction twice")
    if not block.txs or block.size() > MAX_BLOCK_SIZE:
        raise ValidationError(codes.BAD_BLK_LENGTH, f"{len(block.txs)} txs, {block.size()} bytes")
    if not block.txs[0].is_coinbase():
        raise ValidationError(codes.BAD_CB_MISSING, "first transaction is not a coinbase")
    for tx in block.txs[1:]:
        if tx.is_coinbase():
            raise ValidationError(codes.BAD_CB_MULTIPLE, "more than one coinbase")
    for tx in block.txs:
        check_transaction(tx, params)


# --- contextual checks -------------------------------------------------------------------------


def verify_header(
    header: BlockHeader,
    height: int,
    prev_bits: int,
    time_at: AncestorTime,
    params: NetworkParams,
    now: int,
) -> None:
    """A header at ``height`` against the chain it extends (Core's ``ContextualCheckBlockHeader``).

    ``prev_bits`` are the parent's bits; ``time_at(h)`` gives ancestor times (heights below
    ``height``); ``now`` is the validating node's clock, in Unix seconds.
    """
    expected = required_bits(params, height, prev_bits, time_at)
    if header.bits != expected:
        raise ValidationError(
            codes.BAD_DIFFBITS, f"bits {header.bits:#010x}, expected {expected:#010x}"
        )
    if height > 0:
        mtp = median_time_past_at(height, time_at)
        if header.time <= mtp:
            raise ValidationError(codes.TIME_TOO_OLD, f"time {header.time} <= median {mtp}")
    if header.time > now + MAX_FUTURE_BLOCK_TIME:
        raise ValidationError(
            codes.TIME_TOO_NEW, f"time {header.time} is over 2 hours ahead of {now}"
        )


def is_final(tx: Transaction, height: int) -> bool:
    """``locktime`` is a block height: final in a block at ``height`` if 0 or below it."""
    return tx.locktime == 0 or tx.locktime < height


def verify_block_context(block: Block, height: int) -> None:
    """A block against its height (Core's ``ContextualCheckBlock``): finality, coinbase height."""
    for tx in block.txs:
        if not is_final(tx, height):
            raise ValidationError(codes.BAD_TXNS_NONFINAL, f"locktime {tx.locktime} at {height}")
    if coinbase_height(block.txs[0]) != height:
        raise ValidationError(
            codes.BAD_CB_HEIGHT, f"coinbase says {coinbase_height(block.txs[0])}, block is {height}"
        )


def verify_tx_inputs(
    tx: Transaction,
    view: CoinsView,
    spend_height: int,
    params: NetworkParams,
    verify: SignatureVerifier = verify_signature,
) -> int:
    """Check a non-coinbase ``tx`` against ``view`` as if mined at ``spend_height``; its fee.

    Inputs must exist unspent, coinbase outputs be mature, the inputs cover the outputs, and every
    input carry a public key hashing to the spent output's ``pubkey_hash`` and a valid signature.
    """
    coins: list[Coin] = []
    for n, txin in enumerate(tx.inputs):
        coin = view.get_coin(txin.prevout)
        if coin is None:
            raise ValidationError(
                codes.BAD_TXNS_INPUTS_MISSINGORSPENT, f"input {n} spends {txin.prevout}"
            )
        if coin.is_coinbase and spend_height - coin.height < params.coinbase_maturity:
            raise ValidationError(
                codes.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
                f"input {n} spends a coinbase of height {coin.height} at {spend_height}",
            )
        coins.append(coin)
    fee = tx_fee(tx, coins)
    if fee < 0:
        total_out = tx.total_out()
        raise ValidationError(
            codes.BAD_TXNS_IN_BELOWOUT, f"inputs {total_out + fee} < outputs {total_out}"
        )
    for n, (txin, coin) in enumerate(zip(tx.inputs, coins, strict=True)):
        if hash160(txin.pubkey) != coin.output.pubkey_hash:
            raise ValidationError(codes.BAD_TXNS_SIGNATURE, f"input {n}: key does not own the coin")
        digest = signature_hash(tx, n, coin.output, params)
        if not verify(txin.pubkey, txin.signature, digest):
            raise ValidationError(codes.BAD_TXNS_SIGNATURE, f"input {n}: invalid signature")
    return fee


# --- state transitions -------------------------------------------------------------------------


def connect_block(
    block: Block,
    height: int,
    view: MutableCoinsView,
    params: NetworkParams,
    verify: SignatureVerifier = verify_signature,
) -> BlockUndo:
    """Spend the block's inputs and add its outputs to ``view``; return the undo data.

    Assumes ``check_block`` passed. Applies the contextual block rules, every input rule and the
    coinbase amount. On ``ValidationError`` the view is left exactly as it was.
    """
    verify_block_context(block, height)
    cache = CoinsViewCache(view)
    fees = 0
    undo: list[tuple[Coin, ...]] = []
    for tx in block.txs:
        if not tx.is_coinbase():
            fees += verify_tx_inputs(tx, cache, height, params, verify)
            spent = tuple(cache.spend_coin(txin.prevout) for txin in tx.inputs)
            undo.append(spent)  # type: ignore[arg-type]  # verify_tx_inputs proved them present
        txid = tx.txid()
        is_coinbase = tx.is_coinbase()
        for index, out in enumerate(tx.outputs):
            cache.add_coin(OutPoint(txid, index), Coin(out, height, is_coinbase))
    allowed = block_subsidy(height, params) + fees
    claimed = block.txs[0].total_out()
    if claimed > allowed:
        raise ValidationError(codes.BAD_CB_AMOUNT, f"coinbase pays {claimed}, at most {allowed}")
    cache.flush()
    return BlockUndo(tuple(undo))


class UndoMismatchError(Exception):
    """The undo data or the view does not belong to this block: the chainstate is corrupt."""


def disconnect_block(block: Block, undo: BlockUndo, view: MutableCoinsView) -> None:
    """Undo ``connect_block``: remove the block's outputs and restore the coins it spent.

    Raises ``UndoMismatchError`` (leaving the view untouched) if the undo data does not fit.
    """
    if len(undo.spent) != len(block.txs) - 1:
        raise UndoMismatchError("undo data has the wrong number of transactions")
    cache = CoinsViewCache(view)
    for tx_pos in range(len(block.txs) - 1, -1, -1):
        tx = block.txs[tx_pos]
        txid = tx.txid()
        for index, out in enumerate(tx.outputs):
            coin = cache.spend_coin(OutPoint(txid, index))
            if coin is None:
                raise UndoMismatchError(f"output {txid[::-1].hex()}:{index} is not in the view")
            if coin.output != out or coin.is_coinbase != tx.is_coinbase():
                raise UndoMismatchError(f"output {txid[::-1].hex()}:{index} differs in the view")
        if tx_pos == 0:
            continue
        spent = undo.spent[tx_pos - 1]
        if len(spent) != len(tx.inputs):
            raise UndoMismatchError("undo data has the wrong number of inputs")
        for txin, coin in zip(tx.inputs, spent, strict=True):
            if cache.get_coin(txin.prevout) is not None:
                raise UndoMismatchError(f"{txin.prevout} is unspent already")
            cache.add_coin(txin.prevout, coin)
    cache.flush()
