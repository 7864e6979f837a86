"""Fuzzing one real ``tally-node`` over HTTP: every route of ``/api/v1/openapi.json`` (SPEC 3.5).

One node per module, on regtest, holding a deterministic 101-block chain (``ChainBuilder``:
coinbases 1 and 2 are spendable at the next height), so mutations start from a valid signed
transaction and a valid next block. Targets (each its own hypothesis test):

- ``POST /api/v1/tx``, ``/txs``, ``/block``: msgpack and JSON bodies holding random bytes,
  mutated and re-typed encodings, signed spends and solved blocks with fields off their rules,
  random JSON and non-JSON bodies, under assorted content types.
- admin ``generate``, ``peers``, ``mining`` with the token (``stop`` only without it, like every
  admin route, where the answer must be 401); the devnet toolkit's routes (``time``,
  ``automine``, ``mempool/clear``, ``reorg``, ``snapshot``, ``revert``, ``partition``, ``heal``
  and the admin GETs), each putting the node back after every example (clock reset, automine
  off, a ``fuzz-base`` snapshot reverted to, ``heal``) so the other fuzzers see the same node.
- every ``/p2p/`` route, each request from a new ``X-Tally-Peer: http://127.0.0.1:1/fuzz-<n>``
  (the node believes a URL whose host is the request's address) so the misbehaviour score (a ban
  at 100) never blocks the fuzzer: a 403 or 429 there fails the test. ``inv`` and ``getdata``
  come after a handshake half the time, so they reach a connected peer's code. The header itself
  is fuzzed too.
- every ``GET`` route, with random path segments and query values.

Property: never a 5xx; a 4xx is a documented status with the body ``{"error": {"code",
"message"}}`` in JSON; a 2xx is JSON (or, on ``/p2p/``, a message of the route's answer schema).
What a 200 accepted must be valid by the rules, checked here with ``consensus`` alone: a
transaction passes ``check_transaction``, is final and spends coins of the chain given to the
node with valid signatures, mature, paying at least the relay fee (``assert_valid_spend``); a
block passes ``check_block`` and its context checks at the height the node gave it
(``assert_valid_block``). ``POST /txs`` answers once per transaction sent, in order.
At the end the node still answers ``/api/v1/info``, still dials peers and drops dead ones, and its
log has no ``Traceback``.

Regression tests at the bottom hold the crashes this fuzzer found (see each one's docstring).
"""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, SearchStrategy

from consensus import (
    COIN,
    MAX_MONEY,
    Block,
    BlockHeader,
    ExtendedPublicKey,
    Transaction,
    TxIn,
    TxOut,
    b58check_decode,
    b58check_encode,
    block_subsidy,
    check_block,
    check_transaction,
    convert_xpub_version,
    encode_xpub,
    get_params,
    is_final,
    merkle_root,
    sign_transaction,
    verify_block_context,
    verify_tx_inputs,
)
from consensus.errors import ALL_CODES
from node.api.openapi import openapi_document
from node.p2p import manager
from node.p2p import messages as m
from node.p2p.routes import BODY_LIMITS
from tests.functional.node_process import NodeProcess, Response, address_of, http
from tests.fuzz.test_fuzz_decoders import (
    KNOWN_BIN,
    i64,
    inputs_for,
    loose_pack,
    made_txs,
    messages_for,
    mutated,
    p2p_inputs,
    random_trees,
    urls,
)
from tests.helpers import ChainBuilder, coinbase, key, solve, spend

FUZZ = settings.get_profile("tally-fuzz")
P = get_params("regtest")
API = "/api/v1"
TIMEOUT = 30.0

# --- the chain the node is given, and what mutations start from ---------------------------------

CHAIN = ChainBuilder()
CHAIN.grow(101)
K0, K1, K2 = CHAIN.miner, key(1), key(2)
A0, A1 = address_of(K0.pubkey_hash), address_of(K1.pubkey_hash)
FEE = 10_000
SPEND = spend([CHAIN.coinbase_coin(1)], [TxOut(50 * COIN - FEE, K1.pubkey_hash)])
"""Valid in the mempool at the start (not submitted: the fuzzer may submit it)."""
NEXT_TX = spend([CHAIN.coinbase_coin(2)], [TxOut(50 * COIN - FEE, K2.pubkey_hash)])
NEXT_BLOCK = CHAIN.next_block([NEXT_TX], fees=FEE)
"""A valid block 102 (not submitted either)."""
TIP_HASH = CHAIN.tip.hash()
BLOCK_HASHES = [b.hash() for b in CHAIN.blocks] + [NEXT_BLOCK.hash()]
TXIDS = [b.txs[0].txid() for b in CHAIN.blocks] + [SPEND.txid(), NEXT_TX.txid()]
KNOWN = {
    **KNOWN_BIN,
    32: [*KNOWN_BIN[32], *BLOCK_HASHES[-5:], BLOCK_HASHES[0], *TXIDS[-5:]],
    0: [SPEND.serialize(), NEXT_BLOCK.serialize(), CHAIN.tip.serialize()],
}


def display(h: bytes) -> str:
    return h[::-1].hex()


# --- transactions and blocks that get past decoding and into the rules ---------------------------


@st.composite
def signed_spends(draw: DrawFn) -> Transaction:
    """Correctly signed spends of real coinbases with outputs, version and locktime off-rule."""
    heights = draw(st.lists(st.sampled_from([1, 2, 3, 100, 101]), min_size=1, max_size=3))
    coins = [CHAIN.coinbase_coin(h) for h in heights]
    amount = st.sampled_from([0, 1, 546, 50 * COIN - FEE, 50 * COIN, MAX_MONEY, MAX_MONEY + 1, -1])
    outputs = draw(st.lists(st.builds(TxOut, amount | i64, st.just(K1.pubkey_hash)), max_size=3))
    unsigned = Transaction(
        draw(st.sampled_from([1, 0, 2, 2**32 - 1])),
        tuple(TxIn(op) for op, _, _ in coins),
        tuple(outputs),
        draw(st.sampled_from([0, 101, 102, 103, 500_000_000, 2**32 - 1])),
    )
    return sign_transaction(unsigned, [o for _, o, _ in coins], [k.privkey for _, _, k in coins], P)


