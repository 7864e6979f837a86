"""Fuzzers for every decoder that reads bytes it did not write itself (SPEC 2.1, 3.4).

Targets, each its own hypothesis test (a parametrized case counts as one target):

- consensus: ``Transaction.deserialize``, ``Block.deserialize``, ``BlockHeader.deserialize``,
  ``Coin.deserialize``, ``BlockUndo.deserialize``, ``unpack_canonical``. Property: the decoder
  returns an object whose fresh encoding (``pack(obj.to_obj())``, not the cached input) equals
  the input byte for byte, or raises ``ValidationError`` with code ``bad-encoding``; never any
  other exception, never slower than ``HANG_SECONDS``.
- P2P: ``messages.parse(schema, body)`` for every schema in ``messages.SCHEMAS``. Property: a
  dict with exactly the schema's fields that parses again to itself once re-encoded, or
  ``ProtocolError`` (``bad-message`` or ``too-many-items``); nothing else. Separately, every
  message built to the schemas of ``docs/PROTOCOL.md`` parses to itself, and one with a single
  field out of its limits is refused.
- stored values: ``BlockIndexEntry.deserialize`` and ``UtxoStats.deserialize``. These read only
  what the node wrote, and document no error type: every value the node can write must decode to
  itself, and garbage must fail (with some ``Exception``) or return, quickly.

Inputs: random bytes; mutations of valid encodings (bit flips, byte sets, truncations,
deletions, insertions, duplicated slices, splices, inflated length headers); msgpack re-typing of
one node of a valid tree (any other msgpack type, arity changes, out-of-range integers),
re-encoded canonically or with wider integer and length headers; and structured-but-wrong msgpack
trees. The strategies are shared with ``test_fuzz_http.py``.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import msgpack
import pytest
from hypothesis import currently_in_test_context, example, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from consensus import (
    NETWORKS,
    Block,
    BlockHeader,
    BlockUndo,
    Coin,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    ValidationError,
    get_params,
)
from consensus.encoding import pack, unpack_canonical
from consensus.errors import ALL_CODES, BAD_ENCODING
from node.chainstate.blockindex import BlockIndexEntry, Status
from node.chainstate.utxohash import ACC_BITS, UtxoStats
from node.p2p import messages as m
from tests.helpers import ChainBuilder, key, spend

FUZZ = settings.get_profile("tally-fuzz")


def event(what: str) -> None:
    """Hypothesis's ``event``, also callable from the plain regression tests."""
    if currently_in_test_context():
        hypothesis_event(what)


HANG_SECONDS = 2.0
"""No decoder may spend longer than this on one input (they are all at most a few MB)."""

REGTEST = get_params("regtest")

# --- seeds: real objects, so mutations start from what a node actually sends -------------------


def _seed_chain() -> tuple[list[Block], list[Transaction]]:
    chain = ChainBuilder()
    chain.grow(3)
    signed = spend(
        [chain.coinbase_coin(1)],
        [TxOut(10**8, key(1).pubkey_hash), TxOut(2 * 10**8, key(2).pubkey_hash)],
    )
    blocks = [*chain.blocks, chain.next_block([signed])]
    txs = [signed, *(b.txs[0] for b in blocks)]
    return blocks, txs


SEED_BLOCKS, SEED_TXS = _seed_chain()
SEED_COINS = [Coin(tx.outputs[0], 7, tx.is_coinbase()) for tx in SEED_TXS]
SEED_UNDOS = [BlockUndo(()), BlockUndo(((SEED_COINS[0],), (SEED_COINS[1], SEED_COINS[2])))]

# Well-known values of each fixed bin size: the magics and genesis hashes of every network and
# the seed hashes, so a fuzzed handshake or getdata can get past the first check.
KNOWN_BIN: dict[int, list[bytes]] = {
    4: [p.magic for p in NETWORKS.values()],
    8: [b"\x00" * 8, b"\xff" * 8],
    20: [key(i).pubkey_hash for i in range(3)],
    32: [
        *(p.genesis_hash for p in NETWORKS.values()),
        *(b.hash() for b in SEED_BLOCKS),
        *(tx.txid() for tx in SEED_TXS),
        b"\x00" * 32,
        b"\xff" * 32,
    ],
    80: [b.header.serialize() for b in SEED_BLOCKS],
}

# --- a msgpack writer that can spell things wider than msgpack-python does ----------------------


