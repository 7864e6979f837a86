"""The canonical msgpack encoding (SPEC 2.1): round trips, and every non-canonical form refused.

Non-canonical bytes are built by hand: ``mp`` below is a tiny msgpack writer that produces exactly
``pack``'s output except at one chosen position of the object tree, where it writes the bytes it
is given (a wider integer, a ``str`` instead of ``bin``, a map, a float, an ext type...). Every
such input must be refused with ``bad-encoding`` and nothing else.
"""

from __future__ import annotations

import contextlib
import struct
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import (
    COIN,
    NULL_OUTPOINT,
    Block,
    BlockHeader,
    BlockUndo,
    Coin,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    ValidationError,
    pack,
    unpack_canonical,
)
from consensus.errors import BAD_ENCODING
from tests.helpers import key, mine_block, spend

Path = tuple[int, ...]
K1, K2 = key(1), key(2)


def expect_bad_encoding(fn: Callable[[Any], Any], data: Any) -> None:
    with pytest.raises(ValidationError) as info:
        fn(data)
    assert info.value.code == BAD_ENCODING


# --- a msgpack writer with one position overridden ----------------------------------------------


def _len_header(n: int, small: int | None, tags: tuple[int, int, int]) -> bytes:
    if small is not None and n < 16:
        return bytes([small | n])
    for tag, width in zip(tags, (1, 2, 4), strict=True):
        if tag and n < 1 << (8 * width):
            return bytes([tag]) + n.to_bytes(width, "big")
    raise ValueError(n)


def mp(obj: Any, at: Path | None = None, put: bytes = b"", path: Path = ()) -> bytes:
    """``pack(obj)``, except that the node at path ``at`` is written as the raw bytes ``put``."""
    if path == at:
        return put
    if type(obj) is list:
        head = _len_header(len(obj), 0x90, (0, 0xDC, 0xDD))
        return head + b"".join(mp(x, at, put, (*path, i)) for i, x in enumerate(obj))
    if type(obj) is bytes:
        return _len_header(len(obj), None, (0xC4, 0xC5, 0xC6)) + obj
    if type(obj) is int:
        return pack(obj)
    raise TypeError(type(obj))


_INT_FORMATS = [
    (0xCC, ">B"),
    (0xCD, ">H"),
    (0xCE, ">I"),
    (0xCF, ">Q"),
    (0xD0, ">b"),
    (0xD1, ">h"),
    (0xD2, ">i"),
    (0xD3, ">q"),
]


def int_encodings(v: int) -> list[bytes]:
    """Every msgpack encoding of the integer ``v``."""
    out = []
    if 0 <= v <= 0x7F or -32 <= v < 0:
        out.append(struct.pack(">b", v) if v < 0 else bytes([v]))
    for tag, fmt in _INT_FORMATS:
        with contextlib.suppress(struct.error):
            out.append(bytes([tag]) + struct.pack(fmt, v))
    return out


def alternatives(node: Any) -> list[bytes]:
    """Every non-canonical encoding of ``node`` that decodes to the same (or a bytes-equal) value.

    Integers in wider types; ``bin`` with wider length headers or as ``str``; arrays with wider
    length headers.
    """
    canonical = pack(node)
    if type(node) is int:
        alts = int_encodings(node)
    elif type(node) is bytes:
        n = len(node)
        heads = [bytes([0xC4]) + bytes([n])] if n < 256 else []
        heads += [b"\xc5" + n.to_bytes(2, "big"), b"\xc6" + n.to_bytes(4, "big")]
        heads += [bytes([0xA0 | n])] if n < 32 else []
        heads += [b"\xd9" + bytes([n])] if n < 256 else []
        heads += [b"\xda" + n.to_bytes(2, "big"), b"\xdb" + n.to_bytes(4, "big")]
        alts = [h + node for h in heads if n < 1 << 16 or h[0] in (0xC6, 0xDB)]
    else:
        body = b"".join(pack(x) for x in node)
        n = len(node)
        alts = [h + body for h in (b"\xdc" + n.to_bytes(2, "big"), b"\xdd" + n.to_bytes(4, "big"))]
    return [a for a in alts if a != canonical]


def node_at(obj: Any, path: Path) -> Any:
    for i in path:
        obj = obj[i]
    return obj