transactions = st.one_of(st.sampled_from([SPEND, NEXT_TX]), signed_spends(), made_txs)


@st.composite
def built_blocks(draw: DrawFn) -> Block:
    """Blocks with a solved header (when their bits allow) and a correct or wrong merkle root."""
    height = draw(st.sampled_from([102, 102, 101, 103, 0, 2**32 - 1]))
    cb_amount = draw(st.sampled_from([block_subsidy(102, P), block_subsidy(102, P) + 1, 0, -1]))
    cb = coinbase(height, K0.pubkey_hash, cb_amount, draw(st.binary(max_size=4)))
    body = draw(st.lists(transactions, max_size=3))
    layout = draw(st.sampled_from(["coinbase first", "no coinbase", "two coinbases", "last"]))
    txs = {
        "coinbase first": [cb, *body],
        "no coinbase": body,
        "two coinbases": [cb, cb, *body],
        "last": [*body, cb],
    }[layout]
    root, _ = merkle_root([tx.wtxid() for tx in txs]) if txs else (b"\x00" * 32, False)
    if draw(st.integers(0, 5)) == 0:
        root = draw(st.binary(min_size=32, max_size=32))
    prev = draw(
        st.sampled_from([TIP_HASH, TIP_HASH, BLOCK_HASHES[0], BLOCK_HASHES[50], b"\1" * 32])
    )
    when = CHAIN.tip.header.time + draw(st.sampled_from([60, 1, 0, -3600, 10**6]))
    bits = draw(st.sampled_from([P.pow_limit_bits, P.pow_limit_bits, 0x1D00FFFF, 0, 2**32 - 1]))
    header = BlockHeader(draw(st.sampled_from([1, 0, 2**32 - 1])), prev, root, when, bits, 0)
    if bits == P.pow_limit_bits:
        header = solve(header, P)
    return Block(header, tuple(txs))


blocks = st.one_of(st.sampled_from([NEXT_BLOCK, CHAIN.tip]), built_blocks())
tx_bytes = st.one_of(transactions.map(Transaction.serialize), inputs_for(transactions))
block_bytes = st.one_of(blocks.map(Block.serialize), inputs_for(blocks))

# --- request bodies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    content_type: str | None
    data: bytes

    def __repr__(self) -> str:
        data = self.data if len(self.data) <= 300 else self.data[:300] + b"..."
        return f"Body({self.content_type!r}, {data!r} [{len(self.data)} bytes])"


MSGPACK_TYPES = [
    "application/msgpack",
    "application/x-msgpack",
    "application/octet-stream",
    "application/msgpack; charset=utf-8",
]
JSON_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
    None,
]
ACCEPTED_TYPES = {"application/msgpack", "application/json", "application/json; charset=utf-8"}
"""What a body may declare (SPEC 3.5); any other type gets 415 ``unsupported-media-type``."""
json_values: SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
JUNK_JSON = [
    b"",
    b"[" * 50_000,
    b'{"raw": ' * 10_000,
    b"NaN",
    b"1e999999",
    b"9" * 5_000,
    b'{"raw": "\\ud800"}',
    '{"raw": "00"}'.encode("utf-16"),
    b"\xff\xfe\x00",
    b'{"raw": "00"} trailing',
    b'{"count": 1, "count": 2}',
]
junk = st.sampled_from(JUNK_JSON) | st.binary(max_size=100)


def hex_spellings(raw: bytes) -> SearchStrategy[Any]:
    h = raw.hex()
    return st.sampled_from(
        [h, h, h.upper(), " ".join(h[i : i + 2] for i in range(0, len(h), 2)), h[:-1], "0x" + h]
    ) | st.sampled_from([None, 1, [h], {"hex": h}, "zz", ""])


def json_body(value: Any) -> SearchStrategy[Body]:
    return st.builds(Body, st.sampled_from(JSON_TYPES), st.just(json.dumps(value).encode()))


def submit_bodies(raw: SearchStrategy[bytes]) -> SearchStrategy[Body]:
    """What POST /tx and /block accept: a msgpack body, or JSON ``{"raw": hex}``."""
    return st.one_of(
        st.builds(Body, st.sampled_from(MSGPACK_TYPES), raw),
        raw.flatmap(hex_spellings).flatmap(lambda h: json_body({"raw": h})),
        json_values.flatmap(json_body),
        st.builds(Body, st.sampled_from(JSON_TYPES + MSGPACK_TYPES), junk),
    )


@st.composite
def batch_bodies(draw: DrawFn) -> Body:
    """What POST /txs accepts: a msgpack array of bin, or a JSON array of ``{"raw": hex}``."""
    raws = draw(st.lists(tx_bytes, max_size=4))
    how = draw(st.sampled_from(["msgpack", "msgpack-tree", "json", "json-any", "junk"]))
    if how == "msgpack":
        items: list[Any] = list(raws)
        if draw(st.booleans()):
            items.insert(
                draw(st.integers(0, len(items))), draw(st.sampled_from([1, "x", [], None]))
            )
        choose = draw(st.sampled_from([lambda n: 0, lambda n: n - 1]))
        return Body(draw(st.sampled_from(MSGPACK_TYPES)), loose_pack(items, choose))
    if how == "msgpack-tree":
        return Body(
            draw(st.sampled_from(MSGPACK_TYPES)), draw(random_trees | mutated(random_trees))
        )
    if how == "json":
        items = [{"raw": draw(hex_spellings(r))} for r in raws]
        if draw(st.booleans()):
            items.append(draw(json_values))
        return draw(json_body(items))
    if how == "json-any":
        return draw(json_values.flatmap(json_body))
    return Body(draw(st.sampled_from(JSON_TYPES + MSGPACK_TYPES)), draw(junk))


