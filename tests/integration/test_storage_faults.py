"""Storage faults (issue 11, point 3): a write that fails stops the node with a clear message
and no corruption, and the node resumes once the fault is gone.

In-process (a): a ``NodeService`` runs on a ``LevelDBStore`` wrapped so that a chosen write (a
batch commit, a single put or delete) raises ``StorageError("injected fault ...")``. A prepared
block that confirms three mempool transactions is submitted over HTTP, and the fault hits each
of the writes that submission makes in turn (the block body, the pending-reorganisation record,
the connect batch, the mempool's removals, the record's clearing):

- persistent: that write and every later one fail (a disk that has gone away);
- one-off: only that write fails (a transient I/O error).

Either way the node must stop (``failure`` says "storage failed: ... injected fault",
``stopped`` is set) and the request that met the fault gets 503. The database, reopened
with a plain store, must be at the old tip or at the new block, with a UTXO set info equal to a
recount of the stored coins and to the reference for that tip. A new node on the same data
directory, without the fault, must end up at the new block (resubmitting it if it had not
connected) with exactly the reference UTXO set and none of the block's transactions in its
mempool.

A transaction submitted while writes fail gets 503, stops the node, and is accepted after the
restart.

Full disk (b): a real ``tally-node`` with its data directory on a 3 MB tmpfs (mounted here:
these tests run as root; mounting must work, it is not skipped) mines blocks with large
transactions until LevelDB cannot write. The process must exit with status 1 and one line on
stderr, ``tally-node: storage failed: ...`` (with LevelDB's "No space left on device"). The
tmpfs is then grown; the node restarts at a consistent tip (its UTXO set info equals what
``tally-node reindex`` rebuilds from a copy of its blocks) and mines again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from consensus import Block, Coin, OutPoint, Transaction, TxOut, encode_address
from node.chainstate import Chainstate, UtxoStats
from node.chainstate import schema as k
from node.config import Settings
from node.mempool import P_MEMPOOL
from node.service import NodeService
from node.storage import KeyValueStore, LevelDBStore, StorageError, WriteBatch
from tests.functional.node_process import NodeProcess, free_port, tally_node_command
from tests.helpers import REGTEST, key, mine_block, spend
from tests.integration.fake_peer import API, coinbase_coin, hx, ok, utxo_info

OWNER = key(701)
ADDRESS = encode_address(OWNER.pubkey_hash, REGTEST)
FEE = 10_000

# --- a store that fails on demand ----------------------------------------------------------------


@dataclass
class FaultSwitch:
    """Decides which writes fail: from write number ``fail_at`` on (counted from ``arm()``),
    every later one too if ``persistent``, else that one only. Records what it saw."""

    fail_at: int | None = None
    persistent: bool = True
    seen: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def arm(self, fail_at: int | None, persistent: bool = True) -> None:
        self.fail_at, self.persistent = fail_at, persistent
        self.seen, self.failed = [], []

    def check(self, what: str) -> None:
        n = len(self.seen)
        self.seen.append(what)
        if self.fail_at is None or n < self.fail_at:
            return
        if n == self.fail_at or self.persistent:
            self.failed.append(what)
            raise StorageError(f"injected fault in write {n} ({what})")


class FaultyStore(LevelDBStore):
    """A ``LevelDBStore`` whose writes go through a ``FaultSwitch`` first."""

    def __init__(self, path: Path, switch: FaultSwitch) -> None:
        super().__init__(path)
        self.switch = switch

    def _put(self, key: bytes, value: bytes) -> None:
        self.switch.check(f"put {key[:1]!r}")
        super()._put(key, value)

    def _delete(self, key: bytes) -> None:
        self.switch.check(f"delete {key[:1]!r}")
        super()._delete(key)

    def _new_batch(self, sync: bool) -> WriteBatch:
        batch = super()._new_batch(sync)
        keys: list[bytes] = []
        put, delete, write = batch._put, batch._delete, batch._write  # type: ignore[attr-defined]

        def put_(key: bytes, value: bytes) -> None:
            keys.append(key[:1])
            put(key, value)

        def delete_(key: bytes) -> None:
            keys.append(key[:1])
            delete(key)

        def write_() -> None:
            try:
                self.switch.check(f"batch {b''.join(sorted(set(keys)))!r}")
            except StorageError:
                batch._clear()
                raise
            write()

        batch._put, batch._delete, batch._write = put_, delete_, write_  # type: ignore[method-assign]
        return batch


# --- helpers -------------------------------------------------------------------------------------


def settings(datadir: Path) -> Settings:
    return Settings(network="regtest", datadir=datadir, port=free_port(), log_level="warning")


Info = tuple[int, bytes, int, int, bytes]


def info_of(cs: Chainstate) -> Info:
    i = cs.utxo_set_info()
    return i.height, i.best_hash, i.count, i.total_amount, i.hash


def recount(cs: Chainstate) -> tuple[int, int, bytes]:
    """Count, total and hash of the coins actually stored (not the running stats)."""
    stats = UtxoStats()
    for key_, raw in cs.store.iterate(k.P_COIN):
        stats.add(OutPoint(key_[1:33], k.read_u32(key_[33:37])), Coin.deserialize(raw))
    return stats.count, stats.total_amount, stats.hash()


@dataclass
class Prepared:
    base: Path  # a stopped node's data directory: a chain, three transactions in its mempool
    block: Block  # confirms those three, on the tip
    spare: Transaction  # another valid transaction, not submitted
    before: Info
    after: Info  # the reference once the block is connected


async def post(url: str, path: str, body: bytes) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + path, data=body, headers={"Content-Type": "application/msgpack"}
        ) as response,
    ):
        return response.status, await response.json()


async def run_service(
    datadir: Path, open_store: Callable[[Path], KeyValueStore] = LevelDBStore
) -> NodeService:
    service = NodeService(settings(datadir), open_store=open_store)
    await service.start()
    return service


async def pool_size(service: NodeService) -> int:
    """The mempool's size, read on the state thread (node.state)."""
    return await service.call(len, service.mempool)


