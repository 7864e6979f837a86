"""Reject categories: one table from code to category, and P2P scoring decided from it alone.

``consensus.errors.CATEGORIES`` says, for every reject code, who is to blame (Core's
``TxValidationResult`` / ``BlockValidationResult``); ``ValidationError.category`` reads it and
knows a mutated rejection; ``node.p2p.policy`` scores a refused block or transaction from the
category only. The scores every code got before categories existed are pinned here.
"""

from __future__ import annotations

import dataclasses

import pytest

from consensus import Block, ValidationError, get_params
from consensus import errors as codes
from consensus.errors import CATEGORIES, BlockValidationResult, RejectCategory, category_of
from consensus.validation import check_block_merkle_root
from node.p2p import policy

C = RejectCategory


def test_every_code_has_exactly_one_category_and_every_category_is_used() -> None:
    assert set(CATEGORIES) == codes.ALL_CODES
    assert set(CATEGORIES.values()) == set(RejectCategory)
    for code in codes.ALL_CODES:
        assert ValidationError(code).category is category_of(code) or code in codes.MAY_BE_MUTATED


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (codes.BAD_ENCODING, C.CONSENSUS),
        (codes.BAD_TXNS_SIGNATURE, C.CONSENSUS),
        (codes.BAD_CB_AMOUNT, C.CONSENSUS),
        (codes.HIGH_HASH, C.CONSENSUS),
        (codes.BAD_PREVBLK, C.CONSENSUS),
        (codes.COINBASE, C.CONSENSUS),  # raised by the mempool, but the sender's fault
        (codes.BAD_TXNS_INPUTS_MISSINGORSPENT, C.CONTEXT),
        (codes.BAD_TXNS_NONFINAL, C.CONTEXT),
        (codes.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE, C.CONTEXT),
        (codes.INSUFFICIENT_FEE, C.POLICY),
        (codes.MEMPOOL_FULL, C.POLICY),
        (codes.TX_SIZE, C.POLICY),
        (codes.TXN_MEMPOOL_CONFLICT, C.POLICY),
        (codes.BAD_TXNMRKLROOT, C.MUTATED),
        (codes.DUPLICATE, C.KNOWN),
        (codes.TXN_ALREADY_KNOWN, C.KNOWN),
        (codes.PREV_BLK_NOT_FOUND, C.MISSING_PARENT),
        (codes.TIME_TOO_NEW, C.TIME_FUTURE),
    ],
)
def test_a_sample_of_each_category(code: str, category: RejectCategory) -> None:
    assert category_of(code) is category
    assert ValidationError(code, "x").category is category


def test_where_a_rule_lives_is_not_who_is_to_blame() -> None:
    """``POLICY_CODES`` are the mempool's codes; the ``policy`` category is a subset of them."""
    policy_category = {c for c, cat in CATEGORIES.items() if cat is C.POLICY}
    assert policy_category <= codes.POLICY_CODES
    assert codes.COINBASE in codes.POLICY_CODES and category_of(codes.COINBASE) is C.CONSENSUS
    assert codes.BAD_TXNS_NONFINAL in codes.CONSENSUS_CODES


def test_a_mutated_code_is_a_mutated_rejection_by_default() -> None:
    err = ValidationError(codes.BAD_TXNMRKLROOT, "x")
    assert err.mutated and err.result is BlockValidationResult.MUTATED
    assert err.category is C.MUTATED


def test_bad_txns_duplicate_is_consensus_unless_raised_as_mutated() -> None:
    plain = ValidationError(codes.BAD_TXNS_DUPLICATE, "the same transaction twice")
    assert not plain.mutated and plain.category is C.CONSENSUS
    subtree = ValidationError(codes.BAD_TXNS_DUPLICATE, result=BlockValidationResult.MUTATED)
    assert subtree.mutated and subtree.category is C.MUTATED


def test_only_a_mutable_code_may_be_raised_as_mutated() -> None:
    assert {codes.BAD_TXNMRKLROOT, codes.BAD_TXNS_DUPLICATE} == codes.MAY_BE_MUTATED
    with pytest.raises(ValueError):
        ValidationError(codes.BAD_TXNS_SIGNATURE, result=BlockValidationResult.MUTATED)


def test_a_cached_invalid_rejection_keeps_its_codes_category() -> None:
    err = ValidationError(codes.BAD_TXNS_SIGNATURE, result=BlockValidationResult.CACHED_INVALID)
    assert err.category is C.CONSENSUS
    by_hand = ValidationError(codes.DUPLICATE, result=BlockValidationResult.CACHED_INVALID)
    assert by_hand.category is C.KNOWN
    # A mark an older version left on a mutated code: the mark is what is reported.
    old = ValidationError(codes.BAD_TXNMRKLROOT, result=BlockValidationResult.CACHED_INVALID)
    assert not old.mutated and old.category is C.CONSENSUS