def mutated_text(good: str) -> SearchStrategy[str]:
    """``good`` with one character changed, dropped or added, or cut short."""
    return st.builds(
        lambda i, c, op: {
            "set": good[:i] + c + good[i + 1 :],
            "drop": good[:i] + good[i + 1 :],
            "add": good[:i] + c + good[i:],
            "cut": good[:i],
        }[op],
        st.integers(0, len(good) - 1),
        st.characters(codec="utf-8"),
        st.sampled_from(["set", "drop", "add", "cut"]),
    )


addresses = st.one_of(
    st.sampled_from([A0, A1, address_of(K0.pubkey_hash, "main"), "", " " + A0]),
    mutated_text(A0),
    st.text(max_size=40),
)

XPUB = encode_xpub(
    ExtendedPublicKey(3, bytes(4), 0x80000000, bytes(range(32)), K0.pubkey), get_params("regtest")
)
xpubs = st.one_of(
    st.sampled_from(
        [
            XPUB,
            convert_xpub_version(XPUB, get_params("main")),
            b58check_encode(bytes.fromhex("0488b21e") + b58check_decode(XPUB)[4:]),
            XPUB[:-1],
            "",
        ]
    ),
    mutated_text(XPUB),
    st.text(max_size=130),
)


def json_or(values: SearchStrategy[Any]) -> SearchStrategy[Any]:
    return values | json_values


def admin_bodies(fields: dict[str, SearchStrategy[Any]]) -> SearchStrategy[Body]:
    objects = st.fixed_dictionaries(
        {}, optional={name: json_or(values) for name, values in fields.items()}
    )
    extra = st.dictionaries(st.text(max_size=8), json_values, max_size=2)
    return st.one_of(
        st.builds(lambda o, e: {**e, **o}, objects, extra).flatmap(json_body),
        json_values.flatmap(json_body),
        st.builds(Body, st.sampled_from(JSON_TYPES + MSGPACK_TYPES), junk),
    )


# Counts from 3 to 10,000 are valid but would mine that many blocks: the fuzzer stays below.
counts = st.sampled_from([1, 2, 0, -1, 10_001, 2**64, 1.0, 1.5, True, "1", None])
generate_bodies = admin_bodies({"count": counts, "address": addresses})
peer_bodies = admin_bodies({"url": urls})
block_times = st.sampled_from([None, 0, -1, 0.001, 1e-300, 86_400, 86_400.5, 10**400, True, "1"])
mining_bodies = admin_bodies(
    {"enabled": st.sampled_from([True, False, 1, 0, "true"]), "address": addresses}
    | {"block_time": block_times}
)

# --- GET routes ---------------------------------------------------------------------------------

RAW_SEGMENTS = ["%", "%zz", "%00", "%2F", "..", ".", "%2e%2e", "a%20b", "%C3%28", "%ff", "~"]


def segments(values: SearchStrategy[str]) -> SearchStrategy[str]:
    """Path segments: ``values`` quoted, random text quoted, or raw odd spellings."""
    quoted = (values | st.text(max_size=70)).map(lambda s: urllib.parse.quote(s, safe=""))
    return quoted | st.sampled_from(RAW_SEGMENTS)


def hex_variants(hashes: list[bytes]) -> SearchStrategy[str]:
    good = st.sampled_from([display(h) for h in hashes])
    return good | good.map(str.upper) | good.flatmap(mutated_text) | st.just("0" * 64)


block_ids = hex_variants(BLOCK_HASHES[-3:] + BLOCK_HASHES[:1])
mark_bodies = admin_bodies({"hash": block_ids})
"""Known blocks (the genesis among them), unknown ones, odd spellings of both."""
txid_ids = hex_variants(TXIDS[-4:] + TXIDS[:1])

# --- the devnet toolkit's bodies (SPEC 6) ---------------------------------------------------------

unix_times = st.sampled_from(
    [CHAIN.tip.header.time, P.genesis_time, P.genesis_time - 1, 4_102_444_800, 4_102_444_801]
) | st.sampled_from([0, -1, 1.0, 1.5, True, "1", None, 2**64])
time_bodies = admin_bodies(
    {"set": unix_times, "advance": counts | st.just(10 * 365 * 86_400 + 1), "reset": st.just(True)}
)
automine_bodies = admin_bodies(
    {
        "mode": st.sampled_from(["off", "tx", "interval", "Off", "", "block"]),
        # A short interval would mine while the fuzzer runs: intervals stay long or invalid.
        "interval": st.sampled_from([0, -1, 86_400, 86_400.5, 10**400, True, "1"]),
        "address": addresses,
    }
)
txid_lists = st.lists(txid_ids, max_size=3) | st.just(["0" * 64] * 1_001)
clear_bodies = admin_bodies({"txids": txid_lists})
reorg_bodies = admin_bodies(
    {
        "depth": st.sampled_from([1, 2, 0, -1, 101, 102, 1_000, 1_001, 1.0, True, "1", None]),
        "drop": txid_lists,
        "address": addresses,
    }
)
snapshot_names = st.one_of(
    st.sampled_from(["fuzz-base", "fuzz.1", "_x", "a" * 64, "a" * 65, "-x", ".x", "", "a/b"]),
    mutated_text("fuzz-base"),
    st.text(max_size=70),
)
snapshot_bodies = admin_bodies({"name": snapshot_names})
partition_bodies = admin_bodies(
    {"peers": st.lists(urls, max_size=3) | st.just(["http://127.0.0.1:1/x"] * 65)}
)
any_ids = block_ids | txid_ids
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "101", "102", "2147483648", "-0", " 1", "1e3", "0x10", "\u0661", "1_0"]),
)
queries: dict[str, SearchStrategy[str]] = {
    "start_height": numbers,
    "start_index": numbers | st.sampled_from(["25", "50", "1000000"]),
    "after_txid": txid_ids,
    "after": st.builds("{}:{}".format, txid_ids, numbers) | st.text(max_size=80),
    "q": numbers | any_ids | addresses | st.just("a" * 201),
    "subscribe": st.sampled_from(["blocks", "mempool", "blocks,mempool", "", ",", "chain"])
    | addresses.map("address:{}".format)
    | st.text(max_size=60),
    "since": numbers,
}
filenames = st.sampled_from(["index.html", "app.js", "style.css", "nope.js", ".hidden"])