def all_paths(obj: Any, path: Path = ()) -> list[Path]:
    out = [path]
    if type(obj) is list:
        for i, x in enumerate(obj):
            out += all_paths(x, (*path, i))
    return out


def respellable_paths(obj: Any) -> list[Path]:
    """Positions that have a non-canonical spelling (an int64-only negative has none)."""
    return [p for p in all_paths(obj) if alternatives(node_at(obj, p))]


def int_paths(obj: Any) -> list[Path]:
    return [p for p in respellable_paths(obj) if type(node_at(obj, p)) is int]


# --- sample objects -----------------------------------------------------------------------------


def sample_tx() -> Transaction:
    a = (OutPoint(b"\x01" * 32, 1), TxOut(10 * COIN, K1.pubkey_hash), K1)
    b = (OutPoint(b"\x02" * 32, 300), TxOut(5 * COIN, K2.pubkey_hash), K2)
    return spend([a, b], [TxOut(200, K2.pubkey_hash), TxOut(14 * COIN, K1.pubkey_hash)], locktime=7)


def sample_block() -> Block:
    return mine_block(b"\x05" * 32, 3, [sample_tx()], 1_800_000_000, K1.pubkey_hash, fees=1)


def sample_coin() -> Coin:
    return Coin(TxOut(70_000, K1.pubkey_hash), 1234, True)


def sample_undo() -> BlockUndo:
    return BlockUndo(((sample_coin(), Coin(TxOut(1, K2.pubkey_hash), 5, False)), ()))


def test_mp_writes_exactly_what_pack_writes() -> None:
    for obj in (sample_tx(), sample_block()):
        assert mp(obj.to_obj()) == obj.serialize()
    assert mp(sample_coin().to_obj()) == sample_coin().serialize()
    for v in (0, 1, 127, 128, 255, 256, 2**32 - 1, 2**32, -1, -32, -33, -(2**63), 2**64 - 1):
        encs = int_encodings(v)
        assert pack(v) in encs
        assert all(msgpack.unpackb(e) == v for e in encs)


def test_canonical_samples_decode() -> None:
    tx, block = sample_tx(), sample_block()
    assert Transaction.deserialize(tx.serialize()) == tx
    assert Block.deserialize(block.serialize()) == block
    assert Coin.deserialize(sample_coin().serialize()) == sample_coin()
    assert BlockUndo.deserialize(sample_undo().serialize()) == sample_undo()
    assert BlockHeader.deserialize(block.header.serialize()) == block.header


# --- wider integers, str for bin, non-minimal headers -------------------------------------------

TX = sample_tx().to_obj()
# Paths into the transaction array: [version, [inputs], [outputs], locktime].
VERSION, LOCKTIME = (0,), (3,)
PREV_TXID, PREV_INDEX, PUBKEY, SIGNATURE = (1, 0, 0), (1, 0, 1), (1, 0, 2), (1, 0, 3)
AMOUNT, PKH = (2, 1, 0), (2, 1, 1)


@pytest.mark.parametrize(
    ("at", "put"),
    [
        (VERSION, b"\xcc\x01"),  # 1 as uint8
        (VERSION, b"\xcd\x00\x01"),  # 1 as uint16
        (VERSION, b"\xd0\x01"),  # 1 as int8
        (LOCKTIME, b"\xcd\x00\x07"),  # 7 as uint16
        (LOCKTIME, b"\xd3" + (7).to_bytes(8, "big")),  # 7 as int64
        ((1, 1, 1), b"\xce\x00\x00\x01\x2c"),  # 300 as uint32
        ((1, 1, 1), b"\xd1\x01\x2c"),  # 300 as int16
        ((2, 0, 0), b"\xcd\x00\xc8"),  # 200 as uint16 (canonical is uint8)
        (AMOUNT, b"\xd3" + (14 * COIN).to_bytes(8, "big")),  # positive amount as int64
        (AMOUNT, b"\xcf" + (14 * COIN).to_bytes(8, "big")),  # as uint64 (canonical: uint32)
    ],
)
def test_wider_integer_is_bad_encoding(at: Path, put: bytes) -> None:
    assert msgpack.unpackb(put) == node_at(TX, at)
    expect_bad_encoding(Transaction.deserialize, mp(TX, at, put))