async def pool_txids(service: NodeService) -> set[bytes]:
    return await service.call(lambda: set(service.mempool.entries))


async def stop_service(service: NodeService) -> str | None:
    """Stop as ``tally-node`` does; the error closing raised, if any."""
    try:
        await service.stop()
    except Exception as err:
        return repr(err)
    return None


async def prepare(root: Path) -> Prepared:
    base = root / "base"
    service = await run_service(base)
    try:
        await service.generate(104, ADDRESS)
        cs = service.chainstate  # read on its state thread (node.state), through service.call

        def block_at(h: int) -> Block | None:
            return cs.get_block(cs.hash_at_height(h) or b"")

        txs = []
        for h in (1, 2, 3, 4):
            block = await service.call(block_at, h)
            assert block is not None
            cb = block.txs[0]
            txs.append(
                spend(
                    [(OutPoint(cb.txid(), 0), cb.outputs[0], OWNER)],
                    [TxOut(cb.outputs[0].amount - FEE, OWNER.pubkey_hash)],
                )
            )
        for tx in txs[:3]:
            await service.submit_tx(tx.serialize())
        tip = service.published_tip()
        median = await service.call(cs.median_time_past)
        block = mine_block(
            tip.hash,
            tip.height + 1,
            txs[:3],
            max(int(time.time()), median + 1),
            OWNER.pubkey_hash,
            fees=3 * FEE,
        )
        before = await service.call(info_of, cs)
    finally:
        assert await stop_service(service) is None
    # The reference: the same block on a copy, without faults.
    ref = root / "reference"
    shutil.copytree(base, ref)
    service = await run_service(ref)
    try:
        await service.submit_block(block.serialize())
        after = await service.call(info_of, service.chainstate)
        assert after[1] == block.hash()
        assert await pool_size(service) == 0
    finally:
        assert await stop_service(service) is None
    return Prepared(base, block, txs[3], before, after)


def inspect_on_disk(datadir: Path, prepared: Prepared) -> list[str]:
    """Problems with the database as a plain store opens it."""
    problems: list[str] = []
    with LevelDBStore(datadir / "chainstate") as store:
        cs = Chainstate(store, REGTEST)
        info = info_of(cs)
        if info not in (prepared.before, prepared.after):
            problems.append(f"on disk: UTXO set info {info} is neither the old nor the new tip's")
        if recount(cs) != info[2:]:
            problems.append(f"on disk: stored coins {recount(cs)} differ from the stats {info}")
    return problems


# --- (a) in process ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    return asyncio.run(prepare(tmp_path_factory.mktemp("faults")))


