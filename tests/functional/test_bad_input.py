"""Bad input to a real node: the documented error, nothing changed, the node keeps serving.

One node per module: 101 blocks to A0 (coinbases 1 and 2 are mature at tip 101: the next block,
102, may spend a coinbase of height <= 2), block 101 confirming ``confirmed`` (a spend of
coinbase 1), and one valid transaction in the mempool (``held``, spending ``confirmed``'s
output) so conflicts can be tried. Every test compares ``/info``, ``/mempool`` and
``/mempool/txids`` with that baseline after its bad requests (SPEC 3.5: errors are
``{"error": {"code", "message"}}`` with 400, 401, 404 or 413, never a 500 for bad input).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import msgpack
import pytest

from consensus import (
    COIN,
    MAX_MONEY,
    Block,
    BlockHeader,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    check_proof_of_work,
    get_params,
    merkle_root,
    sha256d,
    sign,
    signature_hash,
    verify_signature,
)
from tests.functional.node_process import NodeProcess, Response, address_of, http
from tests.helpers import REGTEST, Key, coinbase, key, mine_block, solve, spend

API = "/api/v1"
K0, K1, K2 = key(0), key(1), key(2)
A0, A1 = address_of(K0.pubkey_hash), address_of(K1.pubkey_hash)
SUBSIDY = 50 * COIN
FEE = 10_000
ZERO = "0" * 64


@dataclass
class Env:
    node: NodeProcess
    blocks: list[Block]
    held: Transaction
    confirmed: Transaction
    baseline: dict[str, Any]

    @property
    def tip(self) -> Block:
        return self.blocks[-1]

    def cb(self, height: int) -> tuple[OutPoint, TxOut, Any]:
        tx = self.blocks[height].txs[0]
        return OutPoint(tx.txid(), 0), tx.outputs[0], K0

    def state(self) -> dict[str, Any]:
        return {p: self.node.get(API + p).json() for p in ("/info", "/mempool", "/mempool/txids")}

    def assert_unchanged(self) -> None:
        assert self.state() == self.baseline


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    node = NodeProcess(tmp_path_factory.mktemp("bad") / "n")
    node.start()
    try:
        node.generate(100, A0)
        cb1 = Block.deserialize(node.get(f"{API}/block/{_hash_at(node, 1)}/raw").body).txs[0]
        confirmed = spend(
            [(OutPoint(cb1.txid(), 0), cb1.outputs[0], K0)],
            [TxOut(SUBSIDY - FEE, K0.pubkey_hash)],
        )
        assert node.post_raw(API + "/tx", confirmed.serialize()).status == 200
        node.generate(1, A0)
        blocks = []
        for height in range(102):
            h = _hash_at(node, height)
            blocks.append(Block.deserialize(node.get(f"{API}/block/{h}/raw").body))
        assert blocks[101].txs[1:] == (confirmed,)
        held = spend(
            [(OutPoint(confirmed.txid(), 0), confirmed.outputs[0], K0)],
            [TxOut(SUBSIDY - 2 * FEE, K1.pubkey_hash)],
        )
        assert node.post_raw(API + "/tx", held.serialize()).status == 200
        e = Env(node, blocks, held, confirmed, {})
        e.baseline = e.state()
        assert e.baseline["/info"]["height"] == 101
        assert e.baseline["/mempool"]["count"] == 1
        yield e
    finally:
        node.stop()


def _hash_at(node: NodeProcess, height: int) -> str:
    r = node.get(f"{API}/block-height/{height}")
    assert r.status == 200, r.body
    return r.body.decode()


def expect_error(r: Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status == status, (r.status, r.body[:300])
    assert r.headers.get("Content-Type", "").startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    err: dict[str, Any] = body["error"]
    assert set(err) == {"code", "message"}
    assert isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


def post(
    env: Env, path: str, body: bytes, content_type: str = "application/json", admin: bool = False
) -> Response:
    headers = {"Content-Type": content_type}
    if admin:
        headers["Authorization"] = f"Bearer {env.node.token}"
    return http(env.node.url + API + path, "POST", body, headers)


# --- malformed bodies and wrong types ------------------------------------------------------------

J = "application/json"
M = "application/msgpack"
BR, BA = "bad-request", "bad-address"
BODY_CASES = [
    # (path, body, content type, admin, status, code): every case names its code
    ("/tx", b"{", J, False, 400, "bad-request"),
    ("/tx", b'{"raw": "00"', J, False, 400, "bad-request"),
    ("/block", b"{]", J, False, 400, "bad-request"),
    ("/txs", b"[{", J, False, 400, "bad-request"),
    ("/admin/generate", b"{count: 1}", J, True, 400, BR),
    ("/tx", b"\xff\xfe", J, False, 400, "bad-request"),
    ("/tx", b"", J, False, 400, "bad-request"),
    # malformed msgpack
    ("/tx", b"\xc1", M, False, 400, "bad-encoding"),
    ("/tx", b"\x94\x01\x90", M, False, 400, "bad-encoding"),
    ("/tx", b"\x81\xa1a\x01", M, False, 400, "bad-encoding"),
    ("/block", b"\xc1", M, False, 400, "bad-encoding"),
    ("/block", b"\x92\xc4\x01\x00\x90", M, False, 400, "bad-encoding"),
    ("/tx", b"", M, False, 400, "bad-request"),
    ("/txs", b"\xc1", M, False, 400, "bad-request"),
    ("/txs", msgpack.packb([1, 2]), M, False, 400, "bad-request"),
    ("/txs", msgpack.packb({"a": 1}), M, False, 400, "bad-request"),
    # a JSON array where an object belongs, and the reverse
    ("/tx", b'[{"raw": "00"}]', J, False, 400, "bad-request"),
    ("/block", b"[]", J, False, 400, "bad-request"),
    ("/admin/generate", b'[{"count": 1}]', J, True, 400, BR),
    ("/admin/mining", b"[true]", J, True, 400, BR),
    ("/admin/peers", b'["http://x"]', J, True, 400, BR),
    ("/txs", b'{"raw": "00"}', J, False, 400, "bad-request"),
    ("/txs", b"[[1]]", J, False, 400, "bad-request"),
    ("/txs", b'"abc"', J, False, 400, "bad-request"),
    # wrong types
    ("/tx", b'{"raw": 5}', J, False, 400, "bad-request"),
    ("/tx", b'{"raw": ["00"]}', J, False, 400, "bad-request"),
    ("/tx", b'{"raw": null}', J, False, 400, "bad-request"),
    ("/tx", b"{}", J, False, 400, "bad-request"),
    ("/tx", b'{"raw": "zz"}', J, False, 400, "bad-request"),
    ("/tx", b'{"raw": "abc"}', J, False, 400, "bad-request"),
    ("/block", b'{"raw": 7}', J, False, 400, "bad-request"),
    ("/txs", b'[{"raw": 5}]', J, False, 400, "bad-request"),
    ("/admin/generate", json.dumps({"count": "1", "address": A0}).encode(), J, True, 400, BR),
    ("/admin/generate", json.dumps({"count": 1.5, "address": A0}).encode(), J, True, 400, BR),
    ("/admin/generate", json.dumps({"count": True, "address": A0}).encode(), J, True, 400, BR),
    ("/admin/generate", json.dumps({"count": None, "address": A0}).encode(), J, True, 400, BR),
    ("/admin/generate", json.dumps({"count": 1, "address": 5}).encode(), J, True, 400, BA),
    ("/admin/generate", json.dumps({"count": 1}).encode(), J, True, 400, BA),
    ("/admin/mining", b'{"enabled": "yes"}', J, True, 400, BR),
    ("/admin/mining", b'{"enabled": 1}', J, True, 400, BR),
    (
        "/admin/mining",
        json.dumps({"enabled": True, "address": A0, "block_time": "1"}).encode(),
        J,
        True,
        400,
        BR,
    ),
    (
        "/admin/mining",
        json.dumps({"enabled": True, "address": A0, "block_time": True}).encode(),
        J,
        True,
        400,
        BR,
    ),
    ("/admin/mining", b'{"enabled": true}', J, True, 400, BA),
    ("/admin/mining", b'{"enabled": true, "address": 12}', J, True, 400, BA),
    ("/admin/peers", b'{"url": 5}', J, True, 400, BR),
    ("/admin/peers", b'{"url": "ftp://example"}', J, True, 400, BR),
    ("/admin/peers", b"{}", J, True, 400, BR),
    # out-of-range numbers
    ("/admin/generate", json.dumps({"count": 0, "address": A0}).encode(), J, True, 400, BR),
    ("/admin/generate", json.dumps({"count": -1, "address": A0}).encode(), J, True, 400, BR),
    ("/admin/generate", json.dumps({"count": 10**9, "address": A0}).encode(), J, True, 400, BR),
    ("/admin/generate", json.dumps({"count": 2**80, "address": A0}).encode(), J, True, 400, BR),
    (
        "/admin/mining",
        json.dumps({"enabled": True, "address": A0, "block_time": 0}).encode(),
        J,
        True,
        400,
        BR,
    ),
    (
        "/admin/mining",
        json.dumps({"enabled": True, "address": A0, "block_time": -5}).encode(),
        J,
        True,
        400,
        BR,
    ),
    (
        "/admin/mining",
        json.dumps({"enabled": True, "address": A0, "block_time": 10**9}).encode(),
        J,
        True,
        400,
        BR,
    ),
    ("/admin/mining", b'{"enabled": true, "address": "x", "block_time": NaN}', J, True, 400, BR),
]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "admin", "status", "code"),
    BODY_CASES,
    ids=[f"{i}-{c[0]}-{c[1][:24]!r}" for i, c in enumerate(BODY_CASES)],
)
def test_bad_bodies(
    env: Env,
    path: str,
    body: bytes,
    content_type: str,
    admin: bool,
    status: int,
    code: str,
) -> None:
    expect_error(post(env, path, body, content_type, admin), status, code)
    env.assert_unchanged()


MINER_STARTED = "mining to "
"""What the node logs when a miner starts (``Miner.run``), before it mines anything."""


def test_no_mining_was_started_by_bad_requests(env: Env) -> None:
    """``enabled: true`` with a bad block_time or address must not leave a miner running.

    The bad requests are sent (again: this test may run alone), then one more request is
    answered, by which time a miner task they had created would have started and logged
    ``MINER_STARTED``: none has. Positive control: a valid request (a block a day, so nothing
    is mined) does start one, and the log says so; it is then stopped."""
    started = env.node.log().count(MINER_STARTED)
    for path, body, content_type, admin, status, code in BODY_CASES:
        if path == "/admin/mining":
            expect_error(post(env, path, body, content_type, admin), status, code)
    env.assert_unchanged()
    assert env.node.log().count(MINER_STARTED) == started, "a bad request started a miner"

    slow = {"enabled": True, "address": A1, "block_time": 86_400}
    r = post(env, "/admin/mining", json.dumps(slow).encode(), admin=True)
    try:
        assert (r.status, r.json()) == (200, {"enabled": True}), r.body
        deadline = time.monotonic() + 30
        while env.node.log().count(MINER_STARTED) == started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert env.node.log().count(MINER_STARTED) == started + 1, "the positive control failed"
    finally:
        off = post(env, "/admin/mining", b'{"enabled": false}', admin=True)
    assert (off.status, off.json()) == (200, {"enabled": False})
    env.assert_unchanged()


# --- query strings and path parameters -----------------------------------------------------------

GET_CASES = [
    # (path, status, code)
    ("/blocks?start_height=-1", 400, "bad-request"),
    ("/blocks?start_height=abc", 400, "bad-request"),
    ("/blocks?start_height=1.5", 400, "bad-request"),
    ("/blocks?start_height=" + str(2**40), 400, "bad-request"),
    ("/blocks?start_height=", 400, "bad-request"),
    ("/block-height/" + str(2**40), 400, "bad-request"),
    ("/block-height/-1", 400, "bad-request"),
    ("/block-height/x", 400, "bad-request"),
    ("/block-height/%C2%B2", 400, "bad-request"),
    ("/block-height/102", 404, "not-found"),
    ("/block-height/4000000", 404, "not-found"),
    ("/search?q=", 400, "bad-request"),
    ("/search?q=%20%20", 400, "bad-request"),
    ("/search?q=" + "1" * 201, 400, "bad-request"),
    ("/search?q=nothing-like-this", 404, "not-found"),
    ("/search?q=" + ZERO, 404, "not-found"),
    ("/search?q=102", 404, "not-found"),
    ("/search?q=4294967295", 404, "not-found"),
    # a height beyond 32 bits, and a digit that int() does not read: 500 today
    ("/search?q=4294967296", 404, "not-found"),
    ("/search?q=9999999999", 404, "not-found"),
    ("/search?q=%C2%B2", 404, "not-found"),
    ("/nowhere", 404, "not-found"),
    ("/block/" + ZERO + "/nowhere", 404, "not-found"),
]
HASH_ROUTES = [
    "/block/{}",
    "/block/{}/txids",
    "/block/{}/txs",
    "/block/{}/raw",
    "/tx/{}",
    "/tx/{}/status",
    "/tx/{}/raw",
    "/tx/{}/merkle-proof",
    "/tx/{}/outspends",
]
BAD_HASHES = ["abc", "0" * 63, "0" * 65, "g" * 64, "0x" + "0" * 62, "%20" + "0" * 63]
for route in HASH_ROUTES:
    GET_CASES.append((route.format(ZERO), 404, "not-found"))
    GET_CASES.append((route.format("12" * 32), 404, "not-found"))
    for bad in BAD_HASHES:
        GET_CASES.append((route.format(bad), 400, "bad-request"))


@pytest.mark.parametrize(("path", "status", "code"), GET_CASES, ids=[c[0][:60] for c in GET_CASES])
def test_bad_queries(env: Env, path: str, status: int, code: str) -> None:
    expect_error(env.node.get(API + path), status, code)
    env.assert_unchanged()


def test_hash_with_spaces_is_400(env: Env) -> None:
    """64 characters, but two are spaces: 31 bytes, not a hash. ``bytes.fromhex`` skips the
    spaces, so ``parse_hash`` must not rely on the character count alone."""
    spaced = "%20%20" + "0" * 62
    answers = {route: env.node.get(API + route.format(spaced)).status for route in HASH_ROUTES}
    assert answers == dict.fromkeys(HASH_ROUTES, 400)
    r = env.node.get(f"{API}/address/{A0}/txs?after_txid={spaced}")
    expect_error(r, 400, "bad-request")
    env.assert_unchanged()


def test_bad_block_page_and_cursor(env: Env) -> None:
    tip = env.tip.hash()[::-1].hex()
    for q, status in (("-1", 400), ("x", 400), (str(2**40), 400), ("25", 404), ("3", 404)):
        expect_error(env.node.get(f"{API}/block/{tip}/txs?start_index={q}"), status)
    for bad in BAD_HASHES[:4]:
        expect_error(env.node.get(f"{API}/address/{A0}/txs?after_txid={bad}"), 400)
    expect_error(env.node.get(f"{API}/address/{A0}/txs?after_txid={ZERO}"), 404)
    env.assert_unchanged()


def test_merkle_proof_of_unconfirmed_is_404(env: Env) -> None:
    txid = env.held.txid()[::-1].hex()
    expect_error(env.node.get(f"{API}/tx/{txid}/merkle-proof"), 404, "not-found")


# --- addresses -----------------------------------------------------------------------------------


def _mistype(address: str) -> str:
    """The address with its last character changed to another Base58 character."""
    last = "2" if address[-1] != "2" else "3"
    return address[:-1] + last


@pytest.mark.parametrize("suffix", ["", "/txs", "/utxo"])
def test_wrong_address_checksum(env: Env, suffix: str) -> None:
    err = expect_error(env.node.get(f"{API}/address/{_mistype(A0)}{suffix}"), 400, "bad-address")
    assert "checksum" in err["message"]
    env.assert_unchanged()


@pytest.mark.parametrize(
    ("address", "word"),
    [
        ("0OIl" + A0[4:], "character"),
        ("r", "length"),
        (A0[:-4], None),
        (A0 + "1111", None),
        (address_of(K0.pubkey_hash, "main"), "network"),
        (address_of(K0.pubkey_hash, "test"), "network"),
        ("r" * 300, "length"),
    ],
)
def test_other_bad_addresses(env: Env, address: str, word: str | None) -> None:
    err = expect_error(
        env.node.get(f"{API}/address/{urllib.parse.quote(address)}"), 400, "bad-address"
    )
    if word is not None:
        assert word in err["message"]
    env.assert_unchanged()


def test_generate_to_a_mistyped_address(env: Env) -> None:
    r = env.node.post_json(
        API + "/admin/generate", {"count": 1, "address": _mistype(A0)}, admin=True
    )
    assert "checksum" in expect_error(r, 400, "bad-address")["message"]
    on = {"enabled": True, "address": _mistype(A0), "block_time": 1}
    expect_error(env.node.post_json(API + "/admin/mining", on, admin=True), 400, "bad-address")
    env.assert_unchanged()


# --- size limits ---------------------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("path", "content_type", "admin"),
    [
        ("/tx", M, False),
        ("/tx", J, False),
        ("/block", M, False),
        ("/txs", J, False),
        ("/txs", M, False),
        ("/admin/generate", J, True),
    ],
)
def test_ten_megabyte_body(env: Env, path: str, content_type: str, admin: bool) -> None:
    body = b" " * TEN_MB if content_type == J else b"\x00" * TEN_MB
    expect_error(post(env, path, body, content_type, admin), 413, "payload-too-large")
    env.assert_unchanged()


def test_too_many_transactions_in_a_batch(env: Env) -> None:
    r = env.node.post_json(API + "/txs", [{"raw": env.held.serialize().hex()}] * 1001)
    expect_error(r, 400, "bad-request")
    env.assert_unchanged()


# --- invalid transactions ------------------------------------------------------------------------


def _flip_signature(tx: Transaction) -> Transaction:
    i = tx.inputs[0]
    sig = bytes([i.signature[0] ^ 1]) + i.signature[1:]
    return replace(tx, inputs=(replace(i, signature=sig),))


def _signed_by(tx: Transaction, spent: TxOut, signer: Key) -> Transaction:
    """``tx`` with its first input signed by ``signer`` (a valid signature, the wrong owner)."""
    digest = signature_hash(tx, 0, spent, REGTEST)
    txin = TxIn(tx.inputs[0].prevout, signer.pubkey, sign(signer.privkey, digest))
    return replace(tx, inputs=(txin,))


def _non_canonical(tx: Transaction) -> bytes:
    raw = tx.serialize()
    assert raw[0] == 0x94 and raw[1] == 0x01  # [version=1, ...]
    return raw[:1] + b"\xcc\x01" + raw[2:]  # version as uint8: same value, not minimal


def _tx_cases(env: Env) -> dict[str, tuple[bytes, set[str]]]:
    cb2 = env.cb(2)
    good = spend([cb2], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)])
    held_coin = (OutPoint(env.confirmed.txid(), 0), env.confirmed.outputs[0], K0)
    held_amount = env.confirmed.outputs[0].amount
    held_out = OutPoint(env.held.txid(), 0)
    cases: dict[str, tuple[Transaction | bytes, set[str]]] = {
        "bad-signature": (_flip_signature(good), {"bad-txns-signature"}),
        "signed-by-another-key": (_signed_by(good, cb2[1], K1), {"bad-txns-signature"}),
        "signed-for-another-network": (
            spend([cb2], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)], get_params("test")),
            {"bad-txns-signature"},
        ),
        "no-signature": (
            replace(good, inputs=(TxIn(cb2[0], K0.pubkey, b""),)),
            {"bad-txns-signature", "bad-encoding"},
        ),
        "double-spend-same-fee": (
            spend([held_coin], [TxOut(held_amount - FEE, K2.pubkey_hash)]),
            {"txn-mempool-conflict", "insufficient-fee"},
        ),
        "double-spend-lower-fee": (
            spend([held_coin], [TxOut(held_amount - FEE // 2, K2.pubkey_hash)]),
            {"txn-mempool-conflict", "insufficient-fee"},
        ),
        "missing-output-index": (
            spend([(OutPoint(cb2[0].txid, 1), cb2[1], K0)], [TxOut(COIN, K1.pubkey_hash)]),
            {"bad-txns-inputs-missingorspent"},
        ),
        "unknown-transaction": (
            spend([(OutPoint(b"\x11" * 32, 0), cb2[1], K0)], [TxOut(COIN, K1.pubkey_hash)]),
            {"bad-txns-inputs-missingorspent"},
        ),
        "output-of-pooled-tx-that-does-not-exist": (
            spend([(OutPoint(held_out.txid, 3), cb2[1], K0)], [TxOut(COIN, K1.pubkey_hash)]),
            {"bad-txns-inputs-missingorspent"},
        ),
        "premature-coinbase": (
            spend([env.cb(3)], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)]),
            {"bad-txns-premature-spend-of-coinbase"},
        ),
        "immature-coinbase-101": (
            spend([env.cb(101)], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)]),
            {"bad-txns-premature-spend-of-coinbase"},
        ),
        "non-canonical-encoding": (_non_canonical(good), {"bad-encoding"}),
        "trailing-bytes": (good.serialize() + b"\x00", {"bad-encoding"}),
        "outputs-above-inputs": (
            spend([cb2], [TxOut(SUBSIDY + 1, K1.pubkey_hash)]),
            {"bad-txns-in-belowout"},
        ),
        "no-fee": (spend([cb2], [TxOut(SUBSIDY, K1.pubkey_hash)]), {"min-relay-fee-not-met"}),
        "zero-amount": (
            spend([cb2], [TxOut(0, K1.pubkey_hash), TxOut(SUBSIDY - FEE, K1.pubkey_hash)]),
            {"bad-txns-vout-negative"},
        ),
        "amount-above-max-money": (
            spend([cb2], [TxOut(MAX_MONEY + 1, K1.pubkey_hash)]),
            {"bad-txns-vout-toolarge"},
        ),
        "duplicate-inputs": (
            spend([cb2, cb2], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)]),
            {"bad-txns-inputs-duplicate"},
        ),
        "no-outputs": (spend([cb2], []), {"bad-txns-vout-empty"}),
        "no-inputs": (
            Transaction(1, (), (TxOut(COIN, K1.pubkey_hash),), 0),
            {"bad-txns-vin-empty"},
        ),
        "not-final": (
            spend([cb2], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)], locktime=1000),
            {"bad-txns-nonfinal"},
        ),
        "a-coinbase": (coinbase(200, K0.pubkey_hash, SUBSIDY), {"coinbase"}),
        "already-known": (env.held, {"txn-already-known"}),
        "already-confirmed": (env.confirmed, {"txn-already-known"}),
    }
    return {
        name: (tx if isinstance(tx, bytes) else tx.serialize(), codes)
        for name, (tx, codes) in cases.items()
    }


TX_CASE_NAMES = [
    "bad-signature",
    "signed-by-another-key",
    "signed-for-another-network",
    "no-signature",
    "double-spend-same-fee",
    "double-spend-lower-fee",
    "missing-output-index",
    "unknown-transaction",
    "output-of-pooled-tx-that-does-not-exist",
    "premature-coinbase",
    "immature-coinbase-101",
    "non-canonical-encoding",
    "trailing-bytes",
    "outputs-above-inputs",
    "no-fee",
    "zero-amount",
    "amount-above-max-money",
    "duplicate-inputs",
    "no-outputs",
    "no-inputs",
    "not-final",
    "a-coinbase",
    "already-known",
    "already-confirmed",
]


def test_tx_case_list_is_complete(env: Env) -> None:
    assert sorted(_tx_cases(env)) == sorted(TX_CASE_NAMES)


@pytest.mark.parametrize("name", TX_CASE_NAMES)
def test_invalid_transaction(env: Env, name: str) -> None:
    raw, codes = _tx_cases(env)[name]
    # msgpack body
    err = expect_error(env.node.post_raw(API + "/tx", raw), 400)
    assert err["code"] in codes, err
    # JSON body: the same answer
    err2 = expect_error(env.node.post_json(API + "/tx", {"raw": raw.hex()}), 400)
    assert err2["code"] == err["code"]
    # in a batch: an error in its place, the valid neighbour untouched (already known)
    r = env.node.post_raw(API + "/txs", msgpack.packb([raw, env.held.serialize()]))
    assert r.status == 200, r.body
    answers = r.json()
    assert answers[0]["error"]["code"] == err["code"]
    assert answers[1]["error"]["code"] == "txn-already-known"
    env.assert_unchanged()


def test_the_bad_signature_case_differs_only_by_its_signature(env: Env) -> None:
    """Negative control: the good twin of the bad-signature case verifies, the flipped one
    does not, so the node's answer is about the signature and nothing else."""
    cb2 = env.cb(2)
    good = spend([cb2], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)])
    digest = signature_hash(good, 0, cb2[1], REGTEST)
    assert verify_signature(K0.pubkey, good.inputs[0].signature, digest)
    bad = _flip_signature(good)
    assert bad.txid() == good.txid()
    assert not verify_signature(K0.pubkey, bad.inputs[0].signature, digest)