# Each GET route template: its path parameters and its query parameters.
GET_ROUTES: dict[str, tuple[dict[str, SearchStrategy[str]], tuple[str, ...]]] = {
    f"{API}/info": ({}, ()),
    f"{API}/blocks/tip/height": ({}, ()),
    f"{API}/blocks/tip/hash": ({}, ()),
    f"{API}/blocks": ({}, ("start_height",)),
    API + "/block/{hash}": ({"hash": block_ids}, ()),
    API + "/block/{hash}/txids": ({"hash": block_ids}, ()),
    API + "/block/{hash}/txs": ({"hash": block_ids}, ("start_index",)),
    API + "/block/{hash}/raw": ({"hash": block_ids}, ()),
    API + "/block-height/{height}": ({"height": numbers}, ()),
    API + "/tx/{txid}": ({"txid": txid_ids}, ()),
    API + "/tx/{txid}/status": ({"txid": txid_ids}, ()),
    API + "/tx/{txid}/raw": ({"txid": txid_ids}, ()),
    API + "/tx/{txid}/merkle-proof": ({"txid": txid_ids}, ()),
    API + "/tx/{txid}/outspends": ({"txid": txid_ids}, ()),
    API + "/address/{address}": ({"address": addresses}, ()),
    API + "/address/{address}/txs": ({"address": addresses}, ("after_txid",)),
    API + "/address/{address}/utxo": ({"address": addresses}, ("after",)),
    API + "/address/{address}/qr.svg": ({"address": addresses}, ()),
    API + "/xpub/{xpub}": ({"xpub": xpubs}, ()),
    API + "/xpub/{xpub}/txs": ({"xpub": xpubs}, ("after_txid",)),
    API + "/xpub/{xpub}/utxo": ({"xpub": xpubs}, ("after",)),
    f"{API}/mempool": ({}, ()),
    f"{API}/mempool/txids": ({}, ("after_txid",)),
    f"{API}/mempool/recent": ({}, ()),
    f"{API}/fee-estimates": ({}, ()),
    f"{API}/search": ({}, ("q",)),
    f"{API}/utxo-set-info": ({}, ()),
    f"{API}/peers": ({}, ()),
    f"{API}/events": ({}, ("subscribe", "since")),
    f"{API}/openapi.json": ({}, ()),
    "/metrics": ({}, ()),
    "/": ({}, ()),
    "/static/{filename}": ({"filename": filenames}, ()),
}
NOT_JSON = ("/raw", "/blocks/tip/", "/block-height/", "/metrics", "/static/", "/qr.svg")


@st.composite
def get_paths(draw: DrawFn, template: str) -> str:
    params, query_names = GET_ROUTES[template]
    path = template
    for name, values in params.items():
        path = path.replace("{" + name + "}", draw(segments(values)))
    pairs = [(q, draw(queries[q])) for q in query_names if draw(st.integers(0, 3))]
    pairs += draw(st.lists(st.tuples(st.text(max_size=6), st.text(max_size=10)), max_size=2))
    if pairs:
        path += "?" + urllib.parse.urlencode(pairs)
    if draw(st.integers(0, 9)) == 0:
        path += draw(st.sampled_from(["?" + s for s in RAW_SEGMENTS] + ["/", "//", "?&&=&"]))
    return path


# --- the node -----------------------------------------------------------------------------------

TOOLKIT_POSTS = (
    "time",
    "automine",
    "mempool/clear",
    "reorg",
    "snapshot",
    "revert",
    "partition",
    "heal",
)
"""The devnet toolkit's POST routes (SPEC 6), each fuzzed with the token below."""
ADMIN_GETS = (f"{API}/admin/time", f"{API}/admin/automine", f"{API}/admin/snapshots")
"""GET routes behind the admin token (fuzzed with it, not by ``test_fuzz_get``)."""

P2P_ANSWERS = {
    "handshake": "handshake",
    "inv": "empty",
    "getdata": "items",
    "getheaders": "headers",
    "addr": "addr",
    "mempool": "txids",
}
POST_ROUTES = {
    f"{API}/tx",
    f"{API}/txs",
    f"{API}/block",
    f"{API}/admin/generate",
    f"{API}/admin/peers",
    f"{API}/admin/mining",
    f"{API}/admin/invalidate",
    f"{API}/admin/reconsider",
    f"{API}/admin/stop",
    *(f"{API}/admin/{name}" for name in TOOLKIT_POSTS),
    *(f"/p2p/{name}" for name in P2P_ANSWERS),
}
API_CODES = {
    "bad-request",
    "not-found",
    "payload-too-large",
    "bad-address",
    "bad-xpub",
    "xpub-too-large",
    "not-allowed",
    "tip-moved",
    "too-many-snapshots",
    "snapshot-failed",
}
P2P_CODES = {
    "bad-message",
    "too-many-items",
    "wrong-network",
    "wrong-genesis",
    "old-version",
    "self-connection",
    "payload-too-large",
    "banned",
    "too-many-requests",
}


