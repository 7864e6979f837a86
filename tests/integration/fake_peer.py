"""A tiny stand-in for a Tally peer, for P2P integration tests (SPEC 3.4).

``FakePeer`` is an aiohttp server on loopback, run on its own event loop in a background thread.
It answers the node under test the way a peer would: ``/p2p/handshake`` with a handshake of the
right network (or of a wrong magic or genesis, when asked to), ``/p2p/getdata`` with whatever
blocks and transactions the test prepared (invalid ones included: the fake never checks them),
and every other route with an empty but well-formed answer. It advertises no work, so the node
never syncs from it.

The test drives it with plain blocking calls: ``handshake(node_url)``, ``inv(node_url, kind,
hashes)`` and ``post(node_url, route, body)``, each carrying ``X-Tally-Peer: <its url>``. What
the node asked of it is kept in ``requests`` (route, decoded message).

The second half of the module holds what the three ``test_p2p_*`` modules share: ``Cluster``
(the processes of one test, ``wait`` polling with a deadline and failing with every node's log)
and small readers of the node's API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from aiohttp import web

from consensus import Block, NetworkParams, OutPoint, Transaction, TxOut, get_params
from node.p2p import messages as m
from tests.functional.node_process import NodeProcess, Response, free_port, http
from tests.helpers import Key, spend


def p2p_post(node_url: str, route: str, body: bytes, sender: str) -> Response:
    """POST ``body`` to the node's ``/p2p/<route>`` with ``X-Tally-Peer: <sender>``."""
    headers = {"Content-Type": "application/msgpack", "X-Tally-Peer": sender}
    return http(f"{node_url}/p2p/{route}", "POST", body, headers, timeout=30)