# --- invalid blocks ------------------------------------------------------------------------------


def _with_header(block: Block, **fields: Any) -> Block:
    return Block(replace(block.header, **fields), block.txs)


def _block_cases(env: Env) -> dict[str, tuple[bytes, str]]:
    tip = env.tip
    prev = tip.hash()
    t = tip.header.time + 1
    pkh = K2.pubkey_hash
    good = mine_block(prev, 102, [], t, pkh)

    # high-hash: bits of Bitcoin's pow_limit (far harder than regtest's), a nonce that fails it
    hard = 0x1D00FFFF
    nonce = 0
    while True:
        candidate = _with_header(good, bits=hard, nonce=nonce)
        if not check_proof_of_work(candidate.hash(), hard, REGTEST.pow_limit):
            break
        nonce += 1
    high_hash = candidate

    wrong_root = Block(
        solve(_with_header(good, merkle_root=sha256d(b"not the root")).header, REGTEST), good.txs
    )
    # the coinbase of a block at 103 in a block at 102
    wrong_height = mine_block(prev, 103, [], t, pkh)
    cb2 = env.cb(2)
    bad_sig_tx = _flip_signature(spend([cb2], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)]))
    no_cb_tx = spend([cb2], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)])
    root, _ = merkle_root([no_cb_tx.wtxid()])
    no_coinbase = Block(
        solve(BlockHeader(1, prev, root, t, REGTEST.pow_limit_bits, 0), REGTEST), (no_cb_tx,)
    )
    cb_a = coinbase(102, pkh, SUBSIDY)
    cb_b = coinbase(102, pkh, 1, b"x")
    root2, _ = merkle_root([cb_a.wtxid(), cb_b.wtxid()])
    two_coinbases = Block(
        solve(BlockHeader(1, prev, root2, t, REGTEST.pow_limit_bits, 0), REGTEST), (cb_a, cb_b)
    )
    # CVE-2012-2459: [cb, tx, tx] has the merkle root of [cb, tx]... a duplicated txid
    dup_txs = (cb_a, no_cb_tx, no_cb_tx)
    root3, _ = merkle_root([x.wtxid() for x in dup_txs])
    duplicate_txs = Block(
        solve(BlockHeader(1, prev, root3, t, REGTEST.pow_limit_bits, 0), REGTEST), dup_txs
    )
    future = max(int(time.time()), t) + 3 * 3600  # the limit is 2 hours after the clock
    mtp = env.node.get(f"{API}/block/{prev[::-1].hex()}").json()["median_time"]
    cases: dict[str, tuple[Block | bytes, str]] = {
        "high-hash": (high_hash, "high-hash"),
        "bad-diffbits": (mine_block(prev, 102, [], t, pkh, bits=0x207FFFFE), "bad-diffbits"),
        "bad-txnmrklroot": (wrong_root, "bad-txnmrklroot"),
        "bad-cb-amount": (mine_block(prev, 102, [], t, pkh, fees=1), "bad-cb-amount"),
        "bad-cb-height": (wrong_height, "bad-cb-height"),
        "bad-cb-missing": (no_coinbase, "bad-cb-missing"),
        "bad-cb-multiple": (two_coinbases, "bad-cb-multiple"),
        "bad-txns-duplicate": (duplicate_txs, "bad-txns-duplicate"),
        "bad-txns-signature": (
            mine_block(prev, 102, [bad_sig_tx], t, pkh, fees=FEE),
            "bad-txns-signature",
        ),
        "premature-spend-in-block": (
            mine_block(
                prev,
                102,
                [spend([env.cb(50)], [TxOut(SUBSIDY - FEE, K1.pubkey_hash)])],
                t,
                pkh,
                fees=FEE,
            ),
            "bad-txns-premature-spend-of-coinbase",
        ),
        "time-too-old": (mine_block(prev, 102, [], mtp, pkh), "time-too-old"),
        "time-too-new": (mine_block(prev, 102, [], future, pkh), "time-too-new"),
        "duplicate": (tip, "duplicate"),
        "bad-encoding": (good.serialize()[:-1], "bad-encoding"),
        "bad-encoding-trailing": (good.serialize() + b"\x00", "bad-encoding"),
    }
    return {
        name: (b if isinstance(b, bytes) else b.serialize(), code)
        for name, (b, code) in cases.items()
    }


