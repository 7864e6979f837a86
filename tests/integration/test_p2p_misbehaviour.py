"""Misbehaving and mistaken peers against a real ``tally-node`` process (SPEC 3.4).

One node per module holds a regtest chain of 106 blocks (block 106 spends the coinbase of block
1). Fake peers (``fake_peer.FakePeer``) handshake with it, announce an object by hash and serve
an invalid one on ``getdata``: every invalid block (high-hash, bad-txnmrklroot, bad-cb-amount, a
double spend, undecodable bytes) and every invalid transaction costs its sender 100 points, a
ban, 403 on every later request and an entry in ``/api/v1/peers``. Malformed messages on each
``/p2p/`` route (garbage, wrong types, too many items, bodies over the route's limit) get a 4xx
and 20 points each, so the fifth bans. Handshakes of another network or genesis are refused, and
a node told to connect to itself notices and drops the address without punishing anyone. Bans
survive a restart. Through all of it the node keeps answering and logs no traceback.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from consensus import (
    Block,
    BlockHeader,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    block_subsidy,
    check_proof_of_work,
    merkle_root,
)
from node.p2p import messages as m
from node.p2p.routes import BODY_LIMITS
from tests.functional.node_process import NodeProcess, Response, address_of, free_port
from tests.helpers import REGTEST, Key, coinbase, key, mine_block, spend
from tests.integration.fake_peer import (
    API,
    Cluster,
    FakePeer,
    banned,
    block_at,
    coinbase_coin,
    connected,
    height,
    mempool,
    misbehaviour_points,
    ok,
    p2p_post,
    pay,
    peers,
    submit_tx,
    tip,
)

K0, K1 = key(0), key(1)
A0 = address_of(K0.pubkey_hash)


@dataclass
class World:
    cluster: Cluster
    node: NodeProcess
    spent: tuple[OutPoint, TxOut, Key]  # coinbase 1, spent in block 106
    unspent: tuple[OutPoint, TxOut, Key]  # coinbase 2, spendable


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    cluster = Cluster(tmp_path_factory.mktemp("misbehaviour"))
    try:
        node = cluster.start("node")
        node.generate(105, A0)
        spent = coinbase_coin(node, 1, K0)
        submit_tx(node, pay(spent, K1))
        node.generate(1, A0)
        assert not mempool(node)
        yield World(cluster, node, spent, coinbase_coin(node, 2, K0))
    finally:
        cluster.close()


@pytest.fixture(autouse=True)
def node_survives(world: World) -> Iterator[None]:
    """After every test the node still answers and has logged no traceback."""
    yield
    world.cluster.check_logs()


def sender() -> str:
    """A peer URL nobody listens on (connecting to it fails at once)."""
    return f"http://127.0.0.1:{free_port()}"


def post(node: NodeProcess, route: str, body: bytes, peer: str) -> Response:
    return p2p_post(node.url, route, body, peer)


def accepted(r: Response) -> dict[str, Any]:
    """A 200 with an empty msgpack map: what ``inv`` answers."""
    assert r.status == 200, (r.status, r.body[:300])
    return m.parse("empty", r.body)


def error_code(r: Response, status: int) -> str:
    assert r.status == status, (r.status, r.body[:300])
    code: str = r.json()["error"]["code"]
    return code


# --- invalid blocks and transactions --------------------------------------------------------------


def next_block(node: NodeProcess, txs: tuple[Transaction, ...] = (), fees: int = 0) -> Block:
    parent = block_at(node, height(node))
    return mine_block(
        parent.hash(), height(node) + 1, txs, parent.header.time + 1, K1.pubkey_hash, fees=fees
    )


def high_hash(w: World) -> Block:
    good = next_block(w.node)
    h = good.header
    nonce = h.nonce
    while True:
        nonce += 1
        bad = BlockHeader(h.version, h.prev_hash, h.merkle_root, h.time, h.bits, nonce)
        if not check_proof_of_work(bad.hash(), bad.bits, REGTEST.pow_limit):
            return Block(bad, good.txs)


def bad_merkle_root(w: World) -> Block:
    good = next_block(w.node)
    h = good.header
    root, _ = merkle_root([good.txs[0].txid(), b"\x01" * 32])
    header = BlockHeader(h.version, h.prev_hash, root, h.time, h.bits, 0)
    nonce = 0
    while not check_proof_of_work(header.hash(), header.bits, REGTEST.pow_limit):
        nonce += 1
        header = BlockHeader(h.version, h.prev_hash, root, h.time, h.bits, nonce)
    return Block(header, good.txs)


def bad_coinbase_amount(w: World) -> Block:
    return next_block(w.node, fees=1)  # claims one unit more than the subsidy


def double_spend(w: World) -> Block:
    again = pay(w.spent, K0, fee=20_000)  # coinbase 1 was spent in block 106
    return next_block(w.node, (again,), fees=20_000)


def undecodable(w: World) -> bytes:
    return next_block(w.node).serialize()[:-7]


INVALID_BLOCKS = {
    "high-hash": high_hash,
    "bad-txnmrklroot": bad_merkle_root,
    "bad-cb-amount": bad_coinbase_amount,
    "bad-txns-inputs-missingorspent": double_spend,
    "bad-encoding": undecodable,
}


def bad_signature(w: World) -> Transaction:
    good = pay(w.unspent, K1)
    txin = good.inputs[0]
    forged = TxIn(txin.prevout, txin.pubkey, bytes([txin.signature[0] ^ 1]) + txin.signature[1:])
    return Transaction(good.version, (forged,), good.outputs, good.locktime)


def more_out_than_in(w: World) -> Transaction:
    op, out, owner = w.unspent
    return spend([(op, out, owner)], [TxOut(out.amount + 1, K1.pubkey_hash)])


def coinbase_as_tx(w: World) -> Transaction:
    return coinbase(height(w.node) + 1, K1.pubkey_hash, block_subsidy(1, REGTEST))


INVALID_TXS = {
    "bad-txns-signature": bad_signature,
    "bad-txns-in-belowout": more_out_than_in,
    "coinbase": coinbase_as_tx,
}


def connect_fake(w: World) -> FakePeer:
    fake = w.cluster.fake()
    answer = fake.handshake(w.node.url)
    assert answer.status == 200, answer.body
    assert m.parse("handshake", answer.body)["url"] == w.node.url
    w.cluster.wait(lambda: fake.url in connected(w.node), "the fake peer to be connected")
    return fake


def expect_ban(w: World, fake: FakePeer, reason: str, points_before: int) -> None:
    node = w.node
    w.cluster.wait(lambda: fake.url in banned(node), f"{fake.url} to be banned for {reason}")
    assert fake.url not in connected(node)
    assert misbehaviour_points(node) - points_before == 100
    assert f"peer {fake.url} misbehaved (+100 = 100): {reason}" in node.log()
    assert error_code(fake.inv(node.url, "tx", [b"\x02" * 32]), 403) == "banned"
    assert error_code(fake.handshake(node.url), 403) == "banned"
    entry = next(b for b in peers(node)["banned"] if b["peer"] == fake.url)
    assert 23 * 3600 < entry["until"] - time.time() <= 24 * 3600 + 60


@pytest.mark.parametrize("code", list(INVALID_BLOCKS))
def test_invalid_block_bans_its_sender(world: World, code: str) -> None:
    node = world.node
    made = INVALID_BLOCKS[code](world)
    raw = made if isinstance(made, bytes) else made.serialize()
    block_hash = next_block(node).hash() if isinstance(made, bytes) else made.hash()
    tip_before, points = tip(node), misbehaviour_points(node)
    fake = connect_fake(world)
    fake.offer_block(raw, block_hash)
    assert accepted(fake.inv(node.url, "block", [block_hash])) == {}
    expect_ban(world, fake, f"invalid block: {code}", points)
    assert ("getdata", {"kind": "block", "hashes": [block_hash]}) in fake.requests
    assert tip(node) == tip_before


@pytest.mark.parametrize("code", list(INVALID_TXS))
def test_invalid_transaction_bans_its_sender(world: World, code: str) -> None:
    node = world.node
    tx = INVALID_TXS[code](world)
    r = node.post_raw(f"{API}/tx", tx.serialize())
    assert error_code(r, 400) == code  # what the node thinks of it, asked directly
    points = misbehaviour_points(node)
    fake = connect_fake(world)
    fake.offer_tx(tx.serialize(), tx.txid())
    assert accepted(fake.inv(node.url, "tx", [tx.txid()])) == {}
    expect_ban(world, fake, f"invalid transaction: {code}", points)
    assert not mempool(node)


def test_valid_transaction_from_a_peer_is_accepted_without_score(world: World) -> None:
    """The control for the cases above: the same path with a good object bans nobody."""
    node = world.node
    tx = pay(world.unspent, K1)
    points = misbehaviour_points(node)
    fake = connect_fake(world)
    fake.offer_tx(tx.serialize(), tx.txid())
    accepted(fake.inv(node.url, "tx", [tx.txid()]))
    world.cluster.wait(lambda: tx.txid()[::-1].hex() in mempool(node), "the good transaction")
    assert fake.url in connected(node) and fake.url not in banned(node)
    assert misbehaviour_points(node) == points
    # It is kept for the next block; take it out of the way of the tests that follow.
    node.generate(1, A0)
    world.unspent = coinbase_coin(node, 3, K0)
    assert not mempool(node)


# --- malformed messages ---------------------------------------------------------------------------

WRONG_TYPES: dict[str, Any] = {
    "handshake": {
        "magic": "abcd",
        "genesis": 1,
        "version": "1",
        "height": -1,
        "work": b"",
        "url": 5,
        "nonce": [],
    },
    "inv": {"kind": "tx", "hashes": [1, 2]},
    "getdata": {"kind": "block", "hashes": [b"short"]},
    "getheaders": {"locator": "nope", "stop": 0},
    "addr": {"urls": [1, b"x"]},
    "mempool": [1, 2],  # not even a map
}
VALID: dict[str, dict[str, Any]] = {
    "inv": {"kind": "tx", "hashes": [b"\x03" * 32]},
    "getdata": {"kind": "block", "hashes": [b"\x04" * 32]},
    "getheaders": {"locator": [REGTEST.genesis_hash], "stop": bytes(32)},
    "addr": {"urls": []},
    "mempool": {},
}


def valid_message(route: str, peer: str) -> bytes:
    if route == "handshake":
        fake = FakePeer(port=int(peer.rsplit(":", 1)[1]))
        return m.encode(fake.handshake_message())
    return m.encode(VALID[route])


@pytest.mark.parametrize("route", list(BODY_LIMITS))
def test_malformed_messages_are_refused_scored_and_banned(world: World, route: str) -> None:
    node = world.node
    peer = sender()
    limit = BODY_LIMITS[route]
    oversized = m.encode({"pad": b"\x00" * limit})
    assert len(oversized) > limit
    bad = [
        (b"\xc1garbage\xff", 400),
        (m.encode(WRONG_TYPES[route]), 400),
        (oversized, 413),
    ]
    for n, (body, status) in enumerate(bad, 1):
        points = misbehaviour_points(node)
        r = post(node, route, body, peer)
        error_code(r, status)
        assert misbehaviour_points(node) == points + 20, (route, n)
    assert peer not in banned(node)
    r = post(node, route, valid_message(route, peer), peer)  # 60 points: still served
    assert r.status == 200, (r.status, r.body[:300])
    error_code(post(node, route, b"", peer), 400)  # 80
    error_code(post(node, route, m.encode({"extra": 1, **VALID.get(route, {})}), peer), 400)
    assert peer in banned(node)  # 100
    assert error_code(post(node, route, valid_message(route, peer), peer), 403) == "banned"
    assert node.get(f"{API}/info").status == 200


def test_too_many_items_is_refused(world: World) -> None:
    node = world.node
    peer = sender()
    body = m.encode({"kind": "tx", "hashes": [i.to_bytes(32, "big") for i in range(1_001)]})
    assert len(body) <= BODY_LIMITS["inv"]
    assert error_code(post(node, "inv", body, peer), 400) == "too-many-items"
    body = m.encode({"urls": ["http://127.0.0.1:1"] * 101})
    assert error_code(post(node, "addr", body, peer), 400) == "too-many-items"


def post_in_pieces(
    node: NodeProcess, route: str, pieces: list[bytes], peer: str, chunked: bool = False
) -> tuple[int, bytes]:
    """POST a body sent in ``pieces`` with a pause between them, as a slow link would."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    try:
        conn.putrequest("POST", f"/p2p/{route}")
        conn.putheader("Content-Type", "application/msgpack")
        conn.putheader("X-Tally-Peer", peer)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(sum(map(len, pieces))))
        conn.endheaders()
        for piece in pieces:
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            time.sleep(0.3)
        if chunked:
            conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_body_arriving_in_pieces_is_read_whole(world: World) -> None:
    """An honest message that crosses the network in several segments is not 'malformed'."""
    node = world.node
    peer = sender()
    body = m.encode({"kind": "tx", "hashes": [i.to_bytes(32, "big") for i in range(1_000)]})
    half = len(body) // 2
    points = misbehaviour_points(node)
    status, answer = post_in_pieces(node, "inv", [body[:half], body[half:]], peer)
    assert (status, misbehaviour_points(node)) == (200, points), answer[:300]
    status, answer = post_in_pieces(node, "inv", [body[:half], body[half:]], peer, chunked=True)
    assert (status, misbehaviour_points(node)) == (200, points), answer[:300]


