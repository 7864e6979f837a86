"""Contract tests for ``node.storage``: every test runs against every ``KeyValueStore`` backend.

The ``backend`` fixture is parametrized over ``BACKENDS``; a new backend is added there and must
pass the whole file. Tests that only make sense on disk (persistence, the data-directory lock,
error wrapping of plyvel) are at the end and use ``LevelDBStore`` directly.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import plyvel
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from node.storage import (
    BatchClosedError,
    KeyValueStore,
    LevelDBStore,
    MemoryStore,
    StorageClosedError,
    StorageError,
)
from node.storage.kv import prefix_upper_bound

BACKENDS = ["memory", "leveldb"]


def open_store(backend: str, directory: Path) -> KeyValueStore:
    if backend == "memory":
        return MemoryStore()
    if backend == "leveldb":
        return LevelDBStore(directory / "db")
    raise AssertionError(f"unknown backend {backend}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[KeyValueStore]:
    s = open_store(backend, tmp_path)
    yield s
    s.close()


def items(store: KeyValueStore, prefix: bytes = b"", *, reverse: bool = False) -> list[bytes]:
    return [key for key, _ in store.iterate(prefix, reverse=reverse)]


# Keys chosen to exercise unsigned byte order, 0x00/0xff bytes, and keys that are prefixes of
# other keys. Sorted as unsigned bytes.
ORDERED_KEYS = [
    b"",
    b"\x00",
    b"\x00\xff",
    b"a",
    b"a\x00",
    b"ab",
    b"a\x7f",
    b"a\x80",
    b"a\xff",
    b"a\xff\x00",
    b"a\xff\xff",
    b"b",
    b"\x7f",
    b"\x80",
    b"\xff",
    b"\xff\x00",
    b"\xff\xff",
    b"\xff\xff\xff",
]


@pytest.fixture
def filled(store: KeyValueStore) -> KeyValueStore:
    # Insert out of order so the store, not insertion order, produces the order.
    for i, key in enumerate(reversed(ORDERED_KEYS)):
        store.put(key, b"v%d" % i)
    return store


# --- basic reads and writes -----------------------------------------------------------------


def test_get_missing_key_is_none(store: KeyValueStore) -> None:
    assert store.get(b"missing") is None
    store.put(b"present", b"x")
    assert store.get(b"presen") is None
    assert store.get(b"present\x00") is None


def test_put_get_and_overwrite(store: KeyValueStore) -> None:
    store.put(b"k", b"one")
    assert store.get(b"k") == b"one"
    store.put(b"k", b"two")
    assert store.get(b"k") == b"two"
    assert list(store.iterate()) == [(b"k", b"two")]


def test_empty_key_and_empty_value_are_ordinary(store: KeyValueStore) -> None:
    store.put(b"", b"root")
    store.put(b"e", b"")
    assert store.get(b"") == b"root"
    assert store.get(b"e") == b""  # an empty value is not a missing one
    assert list(store.iterate()) == [(b"", b"root"), (b"e", b"")]


def test_binary_values_round_trip(store: KeyValueStore) -> None:
    value = bytes(range(256)) * 3
    store.put(b"\x00\xff", value)
    assert store.get(b"\x00\xff") == value


def test_delete(store: KeyValueStore) -> None:
    store.put(b"a", b"1")
    store.put(b"b", b"2")
    store.delete(b"a")
    assert store.get(b"a") is None
    assert store.get(b"b") == b"2"
    assert items(store) == [b"b"]
    store.put(b"a", b"3")  # a deleted key can come back
    assert store.get(b"a") == b"3"


def test_delete_missing_key_is_fine(store: KeyValueStore) -> None:
    store.put(b"a", b"1")
    store.delete(b"never")
    store.delete(b"never")
    assert list(store.iterate()) == [(b"a", b"1")]


# --- iteration ------------------------------------------------------------------------------


def test_iteration_is_unsigned_byte_order(filled: KeyValueStore) -> None:
    assert items(filled) == ORDERED_KEYS
    assert items(filled, reverse=True) == ORDERED_KEYS[::-1]


def test_iteration_yields_matching_values(filled: KeyValueStore) -> None:
    pairs = list(filled.iterate(b"a"))
    assert pairs and all(filled.get(key) == value for key, value in pairs)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (b"", ORDERED_KEYS),
        (b"a", [b"a", b"a\x00", b"ab", b"a\x7f", b"a\x80", b"a\xff", b"a\xff\x00", b"a\xff\xff"]),
        (b"a\xff", [b"a\xff", b"a\xff\x00", b"a\xff\xff"]),
        (b"a\xff\xff", [b"a\xff\xff"]),
        (b"\x00", [b"\x00", b"\x00\xff"]),
        (b"\xff", [b"\xff", b"\xff\x00", b"\xff\xff", b"\xff\xff\xff"]),
        (b"\xff\xff", [b"\xff\xff", b"\xff\xff\xff"]),
        (b"ab", [b"ab"]),
        (b"abc", []),
        (b"c", []),
        (b"\xfe", []),
    ],
)
def test_prefix_iteration(filled: KeyValueStore, prefix: bytes, expected: list[bytes]) -> None:
    assert items(filled, prefix) == expected
    assert items(filled, prefix, reverse=True) == expected[::-1]
    # Cross-check against the definition, independently of the hand-written lists.
    assert expected == sorted(k for k in ORDERED_KEYS if k.startswith(prefix))


def test_iteration_on_empty_store(store: KeyValueStore) -> None:
    assert list(store.iterate()) == []
    assert list(store.iterate(b"\xff", reverse=True)) == []


def test_reverse_iteration_of_a_single_key_equal_to_the_prefix(store: KeyValueStore) -> None:
    # Regression: plyvel's reverse iterator with ``prefix=`` (start bound) yields nothing here.
    store.put(b"ab", b"1")
    store.put(b"b", b"2")
    assert list(store.iterate(b"ab", reverse=True)) == [(b"ab", b"1")]
    assert list(store.iterate(b"b", reverse=True)) == [(b"b", b"2")]
    store.delete(b"ab")
    store.delete(b"b")
    store.put(b"", b"only")
    assert list(store.iterate(b"", reverse=True)) == [(b"", b"only")]


def test_iteration_is_a_snapshot(store: KeyValueStore) -> None:
    for key in (b"k1", b"k2", b"k3"):
        store.put(key, b"old")
    iterator = store.iterate(b"k")
    # Writes after iterate() is called, before and during consumption, are not seen.
    store.put(b"k0", b"new")
    store.delete(b"k3")
    first = next(iterator)
    store.put(b"k2", b"new")
    store.put(b"k4", b"new")
    rest = list(iterator)
    assert [first, *rest] == [(b"k1", b"old"), (b"k2", b"old"), (b"k3", b"old")]
    assert list(store.iterate(b"k")) == [
        (b"k0", b"new"),
        (b"k1", b"old"),
        (b"k2", b"new"),
        (b"k4", b"new"),
    ]


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound(b"") is None
    assert prefix_upper_bound(b"\xff\xff") is None
    assert prefix_upper_bound(b"a") == b"b"
    assert prefix_upper_bound(b"a\xff") == b"b"
    assert prefix_upper_bound(b"\x00\xfe\xff") == b"\x00\xff"


# --- write batches --------------------------------------------------------------------------


def test_batch_applies_puts_and_deletes_together(store: KeyValueStore) -> None:
    store.put(b"gone", b"x")
    store.put(b"kept", b"x")
    with store.write_batch() as batch:
        batch.put(b"new1", b"1")
        batch.put(b"new2", b"2")
        batch.delete(b"gone")
        # Nothing is visible before the batch is committed.
        assert store.get(b"new1") is None
        assert store.get(b"gone") == b"x"
        assert items(store) == [b"gone", b"kept"]
    assert batch.finished
    assert list(store.iterate()) == [(b"kept", b"x"), (b"new1", b"1"), (b"new2", b"2")]


def test_batch_exception_applies_nothing(store: KeyValueStore) -> None:
    store.put(b"a", b"old")
    store.put(b"b", b"old")
    with pytest.raises(RuntimeError, match="boom"), store.write_batch() as batch:
        batch.put(b"a", b"new")
        batch.delete(b"b")
        batch.put(b"c", b"new")
        raise RuntimeError("boom")
    assert list(store.iterate()) == [(b"a", b"old"), (b"b", b"old")]
    # A batch discarded by an exception cannot be committed afterwards.
    with pytest.raises(BatchClosedError):
        batch.commit()
    assert list(store.iterate()) == [(b"a", b"old"), (b"b", b"old")]


def test_batch_delete_then_put_same_key_ends_with_put(store: KeyValueStore) -> None:
    store.put(b"k", b"old")
    with store.write_batch() as batch:
        batch.delete(b"k")
        batch.put(b"k", b"new")
    assert store.get(b"k") == b"new"


def test_batch_put_then_delete_same_key_ends_deleted(store: KeyValueStore) -> None:
    store.put(b"k", b"old")
    with store.write_batch() as batch:
        batch.put(b"k", b"new")
        batch.delete(b"k")
        batch.put(b"fresh", b"1")
        batch.delete(b"fresh")
    assert list(store.iterate()) == []


def test_batch_later_put_wins(store: KeyValueStore) -> None:
    with store.write_batch() as batch:
        batch.put(b"k", b"1")
        batch.put(b"k", b"2")
        batch.put(b"k", b"3")
    assert store.get(b"k") == b"3"


@pytest.mark.parametrize("sync", [True, False])
def test_batch_explicit_commit(store: KeyValueStore, sync: bool) -> None:
    batch = store.write_batch(sync=sync)
    assert batch.sync is sync
    batch.put(b"a", b"1")
    batch.delete(b"b")
    assert store.get(b"a") is None
    batch.commit()
    assert store.get(b"a") == b"1"


def test_batch_commit_twice_raises(store: KeyValueStore) -> None:
    batch = store.write_batch()
    batch.put(b"a", b"1")
    batch.commit()
    with pytest.raises(BatchClosedError):
        batch.commit()
    assert list(store.iterate()) == [(b"a", b"1")]


def test_batch_use_after_commit_raises(store: KeyValueStore) -> None:
    with store.write_batch() as batch:
        batch.put(b"a", b"1")
    with pytest.raises(BatchClosedError):
        batch.put(b"b", b"2")
    with pytest.raises(BatchClosedError):
        batch.delete(b"a")
    with pytest.raises(BatchClosedError), batch:
        pass
    assert list(store.iterate()) == [(b"a", b"1")]


def test_batch_explicit_commit_inside_with_block_is_not_repeated(store: KeyValueStore) -> None:
    with store.write_batch() as batch:
        batch.put(b"a", b"1")
        batch.commit()
        store.put(b"a", b"2")
    assert store.get(b"a") == b"2"  # exiting the block did not replay the batch


def test_batch_discard(store: KeyValueStore) -> None:
    batch = store.write_batch()
    batch.put(b"a", b"1")
    batch.discard()
    batch.discard()
    assert store.get(b"a") is None
    with pytest.raises(BatchClosedError):
        batch.commit()
    assert store.get(b"a") is None


def test_independent_batches(store: KeyValueStore) -> None:
    first = store.write_batch()
    second = store.write_batch()
    first.put(b"a", b"1")
    second.put(b"b", b"2")
    second.commit()
    assert items(store) == [b"b"]
    first.commit()
    assert items(store) == [b"a", b"b"]


# --- argument types -------------------------------------------------------------------------

NOT_BYTES: list[Any] = ["text", bytearray(b"x"), memoryview(b"x"), 1, None]


@pytest.mark.parametrize("bad", NOT_BYTES, ids=lambda v: type(v).__name__)
def test_non_bytes_raise_type_error(store: KeyValueStore, bad: Any) -> None:
    store.put(b"k", b"v")
    calls: list[Callable[[], object]] = [
        lambda: store.get(bad),
        lambda: store.put(bad, b"v"),
        lambda: store.put(b"k", bad),
        lambda: store.delete(bad),
        lambda: list(store.iterate(bad)),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="must be bytes"):
            call()
    batch = store.write_batch()
    batch_calls: list[Callable[[], object]] = [
        lambda: batch.put(bad, b"v"),
        lambda: batch.put(b"k", bad),
        lambda: batch.delete(bad),
    ]
    for call in batch_calls:
        with pytest.raises(TypeError, match="must be bytes"):
            call()
    batch.commit()
    assert list(store.iterate()) == [(b"k", b"v")]


# --- closing --------------------------------------------------------------------------------


def test_closed_store_raises(store: KeyValueStore) -> None:
    store.put(b"k", b"v")
    store.close()
    assert store.closed
    calls: list[Callable[[], object]] = [
        lambda: store.get(b"k"),
        lambda: store.put(b"k", b"v"),
        lambda: store.delete(b"k"),
        lambda: store.iterate(),
        lambda: store.write_batch(),
    ]
    for call in calls:
        with pytest.raises(StorageClosedError, match="closed"):
            call()
    with pytest.raises(StorageClosedError), store:
        pass
    store.close()  # idempotent
    assert issubclass(StorageClosedError, StorageError)


def test_close_stops_iteration_in_progress(store: KeyValueStore) -> None:
    store.put(b"a", b"1")
    store.put(b"b", b"2")
    iterator = store.iterate()
    assert next(iterator) == (b"a", b"1")
    store.close()
    with pytest.raises(StorageClosedError):
        next(iterator)


def test_batch_created_before_close_cannot_commit(store: KeyValueStore) -> None:
    batch = store.write_batch()
    batch.put(b"a", b"1")
    store.close()
    with pytest.raises(StorageClosedError):
        batch.put(b"b", b"2")
    with pytest.raises(StorageClosedError):
        batch.commit()


def test_store_is_a_context_manager(backend: str, tmp_path: Path) -> None:
    with open_store(backend, tmp_path) as s:
        s.put(b"a", b"1")
        assert s.get(b"a") == b"1"
    assert s.closed
    with pytest.raises(StorageClosedError):
        s.get(b"a")


# --- random operation sequences against a dict model ----------------------------------------

# A small alphabet so that keys collide, share prefixes and hit the 0x00/0xff edges.
keys_st = st.lists(st.sampled_from([0x00, 0x01, 0x61, 0x7F, 0x80, 0xFE, 0xFF]), max_size=3).map(
    bytes
)
values_st = st.binary(max_size=4)
batch_ops_st = st.lists(st.tuples(keys_st, st.none() | values_st), max_size=8)


class StoreMachine(RuleBasedStateMachine):
    """Runs random put/delete/batch/reopen sequences and compares the store to a dict."""

    backend: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.store = open_store(self.backend, Path(self.tmp.name))
        self.model: dict[bytes, bytes] = {}
        self.writes_since_open = 0

    @rule(key=keys_st, value=values_st)
    def put(self, key: bytes, value: bytes) -> None:
        self.store.put(key, value)
        self.model[key] = value
        self.writes_since_open += 1

    @rule(key=keys_st)
    def delete(self, key: bytes) -> None:
        self.store.delete(key)
        self.model.pop(key, None)
        self.writes_since_open += 1

    @rule(ops=batch_ops_st, fail=st.booleans(), sync=st.booleans())
    def batch(self, ops: list[tuple[bytes, bytes | None]], fail: bool, sync: bool) -> None:
        before = list(self.store.iterate())
        try:
            with self.store.write_batch(sync=sync) as batch:
                for key, value in ops:
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
                assert list(self.store.iterate()) == before
                if fail:
                    raise ValueError("abort batch")
        except ValueError:
            assert fail
            return
        for key, value in ops:
            if value is None:
                self.model.pop(key, None)
            else:
                self.model[key] = value
        self.writes_since_open += 1

    # Reopening costs ~20 ms, so only after a few writes it could lose.
    @precondition(lambda self: self.backend == "leveldb" and self.writes_since_open >= 3)
    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = open_store(self.backend, Path(self.tmp.name))
        self.writes_since_open = 0

    @rule(prefix=keys_st, reverse=st.booleans())
    def check_prefix(self, prefix: bytes, reverse: bool) -> None:
        expected = sorted((k, v) for k, v in self.model.items() if k.startswith(prefix))
        if reverse:
            expected.reverse()
        assert list(self.store.iterate(prefix, reverse=reverse)) == expected

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), reverse=st.booleans())
    def check_prefix_of_stored_key(self, data: st.DataObject, reverse: bool) -> None:
        # Prefixes cut from stored keys hit the edges: a prefix equal to a whole key, a prefix
        # matching a single key, a range that ends at the end of the key space.
        key = data.draw(st.sampled_from(sorted(self.model)))
        prefix = key[: data.draw(st.integers(0, len(key)))]
        self.check_prefix(prefix, reverse)

    @rule(key=keys_st)
    def check_get(self, key: bytes) -> None:
        assert self.store.get(key) == self.model.get(key)

    @invariant()
    def matches_model(self) -> None:
        assert list(self.store.iterate()) == sorted(self.model.items())

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()


class MemoryStoreMachine(StoreMachine):
    backend = "memory"


class LevelDBStoreMachine(StoreMachine):
    backend = "leveldb"


MACHINES: dict[str, type[StoreMachine]] = {
    "memory": MemoryStoreMachine,
    "leveldb": LevelDBStoreMachine,
}


def test_random_operations_match_dict_model(backend: str) -> None:
    run_state_machine_as_test(
        MACHINES[backend],
        settings=settings(
            # LevelDB open, reopen and synced writes cost milliseconds each; these bounds keep
            # the LevelDB run to a few seconds while still reaching every rule many times.
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# --- LevelDB only ---------------------------------------------------------------------------


def test_leveldb_data_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with LevelDBStore(path) as s:
        s.put(b"plain", b"1")
        s.put(b"doomed", b"x")
        with s.write_batch(sync=True) as batch:
            batch.put(b"batched", b"2")
            batch.delete(b"doomed")
        with pytest.raises(RuntimeError), s.write_batch() as batch:
            batch.put(b"aborted", b"3")
            raise RuntimeError
    with LevelDBStore(path, create_if_missing=False) as s:
        assert list(s.iterate()) == [(b"batched", b"2"), (b"plain", b"1")]


def test_leveldb_second_open_of_same_path_raises(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with LevelDBStore(path) as first:
        first.put(b"a", b"1")
        with pytest.raises(StorageError, match=r"data directory .* is in use"):
            LevelDBStore(path)
        assert first.get(b"a") == b"1"  # the failed open did not disturb the holder
    with LevelDBStore(path) as again:  # closing released the lock
        assert again.get(b"a") == b"1"


def test_leveldb_path_held_by_another_process_raises(tmp_path: Path) -> None:
    path = tmp_path / "db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, plyvel\n"
            "db = plyvel.DB(sys.argv[1], create_if_missing=True)\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StorageError, match=r"data directory .* is in use") as info:
            LevelDBStore(path)
        assert isinstance(info.value.__cause__, plyvel.IOError)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    with LevelDBStore(path):
        pass


def test_leveldb_missing_path_without_create_raises(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open LevelDB"):
        LevelDBStore(tmp_path / "absent", create_if_missing=False)


def _disk_failure(*args: object, **kwargs: object) -> Any:
    raise plyvel.IOError(b"IO error: disk on fire")


class _FailingBatch:
    """A plyvel write batch whose ``write()`` fails, as a full or broken disk would."""

    def __init__(self, real: Any) -> None:
        self.put = real.put
        self.delete = real.delete
        self.clear = real.clear
        self.write = _disk_failure


class _FailingDB:
    """Stands in for a plyvel DB whose reads and writes all fail."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.get = self.put = self.delete = _disk_failure

    def write_batch(self, **kwargs: Any) -> _FailingBatch:
        return _FailingBatch(self.real.write_batch(**kwargs))

    def close(self) -> None:
        self.real.close()