async def block_fault_case(
    root: Path, prepared: Prepared, fail_at: int | None, persistent: bool
) -> tuple[list[str], list[str]]:
    """Submit the block with write ``fail_at`` failing; (the writes seen, the problems)."""
    datadir = root / f"{'persistent' if persistent else 'once'}-{fail_at}"
    shutil.copytree(prepared.base, datadir)
    switch = FaultSwitch()
    service = await run_service(datadir, lambda p: FaultyStore(p, switch))
    problems: list[str] = []
    block = prepared.block
    try:
        switch.arm(fail_at, persistent)
        status, answer = await post(service.own_url, f"{API}/block", block.serialize())
        seen = list(switch.seen)
        if fail_at is None:
            assert status == 200, answer
            return seen, []
        where = f"write {fail_at} ({seen[fail_at] if fail_at < len(seen) else '?'})"
        if status != 503 or answer.get("error", {}).get("code") != "unavailable":
            problems.append(f"{where}: POST /block answered {status} {answer}, expected 503")
        failure = service.failure or ""
        if not (failure.startswith("storage failed: ") and "injected fault" in failure):
            problems.append(f"{where}: service.failure is {service.failure!r}")
        if not service.stopped.is_set():
            problems.append(f"{where}: the node did not stop")
        confirmed = {tx.txid() for tx in block.txs[1:]} & await pool_txids(service)
        if service.failure is None and confirmed:
            problems.append(
                f"{where}: the node goes on with {len(confirmed)} confirmed transaction(s) "
                "still in its mempool"
            )
    finally:
        switch.arm(None)
        error = await stop_service(service)
    if error is not None:
        problems.append(f"write {fail_at}: stopping raised {error}")
    problems += [f"write {fail_at}: {p}" for p in inspect_on_disk(datadir, prepared)]

    # Without the fault: a new node resumes, and the block ends up connected.
    service = await run_service(datadir)
    try:
        status, answer = await post(service.own_url, f"{API}/block", block.serialize())
        if status != 200 and answer.get("error", {}).get("code") != "duplicate":
            problems.append(f"write {fail_at}: after restart the block got {status} {answer}")
        info = await service.call(info_of, service.chainstate)
        if info != prepared.after:
            problems.append(f"write {fail_at}: after restart the UTXO set info is {info}")
        left = {hx(t) for t in await pool_txids(service)}
        if left:
            problems.append(f"write {fail_at}: after restart the mempool holds {left}")
    finally:
        assert await stop_service(service) is None
    return seen, problems


def run_block_faults(tmp_path: Path, prepared: Prepared, persistent: bool) -> None:
    async def scenario() -> None:
        writes, problems = await block_fault_case(tmp_path, prepared, None, persistent)
        # The block's writes: its body, the pending record, the connect batch, the mempool's
        # three removals, the record's clearing (whatever the order, each one fails in turn).
        assert len(writes) >= 5, writes
        for n in range(len(writes)):
            problems += (await block_fault_case(tmp_path, prepared, n, persistent))[1]
        assert not problems, "writes: " + ", ".join(writes) + "\n" + "\n".join(problems)

    asyncio.run(scenario())


def test_a_persistent_write_failure_anywhere_in_a_block_stops_the_node_cleanly(
    tmp_path: Path, prepared: Prepared
) -> None:
    run_block_faults(tmp_path, prepared, persistent=True)


def test_a_one_off_write_failure_anywhere_in_a_block_stops_the_node_cleanly(
    tmp_path: Path, prepared: Prepared
) -> None:
    run_block_faults(tmp_path, prepared, persistent=False)


def test_a_failed_transaction_write_stops_the_node_and_it_resumes(
    tmp_path: Path, prepared: Prepared
) -> None:
    async def scenario() -> None:
        datadir = tmp_path / "tx"
        shutil.copytree(prepared.base, datadir)
        switch = FaultSwitch()
        service = await run_service(datadir, lambda p: FaultyStore(p, switch))
        raw = prepared.spare.serialize()
        try:
            switch.arm(0)
            status, answer = await post(service.own_url, f"{API}/tx", raw)
            assert (status, answer["error"]["code"]) == (503, "unavailable"), answer
            assert "the node's storage failed" in answer["error"]["message"]
            assert service.failure is not None
            assert service.failure.startswith("storage failed: ")
            assert "injected fault in write 0 (put b'm')" in service.failure
            assert service.stopped.is_set()
        finally:
            switch.arm(None)
            assert await stop_service(service) is None
        with LevelDBStore(datadir / "chainstate") as store:
            assert store.get(P_MEMPOOL + prepared.spare.txid()) is None
            assert info_of(Chainstate(store, REGTEST)) == prepared.before
        service = await run_service(datadir)
        try:
            assert await pool_size(service) == 3
            status, answer = await post(service.own_url, f"{API}/tx", raw)
            assert status == 200, answer
            assert await pool_size(service) == 4
            await service.generate(1, ADDRESS)
            assert await pool_size(service) == 0
        finally:
            assert await stop_service(service) is None

    asyncio.run(scenario())


