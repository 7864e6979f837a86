"""What the hardening tests (crash loop, storage faults, load) share.

- ``ApiClient``: one keep-alive HTTP connection (``http.client``) to a node, for clients that
  submit transactions as fast as they can; it reconnects after a dropped connection.
- ``fan_out``: many small confirmed coins of one key, made from matured coinbases split by large
  transactions, so a test can pre-sign thousands of independent spends.
- ``spends``: one signed single-input spend per coin.
- ``set_mining``: the admin mining switch of a running node.
- ``rss_kib``: a process's resident set size.
- ``chain_txids``: the txids of the blocks of a node's best chain in a height range.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from consensus import OutPoint, Transaction, TxOut, errors
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import Key, spend
from tests.integration.fake_peer import API, coinbase_coin, ok, submit_tx

Coin = tuple[OutPoint, TxOut, Key]

DOCUMENTED_REJECT_CODES = frozenset(errors.CONSENSUS_CODES | errors.POLICY_CODES)
"""SPEC 2.5: the consensus and mempool-policy reject codes a refused transaction may carry."""


@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None  # the error code of a refusal
    body: bytes


class ApiClient:
    """A keep-alive connection to one node's API."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> Answer:
        """One request; a connection error closes the connection and is raised (``OSError`` or
        ``http.client.HTTPException``): the caller decides what an unanswered request means."""
        headers = {"Content-Type": content_type} if content_type else {}
        conn = self._connection()
        try:
            conn.request(method, path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        code = None
        if response.status != 200:
            try:
                code = json.loads(data)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
        return Answer(response.status, code, data)

    def post_tx(self, raw: bytes) -> Answer:
        return self.request("POST", f"{API}/tx", raw, "application/msgpack")

    def get_json(self, path: str) -> Any:
        answer = self.request("GET", path)
        assert answer.status == 200, (path, answer)
        return json.loads(answer.body)


def is_refused_connection(err: BaseException) -> bool:
    """True when the request never reached a listening node (safe to send again)."""
    return isinstance(err, ConnectionRefusedError) or (
        isinstance(err, socket.timeout) and "connect" in str(err)
    )


def fan_out(
    node: NodeProcess, owner: Key, count: int, per_tx: int = 500, fee: int = 100_000
) -> list[Coin]:
    """``count`` confirmed, spendable coins of ``owner`` (mines the blocks it needs)."""
    address = address_of(owner.pubkey_hash)
    splits = -(-count // per_tx)
    start = int(node.get(f"{API}/blocks/tip/height").body) + 1
    node.generate(splits + 100, address)  # coinbases start..start+splits-1 are then mature
    coins: list[Coin] = []
    for h in range(start, start + splits):
        source = coinbase_coin(node, h, owner)
        value = (source[1].amount - fee) // per_tx
        tx = spend([source], [TxOut(value, owner.pubkey_hash)] * per_tx)
        submit_tx(node, tx)
        coins += [(OutPoint(tx.txid(), i), out, owner) for i, out in enumerate(tx.outputs)]
    while True:  # more than a block's worth of splits takes more than one block
        node.generate(1, address)
        if not ok(node.get(f"{API}/mempool/txids")):
            return coins[:count]


def spends(coins: Iterable[Coin], to: Key, fee: int = 1_000) -> list[Transaction]:
    """One signed transaction per coin, paying it (less ``fee``) to ``to``."""
    return [spend([coin], [TxOut(coin[1].amount - fee, to.pubkey_hash)]) for coin in coins]


def set_mining(
    node: NodeProcess, enabled: bool, address: str | None = None, block_time: float | None = None
) -> None:
    node.client.set_mining(enabled, address, block_time)


def rss_kib(pid: int) -> int:
    """VmRSS of process ``pid`` in KiB (0 if it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def chain_txids(node: NodeProcess, heights: Sequence[int]) -> set[str]:
    """The txids of the best-chain blocks at ``heights`` on ``node``."""
    client = ApiClient(node.port)
    found: set[str] = set()
    try:
        for h in heights:
            answer = client.request("GET", f"{API}/block-height/{h}")
            assert answer.status == 200, (h, answer)
            found.update(client.get_json(f"{API}/block/{answer.body.decode()}/txids"))
    finally:
        client.close()
    return found
