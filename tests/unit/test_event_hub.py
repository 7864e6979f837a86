"""The event hub (``node.events``) on its own: numbering, the ring, gaps and the bounds.

The hub runs on a real event loop here; the "state thread" is a real second thread that calls
the listeners, as the node's does. Checked:

- seq rises by exactly 1 per event, across event kinds and across the threads' hand-overs, and
  a burst from the state thread is numbered in the order it was produced;
- the ring keeps the latest ``ring`` events; ``since`` replays exactly the events after it, and
  a ``since`` older than the ring is answered ``gap`` (``too-old``) then the ring's events; one
  above the latest seq is ``gap`` (``unknown``);
- a client more than ``client_queue`` events behind is dropped with ``gap`` (``behind``) and
  leaves the hub; one that keeps up is not;
- ``address`` events are made only for subscribed addresses, take the next seq, and stop when
  the last subscriber leaves; a filtering client sees only its topics (with jumps in seq);
- the bounds: ``max_clients`` (``StreamFullError``), ``MAX_EVENT_SUBSCRIPTIONS`` topics, unknown
  topics and bad addresses (``TopicError``), ``MAX_REPLIES`` unread answers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from typing import Any

import pytest

from client.models import MAX_EVENT_SUBSCRIPTIONS
from consensus import (
    Block,
    BlockHeader,
    Coin,
    OutPoint,
    TxOut,
    encode_address,
    get_params,
    merkle_root,
)
from node.events import (
    MAX_REPLIES,
    MESSAGE_BURST,
    MESSAGE_RATE,
    EventHub,
    StreamFullError,
    Subscriber,
    TopicError,
    _Block,
)
from tests.helpers import coinbase, key, spend

PARAMS = get_params("regtest")
ALL = frozenset({"blocks", "mempool"})


@functools.cache
def tx(n: int, to: int = 1) -> Any:
    """A distinct signed transaction paying key ``to`` (spending a made-up coin of key 0)."""
    coin = TxOut(1_000_000 + n, key(0).pubkey_hash)
    return spend(
        [(OutPoint(bytes([n % 256]) * 32, n // 256), coin, key(0))],
        [TxOut(900_000, key(to).pubkey_hash)],
    )


def messages(client: Subscriber) -> list[dict[str, Any]]:
    """Everything the client would be written now."""
    out = []
    while True:
        items = client.take()
        if not items:
            return out
        out += [json.loads(text) for _, text in items]


def run(scenario: Any) -> None:
    asyncio.run(scenario())


async def settle() -> None:
    """Let the loop run the flushes the other thread scheduled."""
    for _ in range(5):
        await asyncio.sleep(0)


def from_thread(fn: Any) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


def test_seq_rises_by_one_in_the_order_produced() -> None:
    async def scenario() -> None:
        hub = EventHub(asyncio.get_running_loop(), PARAMS)
        client = hub.join(ALL)
        txs = [tx(n) for n in range(300)]

        def state_thread() -> None:
            for t in txs:
                hub.removed(t, (), "evicted")

        from_thread(state_thread)
        from_thread(lambda: hub.removed(txs[0], (), "expired"))
        await settle()
        got = messages(client)
        assert [e["seq"] for e in got] == list(range(1, 302))
        assert [e["txid"] for e in got[:300]] == [t.txid()[::-1].hex() for t in txs]
        assert got[-1] == {
            "type": "tx_removed",
            "seq": 301,
            "txid": txs[0].txid()[::-1].hex(),
            "reason": "expired",
        }
        assert hub.seq == 301

    run(scenario)


def test_the_ring_replays_since_and_reports_gaps() -> None:
    async def scenario() -> None:
        hub = EventHub(asyncio.get_running_loop(), PARAMS, ring=50)
        for n in range(80):
            hub.removed(tx(n), (), "evicted")
        await settle()
        assert (hub.seq, hub.oldest, len(hub.ring)) == (80, 31, 50)

        late = hub.join(ALL, since=60)
        assert [e["seq"] for e in messages(late)] == list(range(61, 81))

        old = hub.join(ALL, since=10)
        got = messages(old)
        assert got[0] == {"type": "gap", "after": 10, "next": 31, "reason": "too-old"}
        assert [e["seq"] for e in got[1:]] == list(range(31, 81))

        ahead = hub.join(ALL, since=500)
        assert messages(ahead) == [{"type": "gap", "after": 500, "next": 81, "reason": "unknown"}]
        hub.removed(tx(99), (), "evicted")
        await settle()
        assert [e["seq"] for e in messages(ahead)] == [81]  # live from there

        live = hub.join(ALL)  # no since: from the next event on
        assert messages(live) == []

    run(scenario)


def test_a_client_that_falls_behind_is_dropped_with_gap() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        hub = EventHub(loop, PARAMS, client_queue=20, stall_seconds=5)
        slow, quick = hub.join(ALL), hub.join(ALL)
        burst = hub.join(ALL)
        burst.write_started = loop.time()  # waiting for its connection, but not for long
        slow.write_started = loop.time() - 6  # its connection has taken nothing for 6 s
        for n in range(15):
            hub.removed(tx(n), (), "evicted")
        await settle()
        assert len(messages(quick)) == 15
        assert not slow.dropped  # 15 behind: within its queue
        for n in range(15, 30):
            hub.removed(tx(n), (), "evicted")
            await settle()
            assert len(messages(quick)) == 1
        assert slow.dropped and not quick.dropped
        assert slow not in hub.clients and quick in hub.clients
        assert not burst.dropped  # 30 behind, but its writes go through
        quick.write_started = loop.time() - 6  # stalled, but not behind: kept
        hub.removed(tx(31), (), "evicted")
        await settle()
        assert not quick.dropped
        assert [json.loads(w) for w in slow.last_words()] == [
            {"type": "gap", "after": 0, "next": 1, "reason": "behind"}
        ]
        assert hub.dropped_count == 1
        quick.delivered = 30
        hub.drop(quick)  # not for being behind: no gap
        assert quick.last_words() == []

    run(scenario)


def test_a_replay_may_start_far_back_but_not_fall_out_of_the_ring() -> None:
    async def scenario() -> None:
        hub = EventHub(asyncio.get_running_loop(), PARAMS, ring=100, client_queue=10)
        for n in range(90):
            hub.removed(tx(n), (), "evicted")
        await settle()
        client = hub.join(ALL, since=0)  # 90 behind, all in the ring: not dropped
        hub.removed(tx(200), (), "evicted")
        await settle()
        assert not client.dropped
        assert len(messages(client)) == 91
        # Now take nothing while the ring wraps past the client's place.
        lagging = hub.join(ALL, since=0)
        for n in range(300, 420):
            hub.removed(tx(n), (), "evicted")
        await settle()
        assert lagging.dropped

    run(scenario)


def test_address_events_only_for_subscribed_addresses() -> None:
    async def scenario() -> None:
        hub = EventHub(asyncio.get_running_loop(), PARAMS)
        payee = encode_address(key(1).pubkey_hash, PARAMS)
        watcher = hub.join(frozenset({f"address:{payee}"}))
        everything = hub.join(ALL)
        paying, other = tx(1, to=1), tx(2, to=3)
        spent = (Coin(TxOut(1, key(0).pubkey_hash), 1, False),)
        hub.removed(other, spent, "evicted")  # not the payee's: no address event
        hub.removed(paying, spent, "replaced")
        block = [coinbase(5, key(1).pubkey_hash, 50)]
        hub._hand_over(_Block(True, _block_of(block), 5, ()))
        await settle()
        got = messages(watcher)
        assert got == [
            {
                "type": "address",
                "seq": 3,
                "address": payee,
                "txid": paying.txid()[::-1].hex(),
                "status": "removed",
            },
            {
                "type": "address",
                "seq": 5,
                "address": payee,
                "txid": block[0].txid()[::-1].hex(),
                "status": "confirmed",
            },
        ]
        # The unfiltered client sees the node's events with no jump, and no address events.
        assert [(e["seq"], e["type"]) for e in messages(everything)] == [
            (1, "tx_removed"),
            (2, "tx_removed"),
            (4, "block_connected"),
        ]
        hub.leave(watcher)
        watcher.subscribe([f"address:{payee}"])  # gone: it watches nothing any more
        hub.removed(tx(3, to=1), (), "evicted")
        await settle()
        assert [e["seq"] for e in messages(everything)] == [6]  # no address event any more
        assert hub.seq == 6

    run(scenario)


def _block_of(txs: list[Any]) -> Block:
    header = BlockHeader(1, bytes(32), merkle_root([t.wtxid() for t in txs])[0], 0, 0x207FFFFF, 0)
    return Block(header, tuple(txs))


def test_the_bounds() -> None:
    async def scenario() -> None:
        hub = EventHub(asyncio.get_running_loop(), PARAMS, max_clients=2)
        a = hub.join(ALL)
        hub.join(ALL)
        with pytest.raises(StreamFullError):
            hub.join(ALL)
        hub.leave(a)
        hub.join(ALL)  # a place again

        with pytest.raises(TopicError, match="unknown topic"):
            hub.parse_topics(["blocks", "chain"])
        with pytest.raises(TopicError, match="address"):
            hub.parse_topics(["address:notanaddress"])
        with pytest.raises(TopicError, match="list"):
            hub.parse_topics("blocks")
        with pytest.raises(TopicError, match="at most"):
            hub.parse_topics(["blocks"] * (MAX_EVENT_SUBSCRIPTIONS + 1))
        mainnet = encode_address(key(1).pubkey_hash, get_params("main"))
        with pytest.raises(TopicError):
            hub.parse_topics([f"address:{mainnet}"])  # another network's address

        limited = EventHub(asyncio.get_running_loop(), PARAMS).join(ALL)
        assert all(limited.allow_message(100.0) for _ in range(MESSAGE_BURST))
        assert not limited.allow_message(100.0)  # the burst is spent
        assert limited.allow_message(100.0 + 1.5 / MESSAGE_RATE)  # one more after its time
        assert not limited.allow_message(100.0 + 1.5 / MESSAGE_RATE)

        free = EventHub(asyncio.get_running_loop(), PARAMS)
        chatty = free.join(ALL)
        for _ in range(MAX_REPLIES):
            chatty.error("bad-request", "x")
        assert not chatty.dropped
        chatty.error("bad-request", "one too many")  # answers it never read
        assert chatty.dropped and chatty not in free.clients

    run(scenario)
