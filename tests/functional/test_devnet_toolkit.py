"""The devnet toolkit through the command line, as a user types it (issue 20, acceptance 1-5).

One regtest devnet of three real ``tally-node`` processes serves the module (``tally-devnet up``
with mining on demand); each test starts from ``tally-devnet reset``, which is itself checked
against the devnet as ``up`` made it. Wallet commands run after ``source <dir>/env``, with no
flags, as the README shows. Node state is read through the SDK (``client.http.Client``).

- ``snapshot a``, then blocks, transactions and wallet sends, then ``revert a``: every node's
  ``utxo-set-info``, tip and mempool and the wallet's balance and history are what they were;
  ``reset`` gives the fresh funded devnet;
- ``partition 0 1,2``, both sides mine (different heights), ``heal``: every node converges on the
  side with more work, and the other side's payment returns to the mempool;
- ``reorg 3 --drop TXID``: the tip changes at depth 3 on every node, TXID is gone, the other
  disconnected transactions are back in the mempools, and node 0's event stream shows three
  ``block_disconnected``, the new ``block_connected``s and TXID's ``tx_removed {reason:
  "reorg"}``, in order, with no gap in ``seq``;
- ``time advance 7200``: the next block is at least 7,200 s later; a block more than 2 hours
  ahead of the shifted clock is still ``time-too-new``;
- ``automine tx`` confirms a wallet send with no ``mine``; ``interval 1`` mines about every
  second; ``off`` mines nothing;
- commands that make no sense are one-line errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client import Client, NodeError
from client.devnet import DevnetControl
from consensus import decode_address
from tests.functional.node_process import free_port_block
from tests.helpers import REGTEST, mine_block

BIN = Path(sys.executable).parent
NODES = 3

pytestmark = pytest.mark.timeout(300)


@dataclass
class Net:
    dir: Path
    nodes: list[Client]
    fresh: dict[str, Any] = field(default_factory=dict)

    def devnet(self, *args: str, check: bool = True) -> Any:
        """``tally-devnet ARGS --dir DIR --json``: its JSON answer (or the failed process)."""
        done = subprocess.run(
            [str(BIN / "tally-devnet"), *args, "--dir", str(self.dir), "--json"],
            capture_output=True,
            text=True,
            timeout=240,
            env=clean_env(),
        )
        if not check:
            return done
        assert done.returncode == 0, f"tally-devnet {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout)

    def wallet(self, *args: str) -> Any:
        """``source DIR/env && tally-wallet --json ARGS``, as the README shows it."""
        line = " ".join(["tally-wallet", "--json", *args])
        done = subprocess.run(
            ["bash", "-c", f'source "{self.dir}/env" && {line}'],
            capture_output=True,
            text=True,
            timeout=240,
            env=clean_env(),
        )
        assert done.returncode == 0, f"{line}: {done.stderr}"
        return json.loads(done.stdout)

    def state(self) -> dict[str, Any]:
        """What a revert must bring back: every node's tip, UTXO set and mempool, and the
        wallet's balance and history."""
        return {
            "nodes": [
                {
                    "tip": n.info().best_hash,
                    "utxo": n.utxo_set_info(),
                    "mempool": sorted(n.mempool_all_txids()),
                }
                for n in self.nodes
            ],
            "balance": self.wallet("balance"),
            "history": self.wallet("history"),
        }

    def height(self, i: int = 0) -> int:
        return self.nodes[i].info().height

    def coins(self, count: int) -> list[str]:
        """``count`` distinct mature coins of the dev wallet, as TXID:N (so payments made
        from them are independent of each other)."""
        rows = self.wallet("utxos")
        mature = [r for r in rows if r["spendable"] and not r["frozen"]]
        assert len(mature) >= count
        return [f"{r['txid']}:{r['index']}" for r in mature[:count]]

    def pay(self, amount: str = "1", coin: str | None = None) -> str:
        address = self.wallet("address", "--new")["address"]
        extra = ["--from", coin] if coin else []
        return str(self.wallet("send", address, amount, *extra)["txid"])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")} | {
        "TALLY_CHECK_THREADS": os.environ.get("TALLY_CHECK_THREADS", "1")
    }


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    directory = tmp_path_factory.mktemp("toolkit") / "dn"
    port = free_port_block(NODES)
    up = subprocess.run(
        [str(BIN / "tally-devnet"), "up", "--dir", str(directory), "--base-port", str(port)],
        capture_output=True,
        text=True,
        timeout=180,
        env=clean_env(),
    )
    try:
        assert up.returncode == 0, up.stderr
        control = DevnetControl.from_dir(directory)
        result = Net(directory, control.nodes)
        result.devnet("automine", "off")
        result.devnet("reset")
        result.fresh = result.state()
        yield result
    finally:
        subprocess.run(
            [str(BIN / "tally-devnet"), "down", "--dir", str(directory)], timeout=120, check=False
        )