@pytest.mark.parametrize("at", [PREV_TXID, PUBKEY, SIGNATURE, PKH])
def test_str_instead_of_bin_is_bad_encoding(at: Path) -> None:
    value = node_at(TX, at)
    head = bytes([0xA0 | len(value)]) if len(value) < 32 else b"\xd9" + bytes([len(value)])
    expect_bad_encoding(Transaction.deserialize, mp(TX, at, head + value))


def test_str_header_in_block_is_bad_encoding() -> None:
    block = sample_block().to_obj()
    expect_bad_encoding(Block.deserialize, mp(block, (0,), b"\xd9\x50" + block[0]))


@pytest.mark.parametrize("at", [(), (1,), (2,), (1, 0), (2, 0)])
def test_array16_header_is_bad_encoding(at: Path) -> None:
    node = node_at(TX, at)
    wide = b"\xdc" + len(node).to_bytes(2, "big") + b"".join(pack(x) for x in node)
    expect_bad_encoding(Transaction.deserialize, mp(TX, at, wide))


@pytest.mark.parametrize("at", [PREV_TXID, PUBKEY, SIGNATURE, PKH])
def test_bin16_header_is_bad_encoding(at: Path) -> None:
    value = node_at(TX, at)
    expect_bad_encoding(
        Transaction.deserialize, mp(TX, at, b"\xc5" + len(value).to_bytes(2, "big") + value)
    )


# --- maps, floats, bool, nil, ext ---------------------------------------------------------------

EMPTY_MAP, SMALL_MAP = b"\x80", pack({b"k": 1})
FOREIGN = {
    "empty map": EMPTY_MAP,
    "map": SMALL_MAP,
    "float64": pack(1.0),
    "float32": b"\xca" + struct.pack(">f", 1.0),
    "true": b"\xc3",
    "false": b"\xc2",
    "nil": b"\xc0",
    "fixext1": b"\xd4\x01\x00",
    "ext8": b"\xc7\x01\x05x",
    "timestamp": b"\xd6\xff" + (1).to_bytes(4, "big"),
}
PLACES = {
    "tx": (),
    "inputs": (1,),
    "input": (1, 0),
    "outputs": (2,),
    "output": (2, 0),
    "version": VERSION,
    "prev_index": PREV_INDEX,
    "amount": AMOUNT,
    "locktime": LOCKTIME,
    "prev_txid": PREV_TXID,
    "pubkey": PUBKEY,
    "signature": SIGNATURE,
    "pubkey_hash": PKH,
}


@pytest.mark.parametrize("kind", list(FOREIGN))
@pytest.mark.parametrize("place", list(PLACES))
def test_foreign_type_anywhere_in_tx_is_bad_encoding(place: str, kind: str) -> None:
    expect_bad_encoding(Transaction.deserialize, mp(TX, PLACES[place], FOREIGN[kind]))


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_foreign_type_in_block_coin_and_undo_is_bad_encoding(kind: str) -> None:
    put = FOREIGN[kind]
    block = sample_block().to_obj()
    for at in [(), (0,), (1,), (1, 0), (1, 1, 2, 0, 0)]:
        expect_bad_encoding(Block.deserialize, mp(block, at, put))
    coin = sample_coin().to_obj()
    for at in [(), (0,), (1,), (2,), (3,)]:
        expect_bad_encoding(Coin.deserialize, mp(coin, at, put))
    undo = [[c.to_obj() for c in coins] for coins in sample_undo().spent]
    for at in [(), (0,), (0, 0), (0, 1, 2)]:
        expect_bad_encoding(BlockUndo.deserialize, mp(undo, at, put))


def test_float_with_integral_value_is_not_an_integer() -> None:
    # float64 re-encodes to itself, so the canonical check alone cannot catch it: the type must.
    raw = mp(TX, AMOUNT, pack(float(14 * COIN)))
    assert pack(msgpack.unpackb(raw)) == raw
    expect_bad_encoding(Transaction.deserialize, raw)


# --- wrong arity ----------------------------------------------------------------------------------


def _edit(obj: Any, path: Path, fn: Callable[[list[Any]], list[Any]]) -> Any:
    if not path:
        return fn(list(obj))
    copy = list(obj)
    copy[path[0]] = _edit(copy[path[0]], path[1:], fn)
    return copy


