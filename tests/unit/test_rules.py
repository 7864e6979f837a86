"""Every consensus reject code, one rule at a time.

Each test builds an object that passes the rules, breaks exactly one of them, and checks the
exact reject code through ``expect_reject``. Where a rule has a boundary, both sides are tested
(the last accepted value and the first rejected one). The last test proves, from this file's own
source, that every code in ``consensus.errors.CONSENSUS_CODES`` is asserted by some test.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ecdsa
import pytest
from ecdsa.util import sigdecode_string

from consensus import (
    COIN,
    MAX_BLOCK_SIZE,
    MAX_MONEY,
    NULL_OUTPOINT,
    Block,
    BlockHeader,
    Coin,
    MemoryCoinsView,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    ValidationError,
    block_subsidy,
    check_block,
    check_block_header,
    check_transaction,
    connect_block,
    get_params,
    merkle_root,
    next_bits,
    pack,
    sha256d,
    sign,
    signature_hash,
    verify_block_context,
    verify_header,
    verify_tx_inputs,
)
from consensus import errors as codes
from consensus.crypto import SECP256K1_N
from tests.helpers import ChainBuilder, Key, coinbase, key, solve, spend

REGTEST = get_params("regtest")
TESTNET = get_params("test")
MAIN = get_params("main")
P = REGTEST
K1, K2, K3 = key(1), key(2), key(3)
T0 = REGTEST.genesis_time


def expect_reject(code: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ValidationError:
    """``fn(*args, **kwargs)`` must raise ``ValidationError`` with exactly ``code``."""
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code!r}, got {info.value.code!r}: {info.value}"
    return info.value


# --- builders ----------------------------------------------------------------------------------

CoinRef = tuple[OutPoint, TxOut, Key]


def coin_ref(tag: int, owner: Key = K1, amount: int = 10 * COIN) -> CoinRef:
    """A synthetic unspent output (not in any view until ``view_with`` puts it there)."""
    return OutPoint(sha256d(b"coin %d" % tag), tag % 3), TxOut(amount, owner.pubkey_hash), owner


def view_with(*refs: CoinRef, height: int = 1, is_coinbase: bool = False) -> MemoryCoinsView:
    return MemoryCoinsView({op: Coin(out, height, is_coinbase) for op, out, _ in refs})


def valid_tx() -> tuple[Transaction, MemoryCoinsView]:
    """A signed 2-in 2-out transaction and a view holding the coins it spends (fee 1 TLY)."""
    a, b = coin_ref(1, K1), coin_ref(2, K2)
    tx = spend([a, b], [TxOut(12 * COIN, K3.pubkey_hash), TxOut(7 * COIN, K1.pubkey_hash)])
    return tx, view_with(a, b)


def with_outputs(tx: Transaction, outputs: Sequence[TxOut]) -> Transaction:
    return Transaction(tx.version, tx.inputs, tuple(outputs), tx.locktime)


def with_inputs(tx: Transaction, inputs: Sequence[TxIn]) -> Transaction:
    return Transaction(tx.version, tuple(inputs), tx.outputs, tx.locktime)


def assemble(
    txs: Sequence[Transaction],
    *,
    root: bytes | None = None,
    bits: int | None = None,
    params: Any = REGTEST,
    time: int = T0 + 600,
) -> Block:
    """A block of exactly ``txs`` (no coinbase added) with valid proof of work."""
    if root is None:
        root, _ = merkle_root([tx.wtxid() for tx in txs])
    header = BlockHeader(
        1, b"\x11" * 32, root, time, params.pow_limit_bits if bits is None else bits, 0
    )
    return Block(solve(header, params), tuple(txs))


def cb(height: int = 5, amount: int = 50 * COIN, extra: bytes = b"") -> Transaction:
    return coinbase(height, K1.pubkey_hash, amount, extra)


def tx_of_size(size: int, ref: CoinRef, tag: int = 0) -> Transaction:
    """A signed transaction of exactly ``size`` serialized bytes (outputs of 1 unit, padded)."""
    op, _, _ = ref
    pkh = sha256d(b"pkh %d" % tag)[:20]
    one, wide = TxOut(1, pkh), TxOut(200, pkh)  # 200 packs as 0xcc 0xc8: one byte more than 1
    per = len(pack(one.to_obj()))

    def size_of(outs: list[TxOut]) -> int:  # sizes do not depend on the signature's content
        dummy = TxIn(op, b"\x02" * 33, b"\x00" * 64)
        return Transaction(1, (dummy,), tuple(outs), 0).size()

    count = (size - size_of([])) // per + 2
    while size_of([one] * count) > size:
        count -= 1
    missing = size - size_of([one] * count)
    assert 0 <= missing < per <= count
    tx = spend([ref], [wide] * missing + [one] * (count - missing))
    assert tx.size() == size, (tx.size(), size)
    return tx


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    """A regtest chain of 110 blocks: coinbases of heights 1..11 are mature at height 111."""
    builder = ChainBuilder()
    builder.grow(110)
    return builder


def copy_view(view: MemoryCoinsView) -> MemoryCoinsView:
    return MemoryCoinsView(view.coins)


# --- ValidationError itself ---------------------------------------------------------------------


def test_validation_error_refuses_unknown_code() -> None:
    with pytest.raises(ValueError):
        ValidationError("not-a-code")
    assert ValidationError(codes.HIGH_HASH, "x").code == "high-hash"


# --- check_transaction ----------------------------------------------------------------------------


def test_valid_transaction_passes_check_transaction() -> None:
    tx, view = valid_tx()
    check_transaction(tx, P)
    assert verify_tx_inputs(tx, view, 200, P) == 1 * COIN


def test_vin_empty() -> None:
    tx, _ = valid_tx()
    expect_reject(codes.BAD_TXNS_VIN_EMPTY, check_transaction, with_inputs(tx, []), P)


def test_vout_empty() -> None:
    tx, _ = valid_tx()
    expect_reject(codes.BAD_TXNS_VOUT_EMPTY, check_transaction, with_outputs(tx, []), P)


def test_tx_size_limit_is_exactly_one_megabyte() -> None:
    ref = coin_ref(3, K1, MAX_MONEY)
    at_limit = tx_of_size(MAX_BLOCK_SIZE, ref)
    check_transaction(at_limit, P)
    over = tx_of_size(MAX_BLOCK_SIZE + 1, ref)
    expect_reject(codes.BAD_TXNS_OVERSIZE, check_transaction, over, P)


@pytest.mark.parametrize("amount", [0, -1, -MAX_MONEY])
def test_vout_negative(amount: int) -> None:
    tx, _ = valid_tx()
    outs = [tx.outputs[0], TxOut(amount, K1.pubkey_hash)]
    expect_reject(codes.BAD_TXNS_VOUT_NEGATIVE, check_transaction, with_outputs(tx, outs), P)


def test_vout_toolarge() -> None:
    tx, _ = valid_tx()
    check_transaction(with_outputs(tx, [TxOut(MAX_MONEY, K1.pubkey_hash)]), P)
    outs = [TxOut(MAX_MONEY + 1, K1.pubkey_hash)]
    expect_reject(codes.BAD_TXNS_VOUT_TOOLARGE, check_transaction, with_outputs(tx, outs), P)


def test_txouttotal_toolarge() -> None:
    tx, _ = valid_tx()
    check_transaction(
        with_outputs(tx, [TxOut(MAX_MONEY - 1, K1.pubkey_hash), TxOut(1, K2.pubkey_hash)]), P
    )
    outs = [TxOut(MAX_MONEY, K1.pubkey_hash), TxOut(MAX_MONEY, K2.pubkey_hash)]
    expect_reject(codes.BAD_TXNS_TXOUTTOTAL_TOOLARGE, check_transaction, with_outputs(tx, outs), P)


def test_inputs_duplicate() -> None:
    a = coin_ref(4)
    tx = spend([a, a], [TxOut(COIN, K2.pubkey_hash)])
    expect_reject(codes.BAD_TXNS_INPUTS_DUPLICATE, check_transaction, tx, P)


def test_prevout_null_in_non_coinbase() -> None:
    a = coin_ref(5)
    null = (NULL_OUTPOINT, a[1], a[2])
    tx = spend([a, null], [TxOut(COIN, K2.pubkey_hash)])
    assert not tx.is_coinbase()
    expect_reject(codes.BAD_TXNS_PREVOUT_NULL, check_transaction, tx, P)
    swapped = spend([null, a], [TxOut(COIN, K2.pubkey_hash)])
    expect_reject(codes.BAD_TXNS_PREVOUT_NULL, check_transaction, swapped, P)


def test_malformed_pubkey_or_signature_is_signature_error() -> None:
    tx, _ = valid_tx()
    first = tx.inputs[0]
    for pubkey in (first.pubkey[:32], b"\x04" + first.pubkey[1:], first.pubkey + b"\x00"):
        bad = with_inputs(tx, [TxIn(first.prevout, pubkey, first.signature), tx.inputs[1]])
        expect_reject(codes.BAD_TXNS_SIGNATURE, check_transaction, bad, P)
    for sig in (first.signature[:63], first.signature + b"\x01", b""):
        bad = with_inputs(tx, [TxIn(first.prevout, first.pubkey, sig), tx.inputs[1]])
        expect_reject(codes.BAD_TXNS_SIGNATURE, check_transaction, bad, P)


@pytest.mark.parametrize("extra_len", [0, 96])
def test_coinbase_length_bounds_accepted(extra_len: int) -> None:
    check_transaction(cb(extra=b"x" * extra_len), P)


def test_coinbase_data_of_3_bytes() -> None:
    short = Transaction(1, (TxIn(NULL_OUTPOINT, b"", b"\x05\x00\x00"),), cb().outputs, 0)
    assert short.is_coinbase()
    expect_reject(codes.BAD_CB_LENGTH, check_transaction, short, P)


def test_coinbase_data_of_101_bytes() -> None:
    long = cb(extra=b"x" * 97)
    assert len(long.inputs[0].signature) == 101
    expect_reject(codes.BAD_CB_LENGTH, check_transaction, long, P)


def test_coinbase_with_pubkey() -> None:
    good = cb()
    bad = with_inputs(good, [TxIn(NULL_OUTPOINT, K1.pubkey, good.inputs[0].signature)])
    expect_reject(codes.BAD_CB_LENGTH, check_transaction, bad, P)


# --- check_block_header / check_block ---------------------------------------------------------


def block_with_spends() -> Block:
    """A valid regtest block: coinbase and two spends (context-free rules only)."""
    a = spend([coin_ref(10)], [TxOut(COIN, K2.pubkey_hash)])
    b = spend([coin_ref(11)], [TxOut(COIN, K3.pubkey_hash)])
    return assemble([cb(), a, b])


def test_valid_block_passes_check_block() -> None:
    block = block_with_spends()
    check_block(block, P)
    check_block_header(block.header, P)


def test_high_hash_hash_above_target() -> None:
    good = block_with_spends().header
    target = 0x7FFFFF << (8 * (0x20 - 3))
    bad = good
    while int.from_bytes(bad.hash(), "little") <= target:
        bad = dataclasses.replace(bad, nonce=bad.nonce + 1)
    expect_reject(codes.HIGH_HASH, check_block_header, bad, P)
    block = Block(bad, block_with_spends().txs)
    expect_reject(codes.HIGH_HASH, check_block, block, P)


def test_high_hash_bits_above_pow_limit() -> None:
    # Mined against regtest's 0x207fffff: the hash meets its own bits, but the test network's
    # pow_limit is far lower, so the bits themselves are refused.
    block = block_with_spends()
    assert block.header.bits == 0x207FFFFF
    check_block_header(block.header, REGTEST)
    expect_reject(codes.HIGH_HASH, check_block_header, block.header, TESTNET)
    expect_reject(codes.HIGH_HASH, check_block, block, TESTNET)


@pytest.mark.parametrize("bits", [0x20FFFFFF, 0x237FFFFF, 0x22000100, 0x00000000, 0x20000000])
def test_high_hash_negative_overflow_or_zero_bits(bits: int) -> None:
    # Negative (sign bit), overflowing and zero targets are never valid, whatever the hash.
    header = dataclasses.replace(block_with_spends().header, bits=bits)
    expect_reject(codes.HIGH_HASH, check_block_header, header, REGTEST)


def test_bad_txnmrklroot() -> None:
    block = block_with_spends()
    swapped = (block.txs[0], block.txs[2], block.txs[1])
    expect_reject(codes.BAD_TXNMRKLROOT, check_block, Block(block.header, swapped), P)
    wrong_root = assemble(block.txs, root=sha256d(b"not the root"))
    expect_reject(codes.BAD_TXNMRKLROOT, check_block, wrong_root, P)


def test_bad_txns_duplicate_same_tx_twice() -> None:
    a = spend([coin_ref(12)], [TxOut(COIN, K2.pubkey_hash)])
    block = assemble([cb(), a, a])  # the root is the honest root of this list
    root, mutated = block.compute_merkle_root()
    assert root == block.header.merkle_root and not mutated
    expect_reject(codes.BAD_TXNS_DUPLICATE, check_block, block, P)


def test_bad_txns_duplicate_cve_2012_2459() -> None:
    block = block_with_spends()
    check_block(block, P)
    mutated = Block(block.header, (*block.txs, block.txs[-1]))
    assert merkle_root(mutated.wtxids()) == (block.header.merkle_root, True)
    expect_reject(codes.BAD_TXNS_DUPLICATE, check_block, mutated, P)


def test_bad_txns_duplicate_cve_2012_2459_six_of_five() -> None:
    txs = [cb()] + [spend([coin_ref(20 + i)], [TxOut(COIN, K2.pubkey_hash)]) for i in range(4)]
    block = assemble(txs)
    check_block(block, P)
    mutated = Block(block.header, (*block.txs, block.txs[-1]))
    assert merkle_root(mutated.wtxids()) == (block.header.merkle_root, True)
    expect_reject(codes.BAD_TXNS_DUPLICATE, check_block, mutated, P)


def test_bad_blk_length_no_transactions() -> None:
    empty = assemble([])
    assert empty.header.merkle_root == b"\x00" * 32
    expect_reject(codes.BAD_BLK_LENGTH, check_block, empty, P)


def test_bad_blk_length_block_over_one_megabyte() -> None:
    # Two transactions, each well within the transaction limit, make a block whose size is
    # tuned with the coinbase's extra nonce to exactly the limit, then one byte over.
    t1 = tx_of_size(500_000, coin_ref(30, K1, MAX_MONEY), tag=1)
    overhead = assemble([cb(), t1]).size() - t1.size()  # header, arrays and the coinbase
    t2_size = MAX_BLOCK_SIZE - overhead - t1.size() - 50
    t2 = tx_of_size(t2_size, coin_ref(31, K2, MAX_MONEY), tag=2)
    for tx in (t1, t2):
        check_transaction(tx, P)
    base = assemble([cb(), t1, t2]).size()
    room = MAX_BLOCK_SIZE - base
    assert 0 <= room < 96
    at_limit = assemble([cb(extra=b"x" * room), t1, t2])
    assert at_limit.size() == MAX_BLOCK_SIZE
    check_block(at_limit, P)
    over = assemble([cb(extra=b"x" * (room + 1)), t1, t2])
    assert over.size() == MAX_BLOCK_SIZE + 1
    check_transaction(over.txs[0], P)
    expect_reject(codes.BAD_BLK_LENGTH, check_block, over, P)


def test_bad_cb_missing() -> None:
    a = spend([coin_ref(40)], [TxOut(COIN, K2.pubkey_hash)])
    expect_reject(codes.BAD_CB_MISSING, check_block, assemble([a]), P)
    b = spend([coin_ref(41)], [TxOut(COIN, K2.pubkey_hash)])
    expect_reject(codes.BAD_CB_MISSING, check_block, assemble([a, cb(), b]), P)


def test_bad_cb_multiple() -> None:
    a = spend([coin_ref(42)], [TxOut(COIN, K2.pubkey_hash)])
    second = cb(extra=b"another")
    expect_reject(codes.BAD_CB_MULTIPLE, check_block, assemble([cb(), a, second]), P)


def test_bad_cb_length_through_check_block() -> None:
    expect_reject(codes.BAD_CB_LENGTH, check_block, assemble([cb(extra=b"x" * 97)]), P)


def test_check_block_checks_every_transaction() -> None:
    a = spend([coin_ref(43)], [TxOut(COIN, K2.pubkey_hash)])
    bad = with_outputs(a, [TxOut(0, K2.pubkey_hash)])
    expect_reject(codes.BAD_TXNS_VOUT_NEGATIVE, check_block, assemble([cb(), a, bad]), P)


def test_bad_encoding_of_transaction_and_block() -> None:
    tx, _ = valid_tx()
    assert Transaction.deserialize(tx.serialize()) == tx
    expect_reject(codes.BAD_ENCODING, Transaction.deserialize, tx.serialize() + b"\x00")
    raw = block_with_spends().serialize()
    expect_reject(codes.BAD_ENCODING, Block.deserialize, raw[:-1])


# --- verify_header ------------------------------------------------------------------------------


def linear_times(spacing: int, start: int = T0) -> Callable[[int], int]:
    return lambda h: start + h * spacing


def test_bad_diffbits_at_retarget_height_test_network() -> None:
    time_at = linear_times(30)
    prev = TESTNET.pow_limit_bits
    expected = next_bits(TESTNET, prev, time_at(0), time_at(59))
    # Bitcoin's off-by-one: 59 gaps of exactly 30 s measure 1770 s against 1800 s: harder.
    assert expected != prev
    good = BlockHeader(1, b"\x22" * 32, b"\x33" * 32, time_at(60), expected, 0)
    verify_header(good, 60, prev, time_at, TESTNET, now=time_at(60))
    stale = dataclasses.replace(good, bits=prev)
    expect_reject(codes.BAD_DIFFBITS, verify_header, stale, 60, prev, time_at, TESTNET, time_at(60))


def test_bad_diffbits_at_non_retarget_height_test_network() -> None:
    time_at = linear_times(30)
    prev = 0x1D3FFFFF
    good = BlockHeader(1, b"\x22" * 32, b"\x33" * 32, time_at(61), prev, 0)
    verify_header(good, 61, prev, time_at, TESTNET, now=time_at(61))
    for bits in (TESTNET.pow_limit_bits, prev - 1):
        bad = dataclasses.replace(good, bits=bits)
        expect_reject(codes.BAD_DIFFBITS, verify_header, bad, 61, prev, time_at, TESTNET, T0 * 2)


def test_bad_diffbits_regtest_bits_are_always_pow_limit() -> None:
    time_at = linear_times(600)
    good = BlockHeader(1, b"\x22" * 32, b"\x33" * 32, time_at(10), REGTEST.pow_limit_bits, 0)
    verify_header(good, 10, REGTEST.pow_limit_bits, time_at, REGTEST, now=time_at(10))
    bad = dataclasses.replace(good, bits=0x1F7FFFFF)
    expect_reject(codes.BAD_DIFFBITS, verify_header, bad, 10, 0x1F7FFFFF, time_at, REGTEST, T0 * 2)


def test_time_too_old_against_median_of_previous_11() -> None:
    height = 30
    recent = [T0 + x for x in (50, 10, 90, 30, 70, 20, 110, 40, 100, 60, 80)]  # heights 19..29
    median = sorted(recent)[5]

    def time_at(h: int) -> int:
        assert 0 <= h < height
        # Blocks before the last 11 are far in the future: if they counted, the median moved.
        return recent[h - (height - 11)] if h >= height - 11 else T0 + 10**6

    bits = REGTEST.pow_limit_bits
    ok = BlockHeader(1, b"\x22" * 32, b"\x33" * 32, median + 1, bits, 0)
    verify_header(ok, height, bits, time_at, REGTEST, now=median)
    at_median = dataclasses.replace(ok, time=median)
    expect_reject(codes.TIME_TOO_OLD, verify_header, at_median, height, bits, time_at, REGTEST, T0)
    # Early in the chain the median is over the blocks there are.
    early = BlockHeader(1, b"\x22" * 32, b"\x33" * 32, T0, bits, 0)
    expect_reject(codes.TIME_TOO_OLD, verify_header, early, 1, bits, lambda h: T0, REGTEST, T0)


def test_time_too_new_with_now_passed_in() -> None:
    now = T0 + 10_000
    bits = REGTEST.pow_limit_bits
    edge = BlockHeader(1, b"\x22" * 32, b"\x33" * 32, now + 7200, bits, 0)
    verify_header(edge, 5, bits, linear_times(600), REGTEST, now=now)
    late = dataclasses.replace(edge, time=now + 7201)
    expect_reject(codes.TIME_TOO_NEW, verify_header, late, 5, bits, linear_times(600), REGTEST, now)


# --- verify_block_context -----------------------------------------------------------------------


def test_bad_txns_nonfinal_locktime_equal_to_height() -> None:
    height = 50
    a, b = coin_ref(50), coin_ref(51)
    final = spend([a], [TxOut(COIN, K2.pubkey_hash)], locktime=height - 1)
    verify_block_context(assemble([cb(height), final]), height)
    nonfinal = spend([b], [TxOut(COIN, K2.pubkey_hash)], locktime=height)
    block = assemble([cb(height), final, nonfinal])
    check_block(block, P)
    expect_reject(codes.BAD_TXNS_NONFINAL, verify_block_context, block, height)


def test_bad_cb_height() -> None:
    block = assemble([cb(7)])
    verify_block_context(block, 7)
    expect_reject(codes.BAD_CB_HEIGHT, verify_block_context, block, 8)
    expect_reject(codes.BAD_CB_HEIGHT, verify_block_context, block, 6)


# --- verify_tx_inputs ---------------------------------------------------------------------------


def test_missingorspent() -> None:
    tx, view = valid_tx()
    del view.coins[tx.inputs[1].prevout]
    expect_reject(codes.BAD_TXNS_INPUTS_MISSINGORSPENT, verify_tx_inputs, tx, view, 200, P)


def test_premature_spend_of_coinbase() -> None:
    ref = coin_ref(60)
    tx = spend([ref], [TxOut(COIN, K2.pubkey_hash)])
    view = view_with(ref, height=10, is_coinbase=True)
    maturity = P.coinbase_maturity
    assert verify_tx_inputs(tx, view, 10 + maturity, P) == 9 * COIN
    expect_reject(
        codes.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE, verify_tx_inputs, tx, view, 9 + maturity, P
    )
    # The same output not from a coinbase is spendable at once.
    assert verify_tx_inputs(tx, view_with(ref, height=10), 11, P) == 9 * COIN


def test_in_belowout() -> None:
    a = coin_ref(61)
    exact = spend([a], [TxOut(10 * COIN, K2.pubkey_hash)])
    assert verify_tx_inputs(exact, view_with(a), 5, P) == 0
    over = spend([a], [TxOut(10 * COIN + 1, K2.pubkey_hash)])
    expect_reject(codes.BAD_TXNS_IN_BELOWOUT, verify_tx_inputs, over, view_with(a), 5, P)


def replace_input(tx: Transaction, n: int, **changes: bytes) -> Transaction:
    inputs = list(tx.inputs)
    inputs[n] = dataclasses.replace(inputs[n], **changes)
    return with_inputs(tx, inputs)


def test_signature_by_wrong_key() -> None:
    tx, view = valid_tx()
    spent = view.coins[tx.inputs[0].prevout].output
    forged = sign(K3.privkey, signature_hash(tx, 0, spent, P))  # K1's pubkey, K3's signature
    bad = replace_input(tx, 0, signature=forged)
    check_transaction(bad, P)
    expect_reject(codes.BAD_TXNS_SIGNATURE, verify_tx_inputs, bad, view, 200, P)


def test_pubkey_not_matching_spent_pubkey_hash() -> None:
    tx, view = valid_tx()
    spent = view.coins[tx.inputs[0].prevout].output
    # A perfectly valid signature by K3 over the right digest; K3 just does not own the coin.
    sig = sign(K3.privkey, signature_hash(tx, 0, spent, P))
    bad = replace_input(tx, 0, pubkey=K3.pubkey, signature=sig)
    expect_reject(codes.BAD_TXNS_SIGNATURE, verify_tx_inputs, bad, view, 200, P)


def test_signature_over_another_input_index() -> None:
    a, b = coin_ref(70, K1, 5 * COIN), coin_ref(71, K1, 5 * COIN)  # same owner, same amount
    tx = spend([a, b], [TxOut(9 * COIN, K2.pubkey_hash)])
    view = view_with(a, b)
    assert verify_tx_inputs(tx, view, 5, P) == COIN
    bad = replace_input(tx, 1, signature=tx.inputs[0].signature)
    expect_reject(codes.BAD_TXNS_SIGNATURE, verify_tx_inputs, bad, view, 5, P)


def test_signature_for_another_network() -> None:
    a = coin_ref(72)
    on_main = spend([a], [TxOut(COIN, K2.pubkey_hash)], params=MAIN)
    assert verify_tx_inputs(on_main, view_with(a), 5, MAIN) == 9 * COIN
    expect_reject(codes.BAD_TXNS_SIGNATURE, verify_tx_inputs, on_main, view_with(a), 5, REGTEST)


def test_high_s_signature() -> None:
    tx, view = valid_tx()
    sig = tx.inputs[0].signature
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    assert s <= SECP256K1_N // 2
    high = r.to_bytes(32, "big") + (SECP256K1_N - s).to_bytes(32, "big")
    # Plain ECDSA accepts the high-S twin: only the low-S rule stands in its way.
    spent = view.coins[tx.inputs[0].prevout].output
    digest = signature_hash(tx, 0, spent, P)
    vk = ecdsa.VerifyingKey.from_string(tx.inputs[0].pubkey, curve=ecdsa.SECP256k1)
    assert vk.verify_digest(high, digest, sigdecode=sigdecode_string)
    bad = replace_input(tx, 0, signature=high)
    expect_reject(codes.BAD_TXNS_SIGNATURE, verify_tx_inputs, bad, view, 200, P)


def test_63_byte_signature() -> None:
    tx, view = valid_tx()
    bad = replace_input(tx, 1, signature=tx.inputs[1].signature[:63])
    expect_reject(codes.BAD_TXNS_SIGNATURE, verify_tx_inputs, bad, view, 200, P)


# --- connect_block ------------------------------------------------------------------------------


def next_block(chain: ChainBuilder, txs: Sequence[Transaction], fees: int = 0) -> Block:
    return chain.next_block(txs, fees)


def mature(chain: ChainBuilder, height: int) -> CoinRef:
    return chain.coinbase_coin(height)


def test_bad_cb_amount(chain: ChainBuilder) -> None:
    height = chain.height + 1
    tx = spend([mature(chain, 1)], [TxOut(49 * COIN, K2.pubkey_hash)])  # fee: 1 TLY
    fee = 1 * COIN
    greedy = next_block(chain, [tx], fees=fee + 1)
    assert greedy.txs[0].total_out() == block_subsidy(height, P) + fee + 1
    check_block(greedy, P)
    view = copy_view(chain.view)
    expect_reject(codes.BAD_CB_AMOUNT, connect_block, greedy, height, view, P)
    assert view.coins == chain.view.coins
    exact = next_block(chain, [tx], fees=fee)
    check_block(exact, P)
    connect_block(exact, height, view, P)
    assert view.get_coin(OutPoint(exact.txs[0].txid(), 0)) is not None


def test_double_spend_inside_a_block(chain: ChainBuilder) -> None:
    coin = mature(chain, 2)
    a = spend([coin], [TxOut(50 * COIN, K2.pubkey_hash)])
    b = spend([coin], [TxOut(50 * COIN, K3.pubkey_hash)])
    block = next_block(chain, [a, b])
    check_block(block, P)
    view = copy_view(chain.view)
    expect_reject(
        codes.BAD_TXNS_INPUTS_MISSINGORSPENT, connect_block, block, chain.height + 1, view, P
    )
    assert view.coins == chain.view.coins


def test_spend_of_output_created_earlier_in_block(chain: ChainBuilder) -> None:
    a = spend([mature(chain, 3)], [TxOut(50 * COIN, K2.pubkey_hash)])
    b = spend([(OutPoint(a.txid(), 0), a.outputs[0], K2)], [TxOut(49 * COIN, K3.pubkey_hash)])
    block = next_block(chain, [a, b], fees=COIN)
    check_block(block, P)
    view = copy_view(chain.view)
    undo = connect_block(block, chain.height + 1, view, P)
    assert view.get_coin(OutPoint(a.txid(), 0)) is None  # created and spent in the block
    assert view.get_coin(OutPoint(b.txid(), 0)) == Coin(b.outputs[0], chain.height + 1, False)
    assert undo.spent[1] == (Coin(a.outputs[0], chain.height + 1, False),)


def test_spend_of_output_created_later_in_block(chain: ChainBuilder) -> None:
    a = spend([mature(chain, 3)], [TxOut(50 * COIN, K2.pubkey_hash)])
    b = spend([(OutPoint(a.txid(), 0), a.outputs[0], K2)], [TxOut(49 * COIN, K3.pubkey_hash)])
    block = next_block(chain, [b, a], fees=COIN)
    check_block(block, P)
    view = copy_view(chain.view)
    expect_reject(
        codes.BAD_TXNS_INPUTS_MISSINGORSPENT, connect_block, block, chain.height + 1, view, P
    )
    assert view.coins == chain.view.coins


def test_connect_block_applies_context_rules(chain: ChainBuilder) -> None:
    height = chain.height + 1
    nonfinal = spend([mature(chain, 4)], [TxOut(50 * COIN, K2.pubkey_hash)], locktime=height)
    block = next_block(chain, [nonfinal])
    check_block(block, P)
    view = copy_view(chain.view)
    expect_reject(codes.BAD_TXNS_NONFINAL, connect_block, block, height, view, P)
    expect_reject(codes.BAD_CB_HEIGHT, connect_block, next_block(chain, []), height + 1, view, P)
    premature = spend([mature(chain, height - 99)], [TxOut(50 * COIN, K2.pubkey_hash)])
    block = next_block(chain, [premature])
    expect_reject(codes.BAD_TXNS_PREMATURE_SPEND_OF_COINBASE, connect_block, block, height, view, P)
    assert view.coins == chain.view.coins


@pytest.mark.parametrize("failure", ["signature", "missing", "belowout", "cb-amount"])
def test_connect_block_failure_in_last_tx_leaves_view_unchanged(
    chain: ChainBuilder, failure: str
) -> None:
    height = chain.height + 1
    a = spend(
        [mature(chain, 5)], [TxOut(30 * COIN, K2.pubkey_hash), TxOut(20 * COIN, K3.pubkey_hash)]
    )
    b = spend([(OutPoint(a.txid(), 0), a.outputs[0], K2)], [TxOut(30 * COIN, K1.pubkey_hash)])
    c = spend(
        [mature(chain, 6), (OutPoint(a.txid(), 1), a.outputs[1], K3)], [TxOut(COIN, K1.pubkey_hash)]
    )
    fees = 69 * COIN
    code = {
        "signature": codes.BAD_TXNS_SIGNATURE,
        "missing": codes.BAD_TXNS_INPUTS_MISSINGORSPENT,
        "belowout": codes.BAD_TXNS_IN_BELOWOUT,
        "cb-amount": codes.BAD_CB_AMOUNT,
    }[failure]
    if failure == "signature":
        c = replace_input(c, 1, signature=c.inputs[0].signature)
    elif failure == "missing":
        c = spend([mature(chain, 6), (OutPoint(a.txid(), 7), a.outputs[1], K3)], c.outputs)
    elif failure == "belowout":
        c = spend(
            [mature(chain, 6), (OutPoint(a.txid(), 1), a.outputs[1], K3)],
            [TxOut(71 * COIN, K1.pubkey_hash)],
        )
        fees = 0
    else:
        fees += 1
    block = next_block(chain, [a, b, c], fees=fees)
    check_block(block, P)
    view = copy_view(chain.view)
    before = dict(view.coins)
    err = expect_reject(code, connect_block, block, height, view, P)
    assert err.code == code
    assert view.coins == before
    # And the same block without the fault connects (so the fault was the only problem).
    if failure == "cb-amount":
        connect_block(next_block(chain, [a, b, c], fees=fees - 1), height, view, P)
        assert view.coins != before


# --- coverage of the reject codes ---------------------------------------------------------------


def _codes_asserted_in_this_file() -> set[str]:
    """Codes passed as a ``codes.X`` constant to ``expect_reject`` inside a ``test_`` function."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    found: set[str] = set()
    for func in ast.walk(tree):
        if not (isinstance(func, ast.FunctionDef) and func.name.startswith("test_")):
            continue
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "expect_reject"
                and node.args
                and isinstance(node.args[0], ast.Attribute)
                and isinstance(node.args[0].value, ast.Name)
                and node.args[0].value.id == "codes"
            ):
                found.add(getattr(codes, node.args[0].attr))
    return found


def test_every_consensus_code_is_asserted() -> None:
    asserted = _codes_asserted_in_this_file()
    missing = codes.CONSENSUS_CODES - asserted
    assert not missing, f"no test asserts {sorted(missing)}"
    assert asserted <= codes.ALL_CODES
