"""The event stream (SPEC 3.6, issue 20 acceptance 6) on a real ``tally-node`` process.

Every client here is one nobody on this project wrote: aiohttp's WebSocket client
(``ClientSession.ws_connect``), aiohttp's plain HTTP client reading Server-Sent Events, and a
raw socket that asks for a WebSocket and then never reads. Checked:

- a WebSocket client receives every event of 1,000 transactions and 10 blocks (each
  ``tx_added``, each ``tx_removed`` ``confirmed``, each ``block_connected`` and ``tip_changed``)
  with consecutive seq and in causal order; a second client that leaves half-way and comes back
  with ``{"since": last}`` gets exactly the events it missed, byte for byte the first client's;
- Server-Sent Events: ``id:`` is the seq, and a reconnection with ``Last-Event-ID`` resumes
  after it (what a browser's ``EventSource`` does);
- removal reasons on the stream: ``replaced`` (a replacement by fee), ``confirmed``, and an
  invalidated block's transactions coming back (``block_disconnected``, ``tip_changed``,
  ``tx_added``); an address subscription sees its address's transactions, no other's;
- a reorganisation three blocks deep (issue 20 acceptance 3's shape): three
  ``block_disconnected`` from the tip down, ``tip_changed``, the transactions back
  (``tx_added``), then the new blocks and the confirmations, in order with no gap in seq;
- a client that never reads is dropped with ``gap`` (``behind``, then close 1008) while the node
  keeps answering ``/info`` and accepting blocks, mined and submitted;
- the SDK's subscriber (``client.events``) decodes the messages into their models, replays with
  ``since``, and its generator times out when nothing comes;
- bad client messages are answered ``error`` and the connection goes on; an oversized message
  closes it (1009); bad query parameters are 400; a WebSocket upgrade from a foreign ``Origin``
  is 403, from the node's own origin or without one it is served.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from client import models as m
from client.events import EventStream, iter_events
from client.models import EVENT_CLIENT_QUEUE, MAX_EVENT_MESSAGE
from consensus import Transaction, TxOut
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key, mine_block, spend
from tests.integration.hardening_support import Coin, fan_out, spends

API = "/api/v1"
TXS = 1_000
BLOCKS = 10
WAIT = 60.0  # seconds any one wait may take on a slow machine


@dataclass
class Env:
    node: NodeProcess
    miner: str
    coins: list[Coin]

    @property
    def ws_url(self) -> str:
        return self.node.url.replace("http://", "ws://") + f"{API}/events"

    def take(self, n: int) -> list[Coin]:
        taken, self.coins = self.coins[:n], self.coins[n:]
        return taken


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    node = NodeProcess(tmp_path_factory.mktemp("events") / "n1").start()
    try:
        miner = address_of(key(0).pubkey_hash)
        yield Env(node, miner, fan_out(node, key(0), TXS + 20))
    finally:
        node.stop()


def submit_batch(node: NodeProcess, txs: list[Transaction]) -> None:
    body = json.dumps([{"raw": tx.serialize().hex()} for tx in txs]).encode()
    r = node.get(
        f"{API}/txs", method="POST", body=body, headers={"Content-Type": "application/json"}
    )
    assert r.status == 200, r.body[:300]
    assert all("txid" in item for item in r.json()), r.body[:300]


def hx(h: bytes) -> str:
    return h[::-1].hex()


async def subscribed(ws: aiohttp.ClientWebSocketResponse, topics: list[str]) -> int:
    """Subscribe and wait for the answer; the node's seq then."""
    await ws.send_json({"subscribe": topics})
    answer = await ws.receive_json(timeout=WAIT)
    assert answer["type"] == "subscribed", answer
    assert answer["subscribe"] == sorted(topics)
    seq: int = answer["seq"]
    return seq