@dataclass(frozen=True)
class RawExt:
    """An ext value of any type code (``msgpack.ExtType`` refuses the reserved, negative ones)."""

    code: int
    data: bytes


Choose = Callable[[int], int]
"""Picks one of ``n`` spellings; 0 is the one ``msgpack.packb(use_bin_type=True)`` writes."""


def _int_spellings(v: int) -> list[bytes]:
    out = []
    if 0 <= v <= 0x7F:
        out.append(bytes([v]))
    if -32 <= v < 0:
        out.append(struct.pack(">b", v))
    for code, fmt, lo, hi in (
        (0xCC, ">B", 0, 0xFF),
        (0xCD, ">H", 0, 0xFFFF),
        (0xCE, ">I", 0, 0xFFFF_FFFF),
        (0xCF, ">Q", 0, 2**64 - 1),
        (0xD0, ">b", -(2**7), 2**7 - 1),
        (0xD1, ">h", -(2**15), 2**15 - 1),
        (0xD2, ">i", -(2**31), 2**31 - 1),
        (0xD3, ">q", -(2**63), 2**63 - 1),
    ):
        if lo <= v <= hi:
            out.append(bytes([code]) + struct.pack(fmt, v))
    return out


WIDTHS = {">B": 0xFF, ">H": 0xFFFF, ">I": 0xFFFF_FFFF}
BIN_HEADERS = ((0xC4, ">B"), (0xC5, ">H"), (0xC6, ">I"))
STR_HEADERS = ((0xD9, ">B"), (0xDA, ">H"), (0xDB, ">I"))
ARRAY_HEADERS = ((0xDC, ">H"), (0xDD, ">I"))
MAP_HEADERS = ((0xDE, ">H"), (0xDF, ">I"))
EXT_HEADERS = ((0xC7, ">B"), (0xC8, ">H"), (0xC9, ">I"))


def _len_spellings(
    n: int, fix: tuple[int, int] | None, codes: tuple[tuple[int, str], ...]
) -> list[bytes]:
    out = []
    if fix is not None and n <= fix[1]:
        out.append(bytes([fix[0] | n]))
    for code, fmt in codes:
        if n <= WIDTHS[fmt]:
            out.append(bytes([code]) + struct.pack(fmt, n))
    return out


def loose_pack(obj: Any, choose: Choose) -> bytes:
    """``obj`` in msgpack, each integer and length header spelled as ``choose`` picks."""
    if obj is None:
        return b"\xc0"
    if obj is True or obj is False:
        return b"\xc3" if obj else b"\xc2"
    if isinstance(obj, int):
        forms = _int_spellings(obj)
        return forms[choose(len(forms))]
    if isinstance(obj, float):
        forms = [b"\xcb" + struct.pack(">d", obj)]
        try:
            single = struct.pack(">f", obj)
        except OverflowError:
            single = b""
        if single and (math.isnan(obj) or struct.unpack(">f", single)[0] == obj):
            forms.append(b"\xca" + single)
        return forms[choose(len(forms))]
    if isinstance(obj, bytes | bytearray):
        forms = _len_spellings(len(obj), None, BIN_HEADERS)
        return forms[choose(len(forms))] + bytes(obj)
    if isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        forms = _len_spellings(len(data), (0xA0, 31), STR_HEADERS)
        return forms[choose(len(forms))] + data
    if isinstance(obj, msgpack.ExtType | RawExt):
        n = len(obj.data)
        fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
        forms = [bytes([fixed[n]])] if n in fixed else []
        forms += _len_spellings(n, None, EXT_HEADERS)
        return forms[choose(len(forms))] + struct.pack(">b", obj.code) + obj.data
    if isinstance(obj, list | tuple):
        forms = _len_spellings(len(obj), (0x90, 15), ARRAY_HEADERS)
        return forms[choose(len(forms))] + b"".join(loose_pack(x, choose) for x in obj)
    if isinstance(obj, dict):
        forms = _len_spellings(len(obj), (0x80, 15), MAP_HEADERS)
        return forms[choose(len(forms))] + b"".join(
            loose_pack(k, choose) + loose_pack(v, choose) for k, v in obj.items()
        )
    raise TypeError(f"cannot encode {type(obj).__name__}")