def test_oversized_chunked_body_is_refused(world: World) -> None:
    node = world.node
    peer = sender()
    limit = BODY_LIMITS["getdata"]
    pieces = [b"\x00" * 8_192] * (limit // 8_192 + 1)
    points = misbehaviour_points(node)
    status, answer = post_in_pieces(node, "getdata", pieces, peer, chunked=True)
    assert status == 413, answer[:300]
    assert misbehaviour_points(node) == points + 20


# --- handshakes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "code"), [("magic", "wrong-network"), ("genesis", "wrong-genesis")]
)
def test_handshake_of_another_network_is_refused(world: World, field: str, code: str) -> None:
    node = world.node
    wrong = {"magic": b"\xde\xad\xbe\xef"} if field == "magic" else {"genesis": b"\x07" * 32}
    fake = world.cluster.fake(**wrong)
    # Inbound: it knocks.
    assert error_code(fake.handshake(node.url), 400) == code
    assert fake.url not in connected(node)
    # Outbound: the node is told to dial it, and refuses what it answers.
    r = node.post_json(f"{API}/admin/peers", {"url": fake.url}, admin=True)
    assert ok(r)["connected"] is False
    assert "handshake" in fake.routes_asked()
    assert fake.url not in connected(node)
    assert f"peer {fake.url} refused" in node.log()
    # And it never gets to the relay: announcements from it are ignored. Positive control: a
    # connected peer's announcement, made after it, is asked for (it has nothing to serve).
    tx = pay(world.unspent, K1)
    fake.offer_tx(tx.serialize(), tx.txid())
    accepted(fake.inv(node.url, "tx", [tx.txid()]))
    honest = connect_fake(world)
    accepted(honest.inv(node.url, "tx", [(code.encode() * 32)[:32]]))
    world.cluster.wait(lambda: "getdata" in honest.routes_asked(), "the honest peer's getdata")
    assert "getdata" not in fake.routes_asked() and not mempool(node)