@pytest.fixture
def fresh(net: Net) -> Net:
    net.devnet("automine", "off")
    net.devnet("reset")
    return net


# --- acceptance 1: snapshot, revert, reset ----------------------------------------------------


def test_snapshot_then_revert_brings_back_every_node_and_the_wallet(fresh: Net) -> None:
    net = fresh
    net.pay("1.25")  # something in the mempools at the snapshot
    net.devnet("mine", "1")
    pending = net.pay("0.5")
    net.nodes[0].tx(pending)
    taken = net.devnet("snapshot", "a")
    assert taken["name"] == "a" and taken["mempool"] == 1
    before = net.state()

    net.devnet("mine", "3")
    for _ in range(2):
        net.pay("2")
    net.devnet("mine", "1")
    net.pay("0.1")
    changed = net.state()
    assert changed != before

    reverted = net.devnet("revert", "a")
    assert reverted["best_hash"] == before["nodes"][0]["tip"]
    assert net.state() == before
    names = [s["name"] for s in net.devnet("snapshots")]
    assert "a" in names

    net.devnet("reset")
    assert net.state() == net.fresh


def test_revert_to_an_unknown_snapshot_is_a_clear_error(fresh: Net) -> None:
    done = fresh.devnet("revert", "no-such-snapshot", check=False)
    assert done.returncode == 1
    assert "no snapshot 'no-such-snapshot'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- acceptance 2: partition and heal ---------------------------------------------------------


def test_partition_both_sides_mine_then_heal_converges_on_more_work(fresh: Net) -> None:
    net = fresh
    base = net.height()
    net.devnet("partition", "0", "1,2")
    lonely = net.pay("3")  # sent to node 0 (the env's node): only side 0 hears of it
    net.devnet("mine", "2", "--node", "0")
    net.devnet("mine", "3", "--node", "1")
    heights = [net.height(i) for i in range(NODES)]
    assert heights == [base + 2, base + 3, base + 3]
    assert net.nodes[0].tx(lonely).status.confirmed
    winner = net.nodes[1].info().best_hash
    assert net.nodes[0].info().best_hash != winner

    net.devnet("heal")
    assert all(n.info().best_hash == winner for n in net.nodes)
    status = net.nodes[0].tx(lonely).status
    assert not status.confirmed  # the lost side's payment is back in the mempool
    assert lonely in net.nodes[0].mempool_all_txids()


def test_a_partition_must_name_each_node_once(fresh: Net) -> None:
    twice = fresh.devnet("partition", "0", "0,1,2", check=False)
    assert twice.returncode == 1 and "node 0 is named twice" in twice.stderr
    missing = fresh.devnet("partition", "0", "1", check=False)
    assert missing.returncode == 1 and "node 2 is in no group" in missing.stderr


# --- acceptance 3: reorg with a dropped transaction, seen on the event stream -------------------


