"""The block merkle root covers the wtxids (SPEC 2.4), and mutated bodies are told apart.

Issue 16, defect 1: under the old rule the root covered txids, which leave signatures out, so a
relayer could flip a signature bit and keep the header (and hash) of a block. Here:

- a header commits to its transactions' wtxids: a body with one signature bit flipped no longer
  matches its header (``bad-txnmrklroot``), and a root built over the txids is refused;
- such a rejection is *mutated* (``ValidationError.mutated``, ``BlockValidationResult.MUTATED``),
  as is the CVE-2012-2459 duplicated subtree (``bad-txns-duplicate``); a duplicate the header
  does commit to, and every other rule, is not;
- every network's genesis keeps its hash (a coinbase's txid is its wtxid); the hashes themselves
  are pinned in ``test_params.py``;
- ``merkle_root`` stays generic (the Bitcoin vectors in ``test_vectors_merkle.py`` call it on
  txids).
"""

from __future__ import annotations

import dataclasses

import pytest

from consensus import (
    COIN,
    Block,
    BlockValidationResult,
    MemoryCoinsView,
    Transaction,
    TxIn,
    TxOut,
    ValidationError,
    block_merkle_root,
    check_block,
    check_block_merkle_root,
    connect_block,
    get_params,
    merkle_root,
    sha256d,
)
from consensus import errors as codes
from consensus.params import NETWORKS, build_genesis
from tests.helpers import REGTEST, ChainBuilder, coinbase, key, solve, spend

P = REGTEST


def flip_signature(tx: Transaction, input_index: int = 0, bit: int = 0) -> Transaction:
    """``tx`` with one bit of one input's signature flipped: same txid, another wtxid."""
    txin = tx.inputs[input_index]
    sig = bytearray(txin.signature)
    sig[-1] ^= 1 << bit
    inputs = list(tx.inputs)
    inputs[input_index] = TxIn(txin.prevout, txin.pubkey, bytes(sig))
    return Transaction(tx.version, tuple(inputs), tx.outputs, tx.locktime)


def with_root(block: Block, root: bytes) -> Block:
    """``block``'s transactions under a header with ``root``, its proof of work redone."""
    header = dataclasses.replace(block.header, merkle_root=root, nonce=0)
    return Block(solve(header, P), block.txs)


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    """A regtest chain whose coinbase of height 1 is mature."""
    builder = ChainBuilder()
    builder.grow(P.coinbase_maturity + 1)
    return builder


@pytest.fixture(scope="module")
def spending_block(chain: ChainBuilder) -> Block:
    """The next block, with two spends of mature coinbases (valid, not connected)."""
    a = spend([chain.coinbase_coin(1)], [TxOut(49 * COIN, key(1).pubkey_hash)])
    b = spend([chain.coinbase_coin(2)], [TxOut(49 * COIN, key(2).pubkey_hash)])
    return chain.next_block([a, b], fees=2 * COIN)


def test_header_commits_to_the_wtxids(spending_block: Block) -> None:
    block = spending_block
    assert block.header.merkle_root == merkle_root(block.wtxids())[0]
    assert block.compute_merkle_root() == (block.header.merkle_root, False)
    assert block_merkle_root(block.txs) == merkle_root([tx.wtxid() for tx in block.txs])
    assert block.txids() != block.wtxids()  # spends: signatures are outside the txid
    check_block(block, P)


def test_a_root_over_the_txids_is_refused(spending_block: Block) -> None:
    """What the old rule built: its root no longer matches the body."""
    old_style = with_root(spending_block, merkle_root(spending_block.txids())[0])
    with pytest.raises(ValidationError) as info:
        check_block(old_style, P)
    assert info.value.code == codes.BAD_TXNMRKLROOT
    assert info.value.mutated


@pytest.mark.parametrize("bit", [0, 7])
def test_flipped_signature_bit_no_longer_matches_the_header(
    chain: ChainBuilder, spending_block: Block, bit: int
) -> None:
    """The relayer's attack: the same header (and hash) with a signature changed."""
    txs = list(spending_block.txs)
    txs[1] = flip_signature(txs[1], bit=bit)
    mutated = Block(spending_block.header, tuple(txs))
    assert mutated.hash() == spending_block.hash()
    assert txs[1].txid() == spending_block.txs[1].txid()
    with pytest.raises(ValidationError) as info:
        check_block(mutated, P)
    assert info.value.code == codes.BAD_TXNMRKLROOT
    assert info.value.result is BlockValidationResult.MUTATED and info.value.mutated
    with pytest.raises(ValidationError) as direct:
        check_block_merkle_root(mutated)
    assert direct.value.mutated
    # The genuine body still passes and connects.
    check_block(spending_block, P)
    view = MemoryCoinsView(dict(chain.view.coins))
    connect_block(spending_block, chain.height + 1, view, P)


