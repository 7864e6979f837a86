"""Hypothesis properties of signatures, identifiers and block connection.

- Changing any signed field of a transaction (or lying to the signer about the spent amount)
  invalidates its signatures, and nothing but the signature check catches it.
- ``connect_block`` then ``disconnect_block`` restores the coins view exactly, for random blocks
  and chains of blocks; the undo data survives serialization; a mismatched undo is refused and
  changes nothing.
- txid ignores input public keys and signatures (wtxid does not); a coinbase's txid commits to
  its signature field.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from consensus import (
    COIN,
    MAX_MONEY,
    Block,
    BlockUndo,
    Coin,
    MemoryCoinsView,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    UndoMismatchError,
    ValidationError,
    check_block,
    check_transaction,
    connect_block,
    disconnect_block,
    get_params,
    hash160,
    pubkey_from_privkey,
    sha256d,
    sign,
    signature_hash,
    verify_signature,
    verify_tx_inputs,
)
from consensus.crypto import SECP256K1_N
from consensus.errors import BAD_TXNS_SIGNATURE
from tests.helpers import ChainBuilder, Key, coinbase, key, mine_block, spend

P = get_params("regtest")
CoinRef = tuple[OutPoint, TxOut, Key]
KA, KB = key(11), key(12)
KEYS = [key(i) for i in range(4)]
u32 = st.integers(0, 2**32 - 1)
h32 = st.binary(min_size=32, max_size=32)
h20 = st.binary(min_size=20, max_size=20)

# --- changing a signed field invalidates the signatures ------------------------------------------

COIN_A: CoinRef = (OutPoint(sha256d(b"A"), 0), TxOut(10 * COIN, KA.pubkey_hash), KA)
COIN_B: CoinRef = (OutPoint(sha256d(b"B"), 3), TxOut(10 * COIN, KB.pubkey_hash), KB)
SIGNED = spend(
    [COIN_A, COIN_B],
    [TxOut(3 * COIN, KA.pubkey_hash), TxOut(4 * COIN, KB.pubkey_hash)],
    locktime=17,
)
SPENT = {op: Coin(out, 5, False) for op, out, _ in (COIN_A, COIN_B)}
SPEND_HEIGHT = 50


def expect_signature_error(tx: Transaction, view: MemoryCoinsView) -> None:
    with pytest.raises(ValidationError) as info:
        verify_tx_inputs(tx, view, SPEND_HEIGHT, P)
    assert info.value.code == BAD_TXNS_SIGNATURE, info.value


def test_signed_base_transaction_is_valid() -> None:
    check_transaction(SIGNED, P)
    assert verify_tx_inputs(SIGNED, MemoryCoinsView(SPENT), SPEND_HEIGHT, P) == 13 * COIN


FIELDS = [
    "version",
    "locktime",
    "prev_txid 0",
    "prev_txid 1",
    "prev_index 0",
    "prev_index 1",
    "amount 0",
    "amount 1",
    "pubkey_hash 0",
    "pubkey_hash 1",
]


@st.composite
def mutations(draw: Any) -> tuple[str, Any]:
    name = draw(st.sampled_from(FIELDS))
    if name in ("version", "locktime") or name.startswith("prev_index"):
        value: Any = draw(u32)
    elif name.startswith("prev_txid"):
        value = draw(h32)
    elif name.startswith("amount"):
        # At most 13 TLY, so the outputs never exceed the 20 TLY of inputs: the signature check
        # is the one that has to catch the change (negative amounts are check_transaction's).
        value = draw(st.integers(-(2**63), 13 * COIN))
    else:
        value = draw(h20)
    return name, value


def mutate(tx: Transaction, name: str, value: Any) -> Transaction:
    field, _, pos = name.partition(" ")
    inputs, outputs = list(tx.inputs), list(tx.outputs)
    version, locktime = tx.version, tx.locktime
    if field == "version":
        version = value
    elif field == "locktime":
        locktime = value
    elif field in ("prev_txid", "prev_index"):
        i = int(pos)
        old = inputs[i].prevout
        new = OutPoint(value, old.index) if field == "prev_txid" else OutPoint(old.txid, value)
        inputs[i] = TxIn(new, inputs[i].pubkey, inputs[i].signature)
    elif field == "amount":
        outputs[int(pos)] = TxOut(value, outputs[int(pos)].pubkey_hash)
    else:
        outputs[int(pos)] = TxOut(outputs[int(pos)].amount, value)
    return Transaction(version, tuple(inputs), tuple(outputs), locktime)


@settings(max_examples=200, deadline=None)
@given(mutations())
def test_changing_any_signed_field_invalidates_signatures(mutation: tuple[str, Any]) -> None:
    name, value = mutation
    changed = mutate(SIGNED, name, value)
    assume(changed != SIGNED)
    # The view holds the original coins and, when a prevout moved, the very same coin at the
    # new place too: the input still exists, is mature, is owned by the same key and is worth the
    # same, so only the signature can tell.
    view = MemoryCoinsView(SPENT)
    for old, new in zip(SIGNED.inputs, changed.inputs, strict=True):
        if old.prevout != new.prevout:
            assume(new.prevout not in SPENT)
            view.add_coin(new.prevout, SPENT[old.prevout])
    assert changed.txid() != SIGNED.txid()
    assert verify_tx_inputs(SIGNED, view, SPEND_HEIGHT, P) == 13 * COIN
    expect_signature_error(changed, view)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([0, 1]), st.integers(0, MAX_MONEY))
def test_lying_about_the_spent_amount_invalidates(index: int, amount: int) -> None:
    prevout = SIGNED.inputs[index].prevout
    real = SPENT[prevout]
    assume(amount != real.output.amount)
    view = MemoryCoinsView(SPENT)
    view.add_coin(prevout, Coin(TxOut(amount, real.output.pubkey_hash), real.height, False))
    expect_signature_error(SIGNED, view)


privkeys = st.integers(1, SECP256K1_N - 1).map(lambda n: n.to_bytes(32, "big"))
SWAPS = ["signature: other digest", "signature: other key", "signature: random r, s"]
SWAPS += ["signature: the other input's", "pubkey: other key", "pubkey: other key, its coin"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([0, 1]), st.sampled_from(SWAPS), privkeys, h32, st.data())
def test_swapping_in_other_key_material_invalidates(
    index: int, swap: str, privkey: bytes, digest: bytes, data: Any
) -> None:
    """Well-formed key material that is not this input's: a 64-byte low-S signature that is a
    real signature of another digest, or of this digest by another key, or random scalars in
    range, or the other input's; a valid compressed public key of another key. Each is refused
    as ``bad-txns-signature``; where the key is swapped together with the coin's owner (so the
    ownership check passes), it is the signature check that refuses it."""
    old = SIGNED.inputs[index]
    view = MemoryCoinsView(SPENT)
    spent = SPENT[old.prevout]
    right_digest = signature_hash(SIGNED, index, spent.output, P)
    pubkey, signature = old.pubkey, old.signature
    if swap == "signature: other digest":
        assume(digest != right_digest)
        signature = sign(KEYS_BY_PKH[spent.output.pubkey_hash].privkey, digest)
        assert verify_signature(old.pubkey, signature, digest)  # a real one, of something else
    elif swap == "signature: other key":
        signature = sign(privkey, right_digest)
        assert verify_signature(pubkey_from_privkey(privkey), signature, right_digest)
    elif swap == "signature: random r, s":
        r = data.draw(st.integers(1, SECP256K1_N - 1), label="r")
        s = data.draw(st.integers(1, SECP256K1_N // 2), label="s (low)")
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif swap == "signature: the other input's":
        signature = SIGNED.inputs[1 - index].signature
    else:
        pubkey = pubkey_from_privkey(privkey)
        if swap == "pubkey: other key, its coin":
            view.add_coin(old.prevout, Coin(TxOut(spent.output.amount, hash160(pubkey)), 5, False))
    assume((pubkey, signature) != (old.pubkey, old.signature))
    assert len(pubkey) == 33 and pubkey[0] in (2, 3) and len(signature) == 64
    inputs = list(SIGNED.inputs)
    inputs[index] = TxIn(old.prevout, pubkey, signature)
    changed = Transaction(SIGNED.version, tuple(inputs), SIGNED.outputs, SIGNED.locktime)
    assert changed.txid() == SIGNED.txid()  # the txid cannot see it: the signature check must
    with pytest.raises(ValidationError) as info:
        verify_tx_inputs(changed, view, SPEND_HEIGHT, P)
    assert info.value.code == BAD_TXNS_SIGNATURE, info.value
    expected = "does not own" if swap == "pubkey: other key" else "invalid signature"
    assert expected in info.value.message, (swap, info.value)


KEYS_BY_PKH = {k.pubkey_hash: k for k in (KA, KB)}


# --- txid and wtxid ---------------------------------------------------------------------------

txins = st.builds(
    TxIn, st.builds(OutPoint, h32, u32), st.binary(max_size=40), st.binary(max_size=70)
)
txouts = st.builds(TxOut, st.integers(-(2**63), 2**63 - 1), h20)
non_coinbase = st.builds(
    Transaction,
    u32,
    st.lists(txins, min_size=1, max_size=4).map(tuple),
    st.lists(txouts, max_size=3).map(tuple),
    u32,
).filter(lambda tx: not tx.is_coinbase())


@settings(max_examples=150)
@given(non_coinbase, st.data())
def test_txid_ignores_pubkeys_and_signatures_wtxid_does_not(tx: Transaction, data: Any) -> None:
    i = data.draw(st.integers(0, len(tx.inputs) - 1), label="input")
    pubkey = data.draw(st.binary(max_size=40), label="pubkey")
    signature = data.draw(st.binary(max_size=70), label="signature")
    inputs = list(tx.inputs)
    inputs[i] = TxIn(inputs[i].prevout, pubkey, signature)
    other = Transaction(tx.version, tuple(inputs), tx.outputs, tx.locktime)
    assert other.txid() == tx.txid()
    assert (other.wtxid() == tx.wtxid()) == (other == tx)
    stripped = Transaction(
        tx.version, tuple(TxIn(x.prevout) for x in tx.inputs), tx.outputs, tx.locktime
    )
    assert stripped.txid() == tx.txid() == stripped.wtxid()


@settings(max_examples=100)
@given(u32, st.binary(max_size=96), st.binary(max_size=96))
def test_coinbase_txid_commits_to_its_signature_field(height: int, a: bytes, b: bytes) -> None:
    assume(a != b)
    one = coinbase(height, KA.pubkey_hash, 50 * COIN, a)
    two = coinbase(height, KA.pubkey_hash, 50 * COIN, b)
    assert one.is_coinbase() and two.is_coinbase()
    assert one.txid() != two.txid()
    assert one.txid() == one.wtxid()
    other_height = coinbase((height + 1) % 2**32, KA.pubkey_hash, 50 * COIN, a)
    assert other_height.txid() != one.txid()


# --- connect / disconnect -----------------------------------------------------------------------

BASE_HEIGHT = 112
MATURE = range(1, BASE_HEIGHT + 2 - P.coinbase_maturity)  # spendable at BASE_HEIGHT + 1


@functools.cache
def base_chain() -> ChainBuilder:
    """A regtest chain of 112 blocks, shared (read-only: examples copy its view)."""
    chain = ChainBuilder()
    chain.grow(BASE_HEIGHT)
    return chain


def split(total: int, weights: list[int]) -> list[int]:
    """``total`` in ``len(weights)`` positive parts roughly proportional to ``weights``."""
    n = len(weights)
    spare = total - n
    parts = [1 + spare * w // sum(weights) for w in weights]
    parts[-1] += total - sum(parts)
    return parts


def random_block_txs(data: Any, pool: list[CoinRef], max_txs: int) -> tuple[list[Transaction], int]:
    """Signed transactions spending from ``pool`` (which they update), and their total fee."""
    txs: list[Transaction] = []
    fees = 0
    for _ in range(data.draw(st.integers(0, max_txs), label="txs")):
        if not pool:
            break
        picks = data.draw(
            st.lists(
                st.integers(0, len(pool) - 1), min_size=1, max_size=min(3, len(pool)), unique=True
            ),
            label="inputs",
        )
        spent = [pool[i] for i in picks]
        if {op.txid for op, _, _ in spent} & {t.txid() for t in txs}:
            event("spends an output created earlier in the same block")
        for i in sorted(picks, reverse=True):
            del pool[i]
        n_out = data.draw(st.integers(1, 3), label="outputs")
        total = sum(out.amount for _, out, _ in spent)
        fee = data.draw(st.integers(0, min(10_000, total - n_out)), label="fee")
        owners = data.draw(st.lists(st.sampled_from(KEYS), min_size=n_out, max_size=n_out))
        weights = data.draw(st.lists(st.integers(1, 100), min_size=n_out, max_size=n_out))
        amounts = split(total - fee, weights)
        tx = spend(spent, [TxOut(a, o.pubkey_hash) for a, o in zip(amounts, owners, strict=True)])
        txs.append(tx)
        fees += fee
        pool.extend((OutPoint(tx.txid(), i), tx.outputs[i], owners[i]) for i in range(n_out))
    return txs, fees


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_connect_then_disconnect_restores_the_view(data: Any) -> None:
    chain = base_chain()
    view = MemoryCoinsView(chain.view.coins)
    pool: list[CoinRef] = [chain.coinbase_coin(h) for h in MATURE]
    prev_hash, height = chain.tip.hash(), chain.height
    history: list[tuple[Block, BlockUndo, dict[OutPoint, Coin]]] = []
    for _ in range(data.draw(st.integers(1, 4), label="blocks")):
        height += 1
        txs, fees = random_block_txs(data, pool, max_txs=5)
        block = mine_block(
            prev_hash, height, txs, P.genesis_time + 60 * height, KEYS[0].pubkey_hash, P, fees
        )
        check_block(block, P)
        before = dict(view.coins)
        undo = connect_block(block, height, view, P)
        # The view moved as the block says.
        assert len(undo.spent) == len(txs)
        for tx, coins in zip(txs, undo.spent, strict=True):
            assert len(coins) == len(tx.inputs)
            for txin in tx.inputs:
                assert view.get_coin(txin.prevout) is None
        assert view.get_coin(OutPoint(block.txs[0].txid(), 0)) == Coin(
            block.txs[0].outputs[0], height, True
        )
        assert sum(len(tx.outputs) - len(tx.inputs) for tx in txs) + 1 == len(view.coins) - len(
            before
        )
        # Undo data round-trips through its encoding, and the decoded copy is what we keep.
        raw = undo.serialize()
        decoded = BlockUndo.deserialize(raw)
        assert decoded == undo and decoded.serialize() == raw
        history.append((block, decoded, before))
        event(f"block with {len(txs)} spends")
        prev_hash = block.hash()
    for block, undo, before in reversed(history):
        disconnect_block(block, undo, view)
        assert view.coins == before
    assert view.coins == chain.view.coins


# --- mismatched undo ---------------------------------------------------------------------------


@pytest.fixture
def connected() -> tuple[MemoryCoinsView, Block, BlockUndo, Transaction]:
    """A view with a two-spend block connected on top of the base chain."""
    chain = base_chain()
    view = MemoryCoinsView(chain.view.coins)
    t1 = spend(
        [chain.coinbase_coin(1)],
        [TxOut(30 * COIN, KA.pubkey_hash), TxOut(20 * COIN, KB.pubkey_hash)],
    )
    t2 = spend(
        [(OutPoint(t1.txid(), 0), t1.outputs[0], KA), chain.coinbase_coin(2)],
        [TxOut(79 * COIN, KB.pubkey_hash)],
    )
    block = chain.next_block([t1, t2], fees=COIN)
    check_block(block, P)
    undo = connect_block(block, chain.height + 1, view, P)
    return view, block, undo, t1


def expect_mismatch(block: Block, undo: BlockUndo, view: MemoryCoinsView) -> None:
    before = dict(view.coins)
    with pytest.raises(UndoMismatchError):
        disconnect_block(block, undo, view)
    assert view.coins == before


def test_disconnect_with_the_right_undo_restores(connected: Any) -> None:
    view, block, undo, _ = connected
    disconnect_block(block, BlockUndo.deserialize(undo.serialize()), view)
    assert view.coins == base_chain().view.coins


@pytest.mark.parametrize(
    "damage",
    [
        "drop tx",
        "extra tx",
        "first tx one coin short",
        "first tx one coin extra",
        "last tx one coin short",
        "empty",
    ],
)
def test_disconnect_with_mismatched_undo_changes_nothing(connected: Any, damage: str) -> None:
    view, block, undo, _ = connected
    first, last = undo.spent
    spare = first[0]
    bad = {
        "drop tx": (first,),
        "extra tx": (first, last, ()),
        # The first spend is undone last: everything before it has been applied to the cache.
        "first tx one coin short": ((), last),
        "first tx one coin extra": ((*first, spare), last),
        "last tx one coin short": (first, last[:1]),
        "empty": (),
    }[damage]
    expect_mismatch(block, BlockUndo(bad), view)


def test_disconnect_twice_changes_nothing_the_second_time(connected: Any) -> None:
    view, block, undo, _ = connected
    disconnect_block(block, undo, view)
    expect_mismatch(block, undo, view)


def test_disconnect_of_a_block_never_connected(connected: Any) -> None:
    view, block, _, _ = connected
    other = mine_block(block.hash(), base_chain().height + 2, [], P.genesis_time, KA.pubkey_hash)
    expect_mismatch(other, BlockUndo(()), view)


def test_disconnect_below_the_tip_changes_nothing(connected: Any) -> None:
    view, block, undo, _ = connected
    height = base_chain().height + 2
    cb_out = OutPoint(block.txs[0].txid(), 0)
    # The next block spends an output of ``block`` (t2's): ``block`` is no longer the tip.
    t2 = block.txs[2]
    t3 = spend([(OutPoint(t2.txid(), 0), t2.outputs[0], KB)], [TxOut(78 * COIN, KA.pubkey_hash)])
    child = mine_block(block.hash(), height, [t3], P.genesis_time, KA.pubkey_hash, fees=COIN)
    check_block(child, P)
    connect_block(child, height, view, P)
    assert view.get_coin(cb_out) is not None
    expect_mismatch(block, undo, view)


def test_disconnect_refuses_undo_whose_outputs_differ_from_the_view() -> None:
    """Regression: disconnect_block checked only that the block's outputs existed, not that the
    coins in the view were those outputs (Core's "unclean" disconnect)."""
    from consensus import Coin, MemoryCoinsView, OutPoint, TxOut, UndoMismatchError
    from consensus import disconnect_block as disconnect
    from tests.helpers import ChainBuilder

    chain = ChainBuilder()
    chain.grow(2)
    block, undo = chain.blocks[-1], chain.undos[-1]
    cb = block.txs[0]
    outpoint = OutPoint(cb.txid(), 0)
    view = MemoryCoinsView(dict(chain.view.coins))
    view.coins[outpoint] = Coin(TxOut(cb.outputs[0].amount - 1, cb.outputs[0].pubkey_hash), 2, True)
    before = dict(view.coins)
    with pytest.raises(UndoMismatchError):
        disconnect(block, undo, view)
    assert view.coins == before


def test_disconnect_refuses_to_restore_a_coin_that_is_unspent() -> None:
    """Regression: restoring a spent coin over one already in the view went unnoticed."""
    from consensus import MemoryCoinsView, TxOut, UndoMismatchError
    from consensus import disconnect_block as disconnect
    from tests.helpers import ChainBuilder, key, spend

    chain = ChainBuilder()
    chain.grow(101)
    coin = chain.coinbase_coin(1)
    tx = spend([coin], [TxOut(coin[1].amount - 1000, key(1).pubkey_hash)])
    undo = chain.add(chain.next_block([tx], fees=1000))
    view = MemoryCoinsView(dict(chain.view.coins))
    view.coins[coin[0]] = undo.spent[0][0]  # the spent coin is back already
    before = dict(view.coins)
    with pytest.raises(UndoMismatchError):
        disconnect(chain.tip, undo, view)
    assert view.coins == before