BLOCK_CASE_NAMES = [
    "high-hash",
    "bad-diffbits",
    "bad-txnmrklroot",
    "bad-cb-amount",
    "bad-cb-height",
    "bad-cb-missing",
    "bad-cb-multiple",
    "bad-txns-duplicate",
    "bad-txns-signature",
    "premature-spend-in-block",
    "time-too-old",
    "time-too-new",
    "duplicate",
    "bad-encoding",
    "bad-encoding-trailing",
]


@pytest.fixture(scope="module")
def block_cases(env: Env) -> dict[str, tuple[bytes, str]]:
    return _block_cases(env)


def test_block_case_list_is_complete(block_cases: dict[str, tuple[bytes, str]]) -> None:
    assert sorted(block_cases) == sorted(BLOCK_CASE_NAMES)


def _blocks_rejected(env: Env, code: str) -> float:
    text = env.node.get("/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(f'tally_blocks_rejected_total{{code="{code}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("name", BLOCK_CASE_NAMES)
def test_invalid_block(env: Env, block_cases: dict[str, tuple[bytes, str]], name: str) -> None:
    raw, code = block_cases[name]
    counted = _blocks_rejected(env, code)
    expect_error(env.node.post_raw(API + "/block", raw), 400, code)
    assert _blocks_rejected(env, code) == counted + 1
    # again, as JSON: the same code (a block once found invalid stays invalid)
    expect_error(env.node.post_json(API + "/block", {"raw": raw.hex()}), 400, code)
    env.assert_unchanged()


def test_orphan_block_is_not_an_error(env: Env) -> None:
    """Unknown parent: kept as an orphan (SPEC 2.5), answered 200 with that status."""
    orphan = mine_block(b"\x42" * 32, 102, [], env.tip.header.time + 1, K2.pubkey_hash)
    r = env.node.post_raw(API + "/block", orphan.serialize())
    assert r.status == 200, r.body
    assert r.json()["status"] == "orphan"
    assert r.json()["hash"] == orphan.hash()[::-1].hex()
    env.assert_unchanged()


# --- admin authentication ------------------------------------------------------------------------

ADMIN_CALLS = [
    ("/admin/generate", {"count": 1, "address": A0}),
    ("/admin/peers", {"url": "http://127.0.0.1:9"}),
    ("/admin/mining", {"enabled": True, "address": A0, "block_time": 1}),
    ("/admin/stop", {}),
]


def _auth_headers(env: Env) -> list[dict[str, str]]:
    token = env.node.token
    return [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer " + token[:-1]},
        {"Authorization": "Bearer " + token + "0"},
        {"Authorization": "Bearer __cookie__:" + token[:-1]},
        {"Authorization": "Basic " + token},
        {"Authorization": token},
        {"X-Token": token},
    ]


@pytest.mark.parametrize(("path", "data"), ADMIN_CALLS, ids=[c[0] for c in ADMIN_CALLS])
def test_admin_needs_the_token(env: Env, path: str, data: dict[str, Any]) -> None:
    for headers in _auth_headers(env):
        r = http(
            env.node.url + API + path,
            "POST",
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **headers},
        )
        expect_error(r, 401, "unauthorized")
    env.assert_unchanged()
    assert env.node.get(API + "/peers").json()["connected"] == []
    assert env.node.proc is not None and env.node.proc.poll() is None


# --- rejections are counted ----------------------------------------------------------------------


def test_rejected_transactions_counted_by_code(env: Env) -> None:
    def count() -> float:
        for line in env.node.get("/metrics").body.decode().splitlines():
            if line.startswith('tally_transactions_rejected_total{code="bad-txns-signature"} '):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = count()
    raw, _ = _tx_cases(env)["bad-signature"]
    expect_error(env.node.post_raw(API + "/tx", raw), 400, "bad-txns-signature")
    assert count() == before + 1


# --- and after all that --------------------------------------------------------------------------


def test_zz_node_still_serving_and_log_clean(env: Env) -> None:
    """Runs last in this module: the node answered everything above without falling over."""
    r = env.node.get(API + "/info")
    assert r.status == 200
    env.assert_unchanged()
    assert env.node.proc is not None and env.node.proc.poll() is None
    log = env.node.log()
    assert "Traceback" not in log, log[log.find("Traceback") - 300 :][:3000]
    assert "internal-error" not in log
    assert "unexpected error" not in log