@dataclass
class Env:
    node: NodeProcess
    token: str
    senders: Iterator[int]

    def sender(self) -> str:
        """A new peer key: the node believes an ``X-Tally-Peer`` URL whose host is the
        request's address, so each one is a loopback URL with its own path (nothing listens
        on port 1, so the node's requests to it fail at once)."""
        return f"http://127.0.0.1:1/fuzz-{next(self.senders)}"

    def request(
        self,
        method: str,
        path: str,
        body: Body | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = dict(headers or {})
        if body is not None and body.content_type is not None:
            all_headers["Content-Type"] = body.content_type
        data = None if body is None else body.data
        r = http(self.node.url + path, method, data, all_headers, timeout=TIMEOUT)
        if data and (body is None or body.content_type not in ACCEPTED_TYPES):
            # SPEC 3.5: any other declared type (or none: urllib then sends a form type) is 415.
            assert r.status == 415, f"{method} {path} {body!r}: HTTP {r.status} {r.body[:200]!r}"
        return r

    def admin(self, path: str, body: Body) -> Response:
        return self.request("POST", path, body, {"Authorization": f"Bearer {self.token}"})

    def p2p(self, route: str, data: bytes, sender: str) -> Response:
        headers = {"X-Tally-Peer": sender, "Content-Type": "application/msgpack"}
        return http(f"{self.node.url}/p2p/{route}", "POST", data, headers, timeout=TIMEOUT)


def check(r: Response, what: str, codes: set[str], answer: str | None = None) -> Any:
    """Never a 5xx; errors in the documented shape; answers in their format."""
    assert r.status < 500, f"{what}: HTTP {r.status} {r.body[:300]!r}"
    if r.status >= 400:
        allowed = {400, 401, 404, 413, 415} | ({403, 429} if answer else set())
        assert r.status in allowed, f"{what}: HTTP {r.status} {r.body[:300]!r}"
        assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
        error = json.loads(r.body)
        assert list(error) == ["error"] and sorted(error["error"]) == ["code", "message"], error
        code, message = error["error"]["code"], error["error"]["message"]
        assert isinstance(code, str) and isinstance(message, str), error
        if r.status == 415:
            assert code == "unsupported-media-type", error
        assert code in codes | {"unauthorized", "unsupported-media-type"}, (
            f"{what}: undocumented code {code!r}"
        )
        return None
    assert r.status == 200, f"{what}: HTTP {r.status}"
    if answer is not None:
        return m.parse(answer, r.body)
    return r.body


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, planted: Any) -> Iterator[Env]:
    node = NodeProcess(tmp_path_factory.mktemp("fuzz-http") / "node").start()
    try:
        for block in CHAIN.blocks[1:]:
            r = node.post_raw(f"{API}/block", block.serialize())
            assert r.status == 200, r.body
        yield Env(node, node.token, itertools.count())
    finally:
        node.stop()


# --- what a 200 accepted must be ------------------------------------------------------------------


def tip_height(env: Env) -> int:
    r = env.request("GET", f"{API}/blocks/tip/height")
    assert r.status == 200, r.body
    return int(r.body)


def assert_valid_spend(env: Env, txid: str) -> None:
    """The transaction the node accepted as ``txid`` is valid by the rules: the fuzzer's only
    valid transactions spend coinbases of ``CHAIN`` (``CHAIN.view`` holds them), so those are the
    coins it is checked against, at the height of the node's next block."""
    r = env.request("GET", f"{API}/tx/{txid}/raw")
    assert r.status == 200, f"accepted {txid}, but GET /tx/{txid}/raw is {r.status}"
    tx = Transaction.deserialize(r.body)
    assert display(tx.txid()) == txid
    next_height = tip_height(env) + 1
    check_transaction(tx, P)
    assert not tx.is_coinbase() and is_final(tx, next_height), tx
    fee = verify_tx_inputs(tx, CHAIN.view, next_height, P)
    assert fee >= tx.size(), f"accepted {txid} paying {fee} for {tx.size()} bytes"


def assert_valid_block(env: Env, answer: dict[str, Any]) -> None:
    """The block the node accepted is valid by the context-free rules and, stored on a chain,
    by its context at the height the node gave it, on a parent the node has."""
    assert answer["status"] in ("active", "side", "orphan"), answer
    r = env.request("GET", f"{API}/block/{answer['hash']}/raw")
    if answer["status"] == "orphan":
        assert answer["height"] is None, answer
        return
    assert r.status == 200, f"accepted {answer}, but its raw block is {r.status}"
    block = Block.deserialize(r.body)
    assert block.hash_hex() == answer["hash"]
    check_block(block, P)
    assert block.header.bits == P.pow_limit_bits
    parent = env.request("GET", f"{API}/block/{display(block.header.prev_hash)}")
    assert parent.status == 200, f"accepted {answer} on a parent the node does not have"
    height = json.loads(parent.body)["height"] + 1
    assert answer["height"] == height, answer
    verify_block_context(block, height)


def sent_items(body: Body) -> list[Any]:
    """The items of a ``POST /txs`` body the node answered 200 (so it was an array): msgpack
    (an array starts 0x90-0x9f, 0xdc or 0xdd) or JSON (``[``); the two cannot be confused."""
    try:
        items = msgpack.unpackb(body.data, raw=True)
    except (ValueError, TypeError, msgpack.UnpackException):
        items = json.loads(body.data)
    assert isinstance(items, list), body
    return items


# --- POST routes --------------------------------------------------------------------------------


