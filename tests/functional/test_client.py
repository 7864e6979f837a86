"""``client.http.Client`` (the SDK, SPEC 1) against a real ``tally-node run`` process.

The node has 106 blocks paying one key (so its address has more than a page of transactions), a
confirmed payment, a pending one, a replaced one and a payment to a BIP44 account. Every public
method of ``Client`` is called once at least and must answer its ``client.models`` model (the
client decodes with the models, so a shape the node and the models disagree on fails here), with
the values the node's raw routes give. The failures a caller relies on: a refused transaction is
``NodeError`` with its reject code and status 400; an admin call without the token is refused
before anything is sent (401) and with a wrong one by the node (401); a port where nothing
listens is ``NodeUnreachableError``; an answer of the wrong shape (a tiny aiohttp server answering
``/api/v1/info`` without a field) is ``NodeError`` ``bad-answer``, never a ``KeyError`` later.
The last test stops the node through the client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from client import models as m
from client.http import Client, NodeError, NodeUnreachableError
from consensus import COIN, Block, OutPoint, Transaction, TxOut, policy
from tests.functional.node_process import NodeProcess, address_of, free_port
from tests.helpers import REGTEST, Key, key, spend
from wallet.keys import RECEIVE, Account, mnemonic_to_seed

API = "/api/v1"
MINER, PAYEE = key(30), key(31)
MINER_ADDRESS, PAYEE_ADDRESS = address_of(MINER.pubkey_hash), address_of(PAYEE.pubkey_hash)
MNEMONIC = "abandon " * 11 + "about"
BLOCKS = 106


@dataclass
class World:
    node: NodeProcess
    client: Client
    hashes: list[str]
    confirmed: Transaction
    pending: Transaction
    replaced: Transaction
    account: Account


def display(tx: Transaction) -> str:
    return tx.txid()[::-1].hex()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    account = Account(mnemonic_to_seed(MNEMONIC), REGTEST)
    node = NodeProcess(Path(tmp_path_factory.mktemp("client")) / "n")
    node.start()
    try:
        client = node.client
        hashes = client.generate(BLOCKS - 1, MINER_ADDRESS)

        def coin(height: int) -> tuple[OutPoint, TxOut, Key]:
            cb = client.block_txs(hashes[height - 1])[0]
            return (
                OutPoint(bytes.fromhex(cb.txid)[::-1], 0),
                TxOut(50 * COIN, MINER.pubkey_hash),
                MINER,
            )

        confirmed = spend(
            [coin(1)],
            [
                TxOut(COIN, PAYEE.pubkey_hash),
                TxOut(COIN, account.pubkey_hash(RECEIVE, 0)),
                TxOut(48 * COIN - 10_000, MINER.pubkey_hash),
            ],
        )
        assert client.post_tx(confirmed.serialize()) == display(confirmed)
        hashes += client.generate(1, MINER_ADDRESS)
        replaced = spend([coin(2)], [TxOut(50 * COIN - 1_000, PAYEE.pubkey_hash)])
        pending = spend([coin(2)], [TxOut(50 * COIN - 20_000, PAYEE.pubkey_hash)])
        assert client.post_tx(replaced.serialize()) == display(replaced)
        assert client.post_tx(pending.serialize()) == display(pending)  # replaces it
        yield World(node, client, hashes, confirmed, pending, replaced, account)
    finally:
        if node.proc is not None and node.proc.poll() is None:
            node.stop()


def test_chain_and_blocks(world: World) -> None:
    c = world.client
    info = c.info()
    assert isinstance(info, m.Info)
    assert info.network == "regtest" and info.height == BLOCKS
    assert info.best_hash == world.hashes[-1] == c.tip_hash()
    assert info.mempool.count == 1
    assert info.policy == m.Policy(
        min_relay_fee_rate=policy.MIN_RELAY_FEE_RATE,
        incremental_relay_fee_rate=policy.INCREMENTAL_RELAY_FEE_RATE,
        max_standard_tx_size=policy.MAX_STANDARD_TX_SIZE,
    )
    assert c.tip_height() == BLOCKS
    newest = c.blocks()
    assert newest and all(isinstance(b, m.Block) for b in newest)
    assert newest[0].height == BLOCKS and newest[0].hash == world.hashes[-1]
    assert [b.height for b in c.blocks(3)] == [3, 2, 1, 0]
    block = c.block(world.hashes[0])
    assert isinstance(block, m.Block) and block.height == 1 and block.in_best_chain
    assert block.next_hash == world.hashes[1]
    assert c.block_hash(1) == world.hashes[0]
    last = world.hashes[-1]
    txids = c.block_txids(last)
    assert txids[1] == display(world.confirmed)
    txs = c.block_txs(last)
    assert [t.txid for t in txs] == txids
    assert all(isinstance(t, m.Transaction) and isinstance(t.status, m.TxConfirmed) for t in txs)
    raw = c.block_raw(last)
    assert Block.deserialize(raw).hash_hex() == last


def test_transactions_and_their_status_variants(world: World) -> None:
    c = world.client
    confirmed, pending, replaced = (
        display(t) for t in (world.confirmed, world.pending, world.replaced)
    )
    tx = c.tx(confirmed)
    assert isinstance(tx, m.Transaction) and tx.fee == 10_000
    assert isinstance(tx.status, m.TxConfirmed) and tx.status.block_height == BLOCKS
    assert tx.outputs[0].address == PAYEE_ADDRESS
    assert isinstance(c.tx(pending).status, m.TxPending)
    assert isinstance(c.tx(replaced).status, m.TxReplaced)
    status = c.tx_status(confirmed)
    assert isinstance(status, m.TxConfirmed) and status.confirmations == 1
    assert status.block_hash == world.hashes[-1]
    assert isinstance(c.tx_status(pending), m.TxPending)
    assert c.tx_status(replaced) == m.TxReplaced(confirmed=False, replaced_by=pending)
    assert c.tx_raw(confirmed) == world.confirmed.serialize()
    assert c.tx_raw(pending) == world.pending.serialize()
    proof = c.merkle_proof(confirmed)
    assert isinstance(proof, m.MerkleProof)
    assert proof.block_hash == world.hashes[-1] and proof.pos == 1 and len(proof.merkle) == 1
    spent_coinbase = c.block_txids(world.hashes[0])[0]
    assert c.outspends(spent_coinbase) == [
        m.SpentBy(spent=True, txid=confirmed, vin=0, confirmed=True)
    ]
    assert c.outspends(confirmed) == [m.Unspent(spent=False)] * 3
    with pytest.raises(NodeError) as err:
        c.tx("ab" * 32)
    assert err.value.status == 404 and err.value.code == "not-found"


def test_post_tx_refused_is_node_error_with_its_reject_code(world: World) -> None:
    c = world.client
    # confirmed's third output, spent at no fee: below the minimum relay fee
    out = OutPoint(world.confirmed.txid(), 2)
    free = spend([(out, world.confirmed.outputs[2], MINER)], [world.confirmed.outputs[2]])
    with pytest.raises(NodeError) as err:
        c.post_tx(free.serialize())
    assert err.value.status == 400 and err.value.code == "min-relay-fee-not-met", err.value
    assert err.value.message


def test_post_txs_answers_each_accepted_and_refused(world: World) -> None:
    c = world.client
    out = OutPoint(world.confirmed.txid(), 0)
    paid = spend(
        [(out, world.confirmed.outputs[0], PAYEE)], [TxOut(COIN - 5_000, PAYEE.pubkey_hash)]
    )
    results = c.post_txs([paid.serialize(), world.pending.serialize()])
    assert results[0] == m.TxidResult(txid=display(paid))
    refused = results[1]
    assert isinstance(refused, m.Error) and refused.error.code == "txn-already-known"
    assert c.post_txs([]) == []


def test_addresses_and_their_pages(world: World) -> None:
    c = world.client
    summary = c.address(MINER_ADDRESS)
    assert isinstance(summary, m.AddressSummary) and summary.address == MINER_ADDRESS
    assert summary.chain_stats.tx_count == BLOCKS + 1  # its coinbases and the confirmed payment
    first = c.address_txs(MINER_ADDRESS)
    assert len(first) == 25 and first[0].txid == display(world.pending)  # the mempool's first
    second = c.address_txs(MINER_ADDRESS, first[-1].txid)
    assert len(second) == 25 and not {t.txid for t in first} & {t.txid for t in second}
    assert all(isinstance(t.status, m.TxConfirmed) for t in second)
    utxos = c.address_utxos(MINER_ADDRESS)
    assert all(isinstance(u, m.Utxo) for u in utxos)
    raw = world.node.get(f"{API}/address/{MINER_ADDRESS}/utxo").json()
    assert msgspec.to_builtins(utxos) == raw
    with pytest.raises(NodeError) as err:  # a bound on the pages followed
        c.address_utxos(MINER_ADDRESS, max_pages=1)
    assert err.value.code == "bad-answer"
    payee = c.address_utxos(PAYEE_ADDRESS)
    assert (
        payee
        and msgspec.to_builtins(payee)
        == world.node.get(f"{API}/address/{PAYEE_ADDRESS}/utxo").json()
    )


def test_an_account_by_its_xpub(world: World) -> None:
    c = world.client
    xpub = world.account.account_xpub
    summary = c.xpub(xpub)
    assert isinstance(summary, m.AccountSummary) and summary.xpub == xpub
    assert summary.balance.confirmed == COIN and summary.gap_limit == m.GAP_LIMIT
    assert [a.path for a in summary.addresses] == ["0/0"]
    txs = c.xpub_txs(xpub)
    assert [t.txid for t in txs] == [display(world.confirmed)]
    assert c.xpub_txs(xpub, txs[-1].txid) == []
    utxos = c.xpub_utxos(xpub)
    assert len(utxos) == 1 and isinstance(utxos[0], m.AccountUtxo)
    assert utxos[0].path == "0/0" and utxos[0].amount == COIN


def test_mempool_fees_search_and_node(world: World) -> None:
    c = world.client
    pool = c.mempool()
    assert isinstance(pool, m.MempoolSummary) and pool.count >= 1
    txids = c.mempool_txids()
    assert display(world.pending) in txids
    assert c.mempool_txids(txids[-1]) == []
    assert c.mempool_all_txids() == txids
    recent = c.mempool_recent()
    assert recent and all(isinstance(r, m.MempoolRecent) for r in recent)
    assert display(world.pending) in {r.txid for r in recent}
    fees = c.fee_estimates()
    assert set(fees) == set(m.TARGETS) and all(rate >= 1 for rate in fees.values())
    assert c.search("1") == m.FoundBlock(id=world.hashes[0], height=1)
    assert c.search(world.hashes[1]) == m.FoundBlock(id=world.hashes[1], height=2)
    assert c.search(display(world.confirmed)) == m.FoundTx(id=display(world.confirmed))
    assert c.search(PAYEE_ADDRESS) == m.FoundAddress(id=PAYEE_ADDRESS)
    xpub = world.account.account_xpub
    assert c.search(xpub) == m.FoundXpub(id=xpub)
    with pytest.raises(NodeError) as err:
        c.search("no such thing")
    assert err.value.status in (400, 404)
    utxo_set = c.utxo_set_info()
    assert isinstance(utxo_set, m.UtxoSetInfo) and utxo_set.height == BLOCKS
    peers = c.peers()
    assert peers == m.Peers(connected=[], banned=[], partitioned=[])


def test_admin_calls(world: World) -> None:
    c = world.client
    # the first block would come after an hour: switched off again long before
    assert c.set_mining(True, MINER_ADDRESS, block_time=3600) == m.MiningState(enabled=True)
    assert c.set_mining(False) == m.MiningState(enabled=False)
    nobody = f"http://127.0.0.1:{free_port()}"
    added = c.add_peer(nobody)
    assert added == m.PeerAdded(added=nobody, connected=False)
    tip = world.hashes[-1]
    marked = c.invalidate(tip)
    assert marked == m.BlockMarked(hash=tip, best_hash=world.hashes[-2], height=BLOCKS - 1)
    assert c.tip_height() == BLOCKS - 1
    back = c.reconsider(tip)
    assert back == m.BlockMarked(hash=tip, best_hash=tip, height=BLOCKS)
    mined = c.generate(1, MINER_ADDRESS)
    assert len(mined) == 1 and c.tip_hash() == mined[0]
    world.hashes += mined
    with pytest.raises(NodeError) as err:
        c.generate(1, MINER_ADDRESS[:-1] + "x")
    assert err.value.status == 400 and err.value.code == "bad-address"


def test_admin_without_or_with_a_wrong_token_is_401(world: World) -> None:
    anonymous = Client(world.node.url)
    with pytest.raises(NodeError) as err:  # refused before anything is sent
        anonymous.generate(1, MINER_ADDRESS)
    assert err.value.status == 401 and err.value.code == "unauthorized"
    wrong = Client(world.node.url, token="00" * 32)
    for call in (lambda: wrong.generate(1, MINER_ADDRESS), wrong.stop):
        with pytest.raises(NodeError) as err:
            call()
        assert err.value.status == 401 and err.value.code == "unauthorized"
    assert world.client.tip_height() == len(world.hashes)


def test_from_datadir_finds_the_node_and_its_token(world: World, tmp_path: Path) -> None:
    found = Client.from_datadir(world.node.datadir)
    assert found.url == world.node.url and found.token == world.node.token
    with pytest.raises(NodeUnreachableError, match="no node is running"):
        Client.from_datadir(tmp_path)


def test_nothing_listening_is_node_unreachable() -> None:
    c = Client(f"http://127.0.0.1:{free_port()}", timeout=10)
    with pytest.raises(NodeUnreachableError, match="cannot reach the node"):
        c.info()
    with pytest.raises(NodeUnreachableError):
        c.post_tx(b"\x90")


def test_a_url_naming_the_api_is_refused() -> None:
    with pytest.raises(ValueError, match="names the API"):
        Client("http://127.0.0.1:18844/api/v1")
    with pytest.raises(ValueError, match="http://"):
        Client("ftp://127.0.0.1")


@pytest.fixture
def liar() -> Iterator[str]:
    """A tiny aiohttp server answering ``/api/v1/info`` without its ``policy``, a list where an
    object belongs, and bytes that are not JSON."""

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "network": "regtest",
                "height": 1,
                "best_hash": "00" * 32,
                "chainwork": "00" * 32,
                "peers": 0,
                "mempool": {"count": 0, "bytes": 0},
                "synced": True,
                "version": "0",
            }
        )

    app = web.Application()
    app.router.add_get(API + "/info", info)

    async def a_list(request: web.Request) -> web.Response:
        return web.json_response([1, 2])

    async def html(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>", status=200)

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(body=b"not json")

    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, body=b"oops")

    app.router.add_get(API + "/mempool", a_list)
    app.router.add_get(API + "/peers", html)
    app.router.add_post(API + "/txs", not_json)
    app.router.add_get(API + "/utxo-set-info", bad_gateway)
    app.router.add_get(API + "/blocks/tip/hash", html)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    port = free_port()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def test_an_answer_of_the_wrong_shape_is_bad_answer(liar: str) -> None:
    c = Client(liar, timeout=10)
    for call in (c.info, c.mempool, c.peers, lambda: c.post_txs([b"\x90"]), c.tip_hash):
        with pytest.raises(NodeError) as err:
            call()
        assert err.value.code == "bad-answer", err.value
        assert err.value.status == 200
    with pytest.raises(NodeError) as err:
        c.info()
    assert "policy" in err.value.message
    with pytest.raises(NodeError) as err:  # an error that is not the API's error shape
        c.utxo_set_info()
    assert err.value.status == 502 and err.value.code == "http-502"


def test_stop(world: World) -> None:
    """Last: the node stops when the client asks it to."""
    assert world.client.stop() == m.Stopping(stopping=True)
    proc = world.node.proc
    assert proc is not None
    assert proc.wait(60) == 0
    with pytest.raises(NodeUnreachableError):
        world.client.info()
