"""Crash safety of the chainstate (SPEC 3.1): ``kill -9`` at any moment leaves a database that
opens at a consistent tip.

A worker process (``crash_worker.py``) processes a long, deterministic sequence of blocks with
transactions and frequent reorganisations into a LevelDB database with synced batches. The test
kills it with SIGKILL after a random (seeded) number of processed blocks and a few random
milliseconds, again and again; after every kill it opens
the database itself and checks that the tip is a block of the sequence and that the UTXO set info
and the stored UTXO set are exactly those of that block as the tip (the reference is computed by
``build_sequence`` from ChainBuilder's coins views, and checked against a memory chainstate).
The worker resumes from the database each time. Finally an uninterrupted run finishes the
sequence and the whole derived state must equal that of a memory chainstate that processed it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from consensus import Coin, OutPoint, ValidationError
from node.chainstate import Chainstate, UtxoStats
from node.chainstate import schema as k
from node.storage import KeyValueStore, LevelDBStore, MemoryStore
from tests.helpers import REGTEST
from tests.integration.crash_worker import FAR_FUTURE, build_sequence, write_blocks

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "crash_worker.py"
SEED = 7
LENGTH = 800
RUNS = 24
# Every key that describes the active chain (what reindex rebuilds).
DERIVED = k.DERIVED_PREFIXES


def open_chainstate(store: KeyValueStore) -> Chainstate:
    return Chainstate(store, REGTEST, clock=lambda: FAR_FUTURE)


def info_tuple(cs: Chainstate) -> tuple[int, bytes, int, int, bytes]:
    info = cs.utxo_set_info()
    return info.height, info.best_hash, info.count, info.total_amount, info.hash


def derived_state(store: KeyValueStore) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for prefix in DERIVED:
        state.update(store.iterate(prefix))
    return state


def check_stored_utxo_set(cs: Chainstate) -> None:
    """The coins actually stored (not just the stats) match the tip, and so does the index."""
    stats = UtxoStats()
    for key, raw in cs.store.iterate(k.P_COIN):
        stats.add(OutPoint(key[1:33], k.read_u32(key[33:37])), Coin.deserialize(raw))
    info = cs.utxo_set_info()
    assert (stats.count, stats.total_amount, stats.hash()) == (
        info.count,
        info.total_amount,
        info.hash,
    )
    assert sum(1 for _ in cs.store.iterate(k.P_ADDR_UTXO)) == info.count
    assert cs.hash_at_height(cs.height) == cs.tip.hash
    assert cs.hash_at_height(cs.height + 1) is None
    block = cs.get_block(cs.tip.hash)
    assert block is not None
    for pos, tx in enumerate(block.txs):
        located = cs.get_tx_location(tx.txid())
        assert located is not None and (located[0].hash, located[1]) == (cs.tip.hash, pos)


def start_worker(db: Path, blocks: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, str(WORKER), str(db), str(blocks)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=err,
        )


def test_kill_9_at_random_moments_leaves_a_consistent_database(tmp_path: Path) -> None:
    seq = build_sequence(LENGTH)
    assert len({b.hash() for b in seq.blocks}) == len(seq.blocks)

    # The reference agrees with a chainstate that processes the sequence without crashing.
    memory = open_chainstate(MemoryStore())
    reorgs = 0
    for block in seq.blocks:
        old_tip = memory.tip.hash
        memory.process_block(block)
        assert info_tuple(memory) == seq.reference[memory.tip.hash]
        reorgs += memory.tip.header.prev_hash != old_tip and memory.tip.hash != old_tip
    assert reorgs > 50

    blocks_file = tmp_path / "blocks.msgpack"
    write_blocks(seq.blocks, blocks_file)
    db, log = tmp_path / "db", tmp_path / "worker.log"
    rng = random.Random(SEED)
    killed_mid_run = interrupted_reorgs = advanced = 0
    heights = [0]
    for run in range(RUNS):
        worker = start_worker(db, blocks_file, log)
        # Kill after a random number of newly processed blocks (progress, not wall time, so the
        # test does not depend on the machine's speed), plus a random few milliseconds so the
        # kill lands anywhere inside the next block's writes.
        assert worker.stdout is not None
        wanted = rng.randint(1, 40)
        seen = 0
        while seen < wanted and worker.stdout.readline():
            seen += 1
        time.sleep(rng.uniform(0, 0.02))
        if worker.poll() is None:
            killed_mid_run += 1
            os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        worker.stdout.close()
        if worker.returncode != -signal.SIGKILL:
            assert worker.returncode == 0, log.read_text()

        store = LevelDBStore(db)
        interrupted_reorgs += store.get(k.K_REORG) is not None
        cs = open_chainstate(store)  # resumes an interrupted reorganisation, if any
        info = info_tuple(cs)
        assert info[1] in seq.reference, f"run {run}: the tip is not a block of the sequence"
        assert info == seq.reference[info[1]], f"run {run}: UTXO set info differs at the tip"
        assert store.get(k.K_REORG) is None
        check_stored_utxo_set(cs)
        advanced += info[0] > heights[-1]
        heights.append(info[0])
        store.close()

    assert killed_mid_run >= RUNS // 2, f"only {killed_mid_run} kills hit a running worker"
    assert advanced >= 3, f"heights over the runs: {heights}"
    assert heights[-1] > 120, f"heights over the runs: {heights}"
    assert interrupted_reorgs >= 1, "no kill interrupted a reorganisation"

    # An uninterrupted run finishes the sequence: exactly the memory chainstate's final state.
    worker = start_worker(db, blocks_file, log)
    assert worker.wait(timeout=120) == 0, log.read_text()
    assert worker.stdout is not None
    worker.stdout.close()
    store = LevelDBStore(db)
    cs = open_chainstate(store)
    try:
        assert info_tuple(cs) == info_tuple(memory)
        assert derived_state(store) == derived_state(memory.store)
        for block in seq.blocks[-3:]:
            try:
                cs.process_block(block)
            except ValidationError as err:
                assert err.code == "duplicate"
            else:
                raise AssertionError("a block of the sequence was not stored")
    finally:
        store.close()