class Unavailable(FakePeer):
    """A peer whose every route answers 503: unreachable for now, so dialled again later."""

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.match_info["route"], None))
        return web.Response(status=503)


def test_node_told_to_connect_to_itself_drops_it(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.add(NodeProcess(tmp_path / "self"))
        down = Unavailable().start()
        cluster.fakes.append(down)  # stopped with the cluster
        node.args += ["--peer", node.url, "--peer", down.url]
        node.start()
        cluster.wait(lambda: "is this node itself" in node.log(), "the node to notice itself", 15)
        assert not connected(node)
        assert misbehaviour_points(node) == 0, "talking to itself is nobody's misbehaviour"
        assert not banned(node)
        # No further attempts once dropped. Positive control: the other configured peer, which
        # answers 503, is dialled again in later rounds (three dials in all).
        cluster.wait(lambda: down.routes_asked().count("handshake") >= 3, "three dials", 60)
        assert node.log().count("is this node itself") == 1
        assert not connected(node) and not banned(node)
        cluster.check_logs()
    finally:
        cluster.close()


# --- bans survive a restart -----------------------------------------------------------------------


def test_bans_survive_a_restart(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        node = cluster.start("node")
        node.generate(1, A0)
        w = World(cluster, node, coinbase_coin(node, 1, K0), coinbase_coin(node, 1, K0))
        fake = connect_fake(w)
        block = bad_coinbase_amount(w)
        fake.offer_block(block.serialize(), block.hash())
        accepted(fake.inv(node.url, "block", [block.hash()]))
        cluster.wait(lambda: fake.url in banned(node), "the block's sender to be banned")
        noisy = sender()
        for _ in range(5):
            error_code(post(node, "addr", b"\xc1", noisy), 400)
        assert error_code(post(node, "addr", b"\xc1", noisy), 403) == "banned"
        before = {b["peer"]: b["until"] for b in peers(node)["banned"]}
        assert set(before) == {fake.url, noisy}

        assert node.stop() == 0
        node.start()
        after = {b["peer"]: b["until"] for b in peers(node)["banned"]}
        assert after == before
        assert error_code(fake.handshake(node.url), 403) == "banned"
        assert error_code(post(node, "addr", m.encode({"urls": []}), noisy), 403) == "banned"
        # Someone else is still welcome, and the node does not dial a banned peer. Positive
        # control: an honest peer named in the same message is dialled.
        honest = cluster.fake()
        asked = len(fake.routes_asked())
        urls = {"urls": [fake.url, honest.url]}
        assert post(node, "addr", m.encode(urls), sender()).status == 200
        cluster.wait(lambda: honest.url in connected(node), "the honest peer to be dialled")
        assert fake.url not in connected(node)
        assert "handshake" not in fake.routes_asked()[asked:], "the banned peer was dialled"
        cluster.check_logs()
    finally:
        cluster.close()
