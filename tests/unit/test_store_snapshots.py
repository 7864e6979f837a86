"""Copies and replacements of a whole store, and the snapshot area built on them (SPEC 6).

- ``copy_into`` and ``replace_contents`` keep the storage contract on both backends, across
  backends, in several batches; the source is left as it was.
- A LevelDB replacement cut short at each step opens as the old database or the new one,
  whole (``recover_replacement``, run by every open).
- ``SnapshotArea``: take, list, retake (replaces), the limit, restore, and what a crash while
  writing a snapshot leaves.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import node.snapshots as snapshots
from node.snapshots import (
    SnapshotArea,
    SnapshotFailedError,
    SnapshotLimitError,
    UnknownSnapshotError,
)
from node.storage import KeyValueStore, LevelDBStore, MemoryStore, StorageError
from node.storage.leveldb import INCOMING, OLD, READY

OLD_ITEMS = {b"a": b"1", b"b": b"2", b"": b"empty key", b"\xff": b"top"}
NEW_ITEMS = {b"b": b"22", b"c": b"3" * 1000, b"d": b""}


def filled(store: KeyValueStore, items: dict[bytes, bytes]) -> KeyValueStore:
    with store.write_batch() as batch:
        for k, v in items.items():
            batch.put(k, v)
    return store


def contents(store: KeyValueStore) -> dict[bytes, bytes]:
    return dict(store.iterate(b""))


def make(backend: str, path: Path) -> KeyValueStore:
    return MemoryStore() if backend == "memory" else LevelDBStore(path)


@pytest.mark.parametrize("source_backend", ["memory", "leveldb"])
@pytest.mark.parametrize("target_backend", ["memory", "leveldb"])
def test_copy_into_copies_every_key_in_batches(
    source_backend: str, target_backend: str, tmp_path: Path
) -> None:
    items = {i.to_bytes(2, "big"): bytes(100) + bytes([i % 256]) for i in range(500)} | OLD_ITEMS
    source = filled(make(source_backend, tmp_path / "s"), items)
    target = make(target_backend, tmp_path / "t")
    assert source.copy_into(target, batch_bytes=1_000) == len(items)
    assert contents(target) == items
    assert contents(source) == items
    source.close()
    target.close()


def test_copy_into_is_the_store_when_the_copy_began(tmp_path: Path) -> None:
    """A write made while the copy iterates (here: by the target's batches, into the source
    itself: the worst case) is not in the copy."""
    store = filled(LevelDBStore(tmp_path / "s"), OLD_ITEMS)
    copy = MemoryStore()
    original_put = copy.write_batch

    def batch_and_write(sync: bool = True):  # type: ignore[no-untyped-def]
        store.put(b"late", b"x")
        return original_put(sync)

    copy.write_batch = batch_and_write  # type: ignore[method-assign]
    store.copy_into(copy)
    assert contents(copy) == OLD_ITEMS
    store.close()


@pytest.mark.parametrize("backend", ["memory", "leveldb"])
def test_replace_contents_makes_the_store_exactly_the_source(backend: str, tmp_path: Path) -> None:
    store = filled(make(backend, tmp_path / "live"), OLD_ITEMS)
    source = filled(LevelDBStore(tmp_path / "src"), NEW_ITEMS)
    store.replace_contents(source)
    assert contents(store) == NEW_ITEMS
    assert store.get(b"a") is None and store.get(b"c") == NEW_ITEMS[b"c"]
    assert contents(source) == NEW_ITEMS
    store.put(b"z", b"after")  # still a working store
    assert store.get(b"z") == b"after"
    source.close()
    store.close()
    if backend == "leveldb":
        assert sorted(os.listdir(tmp_path)) == ["live", "src"]  # nothing left beside it
        with LevelDBStore(tmp_path / "live") as again:
            assert contents(again) == {**NEW_ITEMS, b"z": b"after"}


def leveldb_dir(path: Path, items: dict[bytes, bytes]) -> Path:
    with LevelDBStore(path) as store:
        filled(store, items)
    return path


@pytest.mark.parametrize(
    ("left", "expect"),
    [
        ({"live": OLD_ITEMS, INCOMING: NEW_ITEMS}, OLD_ITEMS),  # cut short while copying
        ({"live": OLD_ITEMS, READY: NEW_ITEMS}, NEW_ITEMS),  # copy complete, not swapped yet
        ({OLD: OLD_ITEMS, READY: NEW_ITEMS}, NEW_ITEMS),  # between the two renames
        ({"live": NEW_ITEMS, OLD: OLD_ITEMS}, NEW_ITEMS),  # swapped, old not removed yet
        ({OLD: OLD_ITEMS}, OLD_ITEMS),  # not a state a replacement leaves: undone
    ],
)
def test_an_interrupted_replacement_opens_old_or_new_whole(
    left: dict[str, dict[bytes, bytes]], expect: dict[bytes, bytes], tmp_path: Path
) -> None:
    live = tmp_path / "chainstate"
    for suffix, items in left.items():
        leveldb_dir(live if suffix == "live" else Path(f"{live}{suffix}"), items)
    with LevelDBStore(live) as store:
        assert contents(store) == expect
    assert os.listdir(tmp_path) == ["chainstate"]


def test_replacement_failing_while_copying_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    store = filled(LevelDBStore(tmp_path / "live"), OLD_ITEMS)

    class Failing(MemoryStore):
        def copy_into(self, target: KeyValueStore, *, batch_bytes: int = 1) -> int:
            target.put(b"partial", b"x")
            raise OSError("disk full")

    with pytest.raises(StorageError, match="disk full"):
        store.replace_contents(Failing())
    assert contents(store) == OLD_ITEMS
    store.close()
    with LevelDBStore(tmp_path / "live") as again:  # the unfinished copy is cleared away
        assert contents(again) == OLD_ITEMS
    assert os.listdir(tmp_path) == ["live"]


# --- the snapshot area --------------------------------------------------------------------------


def test_take_list_retake_and_restore(tmp_path: Path) -> None:
    area = SnapshotArea(tmp_path / "snapshots", clock=lambda: 1_000)
    live = filled(MemoryStore(), OLD_ITEMS)
    a = area.take(live, "a", 5, bytes(32))
    assert (a.name, a.height, a.created) == ("a", 5, 1_000)
    filled(live, NEW_ITEMS)
    area.take(live, "b.2", 7, b"\x01" * 32)
    assert [(i.name, i.height) for i in area.list()] == [("a", 5), ("b.2", 7)]
    area.restore(live, "a")
    assert contents(live) == OLD_ITEMS
    area.restore(live, "a")  # kept: twice is fine
    assert contents(live) == OLD_ITEMS
    area.take(live, "b.2", 9, b"\x02" * 32)  # retaking a name replaces it
    assert [(i.name, i.height) for i in area.list()] == [("a", 5), ("b.2", 9)]
    area.restore(live, "b.2")
    assert contents(live) == OLD_ITEMS
    with pytest.raises(UnknownSnapshotError):
        area.restore(live, "nope")
    with pytest.raises(UnknownSnapshotError):
        area.get("../a")
    assert sorted(os.listdir(tmp_path / "snapshots")) == ["a", "b.2"]


def test_the_number_of_names_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "MAX_SNAPSHOTS", 2)
    area = SnapshotArea(tmp_path / "snapshots", clock=lambda: 1_000)  # listed by name then
    live = filled(MemoryStore(), OLD_ITEMS)
    area.take(live, "a", 1, bytes(32))
    area.take(live, "b", 1, bytes(32))
    with pytest.raises(SnapshotLimitError):
        area.take(live, "c", 1, bytes(32))
    area.take(live, "a", 2, bytes(32))  # an existing name may be retaken
    assert [i.name for i in area.list()] == ["a", "b"]


@pytest.mark.parametrize("name", ["", ".", "..", ".tmp-a", "-a", "a/b", "a" * 65, "é"])
def test_names_outside_the_pattern_are_refused(name: str, tmp_path: Path) -> None:
    area = SnapshotArea(tmp_path / "snapshots")
    with pytest.raises(ValueError):
        area.take(MemoryStore(), name, 0, bytes(32))


def test_opening_the_area_clears_what_a_crash_left(tmp_path: Path) -> None:
    root = tmp_path / "snapshots"
    area = SnapshotArea(root)
    live = filled(MemoryStore(), OLD_ITEMS)
    area.take(live, "kept", 1, bytes(32))
    area.take(live, "moved", 2, bytes(32))
    shutil.copytree(root / "kept", root / ".tmp-half")  # a snapshot being written
    shutil.copytree(root / "kept", root / ".old-kept")  # replaced, old copy not removed
    os.replace(root / "moved", root / ".old-moved")  # moved aside, new one never renamed in
    area = SnapshotArea(root)
    assert [(i.name, i.height) for i in area.list()] == [("kept", 1), ("moved", 2)]
    assert sorted(os.listdir(root)) == ["kept", "moved"]


def test_a_snapshot_that_cannot_be_written_leaves_nothing_and_keeps_the_old_one(
    tmp_path: Path,
) -> None:
    area = SnapshotArea(tmp_path / "snapshots")
    live = filled(MemoryStore(), OLD_ITEMS)
    area.take(live, "a", 1, bytes(32))

    class DiskFull(MemoryStore):
        def copy_into(self, target: KeyValueStore, *, batch_bytes: int = 1) -> int:
            raise StorageError("No space left on device")

    with pytest.raises(SnapshotFailedError, match="No space left"):
        area.take(DiskFull(), "a", 2, bytes(32))
    with pytest.raises(SnapshotFailedError):
        area.take(DiskFull(), "b", 2, bytes(32))
    assert [(i.name, i.height) for i in area.list()] == [("a", 1)]
    assert sorted(os.listdir(tmp_path / "snapshots")) == ["a"]
    shutil.rmtree(tmp_path / "snapshots" / "a" / "db")
    with pytest.raises(SnapshotFailedError):  # its copy is gone: refused, live untouched
        area.restore(live, "a")
    assert contents(live) == OLD_ITEMS


# --- rebuilding in place after the store's contents were replaced --------------------------------


def test_chainstate_and_mempool_reload_to_the_copy_silently(tmp_path: Path) -> None:
    """What ``NodeService.revert`` does on the state thread, in process: the copy taken at
    height 103 with two transactions pending comes back whole after two more blocks and a
    third transaction, the same objects stay subscribed, and nothing is announced."""
    from consensus import TxOut
    from node.chainstate import Chainstate
    from node.mempool import ChainView, Mempool
    from tests.helpers import REGTEST, ChainBuilder, key, spend

    far_future = REGTEST.genesis_time + 10**7
    builder = ChainBuilder()
    builder.grow(103)
    store = LevelDBStore(tmp_path / "chainstate")
    cs = Chainstate(store, REGTEST, clock=lambda: far_future, sync=False)
    for block in builder.blocks[1:]:
        cs.process_block(block)
    pool = Mempool(ChainView.of(cs), REGTEST, clock=lambda: far_future, store=store)
    cs.subscribe(pool.on_chain_event)  # as the service wires them
    events: list[object] = []
    cs.subscribe(events.append)
    pool.subscribe(events.append)
    payee = key(1).pubkey_hash

    def pay(height: int) -> bytes:
        coin = builder.coinbase_coin(height)
        tx = spend([coin], [TxOut(coin[1].amount - 10_000, payee)])
        pool.accept(tx)
        return tx.txid()

    pending = [pay(1), pay(2)]
    before = (cs.tip.hash, cs.utxo_set_info(), list(pool.entries), cs.address_stats(payee))
    assert before[2] == pending
    copy = LevelDBStore(tmp_path / "copy")
    store.copy_into(copy)

    txs = [entry.tx for entry in pool.entries.values()]
    block = builder.next_block(txs, fees=20_000)
    builder.add(block)
    cs.process_block(block)
    pay(3)
    assert cs.height == 104 and list(pool.entries) != before[2]

    events.clear()
    store.replace_contents(copy)
    cs.reload()
    pool.reload()
    assert (cs.tip.hash, cs.utxo_set_info(), list(pool.entries), cs.address_stats(payee)) == before
    assert events == []  # the jump is not announced
    cs.process_block(block)  # and the same objects go on: the block connects, events flow
    assert cs.height == 104 and not pool.entries
    assert events
    copy.close()
    store.close()


class Crash(BaseException):
    """The process dies here (not an ``OSError``: nothing in the code under test catches it)."""


@pytest.mark.parametrize("step", range(4))
def test_a_crash_at_each_step_of_a_replacement_opens_old_or_new_whole(
    step: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three renames of ``_replace_contents`` (``.incoming`` -> ``.ready``, live -> ``.old``,
    ``.ready`` -> live) and the removal of ``.old``: a crash at each leaves a directory that
    opens whole, old before ``.ready`` exists, new from then on."""
    store = filled(LevelDBStore(tmp_path / "live"), OLD_ITEMS)
    source = filled(MemoryStore(), NEW_ITEMS)
    calls = {"n": 0}
    real_replace, real_rmtree = os.replace, shutil.rmtree

    def crashing(real):  # type: ignore[no-untyped-def]
        def step_or_crash(*args, **kw):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == step + 1:
                raise Crash
            return real(*args, **kw)

        return step_or_crash

    monkeypatch.setattr(os, "replace", crashing(real_replace))
    monkeypatch.setattr(shutil, "rmtree", crashing(real_rmtree))
    with pytest.raises(Crash):
        store.replace_contents(source)
    monkeypatch.undo()
    if not store.closed:
        store._db.close()  # the process is gone: its LevelDB lock with it
    with LevelDBStore(tmp_path / "live") as again:
        assert contents(again) == (OLD_ITEMS if step == 0 else NEW_ITEMS)
    assert os.listdir(tmp_path) == ["live"]


def test_bans_in_force_outlive_a_revert() -> None:
    from node.p2p.banman import BanMan

    store = MemoryStore()
    snapshot = MemoryStore()
    store.copy_into(snapshot)  # taken before the ban
    bans = BanMan(store, clock=lambda: 1_000.0)
    bans.ban("http://127.0.0.1:9", "test")
    store.replace_contents(snapshot)
    assert BanMan(store, clock=lambda: 1_000.0).bans == {}  # the snapshot knew of no ban
    bans.persist_all()
    assert BanMan(store, clock=lambda: 1_000.0).is_banned("http://127.0.0.1:9")
