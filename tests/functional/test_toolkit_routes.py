"""The devnet toolkit's admin routes on real ``tally-node`` processes (SPEC 6; issue 20, acceptance
3 to 5, node side): time, automine, mempool clear, reorg.

Three nodes for the module:
- ``fresh``: regtest, no ``--mine-to``. ``set``, ``reset``, the bounds, and the offset surviving
  a restart; ``time advance 7200`` makes the next block's time at least 7,200 s later, and
  ``POST /block`` refuses a block more than 2 hours ahead of the shifted clock
  (``time-too-new``) while it takes one 3 hours ahead of the wall clock (within 2 hours of the
  shifted one); a day later, with blocks of that day, the clock cannot go back to the wall
  clock (its next block would be too new); automine refused without an address;
- ``main``: regtest, started with ``--mine-to`` (every 86,400 s, so in practice never): automine
  reports that mode and address; ``tx`` confirms a transaction, and a batch in one block, with no
  ``generate``; ``interval 1`` mines blocks about every second, ``off`` none; ``mempool clear``
  of given txids takes their descendants, and of everything empties the pool; ``reorg 3`` with a
  ``drop`` replaces the tip at depth 3 by four coinbase-only blocks, the dropped transaction and
  its child are gone, the other disconnected transaction is back in the mempool, background mining
  resumes as it was; the refusals change nothing; every route needs the token;
- ``testnet``: the ``test`` network: every toolkit route is 403 ``not-allowed``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from consensus import Block, OutPoint, Transaction, TxOut
from node.api.routes.toolkit import MAX_ADVANCE, MAX_REORG_DEPTH, MAX_TIME, MAX_TXIDS
from tests.functional.node_process import NodeProcess, Response, address_of
from tests.helpers import REGTEST, key, mine_block, spend

API = "/api/v1"
ADMIN = f"{API}/admin"
K0, K1, K2 = key(0), key(1), key(2)
MINER = address_of(K0.pubkey_hash)
FEE = 10_000
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/time", None),
    ("POST", "/time", {"advance": 60}),
    ("GET", "/automine", None),
    ("POST", "/automine", {"mode": "off"}),
    ("POST", "/mempool/clear", {}),
    ("POST", "/reorg", {"depth": 1}),
]


def expect_error(r: Response, status: int, code: str) -> str:
    assert r.status == status, (r.status, r.body[:300])
    err: dict[str, str] = r.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    return err["message"]


def display(tx: Transaction) -> str:
    return tx.txid()[::-1].hex()


def wait_for(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class Node:
    proc: NodeProcess
    next_coinbase: int = 1

    def admin(self, route: str, body: dict[str, Any] | None = None) -> Response:
        if body is None:
            headers = {"Authorization": f"Bearer {self.proc.token}"}
            return self.proc.get(ADMIN + route, headers=headers)
        return self.proc.post_json(ADMIN + route, body, admin=True)

    def ok(self, route: str, body: dict[str, Any] | None = None) -> Any:
        r = self.admin(route, body)
        assert r.status == 200, (route, body, r.status, r.body[:300])
        return r.json()

    def info(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.proc.get(f"{API}/info").json()
        return answer

    def height(self) -> int:
        return int(self.info()["height"])

    def hash_at(self, height: int) -> str:
        return self.proc.get(f"{API}/block-height/{height}").body.decode()

    def block(self, block_hash: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.proc.get(f"{API}/block/{block_hash}").json()
        return answer

    def mempool(self) -> set[str]:
        return set(self.proc.get(f"{API}/mempool/txids").json())

    def tx_status(self, txid: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.proc.get(f"{API}/tx/{txid}/status").json()
        return answer

    def pay(self) -> Transaction:
        """A spend of the next unused coinbase (of key 0) to key 1."""
        height = self.next_coinbase
        self.next_coinbase += 1
        raw = self.proc.get(f"{API}/block/{self.hash_at(height)}/raw").body
        cb = Block.deserialize(raw).txs[0]
        coin = (OutPoint(cb.txid(), 0), cb.outputs[0], K0)
        return spend([coin], [TxOut(cb.outputs[0].amount - FEE, K1.pubkey_hash)])

    def submit(self, *txs: Transaction) -> None:
        for tx in txs:
            r = self.proc.post_raw(f"{API}/tx", tx.serialize())
            assert r.status == 200, r.body


def child(parent: Transaction) -> Transaction:
    """A spend of ``parent``'s output 0 (key 1's) to key 2."""
    out = parent.outputs[0]
    return spend([(OutPoint(parent.txid(), 0), out, K1)], [TxOut(out.amount - FEE, K2.pubkey_hash)])


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    proc = NodeProcess(tmp_path_factory.mktemp("toolkit") / "fresh").start()
    try:
        yield Node(proc)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    datadir = tmp_path_factory.mktemp("toolkit") / "main"
    proc = NodeProcess(datadir, "--mine-to", MINER, "--block-time", "86400").start()
    try:
        proc.generate(110, MINER)  # coinbases 1 to 10 mature
        yield Node(proc)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    proc = NodeProcess(tmp_path_factory.mktemp("toolkit") / "testnet", network="test").start()
    try:
        yield Node(proc)
    finally:
        proc.stop()


# --- time ----------------------------------------------------------------------------------------


def block_on_tip(node: Node, block_time: int) -> Block:
    info = node.info()
    return mine_block(
        bytes.fromhex(info["best_hash"])[::-1],
        info["height"] + 1,
        [],
        block_time,
        K2.pubkey_hash,
    )


def test_set_reset_bounds_and_the_offset_survives_a_restart(fresh: Node) -> None:
    target = int(time.time()) + 86_400
    clock = fresh.ok("/time", {"set": target})
    assert target <= clock["now"] < target + 600
    offset = clock["offset"]
    assert abs(offset - 86_400) < 600

    fresh.proc.stop()
    fresh.proc.start()
    assert fresh.ok("/time")["offset"] == offset

    for body in (
        {},
        {"set": REGTEST.genesis_time - 1},
        {"set": MAX_TIME + 1},
        {"set": str(target)},
        {"set": True},
        {"set": float(target)},
        {"advance": 0},
        {"advance": -60},
        {"advance": MAX_ADVANCE + 1},
        {"advance": 60, "set": target},
        {"reset": False},
    ):
        expect_error(fresh.admin("/time", body), 400, "bad-request")
    assert fresh.ok("/time")["offset"] == offset  # the refusals changed nothing

    assert fresh.ok("/time", {"reset": True})["offset"] == 0


def test_advance_moves_block_times_and_the_time_too_new_bound(fresh: Node) -> None:
    clock = fresh.ok("/time")
    assert clock["offset"] == 0
    assert abs(clock["now"] - time.time()) < 600
    fresh.proc.generate(1, MINER)
    first = fresh.block(fresh.hash_at(1))["time"]
    before = fresh.ok("/time")["now"]

    clock = fresh.ok("/time", {"advance": 7200})
    assert clock["offset"] == 7200
    assert clock["now"] >= before + 7200
    fresh.proc.generate(1, MINER)
    second = fresh.block(fresh.hash_at(2))["time"]
    assert second >= first + 7200
    assert second >= before + 7200

    shifted = fresh.ok("/time")["now"]
    too_new = block_on_tip(fresh, shifted + 7200 + 600)
    r = fresh.proc.post_raw(f"{API}/block", too_new.serialize())
    expect_error(r, 400, "time-too-new")
    # Three hours ahead of the wall clock is within two of the shifted one: accepted.
    ahead = block_on_tip(fresh, shifted + 3600)
    assert ahead.header.time > time.time() + 7200
    r = fresh.proc.post_raw(f"{API}/block", ahead.serialize())
    assert r.status == 200, r.body
    assert fresh.info()["best_hash"] == ahead.hash_hex()

    # A day on, with blocks made then, back to the wall clock would put the next block (above
    # the median time past, a day ahead) a day ahead of the clock: refused, the clock unchanged.
    fresh.ok("/time", {"advance": 86_400})
    fresh.proc.generate(11, MINER)
    message = expect_error(fresh.admin("/time", {"reset": True}), 400, "bad-request")
    assert "cannot go back" in message
    assert fresh.ok("/time")["offset"] == 7200 + 86_400


def test_automine_without_an_address_and_bad_bodies(fresh: Node) -> None:
    for body in ({"mode": "tx"}, {"mode": "interval", "interval": 1}):
        message = expect_error(fresh.admin("/automine", body), 400, "bad-address")
        assert "--mine-to" in message
    assert fresh.ok("/automine") == {"mode": "off", "interval": None, "address": None}
    for body in (
        {},
        {"mode": "sometimes"},
        {"mode": "interval", "interval": 0},
        {"mode": "interval", "interval": True},
        {"mode": "interval", "interval": "1"},
        {"mode": "tx", "interval": 1},
    ):
        expect_error(fresh.admin("/automine", body), 400, "bad-request")
    for address in (5, "not-an-address"):
        body = {"mode": "tx", "address": address}
        expect_error(fresh.admin("/automine", body), 400, "bad-address")
    assert fresh.ok("/automine")["mode"] == "off"


# --- automine ------------------------------------------------------------------------------------


def test_automine_tx_confirms_without_generate(main: Node) -> None:
    assert main.ok("/automine") == {"mode": "interval", "interval": 86400.0, "address": MINER}
    assert main.ok("/automine", {"mode": "tx"}) == {
        "mode": "tx",
        "interval": None,
        "address": MINER,
    }
    start = main.height()

    tx = main.pay()
    main.submit(tx)
    wait_for("the transaction to be mined", lambda: main.tx_status(display(tx))["confirmed"])
    assert main.tx_status(display(tx))["block_height"] == start + 1

    # A batch accepted together shares one block.
    batch = [main.pay() for _ in range(3)]
    r = main.proc.post_json(f"{API}/txs", [{"raw": tx.serialize().hex()} for tx in batch])
    assert r.status == 200 and all("txid" in item for item in r.json()), r.body
    wait_for("the batch to be mined", lambda: main.tx_status(display(batch[-1]))["confirmed"])
    assert {main.tx_status(display(tx))["block_height"] for tx in batch} == {start + 2}

    assert main.ok("/automine", {"mode": "off"})["mode"] == "off"
    assert main.height() == start + 2  # one block per accepted batch, none without
    assert main.mempool() == set()


def test_automine_interval_then_off(main: Node) -> None:
    start, started = main.height(), time.monotonic()
    answer = main.ok("/automine", {"mode": "interval", "interval": 1})
    assert answer == {"mode": "interval", "interval": 1.0, "address": MINER}
    wait_for("two blocks", lambda: main.height() >= start + 2)
    time.sleep(max(0.0, started + 4 - time.monotonic()))
    mined, elapsed = main.height() - start, time.monotonic() - started
    assert mined <= elapsed + 2, (mined, elapsed)  # about one a second, not back to back

    assert main.ok("/automine", {"mode": "off"}) == {
        "mode": "off",
        "interval": None,
        "address": None,
    }
    stopped = main.height()
    tx = main.pay()
    main.submit(tx)
    time.sleep(3)
    assert main.height() == stopped
    assert main.tx_status(display(tx))["confirmed"] is False
    assert main.ok("/mempool/clear", {}) == {"removed": 1}


# --- mempool clear -------------------------------------------------------------------------------


def test_mempool_clear_given_txids_with_descendants_then_all(main: Node) -> None:
    t1 = main.pay()
    t2 = child(t1)
    t3 = main.pay()
    main.submit(t1, t2, t3)
    assert main.mempool() == {display(t1), display(t2), display(t3)}

    assert main.ok("/mempool/clear", {"txids": [display(t1)]}) == {"removed": 2}
    assert main.mempool() == {display(t3)}
    assert main.ok("/mempool/clear", {"txids": ["ab" * 32]}) == {"removed": 0}
    for body in ({"txids": "x"}, {"txids": [5]}, {"txids": ["xy"]}, {"txids": ["ab" * 32] * 1001}):
        expect_error(main.admin("/mempool/clear", body), 400, "bad-request")
    assert main.mempool() == {display(t3)}

    assert main.ok("/mempool/clear", {}) == {"removed": 1}
    assert main.mempool() == set()
    assert main.proc.get(f"{API}/mempool").json()["count"] == 0
    assert MAX_TXIDS == 1000  # the bound the oversized list above crosses


# --- reorg ---------------------------------------------------------------------------------------


def test_reorg_with_a_drop_replaces_the_tip_and_returns_the_rest(main: Node) -> None:
    kept, dropped = main.pay(), main.pay()
    dropped_child = child(dropped)
    main.submit(kept)
    main.proc.generate(1, MINER)
    main.submit(dropped, dropped_child)
    main.proc.generate(2, MINER)
    base = main.height() - 3
    fork = main.hash_at(base)
    old = [main.hash_at(h) for h in (base + 3, base + 2, base + 1)]  # the old tip first
    assert main.tx_status(display(kept))["block_height"] == base + 1
    assert main.tx_status(display(dropped_child))["block_height"] == base + 2
    pending = main.pay()  # in the mempool, in none of the blocks a reorg of 3 disconnects
    main.submit(pending)
    main.ok("/automine", {"mode": "interval", "interval": 86400})

    # Refused, and nothing changes.
    cb_txid = main.proc.get(f"{API}/block/{old[-1]}/txids").json()[0]
    for body, word in (
        ({"depth": 3, "drop": [display(pending)]}, display(pending)),
        ({"depth": 3, "drop": ["ab" * 32]}, "ab" * 32),
        ({"depth": 3, "drop": [cb_txid]}, "coinbase"),
        ({"depth": 0}, "depth"),
        ({"depth": main.height() + 1}, "height"),
        ({"depth": MAX_REORG_DEPTH + 1}, "depth"),
        ({"depth": "3"}, "depth"),
        ({"depth": 3, "drop": "x"}, "drop"),
        ({"depth": 3, "drop": ["xy"]}, "txid"),
    ):
        message = expect_error(main.admin("/reorg", body), 400, "bad-request")
        assert word in message, (body, message)
    expect_error(main.admin("/reorg", {"depth": 3, "address": "nope"}), 400, "bad-address")
    assert main.info()["best_hash"] == old[0]
    assert main.mempool() == {display(pending)}

    answer = main.ok("/reorg", {"depth": 3, "drop": [display(dropped)]})
    info = main.info()
    assert answer["old_tip"] == old[0]
    assert answer["disconnected"] == old
    assert answer["height"] == info["height"] == base + 4
    assert answer["new_tip"] == info["best_hash"]
    assert set(answer["dropped"]) == {display(dropped), display(dropped_child)}
    assert main.hash_at(base) == fork
    for height in range(base + 1, base + 5):
        block = main.block(main.hash_at(height))
        assert block["tx_count"] == 1, height  # coinbase only
    for block_hash in old:
        assert main.block(block_hash)["in_best_chain"] is False

    assert main.mempool() == {display(kept), display(pending)}
    assert main.tx_status(display(kept))["confirmed"] is False
    for tx in (dropped, dropped_child):
        assert main.proc.get(f"{API}/tx/{display(tx)}").status == 404
    # Background mining was paused for the reorg and runs as before.
    assert main.ok("/automine")["interval"] == 86400.0
    main.ok("/automine", {"mode": "off"})
    main.ok("/mempool/clear", {})


def test_toolkit_routes_need_the_token(main: Node) -> None:
    for method, route, body in ROUTES:
        if method == "GET":
            r = main.proc.get(ADMIN + route)
        else:
            r = main.proc.post_json(ADMIN + route, body)
        expect_error(r, 401, "unauthorized")


def test_toolkit_routes_are_refused_off_regtest(testnet: Node) -> None:
    for method, route, body in ROUTES:
        message = expect_error(testnet.admin(route, body), 403, "not-allowed")
        assert "regtest" in message, (method, route)
    assert testnet.height() == 0