def test_loose_pack_spells_canonically_when_choosing_the_first() -> None:
    tree = [0, -1, -33, 127, 128, 2**64 - 1, -(2**63), b"x" * 300, "s" * 40, [None, True], {1: 2.5}]
    tree.append(msgpack.ExtType(5, b""))
    assert loose_pack(tree, lambda n: 0) == msgpack.packb(tree, use_bin_type=True)
    assert msgpack.unpackb(loose_pack(tree, lambda n: n - 1), strict_map_key=False) == (
        msgpack.unpackb(msgpack.packb(tree, use_bin_type=True), strict_map_key=False)
    )


@st.composite
def encodings(draw: DrawFn, tree: Any) -> bytes:
    """``tree`` encoded canonically, with msgpack-python's own options, or loosely."""
    how = draw(st.sampled_from(["canonical", "canonical", "loose", "old-str", "single-float"]))
    if how == "canonical":
        return loose_pack(tree, lambda n: 0)
    if how == "loose":
        return loose_pack(tree, lambda n: draw(st.integers(0, n - 1)))
    try:
        return msgpack.packb(  # type: ignore[no-any-return]
            tree, use_bin_type=how != "old-str", use_single_float=how == "single-float"
        )
    except (TypeError, ValueError, OverflowError):
        return loose_pack(tree, lambda n: 0)


# --- random msgpack values ---------------------------------------------------------------------

EDGE_INTS = [
    0,
    1,
    -1,
    -32,
    -33,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFFF,
    0x10000,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**31),
    -(2**63),
]
any_int = st.integers(-(2**63), 2**64 - 1) | st.sampled_from(EDGE_INTS)
ext_types = st.builds(
    RawExt,
    st.integers(-128, 127),
    st.sampled_from([b"", b"\x00", b"\x00" * 4, b"\x00" * 8, b"\x00" * 12])
    | st.binary(max_size=20),
)
leaves: SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    any_int,
    st.floats(),
    st.binary(max_size=90),
    st.text(max_size=30),
    ext_types,
)
trees: SearchStrategy[Any] = st.recursive(
    leaves,
    lambda kids: (
        st.lists(kids, max_size=6)
        | st.dictionaries(st.text(max_size=6) | st.binary(max_size=6) | any_int, kids, max_size=4)
    ),
    max_leaves=25,
)
random_trees: SearchStrategy[bytes] = trees.flatmap(encodings)

# --- mutations of valid encodings --------------------------------------------------------------

HEADER_BYTES = [
    *range(0xC0, 0xE0),  # nil, bool, bin, ext, float, ints, str8-32, array16/32, map16/32
    0x80,
    0x8F,
    0x90,
    0x9F,
    0xA0,
    0xBF,
    0x00,
    0x7F,
    0xE0,
    0xFF,
]
INFLATED = [
    b"\xdd\xff\xff\xff\xff",
    b"\xdc\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xdb\x7f\xff\xff\xff",
]
MUTATIONS = [
    "flip",
    "set",
    "header",
    "truncate",
    "delete",
    "insert",
    "duplicate",
    "append",
    "inflate",
    "splice",
]