@pytest.mark.parametrize(
    ("name", "decode", "obj", "at"),
    [
        ("tx", Transaction.deserialize, TX, ()),
        ("input", Transaction.deserialize, TX, (1, 0)),
        ("output", Transaction.deserialize, TX, (2, 1)),
        ("block", Block.deserialize, sample_block().to_obj(), ()),
        ("coin", Coin.deserialize, sample_coin().to_obj(), ()),
        ("undo coin", BlockUndo.deserialize, [[sample_coin().to_obj()]], (0, 0)),
    ],
)
def test_extra_or_missing_field_is_bad_encoding(
    name: str, decode: Callable[[bytes], Any], obj: Any, at: Path
) -> None:
    assert decode(pack(obj)) is not None
    expect_bad_encoding(decode, pack(_edit(obj, at, lambda f: [*f, 0])))
    expect_bad_encoding(decode, pack(_edit(obj, at, lambda f: [*f, b""])))
    expect_bad_encoding(decode, pack(_edit(obj, at, lambda f: f[:-1])))
    expect_bad_encoding(decode, pack(_edit(obj, at, lambda f: [])))


def test_inputs_and_outputs_must_be_arrays_of_arrays() -> None:
    expect_bad_encoding(Transaction.deserialize, pack([1, [b"x"], [], 0]))
    expect_bad_encoding(Transaction.deserialize, pack([1, [], [7], 0]))
    expect_bad_encoding(Transaction.deserialize, pack([1, b"", [], 0]))
    expect_bad_encoding(Block.deserialize, pack([sample_block().to_obj()[0], [1]]))
    expect_bad_encoding(BlockUndo.deserialize, pack([1]))
    expect_bad_encoding(BlockUndo.deserialize, pack(b"undo"))


# --- trailing bytes and truncations ---------------------------------------------------------------

DECODERS: list[tuple[str, Callable[[bytes], Any], bytes]] = [
    ("tx", Transaction.deserialize, sample_tx().serialize()),
    ("block", Block.deserialize, sample_block().serialize()),
    ("coin", Coin.deserialize, sample_coin().serialize()),
    ("undo", BlockUndo.deserialize, sample_undo().serialize()),
]


@pytest.mark.parametrize(("name", "decode", "raw"), DECODERS)
def test_trailing_bytes_are_bad_encoding(
    name: str, decode: Callable[[bytes], Any], raw: bytes
) -> None:
    decode(raw)
    for tail in (b"\x00", b"\xc0", raw):
        expect_bad_encoding(decode, raw + tail)


@pytest.mark.parametrize(("name", "decode", "raw"), DECODERS)
def test_every_truncation_is_bad_encoding(
    name: str, decode: Callable[[bytes], Any], raw: bytes
) -> None:
    for n in range(len(raw)):
        expect_bad_encoding(decode, raw[:n])


# --- sizes and ranges of fields -------------------------------------------------------------------


@pytest.mark.parametrize(("at", "size"), [(PREV_TXID, 31), (PREV_TXID, 33), (PKH, 19), (PKH, 21)])
def test_fixed_size_bytes_fields(at: Path, size: int) -> None:
    raw = pack(_edit(TX, at[:-1], lambda f: [*f[: at[-1]], b"\x07" * size, *f[at[-1] + 1 :]]))
    expect_bad_encoding(Transaction.deserialize, raw)


@pytest.mark.parametrize("size", [0, 79, 81])
def test_header_of_wrong_size(size: int) -> None:
    block = sample_block().to_obj()
    header = (block[0] + b"\x00")[:size]
    expect_bad_encoding(Block.deserialize, pack([header, block[1]]))
    expect_bad_encoding(BlockHeader.deserialize, header)


def test_coin_pubkey_hash_of_wrong_size() -> None:
    for size in (19, 21):
        expect_bad_encoding(Coin.deserialize, pack([1, b"\x01" * size, 1, 0]))


@pytest.mark.parametrize(
    ("at", "value"),
    [
        (VERSION, 2**32),
        (VERSION, -1),
        (PREV_INDEX, 2**32),
        (PREV_INDEX, -1),
        (LOCKTIME, 2**32),
        (LOCKTIME, -1),
        (AMOUNT, 2**63),
        (AMOUNT, 2**64 - 1),
    ],
)
def test_out_of_range_integers(at: Path, value: int) -> None:
    raw = pack(_edit(TX, at[:-1], lambda f: [*f[: at[-1]], value, *f[at[-1] + 1 :]]))
    expect_bad_encoding(Transaction.deserialize, raw)