def test_a_real_mutated_body_is_of_the_mutated_category() -> None:
    genesis = get_params("regtest").genesis
    header = dataclasses.replace(genesis.header, merkle_root=b"\x01" * 32)
    with pytest.raises(ValidationError) as info:
        check_block_merkle_root(Block(header, genesis.txs))
    assert info.value.category is C.MUTATED
    assert policy.block_reject_score(info.value) == policy.SCORE_MUTATED


# --- P2P scoring from the category ----------------------------------------------------------------

# What the lists of codes in node/p2p/policy.py decided before categories existed.
OLD_HARMLESS_BLOCK_CODES = {codes.DUPLICATE, codes.PREV_BLK_NOT_FOUND, codes.TIME_TOO_NEW}
OLD_POLICY_TX_CODES = {
    codes.TXN_ALREADY_KNOWN,
    codes.TXN_MEMPOOL_CONFLICT,
    codes.INSUFFICIENT_FEE,
    codes.MIN_RELAY_FEE_NOT_MET,
    codes.MEMPOOL_FULL,
    codes.TOO_LONG_MEMPOOL_CHAIN,
    codes.BAD_TXNS_INPUTS_MISSINGORSPENT,
    codes.BAD_TXNS_NONFINAL,
    codes.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE,
    codes.TX_SIZE,
}


def test_every_category_has_a_score_for_blocks_and_transactions() -> None:
    assert set(policy.BLOCK_SCORES) == set(RejectCategory) == set(policy.TX_SCORES)


BLOCK_ONLY_CODES = {
    codes.BAD_CB_MISSING,
    codes.BAD_CB_MULTIPLE,
    codes.BAD_CB_HEIGHT,
    codes.BAD_CB_AMOUNT,
    codes.BAD_BLK_LENGTH,
    codes.BAD_TXNMRKLROOT,
    codes.BAD_TXNS_DUPLICATE,
    codes.HIGH_HASH,
    codes.BAD_DIFFBITS,
    codes.TIME_TOO_OLD,
    codes.TIME_TOO_NEW,
    codes.BAD_PREVBLK,
    codes.PREV_BLK_NOT_FOUND,
    codes.DUPLICATE,
}


@pytest.mark.parametrize("code", sorted(codes.ALL_CODES - BLOCK_ONLY_CODES))
def test_transaction_scores_are_unchanged(code: str) -> None:
    expected = 0 if code in OLD_POLICY_TX_CODES else policy.SCORE_INVALID_OBJECT
    assert policy.tx_reject_score(code) == expected


@pytest.mark.parametrize("code", sorted(codes.ALL_CODES - codes.POLICY_CODES))
def test_block_scores_are_unchanged_for_every_code_a_block_can_be_refused_with(code: str) -> None:
    expected = 0 if code in OLD_HARMLESS_BLOCK_CODES else policy.SCORE_INVALID_OBJECT
    assert policy.block_reject_score(code) == expected
    assert policy.block_reject_score(ValidationError(code)) == expected


def test_a_block_refused_with_a_mempool_code_would_blame_nobody_but_a_consensus_one() -> None:
    """No block rule raises a mempool code; were one to, only ``coinbase`` (a consensus break)
    would be scored (before categories every mempool code scored a block 100)."""
    for code in codes.POLICY_CODES:
        expected = policy.SCORE_INVALID_OBJECT if code == codes.COINBASE else 0
        assert policy.block_reject_score(code) == expected, code


def test_a_transaction_refused_with_a_block_code_would_be_scored_by_its_category() -> None:
    """No transaction rule raises these; were one to, only a consensus break would be scored
    (before categories every one of them scored a transaction 100)."""
    for code in BLOCK_ONLY_CODES:
        blamed = category_of(code) is C.CONSENSUS
        assert policy.tx_reject_score(code) == (policy.SCORE_INVALID_OBJECT if blamed else 0), code


def test_a_context_code_blames_a_block_but_not_a_loose_transaction() -> None:
    for code in (codes.BAD_TXNS_INPUTS_MISSINGORSPENT, codes.BAD_TXNS_NONFINAL):
        assert policy.block_reject_score(code) == policy.SCORE_INVALID_OBJECT
        assert policy.tx_reject_score(code) == 0