@st.composite
def mutated(draw: DrawFn, seeds: SearchStrategy[bytes]) -> bytes:
    """A valid encoding with one to four byte-level mutations."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(MUTATIONS))
        n = len(data)
        at = draw(st.integers(0, max(0, n - 1)))
        if op == "flip" and n:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[at] = draw(st.integers(0, 255))
        elif op == "header" and n:
            data[at] = draw(st.sampled_from(HEADER_BYTES))
        elif op == "truncate":
            del data[draw(st.integers(0, n)) :]
        elif op == "delete" and n:
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "duplicate" and n:
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=8))
        elif op == "inflate":
            data[at : at + draw(st.integers(0, 5))] = draw(st.sampled_from(INFLATED))
        elif op == "splice":
            other = draw(seeds)
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


# --- msgpack re-typing: one node of a valid tree becomes something else -------------------------

Path = tuple[Any, ...]


def paths_of(tree: Any, here: Path = ()) -> list[Path]:
    out = [here]
    if isinstance(tree, list):
        for i, item in enumerate(tree):
            out += paths_of(item, (*here, i))
    elif isinstance(tree, dict):
        for k, v in tree.items():
            out += paths_of(v, (*here, k))
    return out


def replace_at(tree: Any, path: Path, new: Callable[[Any], Any]) -> Any:
    if not path:
        return new(tree)
    head, rest = path[0], path[1:]
    if isinstance(tree, list):
        return [replace_at(x, rest, new) if i == head else x for i, x in enumerate(tree)]
    return {k: replace_at(v, rest, new) if k == head else v for k, v in tree.items()}


def retype_choices(old: Any) -> SearchStrategy[Any]:
    """What a node holding ``old`` may become: another type, or its own type out of shape."""
    others: list[SearchStrategy[Any]] = [leaves, trees]
    if isinstance(old, bytes):
        others += [
            st.just(old.decode("latin-1")),  # str where bin belongs
            st.just(old[:-1]),
            st.just(old + b"\x00"),
            st.just(list(old[:4])),
            st.just(int.from_bytes(old[:8], "big")),
        ]
    elif isinstance(old, int) and not isinstance(old, bool):
        others += [
            st.sampled_from(EDGE_INTS),
            st.just(float(old)),
            st.just(old != 0),
            st.just(str(old)),
            st.just(old.to_bytes(8, "big", signed=True) if -(2**63) <= old < 2**63 else b""),
        ]
    elif isinstance(old, list):
        others += [
            st.just(old[:-1]),
            st.just([*old, old[-1] if old else 0]),
            st.just(old[1:]),
            st.just([old]),
            st.just(dict(enumerate(old))),
            st.just(old[::-1]),
            leaves.map(lambda extra: [*old, extra]),
        ]
    return st.one_of(*others)


@st.composite
def retyped(draw: DrawFn, seed_trees: SearchStrategy[Any]) -> bytes:
    tree = draw(seed_trees)
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(paths_of(tree)))
        old: Any = tree
        for step in path:
            old = old[step]
        new = draw(retype_choices(old))
        tree = replace_at(tree, path, lambda _old, new=new: new)
    return draw(encodings(tree))


@dataclass(frozen=True)
class _Tree:
    """A bare msgpack tree, so ``inputs_for`` can treat it like a consensus object."""

    tree: Any

    def to_obj(self) -> Any:
        return self.tree


def inputs_for(seed_objects: SearchStrategy[Any]) -> SearchStrategy[bytes]:
    """Every kind of input for a decoder of objects with ``to_obj()``."""
    valid = seed_objects.map(lambda o: loose_pack(o.to_obj(), lambda n: 0))
    return st.one_of(
        valid,
        st.binary(max_size=200),
        mutated(valid),
        retyped(seed_objects.map(lambda o: o.to_obj())),
        seed_objects.map(lambda o: o.to_obj()).flatmap(encodings),  # wider spellings
        random_trees,
    )


# --- consensus objects -------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1) | st.sampled_from([0, 0x7F, 0x80, 0xFF, 0xFFFF, 2**32 - 1])
i64 = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, -1, 2**63 - 1, -(2**63), 21 * 10**14])


def fixed_bin(size: int) -> SearchStrategy[bytes]:
    known = KNOWN_BIN.get(size, [])
    exact = st.binary(min_size=size, max_size=size)
    return exact | st.sampled_from(known) if known else exact


txins = st.builds(
    TxIn, st.builds(OutPoint, fixed_bin(32), u32), st.binary(max_size=40), st.binary(max_size=80)
)
txouts = st.builds(TxOut, i64, fixed_bin(20))
made_txs = st.builds(
    Transaction,
    u32,
    st.lists(txins, max_size=3).map(tuple),
    st.lists(txouts, max_size=3).map(tuple),
    u32,
)
transactions = st.sampled_from(SEED_TXS) | made_txs
headers = st.builds(BlockHeader, u32, fixed_bin(32), fixed_bin(32), u32, u32, u32)
blocks = st.sampled_from(SEED_BLOCKS) | st.builds(
    Block, headers, st.lists(transactions, max_size=3).map(tuple)
)
coins = st.sampled_from(SEED_COINS) | st.builds(Coin, txouts, u32, st.booleans())
undos = st.sampled_from(SEED_UNDOS) | st.builds(
    BlockUndo, st.lists(st.lists(coins, max_size=3).map(tuple), max_size=3).map(tuple)
)


header_bytes = st.one_of(
    headers.map(BlockHeader.serialize),
    st.binary(min_size=78, max_size=82),
    mutated(headers.map(BlockHeader.serialize)),
    blocks.map(lambda b: pack(b.to_obj())[:80]),
)
non_bytes: SearchStrategy[Any] = st.one_of(
    st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3)
)


@dataclass(frozen=True)
class Decoder:
    decode: Callable[[Any], Any]
    encode: Callable[[Any], bytes]
    inputs: SearchStrategy[Any]


CONSENSUS: dict[str, Decoder] = {
    "Transaction.deserialize": Decoder(
        Transaction.deserialize, lambda tx: pack(tx.to_obj()), inputs_for(transactions)
    ),
    "Block.deserialize": Decoder(Block.deserialize, lambda b: pack(b.to_obj()), inputs_for(blocks)),
    "BlockHeader.deserialize": Decoder(
        BlockHeader.deserialize, BlockHeader.serialize, header_bytes
    ),
    "Coin.deserialize": Decoder(Coin.deserialize, Coin.serialize, inputs_for(coins)),
    "BlockUndo.deserialize": Decoder(
        BlockUndo.deserialize,
        BlockUndo.serialize,
        inputs_for(undos.map(lambda u: _Tree([[c.to_obj() for c in cs] for cs in u.spent]))),
    ),
    "unpack_canonical": Decoder(
        unpack_canonical,
        pack,
        inputs_for(st.one_of(transactions, blocks, coins, trees.map(_Tree))),
    ),
}


def check_consensus_decoder(target: str, data: Any) -> None:
    """Decoded and re-encoded to the same bytes, or ``bad-encoding``; nothing else, quickly."""
    decoder = CONSENSUS[target]
    started = time.perf_counter()
    try:
        obj = decoder.decode(data)
    except ValidationError as err:
        assert err.code == BAD_ENCODING, f"{target}: {err.code} ({err}) for {data!r}"
        event("bad-encoding")
    else:
        assert isinstance(data, bytes | bytearray | memoryview), f"{target} decoded {data!r}"
        assert decoder.encode(obj) == bytes(data), f"{target}: re-encoding differs for {data!r}"
        event("decoded")
    elapsed = time.perf_counter() - started
    assert elapsed < HANG_SECONDS, f"{target} took {elapsed:.1f} s on {len(data)} bytes"


@pytest.mark.parametrize("target", sorted(CONSENSUS))
@FUZZ
@given(data=st.data())
def test_fuzz_consensus_decoder(target: str, data: Any, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    raw = data.draw(CONSENSUS[target].inputs, label="input")
    wrap = data.draw(st.sampled_from([bytes, bytes, bytes, bytearray, memoryview]), label="as")
    check_consensus_decoder(target, wrap(raw))


@pytest.mark.parametrize("target", sorted(CONSENSUS))
@FUZZ
@given(value=non_bytes)
def test_fuzz_consensus_decoder_non_bytes(target: str, value: Any, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    with pytest.raises(ValidationError) as info:
        CONSENSUS[target].decode(value)
    assert info.value.code == BAD_ENCODING


@pytest.mark.parametrize(
    "target, raw",
    [
        # ext types of length 0 get past msgpack's max_ext_len=0: the shape checks refuse them
        ("Transaction.deserialize", b"\x94\xc7\x00\x05\x90\x90\x00"),
        ("Coin.deserialize", b"\x94\xc7\x00\x05\xc4\x14" + b"\x00" * 20 + b"\x00\x00"),
        ("unpack_canonical", b"\xc7\x00\x05"),
        ("unpack_canonical", b"\xcb" + struct.pack(">d", 1.5)),  # a float64 re-encodes as itself
        ("Block.deserialize", b"\x92\xc4\x50" + b"\x00" * 80 + b"\xdd\xff\xff\xff\xff"),
        ("BlockUndo.deserialize", b"\x91" * 5000 + b"\x90"),  # deeper than msgpack's stack
    ],
)
def test_consensus_decoder_regressions(target: str, raw: bytes) -> None:
    check_consensus_decoder(target, raw)


def test_every_consensus_decoder_is_fuzzed() -> None:
    decoders = {"Transaction", "Block", "BlockHeader", "Coin", "BlockUndo"}
    assert {f"{d}.deserialize" for d in decoders} | {"unpack_canonical"} == set(CONSENSUS)


# --- P2P messages -------------------------------------------------------------------------------
# The schemas of docs/PROTOCOL.md, restated here so the fuzzer checks the decoder against the
# document rather than against itself: ("bin", size, max_size), ("uint", bits), ("text", max),
# ("kind",), ("array", item, max_items).

Field = tuple[Any, ...]
BIN32: Field = ("bin", 32, None)
P2P_FIELDS: dict[str, dict[str, Field]] = {
    "handshake": {
        "magic": ("bin", 4, None),
        "genesis": BIN32,
        "version": ("uint", 32),
        "height": ("uint", 32),
        "work": BIN32,
        "url": ("text", m.MAX_URL),
        "nonce": ("bin", 8, None),
    },
    "inv": {"kind": ("kind",), "hashes": ("array", BIN32, m.MAX_INV)},
    "getdata": {"kind": ("kind",), "hashes": ("array", BIN32, m.MAX_GETDATA)},
    "getheaders": {"locator": ("array", BIN32, m.MAX_LOCATOR), "stop": BIN32},
    "addr": {"urls": ("array", ("text", m.MAX_URL), m.MAX_ADDRS)},
    "mempool": {},
    "items": {"items": ("array", ("bin", None, 2_000_000), m.MAX_GETDATA)},
    "headers": {"headers": ("array", ("bin", 80, None), m.MAX_HEADERS)},
    "txids": {"txids": ("array", BIN32, 100_000)},
    "empty": {},
}

# URLs as peers and API clients might spell them: hosts that never resolve (.invalid), loopback,
# and hosts that are not valid names at all (empty or over-long labels, brackets, controls).
BAD_HOSTS = [
    "a..b.invalid",
    "a" * 64 + ".invalid",
    ".invalid",
    "xn--.invalid",
    "xn--zz.invalid",
    "[::1",
    "::1",
    "%41.invalid",
    "\u00fc.invalid",
    "\u2100.invalid",
    "a b.invalid",
    "\x00.invalid",
    "",
]
url_hosts = st.one_of(
    # loopback addresses where nothing listens on the ports below: refused at once
    st.builds("127.{}.{}.{}".format, st.integers(0, 255), st.integers(0, 255), st.integers(1, 254)),
    st.sampled_from(["127.0.0.1", "localhost", "[::1]", "0", *BAD_HOSTS]),
    # names that never resolve (the node asks DNS, which some sandboxes answer slowly)
    st.builds("fuzz-{}.invalid".format, st.integers(0, 10**6))
    | st.text(st.characters(exclude_characters="/?#@:[]\\%", codec="utf-8"), max_size=70).map(
        lambda s: s + ".invalid"
    ),
)
urls = st.builds(
    "{}{}{}{}".format,
    st.sampled_from(["http://", "http://", "https://", "HTTP://", "ftp://", "http:/", ""]),
    url_hosts,
    st.sampled_from(["", ":1", ":0", ":65535", ":65536", ":99999", ":-1", ":", ":x"]),
    st.sampled_from(["", "/", "//", "/p2p", "/\n", "/?x=1#y"]) | st.text(max_size=8),
)
texts = st.text(max_size=40) | urls


def field_values(field: Field, known: dict[int, list[bytes]]) -> SearchStrategy[Any]:
    """Values the schema allows for ``field``, boundaries included."""
    kind = field[0]
    if kind == "bin":
        size = field[1]
        if size is not None:
            pool = known.get(size, [])
            exact = st.binary(min_size=size, max_size=size)
            return exact | st.sampled_from(pool) if pool else exact
        return st.binary(max_size=300) | st.sampled_from(known.get(0, [b""]))
    if kind == "uint":
        return st.integers(0, 2 ** field[1] - 1) | st.sampled_from([0, 2 ** field[1] - 1])
    if kind == "text":
        return texts.filter(lambda s: len(s) <= field[1]) | st.just("u" * field[1])
    if kind == "kind":
        return st.sampled_from(m.KINDS)
    item, max_items = field[1], field[2]
    items = field_values(item, known)
    odds = rare(max_items)
    return st.builds(
        lambda small, x, full: [x] * max_items if full == odds else small,
        st.lists(items, max_size=min(max_items, 6)),
        items,
        st.integers(0, odds),  # now and then a list exactly as long as allowed
    )


def rare(max_items: int) -> int:
    """One list in ``rare + 1`` is built at its limit: seldom for the 100,000-item ones."""
    return 7 if max_items <= 2_000 else 31


def bad_field_values(field: Field) -> SearchStrategy[tuple[Any, str]]:
    """Values just outside what the schema allows, with the code the refusal must carry."""
    kind = field[0]
    wrong_type = st.one_of(st.none(), st.booleans(), st.floats(), ext_types, st.just({}))
    bad: list[SearchStrategy[Any]] = [wrong_type]
    code = "bad-message"
    if kind == "bin":
        size, max_size = field[1], field[2]
        if size is not None:
            bad.append(st.sampled_from([b"\x00" * (size - 1), b"\x00" * (size + 1), "x" * size]))
        else:
            bad.append(st.sampled_from(["text", b"\x00" * (max_size + 1)]))
        bad.append(any_int)
    elif kind == "uint":
        bad += [st.sampled_from([-1, 2 ** field[1], True, 1.0, "1"])]
    elif kind == "text":
        bad += [st.just("u" * (field[1] + 1)), st.just(b"http://x"), any_int]
    elif kind == "kind":
        bad += [st.sampled_from(["TX", "", "blocks", b"tx", 0, ["tx"]])]
    else:
        item, max_items = field[1], field[2]
        odds = rare(max_items)
        over = st.builds(
            lambda x: ([x] * (max_items + 1), "too-many-items"), field_values(item, {})
        )
        inner = bad_field_values(item).map(lambda pair: ([pair[0]], "bad-message"))
        other = st.one_of(wrong_type, any_int, st.binary()).map(lambda v: (v, "bad-message"))
        return st.builds(
            lambda o, i, x, n: o if n == odds else (i if n % 2 else x),
            over,
            inner,
            other,
            st.integers(0, odds),
        )
    return st.one_of(*bad).map(lambda v: (v, code))


def messages_for(schema: str, known: dict[int, list[bytes]] | None = None) -> SearchStrategy[Any]:
    fields = P2P_FIELDS[schema]
    known = KNOWN_BIN if known is None else known
    return st.fixed_dictionaries({name: field_values(f, known) for name, f in fields.items()})


@st.composite
def wrong_messages(draw: DrawFn, schema: str) -> bytes:
    """A message of the schema changed in its keys: one missing, one extra, bytes keys, or
    nested where it should not be."""
    message = dict(draw(messages_for(schema)))
    how = draw(st.sampled_from(["drop", "extra", "bytes-keys", "mixed-keys", "nest", "array"]))
    if how == "drop" and message:
        message.pop(draw(st.sampled_from(sorted(message))))
    elif how == "extra":
        message[draw(st.text(max_size=8))] = draw(leaves)
    elif how == "bytes-keys":
        message = {k.encode(): v for k, v in message.items()}
    elif how == "mixed-keys":
        message[draw(st.binary(max_size=4))] = draw(leaves)
        message[draw(st.text(max_size=4))] = draw(leaves)
    elif how == "nest":
        message = {"message": message}
    else:
        return draw(encodings(list(message.values())))
    return draw(encodings(message))


def p2p_inputs(schema: str, known: dict[int, list[bytes]] | None = None) -> SearchStrategy[bytes]:
    valid = messages_for(schema, known)
    valid_bytes = valid.map(m.encode)
    return st.one_of(
        valid_bytes,
        valid.flatmap(encodings),
        st.binary(max_size=200),
        mutated(valid_bytes),
        retyped(valid),
        wrong_messages(schema),
        random_trees,
    )


def check_parse(schema: str, body: bytes) -> dict[str, Any] | None:
    """``parse`` gives a message of exactly the schema's fields, or ``ProtocolError``."""
    started = time.perf_counter()
    try:
        message = m.parse(schema, body)
    except m.ProtocolError as err:
        assert type(err) is m.ProtocolError
        assert err.code in ("bad-message", "too-many-items"), err.code
        event(f"refused: {err.code}")
        return None
    finally:
        elapsed = time.perf_counter() - started
        assert elapsed < HANG_SECONDS, f"parse({schema}) took {elapsed:.1f} s"
    assert set(message) == set(m.SCHEMAS[schema])
    assert m.parse(schema, m.encode(message)) == message
    event("parsed")
    return message