def test_leveldb_backend_errors_become_storage_errors(tmp_path: Path) -> None:
    s = LevelDBStore(tmp_path / "db")
    s._db = _FailingDB(s._db)
    calls: list[Callable[[], object]] = [
        lambda: s.get(b"k"),
        lambda: s.put(b"k", b"v"),
        lambda: s.delete(b"k"),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="disk on fire") as info:
            call()
        assert isinstance(info.value.__cause__, plyvel.Error)
    with pytest.raises(StorageError, match="batch write failed"), s.write_batch() as batch:
        batch.put(b"k", b"v")
    assert batch.finished
    s.close()


def test_compact_changes_nothing_visible(store: KeyValueStore) -> None:
    """``compact`` is a space hint: the same keys and values before and after, prefix or not."""
    for i in range(200):
        store.put(b"o" + i.to_bytes(2, "big"), b"v%d" % i)
        store.put(b"p" + i.to_bytes(2, "big"), b"w%d" % i)
    with store.write_batch() as batch:
        for i in range(0, 200, 2):
            batch.delete(b"o" + i.to_bytes(2, "big"))
    before = list(store.iterate())
    store.compact(b"o")
    store.compact()
    assert list(store.iterate()) == before
    assert len(list(store.iterate(b"o"))) == 100


def test_compact_refuses_a_closed_store(store: KeyValueStore) -> None:
    store.close()
    with pytest.raises(StorageClosedError):
        store.compact(b"o")