def test_in_range_extremes_decode() -> None:
    edges = [(VERSION, 2**32 - 1), (PREV_INDEX, 2**32 - 1), (LOCKTIME, 2**32 - 1)]
    edges += [(AMOUNT, 2**63 - 1), (AMOUNT, -(2**63))]
    for at, value in edges:
        raw = pack(_edit(TX, at[:-1], lambda f: [*f[: at[-1]], value, *f[at[-1] + 1 :]]))  # noqa: B023
        assert node_at(Transaction.deserialize(raw).to_obj(), at) == value


@pytest.mark.parametrize("fields", [[1, b"\x01" * 20, 2**32, 0], [1, b"\x01" * 20, 1, 2]])
def test_coin_out_of_range(fields: list[Any]) -> None:
    expect_bad_encoding(Coin.deserialize, pack(fields))


# --- not bytes at all -----------------------------------------------------------------------------

NOT_BYTES = {
    "str": "a string",
    "empty str": "",
    "None": None,
    "int 0": 0,
    "int 5": 5,
    "float": 1.5,
    "list of byte values": [0x94, 1, 0x90, 0x90, 0],  # the byte values of a valid transaction
    "object": object(),
}
ALL_DECODERS = {
    "Transaction": Transaction.deserialize,
    "Block": Block.deserialize,
    "Coin": Coin.deserialize,
    "BlockUndo": BlockUndo.deserialize,
    "BlockHeader": BlockHeader.deserialize,
    "unpack_canonical": unpack_canonical,
}


@pytest.mark.parametrize("value", list(NOT_BYTES))
@pytest.mark.parametrize("decoder", list(ALL_DECODERS))
def test_non_bytes_input_is_bad_encoding(decoder: str, value: str) -> None:
    expect_bad_encoding(ALL_DECODERS[decoder], NOT_BYTES[value])


def test_bytes_like_inputs_are_accepted() -> None:
    raw = sample_tx().serialize()
    assert Transaction.deserialize(bytearray(raw)) == sample_tx()
    assert Transaction.deserialize(memoryview(raw)) == sample_tx()
    assert Transaction.deserialize(bytearray(raw)).serialize() == raw


# --- hostile length headers -------------------------------------------------------------------

HUGE = [
    b"\xdd\xff\xff\xff\xff\x00",  # array32 of 4 Gi elements
    b"\xc6\xff\xff\xff\xffab",  # bin32 of 4 GiB
    b"\xdb\xff\xff\xff\xffab",  # str32 of 4 GiB
    b"\xdf\xff\xff\xff\xff\x00\x00",  # map32 of 4 Gi pairs
    b"\xc9\xff\xff\xff\xff\x01ab",  # ext32 of 4 GiB
    b"\x94\x01\xdd\xff\xff\xff\xff\x90\x00",  # a tx whose inputs claim 4 Gi elements
    b"\x94\x01\x91\x94\xc6\xff\xff\xff\xff\x00",  # a tx whose prev_txid claims 4 GiB
]