@FUZZ
@given(body=submit_bodies(tx_bytes))
def test_fuzz_post_tx(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    r = env.request("POST", f"{API}/tx", body)
    if check(r, "POST /tx", API_CODES | ALL_CODES) is not None:
        txid = json.loads(r.body)["txid"]
        assert len(txid) == 64
        assert_valid_spend(env, txid)


@FUZZ
@given(body=batch_bodies())
@example(body=Body("application/msgpack", msgpack.packb([b"\x90"] * 1_001)))
@example(body=Body("application/json", json.dumps([{"raw": "90"}] * 1_001).encode()))
def test_fuzz_post_txs(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    r = env.request("POST", f"{API}/txs", body)
    if check(r, "POST /txs", API_CODES) is not None:
        answers = json.loads(r.body)
        items = sent_items(body)
        assert isinstance(answers, list) and len(answers) == len(items), (answers, body)
        for item, answer in zip(items, answers, strict=True):
            assert list(answer) in (["txid"], ["error"]), answer
            if "error" in answer:
                assert answer["error"]["code"] in ALL_CODES, answer
                continue
            raw = item if isinstance(item, bytes) else bytes.fromhex(item["raw"])
            assert answer["txid"] == display(Transaction.deserialize(raw).txid()), answer
            assert_valid_spend(env, answer["txid"])


@FUZZ
@given(body=submit_bodies(block_bytes))
def test_fuzz_post_block(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    r = env.request("POST", f"{API}/block", body)
    if check(r, "POST /block", API_CODES | ALL_CODES) is not None:
        assert_valid_block(env, json.loads(r.body))


@FUZZ
@given(body=generate_bodies)
def test_fuzz_admin_generate(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    check(env.admin(f"{API}/admin/generate", body), "POST /admin/generate", API_CODES)


@FUZZ
@given(body=peer_bodies)
@example(body=Body("application/json", b'{"url": "http://a..b.invalid"}'))
def test_fuzz_admin_peers(env: Env, body: Body, fuzz_stats: Any) -> None:
    """The example is a crash this fuzzer found: a host that is not a valid DNS name (an empty
    label) makes aiohttp raise ``UnicodeError`` (a ``ValueError``, not a ``ClientError``) out of
    ``PeerManager._post``, a 500 here."""
    fuzz_stats.hit()
    check(env.admin(f"{API}/admin/peers", body), "POST /admin/peers", API_CODES)


@FUZZ
@given(body=mining_bodies)
def test_fuzz_admin_mining(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    try:
        check(env.admin(f"{API}/admin/mining", body), "POST /admin/mining", API_CODES)
    finally:
        off = Body("application/json", b'{"enabled": false}')
        assert env.admin(f"{API}/admin/mining", off).status == 200


@pytest.mark.parametrize("route", ["invalidate", "reconsider"])
@FUZZ
@given(body=mark_bodies)
def test_fuzz_admin_block_marks(env: Env, route: str, body: Body, fuzz_stats: Any) -> None:
    """A known block may really be invalidated: reconsidering the genesis afterwards clears every
    mark and returns the node to its most-work chain, so the other fuzzers see the same node."""
    fuzz_stats.hit()
    tip = env.request("GET", f"{API}/blocks/tip/hash").body.decode()
    try:
        check(env.admin(f"{API}/admin/{route}", body), f"POST /admin/{route}", API_CODES)
    finally:
        genesis = json.dumps({"hash": P.genesis_hash[::-1].hex()}).encode()
        r = env.admin(f"{API}/admin/reconsider", Body("application/json", genesis))
        assert r.status == 200, r.body[:300]
        assert r.json()["best_hash"] == tip, r.body[:300]


def put_back(env: Env, route: str, body: bytes) -> Response:
    r = env.admin(f"{API}/admin/{route}", Body("application/json", body))
    assert r.status == 200, (route, r.status, r.body[:300])
    return r


@pytest.mark.parametrize("path", ADMIN_GETS)
@FUZZ
@given(query=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=10)), max_size=2))
def test_fuzz_admin_get(env: Env, path: str, query: list[Any], fuzz_stats: Any) -> None:
    """With the token a JSON answer (queries are ignored); without it 401."""
    fuzz_stats.hit()
    url = path + ("?" + urllib.parse.urlencode(query) if query else "")
    token = {"Authorization": f"Bearer {env.token}"}
    body = check(env.request("GET", url, None, token), f"GET {url}", API_CODES)
    assert body is not None
    json.loads(body)
    r = env.request("GET", url)
    assert r.status == 401, (r.status, r.body[:300])
    check(r, f"GET {url} without the token", set())


@FUZZ
@given(body=time_bodies)
def test_fuzz_admin_time(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    try:
        check(env.admin(f"{API}/admin/time", body), "POST /admin/time", API_CODES)
    finally:
        put_back(env, "time", b'{"reset": true}')


@FUZZ
@given(body=automine_bodies)
def test_fuzz_admin_automine(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    try:
        check(env.admin(f"{API}/admin/automine", body), "POST /admin/automine", API_CODES)
    finally:
        put_back(env, "automine", b'{"mode": "off"}')


@FUZZ
@given(body=clear_bodies)
def test_fuzz_admin_mempool_clear(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    r = env.admin(f"{API}/admin/mempool/clear", body)
    check(r, "POST /admin/mempool/clear", API_CODES)


VALID_REORG = json.dumps({"depth": 1, "address": A0}).encode()


def revert_to_base(env: Env) -> None:
    """Back to the ``fuzz-base`` snapshot, then ``heal`` (a revert holds every peer off for a
    while, which the ``/p2p/`` fuzzers would meet as 403s)."""
    r = put_back(env, "revert", b'{"name": "fuzz-base"}')
    assert r.json()["name"] == "fuzz-base", r.body[:300]
    put_back(env, "heal", b"{}")


@FUZZ
@given(body=reorg_bodies)
@example(body=Body("application/json", VALID_REORG))
def test_fuzz_admin_reorg(env: Env, body: Body, fuzz_stats: Any) -> None:
    """A valid reorg really replaces blocks (the example is one): each example starts with a
    ``fuzz-base`` snapshot, and the node is reverted to it when its tip moved."""
    fuzz_stats.hit()
    tip = put_back(env, "snapshot", b'{"name": "fuzz-base"}').json()["best_hash"]
    try:
        r = env.admin(f"{API}/admin/reorg", body)
        if check(r, "POST /admin/reorg", API_CODES) is not None:
            assert r.json()["old_tip"] == tip and r.json()["new_tip"] != tip, r.body[:300]
        elif body.data == VALID_REORG:
            raise AssertionError(f"a reorg of depth 1 was refused: {r.body[:300]!r}")
    finally:
        if env.request("GET", f"{API}/blocks/tip/hash").body.decode() != tip:
            revert_to_base(env)
        assert env.request("GET", f"{API}/blocks/tip/hash").body.decode() == tip


@FUZZ
@given(body=snapshot_bodies)
@example(body=Body("application/json", b'{"name": "fuzz-base"}'))
def test_fuzz_admin_revert(env: Env, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    tip = put_back(env, "snapshot", b'{"name": "fuzz-base"}').json()["best_hash"]
    try:
        check(env.admin(f"{API}/admin/revert", body), "POST /admin/revert", API_CODES)
    finally:
        revert_to_base(env)
        assert env.request("GET", f"{API}/blocks/tip/hash").body.decode() == tip


@FUZZ
@given(body=snapshot_bodies)
def test_fuzz_admin_snapshot(env: Env, body: Body, fuzz_stats: Any) -> None:
    """Valid names really make snapshots (at most ``MAX_SNAPSHOTS``, then 400)."""
    fuzz_stats.hit()
    check(env.admin(f"{API}/admin/snapshot", body), "POST /admin/snapshot", API_CODES)


@pytest.mark.parametrize("route", ["partition", "heal"])
@FUZZ
@given(body=partition_bodies)
def test_fuzz_admin_partition(env: Env, route: str, body: Body, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    try:
        check(env.admin(f"{API}/admin/{route}", body), f"POST /admin/{route}", API_CODES)
    finally:
        put_back(env, "heal", b"{}")


authorizations = st.one_of(
    st.none(),
    st.sampled_from(["Bearer", "Bearer ", "bearer x", "Basic dXNlcjpwYXNz", "Bearer  x"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")),
)


@pytest.mark.parametrize(
    "route", ["generate", "peers", "mining", "invalidate", "reconsider", "stop", *TOOLKIT_POSTS]
)
@FUZZ
@given(auth=authorizations, body=admin_bodies({"count": counts, "enabled": st.booleans()}))
def test_fuzz_admin_without_token(
    env: Env, route: str, auth: str | None, body: Body, fuzz_stats: Any
) -> None:
    fuzz_stats.hit()
    if auth is not None and auth.endswith(env.token):
        auth = auth + "x"
    headers = {} if auth is None else {"Authorization": auth}
    r = env.request("POST", f"{API}/admin/{route}", body, headers)
    # A body of another type is refused (415) before the token is looked at (SPEC 3.5).
    expected = 415 if body.data and body.content_type not in ACCEPTED_TYPES else 401
    assert r.status == expected, (r.status, r.body[:300])
    check(r, f"POST /admin/{route} without the token", set())


@pytest.mark.parametrize("route", sorted(P2P_ANSWERS))
@FUZZ
@given(data=st.data())
def test_fuzz_p2p_route(env: Env, route: str, data: Any, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    sender = env.sender()
    if route in ("inv", "getdata") and data.draw(st.booleans(), label="handshake first"):
        hello = {
            "magic": P.magic,
            "genesis": P.genesis_hash,
            "version": m.PROTOCOL_VERSION,
            "height": 0,
            "work": b"\x00" * 32,
            "url": sender,
            "nonce": os.urandom(8),
        }
        check(env.p2p("handshake", m.encode(hello), sender), "handshake", P2P_CODES, "handshake")
    limit = BODY_LIMITS[route]
    oversize = st.integers(limit + 1, limit + 64).map(lambda n: b"\x80" + b"\x00" * n)
    inputs = p2p_inputs(route, KNOWN) | oversize
    if route == "handshake":  # often of our network, so the node registers the "peer"
        ours = messages_for("handshake", KNOWN).map(
            lambda h: m.encode({**h, "magic": P.magic, "genesis": P.genesis_hash})
        )
        inputs = inputs | ours
    body = data.draw(inputs, label="body")
    r = env.p2p(route, body, sender)
    assert r.status not in (403, 429), f"the fuzzer's own key got refused: {r.body[:200]!r}"
    check(r, f"/p2p/{route}", P2P_CODES, P2P_ANSWERS[route])


sender_suffixes = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
)


@FUZZ
@given(suffix=sender_suffixes)
@example(suffix="\xff")
def test_fuzz_p2p_sender_header(env: Env, suffix: str, fuzz_stats: Any) -> None:
    """Six malformed messages under one random ``X-Tally-Peer``: each refused (400) or, once
    the key they count against (the URL, or ``ip:<address>`` when the node does not believe
    it) has its 100 points, banned (403), and the sixth is banned in any case. The example is a
    crash this fuzzer found: a header that is not UTF-8 reached ``PeerManager.ban`` as a str
    with surrogates, whose ``key.encode()`` raised ``UnicodeEncodeError`` (a 500)."""
    fuzz_stats.hit()
    sender = env.sender() + "/" + suffix
    statuses = []
    for n in range(6):
        r = env.p2p("inv", b"\xc1", sender)
        check(r, f"malformed inv {n + 1} from {sender!r}", P2P_CODES, "empty")
        statuses.append(r.status)
    assert set(statuses) <= {400, 403} and statuses[-1] == 403, statuses


@pytest.mark.parametrize("template", sorted(GET_ROUTES))
@FUZZ
@given(data=st.data())
def test_fuzz_get(env: Env, template: str, data: Any, fuzz_stats: Any) -> None:
    fuzz_stats.hit()
    path = data.draw(get_paths(template), label="path")
    r = env.request("GET", path)
    body = check(r, f"GET {path}", API_CODES)
    if body is None:
        return
    if template.endswith("/raw"):
        decode = Block.deserialize if "/block/" in template else Transaction.deserialize
        assert decode(body).serialize() == body
    elif not any(part in template for part in NOT_JSON) and template != "/":
        json.loads(body)


@pytest.mark.parametrize("route", sorted(P2P_ANSWERS))
def test_regression_str_and_bin_keys_in_one_message(env: Env, route: str) -> None:
    """Crash found by ``test_fuzz_p2p_parse[headers]``: ``{"": 0, b"": 0}`` makes
    ``messages.parse`` sort a set holding both str and bytes for its error message, a
    ``TypeError`` that escapes the route's ``except ProtocolError``: a 500 on every ``/p2p/``
    route, and no misbehaviour score for the sender."""
    r = env.p2p(route, b"\x82\xa0\x00\xc4\x00\x00", env.sender())
    check(r, f"/p2p/{route} with str and bin keys", P2P_CODES, P2P_ANSWERS[route])
    assert r.status == 400


def test_every_route_is_fuzzed() -> None:
    documented = {
        (method.upper(), path)
        for path, item in openapi_document()["paths"].items()
        for method in item
    }
    fuzzed = {("GET", t) for t in GET_ROUTES} | {("POST", p) for p in POST_ROUTES}
    fuzzed |= {("GET", p) for p in ADMIN_GETS}
    assert fuzzed == documented


# --- what this fuzzer found: plain regression tests -----------------------------------------------

BAD_HOST = "http://a..b.invalid"
ADDRESS_BOOK = getattr(manager, "MAX_ADDRESSES", 1_000)
"""How many learned addresses the node keeps."""
DEAD = "http://127.0.0.1:1/fuzz-dead"


@dataclass
class Planted:
    node: NodeProcess
    fake: Any
    late: Any
    at: float


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    """A second node, given at start-up one ``addr`` and one handshake naming ``BAD_HOST``,
    then a reachable peer to dial (``fake``) and a dead one to drop, then a full address book
    of unreachable loopback URLs (refused at once: no DNS), then one more reachable peer
    (``late``). The tests at the end of the
    module look at it once enough time has passed (the pinger runs every 10 s)."""
    from tests.integration.fake_peer import FakePeer

    node = NodeProcess(tmp_path_factory.mktemp("fuzz-planted") / "node").start()
    fake, late = FakePeer().start(), FakePeer().start()
    try:
        hello = {
            "magic": P.magic,
            "genesis": P.genesis_hash,
            "version": m.PROTOCOL_VERSION,
            "height": 0,
            "work": b"\x00" * 32,
            "url": BAD_HOST,
            "nonce": os.urandom(8),
        }
        post = Env(node, "", itertools.count()).p2p
        assert post("handshake", m.encode(hello), BAD_HOST).status == 200
        hello = {**hello, "url": DEAD, "nonce": os.urandom(8)}
        assert post("handshake", m.encode(hello), DEAD).status == 200
        assert post("addr", m.encode({"urls": [BAD_HOST]}), DEAD + "-a").status == 200
        time.sleep(1.5)  # the connector's next round meets BAD_HOST first
        assert post("addr", m.encode({"urls": [fake.url]}), DEAD + "-b").status == 200
        for n in range(0, ADDRESS_BOOK, m.MAX_ADDRS):
            junk = [f"http://127.0.0.1:1/fill-{i}" for i in range(n, n + m.MAX_ADDRS)]
            assert post("addr", m.encode({"urls": junk}), f"{DEAD}-fill-{n}").status == 200
        assert post("addr", m.encode({"urls": [late.url]}), DEAD + "-c").status == 200
        yield Planted(node, fake, late, time.monotonic())
    finally:
        late.stop()
        fake.stop()
        node.stop()


def wait_for(condition: Callable[[], bool], since: float, seconds: float) -> bool:
    while time.monotonic() < since + seconds:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def peer_urls(node: NodeProcess) -> set[str]:
    return {p["url"] for p in json.loads(node.get(f"{API}/peers").body)["connected"]}


def test_regression_bad_peer_url_does_not_stop_dialling(planted: Planted) -> None:
    """Crash found: an ``addr`` naming a host that is not a valid DNS name (here an empty label)
    kills the connector task: ``PeerManager.connect`` -> ``_post`` raises ``UnicodeError`` from
    aiohttp's resolver (not a ``ClientError``), nothing catches it, and the node never dials a
    peer again (silently: ``stop()`` gathers the task with ``return_exceptions``)."""
    dialled = wait_for(lambda: "handshake" in planted.fake.routes_asked(), planted.at, 20)
    assert dialled, "the node never dialled the peer it learned after a bad addr URL"


def test_regression_full_address_book_still_learns(planted: Planted) -> None:
    """Found by the fuzzer's ``addr`` messages: the address book keeps at most
    ``MAX_ADDRESSES`` learned URLs and ``PeerManager.learn_urls`` drops every new one once it is
    full, while unreachable entries are never evicted. Ten ``addr`` messages of junk from
    anyone, and the node never again learns a peer by gossip (an eclipse)."""
    dialled = wait_for(lambda: "handshake" in planted.late.routes_asked(), planted.at, 30)
    assert dialled, "a peer learned after the address book filled with junk was never dialled"


def test_regression_bad_peer_url_does_not_stop_pinging(planted: Planted) -> None:
    """Crash found: a handshake whose ``url`` is not a valid DNS name registers that URL as a
    peer; the pinger's ``_post`` to it raises ``UnicodeError`` and the pinger task dies, so dead
    peers (``fuzz-dead``, registered after it) are never dropped."""
    gone = wait_for(lambda: DEAD not in peer_urls(planted.node), planted.at, 25)
    assert gone, "a dead peer was never dropped: the pinger has stopped"


def test_regression_planted_node_log_is_clean(planted: Planted) -> None:
    assert planted.node.get(f"{API}/info").status == 200
    assert "Traceback" not in planted.node.log(), planted.node.log()[-3000:]


def test_zz_node_survived_the_fuzzing(env: Env) -> None:
    """Last: the fuzzed node still answers, still dials a peer it learns and drops a dead one,
    and logged no traceback."""
    from tests.integration.fake_peer import FakePeer

    node = env.node
    info = node.get(f"{API}/info")
    assert info.status == 200 and json.loads(info.body)["network"] == "regtest"
    with FakePeer() as fake:
        started = time.monotonic()
        dead = "http://127.0.0.1:1/fuzz-canary"
        hello = {
            "magic": P.magic,
            "genesis": P.genesis_hash,
            "version": m.PROTOCOL_VERSION,
            "height": 0,
            "work": b"\x00" * 32,
            "url": dead,
            "nonce": os.urandom(8),
        }
        assert env.p2p("handshake", m.encode(hello), dead).status == 200
        assert env.p2p("addr", m.encode({"urls": [fake.url]}), env.sender()).status == 200
        dialled = wait_for(lambda: "handshake" in fake.routes_asked(), started, 30)
        dropped = wait_for(lambda: dead not in peer_urls(node), started, 25)
    log = node.log()
    problems = [
        *([] if dialled else ["the node no longer dials peers it learns (connector task dead)"]),
        *([] if dropped else ["the node no longer drops dead peers (pinger task dead)"]),
        *(["its log has a Traceback"] if "Traceback" in log else []),
    ]
    tracebacks = [chunk[:1500] for chunk in log.split("Traceback")[1:4]]
    assert not problems, "; ".join(problems) + "\n" + "\n---\n".join(tracebacks)
    assert node.proc is not None and node.proc.poll() is None