@dataclass
class FakePeer:
    """A peer that says what the test wants it to say."""

    params: NetworkParams = field(default_factory=lambda: get_params("regtest"))
    magic: bytes | None = None
    genesis: bytes | None = None
    blocks: dict[bytes, bytes] = field(default_factory=dict)
    txs: dict[bytes, bytes] = field(default_factory=dict)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    nonce: bytes = field(default_factory=lambda: os.urandom(8))

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the server -------------------------------------------------------------------------------

    def handshake_message(self) -> dict[str, Any]:
        return {
            "magic": self.magic if self.magic is not None else self.params.magic,
            "genesis": self.genesis if self.genesis is not None else self.params.genesis_hash,
            "version": m.PROTOCOL_VERSION,
            "height": 0,
            "work": bytes(32),
            "url": self.url,
            "nonce": self.nonce,
        }

    async def _handle(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        body = await request.read()
        try:
            message = msgpack.unpackb(body, raw=False)
        except Exception:
            message = body
        self.requests.append((route, message))
        if route == "handshake":
            answer: dict[str, Any] = self.handshake_message()
        elif route == "getdata" and isinstance(message, dict):
            store = self.txs if message.get("kind") == "tx" else self.blocks
            answer = {"items": [store[h] for h in message.get("hashes", []) if h in store]}
        elif route == "getheaders":
            answer = {"headers": []}
        elif route == "addr":
            answer = {"urls": []}
        elif route == "mempool":
            answer = {"txids": []}
        else:
            answer = {}
        return web.Response(body=m.encode(answer), content_type="application/msgpack")

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/p2p/{route}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> FakePeer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakePeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def routes_asked(self) -> list[str]:
        return [route for route, _ in list(self.requests)]

    # --- the client -------------------------------------------------------------------------------

    def post(self, node_url: str, route: str, body: bytes) -> Response:
        """POST ``body`` to the node's ``/p2p/<route>`` as this peer."""
        return p2p_post(node_url, route, body, self.url)

    def handshake(self, node_url: str) -> Response:
        return self.post(node_url, "handshake", m.encode(self.handshake_message()))

    def inv(self, node_url: str, kind: str, hashes: list[bytes]) -> Response:
        return self.post(node_url, "inv", m.encode({"kind": kind, "hashes": hashes}))

    def offer_block(self, raw: bytes, block_hash: bytes) -> None:
        self.blocks[block_hash] = raw

    def offer_tx(self, raw: bytes, txid: bytes) -> None:
        self.txs[txid] = raw


# --- helpers shared by the P2P integration tests --------------------------------------------------

API = "/api/v1"


def hx(h: bytes) -> str:
    """Internal byte order to display hex."""
    return h[::-1].hex()


def internal(display: str) -> bytes:
    return bytes.fromhex(display)[::-1]


ROUTINE = re.compile(r"(block \d+ connected|mined block \d+):")


def log_tail(node: NodeProcess, lines: int = 40) -> str:
    """The last ``lines`` lines of the node's log, leaving out one line per block."""
    kept = [line for line in node.log().splitlines() if not ROUTINE.search(line)]
    return "\n".join(kept[-lines:])


class Cluster:
    """The node processes (and fake peers) of one test, stopped at the end whatever happens."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[NodeProcess] = []
        self.fakes: list[FakePeer] = []

    def start(self, name: str, *args: str) -> NodeProcess:
        return self.add(NodeProcess(self.root / name, *args)).start()

    def add(self, node: NodeProcess) -> NodeProcess:
        self.nodes.append(node)
        return node

    def fake(self, **kw: Any) -> FakePeer:
        fake = FakePeer(**kw).start()
        self.fakes.append(fake)
        return fake

    def close(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                with contextlib.suppress(Exception):
                    node.stop()
        for fake in self.fakes:
            with contextlib.suppress(Exception):
                fake.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n.datadir.name} ({n.url}) ---\n{log_tail(n)}" for n in self.nodes)

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
        """Poll ``condition`` until it returns something true; fail with the logs on timeout."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = condition()
            except (OSError, KeyError, ValueError, AssertionError) as err:
                last = err
            else:
                if last:
                    return last
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what} (last: {last!r})\n{self.logs()}"
        )

    def check_logs(self) -> None:
        """No node logged a traceback or an error, and every node still answers."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                assert node.get(f"{API}/info").status == 200, node.datadir.name
            text = node.log()
            assert "Traceback" not in text, f"{node.datadir.name} logged a traceback:\n{text}"
            assert " ERROR " not in text, f"{node.datadir.name} logged an error:\n{text}"


def ok(r: Response) -> Any:
    assert r.status == 200, (r.status, r.body[:500])
    return r.json()


def tip(node: NodeProcess) -> str:
    r = node.get(f"{API}/blocks/tip/hash")
    assert r.status == 200, r.body
    return r.body.decode()


def height(node: NodeProcess) -> int:
    return int(node.get(f"{API}/blocks/tip/height").body)


def utxo_info(node: NodeProcess) -> dict[str, Any]:
    info: dict[str, Any] = ok(node.get(f"{API}/utxo-set-info"))
    return info


def mempool(node: NodeProcess) -> set[str]:
    return set(ok(node.get(f"{API}/mempool/txids")))


def peers(node: NodeProcess) -> dict[str, Any]:
    data: dict[str, Any] = ok(node.get(f"{API}/peers"))
    return data


def connected(node: NodeProcess) -> set[str]:
    return {p["url"] for p in peers(node)["connected"]}


def banned(node: NodeProcess) -> set[str]:
    return {b["peer"] for b in peers(node)["banned"]}


def metrics_of(node: NodeProcess) -> dict[str, float]:
    """``name{labels}`` -> value of every sample in the Prometheus text."""
    r = node.get("/metrics")
    assert r.status == 200
    samples: dict[str, float] = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def downloaded(node: NodeProcess, kind: str) -> int:
    return int(metrics_of(node).get(f'tally_p2p_downloaded_total{{kind="{kind}"}}', 0))


def misbehaviour_points(node: NodeProcess) -> int:
    return int(metrics_of(node).get("tally_p2p_misbehaviour_points_total", 0))


def block_at(node: NodeProcess, h: int) -> Block:
    r = node.get(f"{API}/block-height/{h}")
    assert r.status == 200, r.body
    raw = node.get(f"{API}/block/{r.body.decode()}/raw")
    assert raw.status == 200, raw.body
    return Block.deserialize(raw.body)


def coinbase_coin(node: NodeProcess, h: int, owner: Key) -> tuple[OutPoint, TxOut, Key]:
    """The coinbase output of the block at height ``h`` on ``node``, ready for ``spend``."""
    cb = block_at(node, h).txs[0]
    return OutPoint(cb.txid(), 0), cb.outputs[0], owner


def pay(
    coin: tuple[OutPoint, TxOut, Key], to: Key, fee: int = 10_000, parts: int = 1
) -> Transaction:
    """Spend ``coin`` to ``to`` in ``parts`` equal outputs, leaving ``fee``."""
    value = (coin[1].amount - fee) // parts
    return spend([coin], [TxOut(value, to.pubkey_hash)] * parts)


def submit_tx(node: NodeProcess, tx: Transaction) -> str:
    txid: str = ok(node.post_raw(f"{API}/tx", tx.serialize()))["txid"]
    assert txid == hx(tx.txid())
    return txid


def tx_status(node: NodeProcess, txid: str) -> dict[str, Any] | None:
    r = node.get(f"{API}/tx/{txid}/status")
    if r.status == 404:
        return None
    status: dict[str, Any] = ok(r)
    return status