def test_every_p2p_schema_is_fuzzed() -> None:
    assert set(P2P_FIELDS) == set(m.SCHEMAS)


@pytest.mark.parametrize("schema", sorted(m.SCHEMAS))
@FUZZ
@given(data=st.data())
def test_fuzz_p2p_parse(schema: str, data: Any, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    check_parse(schema, data.draw(p2p_inputs(schema), label="body"))


@pytest.mark.parametrize("schema", sorted(m.SCHEMAS))
@FUZZ
@given(data=st.data())
def test_fuzz_p2p_schema_bounds(schema: str, data: Any, fuzz_stats: Any) -> None:
    """Every message within the documented limits parses to itself; one field outside them is
    refused with the right code."""
    fuzz_stats.hit()
    message = data.draw(messages_for(schema), label="message")
    assert check_parse(schema, m.encode(message)) == message
    if not message:
        return
    name = data.draw(st.sampled_from(sorted(message)), label="field")
    value, code = data.draw(bad_field_values(P2P_FIELDS[schema][name]), label="bad value")
    with pytest.raises(m.ProtocolError) as info:
        m.parse(schema, loose_pack({**message, name: value}, lambda n: 0))
    assert info.value.code == code


@pytest.mark.parametrize(
    "schema, body",
    [
        ("handshake", b""),
        ("inv", b"\x82\xa4kind\xc7\x00\x05\xa6hashes\x90"),  # a zero-length ext value
        ("addr", b"\x81\xa4urls\x91\xc4\x03abc"),  # bin where str belongs
        ("addr", b"\x81\xa4urls\x91\xa2\xed\xa0"),  # a lone surrogate in UTF-8
        ("mempool", b"\x81\xc0\xc0"),  # a nil key
        ("empty", b"\x80" + b"\x00"),  # trailing bytes
        ("getheaders", b"\x82" + b"\x91" * 3000),  # nesting deeper than msgpack's stack
        # Crash found by test_fuzz_p2p_parse[headers]: a str key and a bin key in one map make
        # parse()'s error message sort str against bytes: TypeError, not ProtocolError.
        ("headers", b"\x82\xa0\x00\xc4\x00\x00"),
        ("mempool", b"\x82\xa0\x00\xc4\x00\x00"),
    ],
)
def test_p2p_parse_regressions(schema: str, body: bytes) -> None:
    check_parse(schema, body)


# --- stored values (written and read by the node only) ----------------------------------------

entries = st.builds(
    BlockIndexEntry,
    fixed_bin(32),
    headers,
    u32,
    st.integers(0, 2**256 - 1),
    st.integers(0, 15).map(Status),
    st.integers(0, 2**64 - 1),
    st.sampled_from(["", *sorted(ALL_CODES)]),
)
stats = st.builds(
    UtxoStats,
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**ACC_BITS - 1),
)