@pytest.mark.parametrize("raw", HUGE, ids=lambda r: r[:3].hex())
@pytest.mark.parametrize("decoder", ["Transaction", "Block", "Coin", "BlockUndo"])
def test_huge_length_header_fails_fast_without_allocating(decoder: str, raw: bytes) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        expect_bad_encoding(ALL_DECODERS[decoder], raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 1 << 20, f"decoding {len(raw)} bytes allocated {peak} bytes"


def test_deep_nesting_is_bad_encoding() -> None:
    for depth in (100, 5000):
        expect_bad_encoding(Transaction.deserialize, b"\x91" * depth + b"\x00")


# --- hypothesis: round trips and every non-canonical variant ----------------------------------

u32 = st.integers(0, 2**32 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
h32 = st.binary(min_size=32, max_size=32)
outpoints = st.one_of(st.builds(OutPoint, h32, u32), st.just(NULL_OUTPOINT))
txins = st.builds(TxIn, outpoints, st.binary(max_size=40), st.binary(max_size=80))
txouts = st.builds(TxOut, i64, st.binary(min_size=20, max_size=20))
transactions = st.builds(
    Transaction,
    u32,
    st.lists(txins, max_size=4).map(tuple),
    st.lists(txouts, max_size=4).map(tuple),
    u32,
)
headers = st.builds(BlockHeader, u32, h32, h32, u32, u32, u32)
blocks = st.builds(Block, headers, st.lists(transactions, max_size=4).map(tuple))
coins = st.builds(Coin, txouts, u32, st.booleans())
undos = st.builds(
    BlockUndo, st.lists(st.lists(coins, max_size=4).map(tuple), max_size=4).map(tuple)
)


@settings(max_examples=150)
@given(txins, txouts)
def test_roundtrip_txin_and_txout(txin: TxIn, txout: TxOut) -> None:
    assert TxIn.from_obj(unpack_canonical(pack(txin.to_obj()))) == txin
    assert TxOut.from_obj(unpack_canonical(pack(txout.to_obj()))) == txout


@settings(max_examples=150)
@given(transactions)
def test_roundtrip_transaction(tx: Transaction) -> None:
    raw = tx.serialize()
    back = Transaction.deserialize(raw)
    assert back == tx
    assert back.serialize() == raw
    assert pack(back.to_obj()) == raw  # re-encoding from the fields, not from a cache
    assert back.txid() == tx.txid() and back.wtxid() == tx.wtxid()


@settings(max_examples=150)
@given(headers)
def test_roundtrip_header(header: BlockHeader) -> None:
    raw = header.serialize()
    assert len(raw) == 80
    back = BlockHeader.deserialize(raw)
    assert back == header and back.serialize() == raw


@settings(max_examples=100)
@given(blocks)
def test_roundtrip_block(block: Block) -> None:
    raw = block.serialize()
    back = Block.deserialize(raw)
    assert back == block
    assert back.serialize() == raw
    assert pack(back.to_obj()) == raw
    assert back.hash() == block.hash()


@settings(max_examples=150)
@given(coins, undos)
def test_roundtrip_coin_and_undo(coin: Coin, undo: BlockUndo) -> None:
    assert Coin.deserialize(coin.serialize()) == coin
    assert Coin.deserialize(coin.serialize()).serialize() == coin.serialize()
    assert BlockUndo.deserialize(undo.serialize()) == undo
    assert BlockUndo.deserialize(undo.serialize()).serialize() == undo.serialize()


@settings(max_examples=200)
@given(transactions, st.data())
def test_any_integer_field_in_a_wider_type_is_bad_encoding(tx: Transaction, data: Any) -> None:
    obj = tx.to_obj()
    at = data.draw(st.sampled_from(int_paths(obj)), label="path")
    wide = data.draw(st.sampled_from(alternatives(node_at(obj, at))), label="encoding")
    raw = mp(obj, at, wide)
    assert msgpack.unpackb(raw, raw=True) == obj  # the same value, spelled differently
    expect_bad_encoding(Transaction.deserialize, raw)


@settings(max_examples=200)
@given(transactions, st.data())
def test_any_node_spelled_non_canonically_is_bad_encoding(tx: Transaction, data: Any) -> None:
    obj = tx.to_obj()
    at = data.draw(st.sampled_from(respellable_paths(obj)), label="path")
    alts = alternatives(node_at(obj, at))
    wide = data.draw(st.sampled_from(alts), label="encoding")
    expect_bad_encoding(Transaction.deserialize, mp(obj, at, wide))


@settings(max_examples=100)
@given(blocks.filter(lambda b: any(b.txs)), st.data())
def test_wider_spelling_inside_a_block_is_bad_encoding(block: Block, data: Any) -> None:
    obj = block.to_obj()
    at = data.draw(st.sampled_from(respellable_paths(obj)), label="path")
    wide = data.draw(st.sampled_from(alternatives(node_at(obj, at))), label="encoding")
    expect_bad_encoding(Block.deserialize, mp(obj, at, wide))


@settings(max_examples=100)
@given(undos, st.data())
def test_wider_spelling_inside_undo_is_bad_encoding(undo: BlockUndo, data: Any) -> None:
    obj = [[c.to_obj() for c in spent] for spent in undo.spent]
    at = data.draw(st.sampled_from(respellable_paths(obj)), label="path")
    wide = data.draw(st.sampled_from(alternatives(node_at(obj, at))), label="encoding")
    expect_bad_encoding(BlockUndo.deserialize, mp(obj, at, wide))