class EventLog:
    """Node 0's event stream, read by aiohttp's WebSocket client in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/api/v1/events"
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.read()), daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "the event stream did not open"

    async def read(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            self.ready.set()
            while not self.stop.is_set():
                try:
                    message = await ws.receive(timeout=0.2)
                except TimeoutError:
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    return
                self.events.append(json.loads(message.data))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def test_reorg_replaces_three_blocks_drops_one_payment_and_the_stream_shows_it(fresh: Net) -> None:
    net = fresh
    coins = net.coins(3)
    paid = []
    for coin in coins:
        paid.append(net.pay("1", coin))
        net.devnet("mine", "1")
    height = net.height()
    replaced = [net.nodes[0].block_hash(h) for h in range(height - 2, height + 1)]
    kept = net.nodes[0].block_hash(height - 3)
    dropped, back = paid[1], [paid[0], paid[2]]

    log = EventLog(net.nodes[0].url)
    try:
        answer = net.devnet("reorg", "3", "--drop", dropped)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            e.get("type") == "tx_removed" and e.get("txid") == dropped for e in log.events
        ):
            time.sleep(0.1)
    finally:
        log.close()

    assert answer["height"] == height + 1
    for node in net.nodes:
        assert node.info().height == height + 1
        assert node.block_hash(height - 3) == kept
        assert all(
            node.block_hash(h) != old
            for h, old in zip(range(height - 2, height + 1), replaced, strict=True)
        )
        pool = node.mempool_all_txids()
        assert dropped not in pool
        assert set(back) <= set(pool)
    with pytest.raises(NodeError) as gone:
        net.nodes[0].tx(dropped)
    assert gone.value.status == 404

    events = log.events
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    kinds = [
        (e["type"], e.get("height"))
        for e in events
        if e["type"] in ("block_disconnected", "block_connected")
    ]
    assert kinds[:3] == [
        ("block_disconnected", height),
        ("block_disconnected", height - 1),
        ("block_disconnected", height - 2),
    ]
    assert kinds[3:7] == [("block_connected", h) for h in range(height - 2, height + 2)]
    last_connected = max(i for i, e in enumerate(events) if e["type"] == "block_connected")
    removal = [
        i
        for i, e in enumerate(events)
        if e["type"] == "tx_removed" and e["txid"] == dropped and e["reason"] == "reorg"
    ]
    assert removal and removal[0] > last_connected


def test_a_reorg_deeper_than_the_chain_is_refused(fresh: Net) -> None:
    done = fresh.devnet("reorg", "100000", check=False)
    assert done.returncode == 1 and "cannot reorg 100000 blocks deep" in done.stderr


# --- acceptance 5: automine ---------------------------------------------------------------------


def test_automine_tx_interval_and_off(fresh: Net) -> None:
    net = fresh
    net.devnet("automine", "tx")
    txid = net.pay("1")
    deadline = time.monotonic() + 60
    while not net.nodes[0].tx(txid).status.confirmed:
        assert time.monotonic() < deadline, "automine tx did not confirm the payment"
        time.sleep(0.2)

    net.devnet("automine", "interval", "1")
    start = net.height()
    time.sleep(6)
    assert net.height() - start >= 2  # about one a second (loosely: the machine is shared)

    net.devnet("automine", "off")
    time.sleep(1.5)  # a block being mined as it was turned off may still land
    settled = net.height()
    time.sleep(3)
    assert net.height() == settled


# --- traffic and faucet --------------------------------------------------------------------------


def test_faucet_pays_and_confirms(fresh: Net) -> None:
    net = fresh
    address = net.wallet("address", "--new")["address"]
    paid = net.devnet("faucet", address, "2.5")
    for node in net.nodes:
        assert node.address(address).balance.confirmed == 250_000_000
        assert node.tx(paid["txid"]).status.confirmed


def test_traffic_sends_payments_with_varied_fee_rates(fresh: Net) -> None:
    net = fresh
    done = net.devnet("traffic", "--count", "30", "--rate", "20", "--wallets", "4")
    assert done["sent"] == 30
    pool = net.nodes[0].mempool_all_txids()
    assert len(pool) >= 30  # the funding payment and the 30, none confirmed (automine off)
    rates = set()
    for txid in pool:
        tx = net.nodes[0].tx(txid)
        assert tx.fee is not None
        rates.add(tx.fee // tx.size)
    assert len(rates) >= 3, rates  # varied fees, for the explorer's chart
    net.devnet("mine", "1")
    assert net.nodes[0].mempool().count == 0  # every payment was valid


# --- acceptance 4: time (last: the clocks stay moved) ---------------------------------------------


def test_time_advance_moves_block_times_and_time_too_new_follows(fresh: Net) -> None:
    net = fresh
    before = net.devnet("time", "show")[0]["now"]
    moved = net.devnet("time", "advance", "7200")
    assert all(clock["now"] >= before + 7200 for clock in moved)
    mined = net.devnet("mine", "1")
    block = net.nodes[0].block(mined["hashes"][-1])
    assert block.time >= before + 7200

    shifted = net.devnet("time", "show")[0]["now"]
    tip = net.nodes[0].info()
    pkh = decode_address(net.wallet("address")["address"], REGTEST)
    prev = bytes.fromhex(tip.best_hash)[::-1]
    too_new = mine_block(prev, tip.height + 1, [], shifted + 2 * 3600 + 600, pkh)
    with pytest.raises(NodeError) as refused:
        net.nodes[1].post_block(too_new.serialize())
    assert refused.value.code == "time-too-new"
    # ... while a block 2 hours ahead of the real clock, within the shifted one, is accepted
    fine = mine_block(prev, tip.height + 1, [], shifted + 2 * 3600 - 600, pkh)
    assert net.nodes[1].post_block(fine.serialize()) == fine.hash()[::-1].hex()