def _stored_tree(value: Any) -> Any:
    return msgpack.unpackb(value.serialize(), raw=True)


STORED: dict[str, tuple[Callable[[bytes], Any], SearchStrategy[Any]]] = {
    "BlockIndexEntry.deserialize": (
        lambda raw: BlockIndexEntry.deserialize(b"\x00" * 32, raw),
        entries,
    ),
    "UtxoStats.deserialize": (UtxoStats.deserialize, stats),
}


@pytest.mark.parametrize("target", sorted(STORED))
@FUZZ
@given(data=st.data())
def test_fuzz_stored_value_round_trip(target: str, data: Any, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    decode, values = STORED[target]
    value = data.draw(values, label="value")
    again = decode(value.serialize())
    assert again.serialize() == value.serialize()
    if isinstance(value, BlockIndexEntry):
        value = replace(value, hash=b"\x00" * 32)
    assert again == value


@pytest.mark.parametrize("target", sorted(STORED))
@FUZZ
@given(data=st.data())
def test_fuzz_stored_value_garbage(target: str, data: Any, fuzz_stats: Any) -> None:
    """No error type is documented for these (the node wrote the bytes): garbage must fail with
    an ordinary ``Exception`` or return, and quickly."""
    fuzz_stats.hit()
    decode, values = STORED[target]
    trees_of = values.map(lambda v: _Tree(_stored_tree(v)))
    raw = data.draw(inputs_for(trees_of), label="input")
    started = time.perf_counter()
    try:
        decode(raw)
    except Exception as exc:  # any ordinary exception is within the contract
        assert not isinstance(exc, MemoryError | RecursionError), exc
        event(f"raised {type(exc).__name__}")
    else:
        event("returned")
    assert time.perf_counter() - started < HANG_SECONDS


@example(raw=b"\xc6\xff\xff\xff\xff")  # a 4 GiB bin header on 5 bytes
@example(raw=b"\xdd\xff\xff\xff\xff")  # a 4 Gi-item array header on 5 bytes
@FUZZ
@given(raw=st.binary(max_size=20))
def test_fuzz_stored_value_huge_headers(raw: bytes, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    for decode, _ in STORED.values():
        started = time.perf_counter()
        try:
            decode(raw)
        except Exception as exc:
            assert not isinstance(exc, MemoryError | RecursionError), exc
        assert time.perf_counter() - started < HANG_SECONDS