# --- (b) a full disk -----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Any:
    """A tmpfs of ``size`` mounted at ``path`` (root only), always unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, (
        f"cannot mount a tmpfs at {path} (this test needs root): {mounted.stderr.strip()}"
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, size: str) -> None:
    done = subprocess.run(
        ["mount", "-o", f"remount,size={size}", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(240)
def test_b_full_disk_stops_the_node_and_it_resumes_when_there_is_room(tmp_path: Path) -> None:
    mnt = tmp_path / "disk"
    with tmpfs(mnt, "3m"):
        # The data directory is the mount itself, so the node's log (beside it) is not on it.
        node = NodeProcess(mnt)
        node.start()
        try:
            node.generate(101, ADDRESS)
            blocks = 0
            last_good: dict[str, Any] | None = None
            deadline = time.monotonic() + 150
            # A big transaction (500 outputs, spending a matured coinbase) and a block, again
            # and again, until a write fails.
            while True:
                assert time.monotonic() < deadline, "the disk never filled"
                coin = coinbase_coin(node, blocks + 1, OWNER)
                value = (coin[1].amount - 100 * FEE) // 500
                tx = spend([coin], [TxOut(value, OWNER.pubkey_hash)] * 500)
                try:
                    answer = node.post_raw(f"{API}/tx", tx.serialize())
                    if answer.status == 200:
                        answer = node.post_json(
                            f"{API}/admin/generate", {"count": 1, "address": ADDRESS}, True
                        )
                except OSError:
                    break  # no answer: the node is going
                if answer.status == 503:
                    assert answer.json()["error"]["code"] == "unavailable", answer
                    break
                assert answer.status == 200, (answer.status, answer.body[:300])
                blocks += 1
                last_good = utxo_info(node)
            status = node.proc.wait(30)
        finally:
            node.kill()
        log = node.log()
        assert status == 1, f"exit status {status}\n{log[-3000:]}"
        last_lines = [line for line in log.splitlines() if line.startswith("tally-node: ")]
        assert len(last_lines) == 1, log[-3000:]
        assert last_lines[0].startswith("tally-node: storage failed: "), last_lines
        assert "No space left on device" in last_lines[0], last_lines
        assert "Traceback" not in log, log[-5000:]
        assert blocks >= 3 and last_good is not None, (blocks, log[-3000:])
        print(f"\nfull disk: {blocks} big blocks written, then: {last_lines[0]}")

        # Room again: the node opens at a consistent tip and mines.
        remount(mnt, "64m")
        node.start()
        try:
            info = utxo_info(node)
            assert info["height"] >= last_good["height"], (info, last_good)
            ok(node.get(f"{API}/mempool"))
            node.generate(2, ADDRESS)
            assert utxo_info(node)["height"] == info["height"] + 2
            final = utxo_info(node)
            assert node.stop() == 0, node.log()[-3000:]
        finally:
            node.kill()
        copy = tmp_path / "copy"
        shutil.copytree(mnt, copy)
        rebuilt = subprocess.run(
            [*tally_node_command(), "reindex", "--network", "regtest", "--datadir", str(copy)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert f"reindexed to height {final['height']}: {final['count']} coins" in rebuilt.stdout
        assert f"UTXO set hash {final['hash']}" in rebuilt.stdout, (rebuilt.stdout, final)


def test_a_ban_record_that_cannot_be_written_stops_the_node(tmp_path: Path) -> None:
    """A ban is decided on the event loop and written on the state thread (``submit``): a
    storage error there stops the node as any other does (SPEC 3.1), where it used to raise into
    whichever request caused the ban (a 503, the node going on with its memory and disk apart)."""

    async def scenario() -> None:
        switch = FaultSwitch()
        service = await run_service(tmp_path / "bans", lambda p: FaultyStore(p, switch))
        try:
            switch.arm(0)
            service.p2p.banman.ban("192.0.2.7", "a test ban")  # returns: the write is queued
            assert service.p2p.banman.is_banned("192.0.2.7")
            for _ in range(200):
                if service.stopped.is_set():
                    break
                await asyncio.sleep(0.01)
            assert switch.failed == ["put b'B'"], switch.seen
            assert service.stopped.is_set(), "a failed ban write must stop the node"
            assert service.failure is not None
            assert service.failure.startswith("storage failed: injected fault in write 0")
        finally:
            switch.arm(None)
            assert await stop_service(service) is None

    asyncio.run(scenario())