async def receive(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[str]:
    """The next ``count`` text messages."""
    out = []
    for _ in range(count):
        message = await ws.receive(timeout=WAIT)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        out.append(message.data)
    return out


def test_websocket_gets_every_event_of_1000_txs_and_10_blocks(env: Env) -> None:
    txs = spends(env.take(TXS), key(2))
    events_expected = TXS + TXS + 2 * BLOCKS  # added, confirmed, and each block's two

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        async with aiohttp.ClientSession() as session:
            a = await session.ws_connect(env.ws_url)
            b = await session.ws_connect(env.ws_url)
            start = await subscribed(a, ["blocks", "mempool"])
            await subscribed(b, ["blocks", "mempool"])
            reading_a = asyncio.ensure_future(receive(a, events_expected))
            reading_b = asyncio.ensure_future(receive(b, events_expected // 2))
            await asyncio.to_thread(submit_batch, env.node, txs)
            await asyncio.to_thread(env.node.generate, BLOCKS, env.miner)
            first_half = await reading_b
            await b.close()  # b leaves half-way...
            everything = await reading_a
            # ... and comes back, asking for what came after the last event it saw.
            last = json.loads(first_half[-1])["seq"]
            c = await session.ws_connect(env.ws_url)
            await c.send_json({"since": last})
            rest = await receive(c, events_expected - len(first_half))
            await a.close()
            await c.close()
            info = json.loads(await (await session.get(env.node.url + f"{API}/events")).text())
            assert info["seq"] == start + events_expected
            return everything, first_half, rest

    everything, first_half, rest = asyncio.run(scenario())
    events = [json.loads(t) for t in everything]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + events_expected))
    assert first_half + rest == everything  # exactly what it missed, nothing more

    txids = [hx(tx.txid()) for tx in txs]
    added = [e for e in events if e["type"] == "tx_added"]
    assert [e["txid"] for e in added] == txids
    assert all(
        e["fee"] == 1_000 and e["size"] == tx.size() for e, tx in zip(added, txs, strict=True)
    )
    connected = [e for e in events if e["type"] == "block_connected"]
    assert len(connected) == BLOCKS
    assert [e["height"] for e in connected] == list(
        range(connected[0]["height"], connected[0]["height"] + BLOCKS)
    )
    assert connected[0]["tx_count"] == TXS + 1
    tips = [e for e in events if e["type"] == "tip_changed"]
    assert [(t["hash"], t["height"]) for t in tips] == [(c["hash"], c["height"]) for c in connected]
    removed = [e for e in events if e["type"] == "tx_removed"]
    assert sorted(e["txid"] for e in removed) == sorted(txids)
    assert {e["reason"] for e in removed} == {"confirmed"}
    # In causal order: every addition, then the block, its confirmations, then its tip.
    kinds = [e["type"] for e in events]
    assert kinds[:TXS] == ["tx_added"] * TXS
    assert kinds[TXS : 2 * TXS + 2] == ["block_connected"] + ["tx_removed"] * TXS + ["tip_changed"]
    assert kinds[2 * TXS + 2 :] == ["block_connected", "tip_changed"] * (BLOCKS - 1)


def test_server_sent_events_resume_after_last_event_id(env: Env) -> None:
    async def read_sse(
        response: aiohttp.ClientResponse, count: int
    ) -> list[tuple[int | None, dict[str, Any]]]:
        out: list[tuple[int | None, dict[str, Any]]] = []
        seq: int | None = None
        while len(out) < count:
            line = (await asyncio.wait_for(response.content.readline(), WAIT)).decode()
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("data: "):
                out.append((seq, json.loads(line[6:])))
                seq = None
        return out

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            sse = {"Accept": "text/event-stream"}
            url = env.node.url + f"{API}/events?subscribe=blocks"
            first = await session.get(url, headers=sse)
            assert first.status == 200
            assert first.headers["Content-Type"] == "text/event-stream"
            assert (await first.content.readline()).startswith(b"retry: ")
            await asyncio.to_thread(env.node.generate, 3, env.miner)
            got = await read_sse(first, 6)
            first.close()
            for seq, event in got:
                assert seq == event["seq"]
            assert [e["type"] for _, e in got] == ["block_connected", "tip_changed"] * 3
            seqs = [s for s, _ in got]
            assert seqs == list(range(seqs[0], seqs[0] + 6))
            # A browser reconnects with the last id it saw: the stream resumes after it.
            resumed = await session.get(url, headers={**sse, "Last-Event-ID": str(seqs[1])})
            again = await read_sse(resumed, 4)
            resumed.close()
            assert [e for _, e in again] == [e for _, e in got[2:]]

    asyncio.run(scenario())


def test_reasons_reorg_and_address_subscription(env: Env) -> None:
    payee, other = key(3), key(4)
    payee_address = address_of(payee.pubkey_hash)
    (c1,), (c2,) = env.take(1), env.take(1)
    first = spend([c1], [TxOut(c1[1].amount - 1_000, payee.pubkey_hash)])
    replacement = spend([c1], [TxOut(c1[1].amount - 50_000, payee.pubkey_hash)])
    unrelated = spend([c2], [TxOut(c2[1].amount - 1_000, other.pubkey_hash)])

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with aiohttp.ClientSession() as session:
            everything = await session.ws_connect(env.ws_url)
            watcher = await session.ws_connect(env.ws_url)
            await subscribed(everything, ["blocks", "mempool"])
            await subscribed(watcher, [f"address:{payee_address}"])
            for tx in (first, replacement, unrelated):
                r = await asyncio.to_thread(env.node.post_raw, f"{API}/tx", tx.serialize())
                assert r.status == 200, r.body
            (block,) = await asyncio.to_thread(env.node.generate, 1, env.miner)
            r = await asyncio.to_thread(
                env.node.post_json, f"{API}/admin/invalidate", {"hash": block}, True
            )
            assert r.status == 200, r.body
            r = await asyncio.to_thread(
                env.node.post_json, f"{API}/admin/reconsider", {"hash": block}, True
            )
            assert r.status == 200, r.body
            # first, replaced (its add, removal, the replacement's add), unrelated; the block:
            # connect, 2 confirmed, tip; invalidate: disconnect, tip, 2 back; reconsider: connect,
            # 2 confirmed, tip.
            all_events = [json.loads(t) for t in await receive(everything, 4 + 4 + 4 + 4)]
            address_events = [json.loads(t) for t in await receive(watcher, 6)]
            return all_events, address_events

    events, watched = asyncio.run(scenario())
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    t1, t2, t3 = (hx(t.txid()) for t in (first, replacement, unrelated))
    assert [(e["type"], e.get("txid"), e.get("reason")) for e in events[:4]] == [
        ("tx_added", t1, None),
        ("tx_removed", t1, "replaced"),
        ("tx_added", t2, None),
        ("tx_added", t3, None),
    ]
    kinds = [e["type"] for e in events[4:]]
    assert kinds == [
        *("block_connected", "tx_removed", "tx_removed", "tip_changed"),
        *("block_disconnected", "tip_changed", "tx_added", "tx_added"),
        *("block_connected", "tx_removed", "tx_removed", "tip_changed"),
    ]
    assert {e["txid"] for e in events[10:12]} == {t2, t3}  # came back to the mempool
    assert {e["reason"] for e in events[13:15]} == {"confirmed"}
    # The address's own transactions, each step, with the node's seq (jumps: it filters).
    assert [(e["type"], e["txid"], e["status"]) for e in watched] == [
        ("address", t1, "mempool"),
        ("address", t1, "removed"),
        ("address", t2, "mempool"),
        ("address", t2, "confirmed"),
        ("address", t2, "disconnected"),
        ("address", t2, "mempool"),
    ]
    assert all(e["address"] == payee_address for e in watched)
    assert [e["seq"] for e in watched] == sorted(e["seq"] for e in watched)


def ws_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Server-to-client WebSocket frames (unmasked, RFC 6455 5.2): (opcode, payload)."""
    frames, pos = [], 0
    while pos + 2 <= len(data):
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack(">H", data[pos : pos + 2])
            pos += 2
        elif length == 127:
            (length,) = struct.unpack(">Q", data[pos : pos + 8])
            pos += 8
        if pos + length > len(data):
            break
        frames.append((opcode, data[pos : pos + length]))
        pos += length
    return frames


def test_a_client_that_never_reads_is_dropped_and_the_node_goes_on(env: Env) -> None:
    node = env.node
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", node.port))
    slow.sendall(
        f"GET {API}/events HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    try:
        dropped_before = node.get(f"{API}/events").json()["dropped"]
        height = node.get(f"{API}/info").json()["height"]
        deadline = time.monotonic() + 120
        rounds = 0
        while node.get(f"{API}/events").json()["dropped"] == dropped_before:
            assert time.monotonic() < deadline, "the slow client was never dropped"
            # Enough events to fill what the connection buffers and the client's queue, then a
            # few a second while its stall lasts (the node checks on each event).
            count = 100 if rounds < 8 else 2
            node.generate(count, env.miner)  # two events a block
            height += count
            rounds += 1
            info = node.get(f"{API}/info", timeout=10)  # the node answers meanwhile
            assert info.status == 200 and info.json()["height"] == height
            if rounds >= 8:
                time.sleep(0.5)
        # It still accepts blocks, from the miner and from outside.
        tip = node.get(f"{API}/info").json()
        parent = node.get(f"{API}/block/{tip['best_hash']}").json()
        block = mine_block(
            bytes.fromhex(tip["best_hash"])[::-1],
            tip["height"] + 1,
            [],
            parent["time"] + 1,
            key(5).pubkey_hash,
        )
        assert node.post_raw(f"{API}/block", block.serialize()).status == 200
        assert node.get(f"{API}/info").json()["height"] == tip["height"] + 1
        # What the slow client finds when it reads at last: events, then gap, then the close.
        slow.settimeout(WAIT)
        data = b""
        while True:
            try:
                chunk = slow.recv(1 << 16)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            data += chunk
    finally:
        slow.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    frames = ws_frames(body)
    texts = [json.loads(p) for op, p in frames if op == 1]
    assert texts[-1]["type"] == "gap" and texts[-1]["reason"] == "behind", texts[-1]
    events = texts[:-1]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # what it got has no hole
    assert texts[-1]["after"] == seqs[-1]  # the gap starts right after it
    assert len(events) < 5 * EVENT_CLIENT_QUEUE  # it was not kept for long
    close = [p for op, p in frames if op == 8]
    assert close and struct.unpack(">H", close[0][:2])[0] == 1008


def test_bad_messages_get_an_error_and_the_stream_goes_on(env: Env) -> None:
    bad = [
        "garbage",
        "[]",
        '{"subscribe": "blocks"}',
        '{"subscribe": ["blocks", "chain"]}',
        '{"subscribe": ["address:1111"]}',
        '{"since": -1}',
        '{"since": "5"}',
        '{"other": 1}',
        "{}",
    ]

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(env.ws_url)
            for text in bad:
                await ws.send_str(text)
                answer = await ws.receive_json(timeout=WAIT)
                assert answer["type"] == "error", (text, answer)
                assert answer["error"]["code"] == "bad-request", (text, answer)
            await ws.send_bytes(b"\x00\x01")
            assert (await ws.receive_json(timeout=WAIT))["type"] == "error"
            await subscribed(ws, ["blocks"])  # still served
            await asyncio.to_thread(env.node.generate, 1, env.miner)
            assert (await ws.receive_json(timeout=WAIT))["type"] == "block_connected"
            # A message over the limit closes the connection (1009, message too big).
            await ws.send_str('{"since": 1, "x": "' + "a" * MAX_EVENT_MESSAGE + '"}')
            message = await ws.receive(timeout=WAIT)
            while message.type is aiohttp.WSMsgType.TEXT:  # the block's tip_changed
                message = await ws.receive(timeout=WAIT)
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1009

            for query in ("subscribe=chain", "since=abc", "since=-1", "subscribe=address:x"):
                r = await session.get(env.node.url + f"{API}/events?{query}")
                assert r.status == 400, query
                assert (await r.json())["error"]["code"] == "bad-request"

    asyncio.run(scenario())


def test_a_foreign_origin_cannot_open_the_websocket(env: Env) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            for origin in ("http://evil.example", "null", f"http://127.0.0.1:{env.node.port + 1}"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(env.ws_url, origin=origin)
                assert refused.value.status == 403, origin
            own = await session.ws_connect(env.ws_url, origin=env.node.url)
            await subscribed(own, ["blocks"])
            await own.close()

    asyncio.run(scenario())


def test_the_sdk_subscriber_async_and_sync(env: Env) -> None:
    """``client.events``: typed messages, ``last_seq``, a replay with ``since``, the generator's
    timeout."""

    async def scenario() -> tuple[list[m.StreamMessage], list[str], int | None]:
        async with EventStream(env.node.url, subscribe=["blocks"]) as stream:
            first = await stream.receive(timeout=WAIT)
            assert isinstance(first, m.SubscribedNotice) and first.subscribe == ["blocks"]
            hashes = await asyncio.to_thread(env.node.generate, 2, env.miner)
            got = [await stream.receive(timeout=WAIT) for _ in range(4)]
            return got, hashes, stream.last_seq

    got, hashes, last = asyncio.run(scenario())
    assert [type(g) for g in got] == [m.BlockConnectedEvent, m.TipChangedEvent] * 2
    connected = [g for g in got if isinstance(g, m.BlockConnectedEvent)]
    assert [g.hash for g in connected] == hashes
    assert isinstance(got[-1], m.TipChangedEvent) and last == got[-1].seq

    first = got[0]
    assert isinstance(first, m.BlockConnectedEvent)
    messages = iter_events(env.node.url, subscribe=["blocks"], since=first.seq, timeout=WAIT)
    try:
        assert isinstance(next(messages), m.SubscribedNotice)
        replayed = [next(messages) for _ in range(3)]
    finally:
        messages.close()
    assert replayed == got[1:]

    quiet = iter_events(env.node.url, subscribe=[], timeout=1.0)
    try:
        assert isinstance(next(quiet), m.SubscribedNotice)
        with pytest.raises(TimeoutError):
            next(quiet)  # nothing is subscribed: nothing comes
    finally:
        quiet.close()


def test_a_reorganisation_three_deep_in_order_with_no_gap(env: Env) -> None:
    """Issue 20 acceptance 3's shape: three blocks with a transaction each leave (invalidated
    at depth 3), their transactions come back, four new blocks confirm them: every step in
    order, seqs consecutive."""
    txs = spends(env.take(3), key(6))

    async def scenario() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            hashes = []
            for tx in txs:  # one block per transaction
                r = await asyncio.to_thread(env.node.post_raw, f"{API}/tx", tx.serialize())
                assert r.status == 200, r.body
                hashes += await asyncio.to_thread(env.node.generate, 1, env.miner)
            ws = await session.ws_connect(env.ws_url)  # live from here
            await subscribed(ws, ["blocks", "mempool"])
            r = await asyncio.to_thread(
                env.node.post_json, f"{API}/admin/invalidate", {"hash": hashes[0]}, True
            )
            assert r.status == 200, r.body
            await asyncio.to_thread(env.node.generate, 4, env.miner)
            # 3 disconnects, tip, 3 back; connect, 3 confirmed, tip; 3 x (connect, tip)
            return [json.loads(t) for t in await receive(ws, 3 + 1 + 3 + 5 + 6)]

    events = asyncio.run(scenario())
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(events)))
    kinds = [e["type"] for e in events]
    assert kinds == [
        *["block_disconnected"] * 3,
        "tip_changed",
        *["tx_added"] * 3,
        "block_connected",
        *["tx_removed"] * 3,
        "tip_changed",
        *["block_connected", "tip_changed"] * 3,
    ]
    heights = [e["height"] for e in events[:3]]
    assert heights == [heights[0], heights[0] - 1, heights[0] - 2]  # from the tip down
    assert events[3]["height"] == heights[0] - 3
    txids = [hx(tx.txid()) for tx in txs]
    assert [e["txid"] for e in events[4:7]] == txids  # back, in their order
    assert events[7]["height"] == heights[0] - 2 and events[7]["tx_count"] == 4
    assert sorted(e["txid"] for e in events[8:11]) == sorted(txids)
    assert {e["reason"] for e in events[8:11]} == {"confirmed"}