def test_cve_2012_2459_duplicated_subtree_is_mutated(spending_block: Block) -> None:
    """[cb, a, b] and [cb, a, b, b] share a root: the second is a mutated body."""
    txs = spending_block.txs
    assert len(txs) == 3
    duplicated = Block(spending_block.header, (*txs, txs[-1]))
    assert merkle_root(duplicated.wtxids()) == (spending_block.header.merkle_root, True)
    with pytest.raises(ValidationError) as info:
        check_block(duplicated, P)
    assert info.value.code == codes.BAD_TXNS_DUPLICATE
    assert info.value.mutated


def test_a_duplicate_the_header_commits_to_is_not_mutated(spending_block: Block) -> None:
    """[cb, a, a] has its own honest root (no second list shares it): the block is invalid."""
    cb, a, _ = spending_block.txs
    committed = Block(spending_block.header, (cb, a, a))
    committed = with_root(committed, block_merkle_root(committed.txs)[0])
    assert not committed.compute_merkle_root()[1]
    with pytest.raises(ValidationError) as info:
        check_block(committed, P)
    assert info.value.code == codes.BAD_TXNS_DUPLICATE
    assert not info.value.mutated
    assert info.value.result is BlockValidationResult.CONSENSUS


def test_same_txid_other_wtxid_twice_is_a_double_spend(
    chain: ChainBuilder, spending_block: Block
) -> None:
    """Two wtxids of one txid pass the duplicate check (the header commits to both) and are
    refused where they spend the same coin twice."""
    cb, a, _ = spending_block.txs
    twin = flip_signature(a)
    block = Block(spending_block.header, (cb, a, twin))
    block = with_root(block, block_merkle_root(block.txs)[0])
    check_block(block, P)
    view = MemoryCoinsView(dict(chain.view.coins))
    with pytest.raises(ValidationError) as info:
        connect_block(block, chain.height + 1, view, P)
    assert info.value.code == codes.BAD_TXNS_INPUTS_MISSINGORSPENT
    assert not info.value.mutated


def test_rules_after_the_merkle_check_are_not_mutated(spending_block: Block) -> None:
    """A body matching its header that breaks a rule condemns the hash: not mutated."""
    no_coinbase = Block(spending_block.header, spending_block.txs[1:])
    no_coinbase = with_root(no_coinbase, block_merkle_root(no_coinbase.txs)[0])
    with pytest.raises(ValidationError) as info:
        check_block(no_coinbase, P)
    assert info.value.code == codes.BAD_CB_MISSING
    assert not info.value.mutated
    # Proof of work is checked first, and is not mutated either: it is the header's own rule.
    bad_pow = Block(dataclasses.replace(spending_block.header, bits=0x1D00FFFF), spending_block.txs)
    with pytest.raises(ValidationError) as info:
        check_block(bad_pow, P)
    assert info.value.code == codes.HIGH_HASH and not info.value.mutated


def test_validation_error_defaults_to_consensus() -> None:
    err = ValidationError(codes.BAD_TXNS_SIGNATURE, "x")
    assert err.result is BlockValidationResult.CONSENSUS and not err.mutated


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_genesis_keeps_its_hash(name: str) -> None:
    """A coinbase's txid is its wtxid: the genesis root, and hash, are the old rule's."""
    params = get_params(name)
    genesis = params.genesis
    (cb,) = genesis.txs
    assert cb.is_coinbase() and cb.txid() == cb.wtxid()
    assert genesis.header.merkle_root == merkle_root([cb.txid()])[0]
    old = dataclasses.replace(genesis.header, merkle_root=merkle_root([cb.txid()])[0])
    assert old.hash() == params.genesis_hash == build_genesis(params, params.genesis_nonce).hash()
    check_block(genesis, params)


def test_coinbase_only_block_has_the_same_root_under_both_rules() -> None:
    cb = coinbase(7, key(3).pubkey_hash, 50 * COIN)
    assert block_merkle_root([cb]) == merkle_root([cb.txid()])


def test_merkle_root_stays_generic() -> None:
    """Any leaves, as Bitcoin's: the root of two leaves is SHA256d of their concatenation."""
    leaves = [bytes([i]) * 32 for i in range(3)]
    assert merkle_root(leaves[:1]) == (leaves[0], False)
    assert merkle_root(leaves[:2]) == (sha256d(leaves[0] + leaves[1]), False)
    pair = sha256d(leaves[2] + leaves[2])
    assert merkle_root(leaves) == (sha256d(sha256d(leaves[0] + leaves[1]) + pair), False)
    assert merkle_root([*leaves, leaves[2]]) == (merkle_root(leaves)[0], True)
