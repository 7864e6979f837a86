"""The key-value store interface that the chainstate is written against.

Job: define ``KeyValueStore`` and ``WriteBatch``, the small contract every storage backend meets,
and the exceptions storage raises. The public methods here check arguments and state and then
delegate to a backend's ``_``-prefixed hooks, so every backend enforces the same rules.

Invariants every backend keeps (checked by ``tests/unit/test_storage_contract.py``):

- Keys and values are ``bytes`` (the empty string included); anything else raises ``TypeError``.
  ``get`` of a missing key returns ``None``, never ``b""``.
- ``iterate(prefix)`` yields exactly the ``(key, value)`` pairs whose key starts with ``prefix``,
  in ascending unsigned byte order of the key (descending with ``reverse=True``). It sees the store
  as it was when ``iterate`` was called: writes made while iterating do not show up in, or break,
  an iteration in progress.
- A write batch is atomic: its puts and deletes become visible together when it is committed
  (normal exit of its ``with`` block, or ``commit()``), and nothing is applied if the ``with``
  block raises. Within a batch, a later operation on a key wins over an earlier one. A batch is
  used once: any use after it is committed or discarded raises ``BatchClosedError``.
- A closed store raises ``StorageClosedError`` on every operation (including batches created
  before the close and iterations in progress) except ``close()``, which is idempotent.
- Backend failures surface as ``StorageError`` (with the backend's exception chained), so the
  node can stop with a clear message instead of a library-specific traceback.
- ``copy_into(target)`` copies a consistent view (the store as it was when the copy began) in
  batches of at most ``COPY_BATCH_BYTES``; ``replace_contents(source)`` makes the store hold
  exactly what ``source`` holds, and a crash in the middle leaves it holding either all of its
  old contents or all of the new (the devnet's snapshots and reverts, ``node.snapshots``).

Left to others: the key schema, its version and the encoding of values (the chainstate); deciding
which writes must be synced (the caller passes ``sync``; single ``put``/``delete`` calls are not
synced, so anything that must survive a crash goes through a ``sync=True`` batch); and
concurrency. Stores are not thread-safe: the node uses one store from one thread (its event loop),
and worker processes never open the database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import TracebackType
from typing import Self

__all__ = [
    "BatchClosedError",
    "KeyValueStore",
    "StorageClosedError",
    "StorageError",
    "COPY_BATCH_BYTES",
    "WriteBatch",
    "prefix_upper_bound",
    "require_bytes",
]


COPY_BATCH_BYTES = 4 * 1024 * 1024
"""Bytes of keys and values one write batch of ``copy_into`` holds at most (one large item may
go over it alone)."""


class StorageError(Exception):
    """A storage operation failed; the backend's own exception, if any, is the ``__cause__``."""


class StorageClosedError(StorageError):
    """The store was used after ``close()``."""


class BatchClosedError(StorageError):
    """A write batch was used after it was committed or discarded."""


def require_bytes(what: str, value: object) -> bytes:
    """Return ``value`` if it is ``bytes``; raise ``TypeError`` naming ``what`` otherwise."""
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    return value


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """Return the smallest key greater than every key starting with ``prefix``.

    ``None`` means there is no such bound: the prefix is empty or all ``0xff`` bytes, so the range
    runs to the end of the key space.
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _write_all(target: KeyValueStore, items: list[tuple[bytes, bytes]], *, sync: bool) -> None:
    with target.write_batch(sync=sync) as batch:
        for key, value in items:
            batch.put(key, value)


class WriteBatch(ABC):
    """A set of puts and deletes applied to its store atomically, once.

    Use it as a context manager (committed on normal exit, discarded if the block raises) or call
    ``commit()`` / ``discard()`` explicitly. Nothing written to a batch is visible through the
    store, or through the batch, until it is committed.
    """

    def __init__(self, store: KeyValueStore, *, sync: bool) -> None:
        self._store = store
        self._sync = sync
        self._finished = False

    @property
    def sync(self) -> bool:
        """Whether committing waits for the write to reach stable storage."""
        return self._sync

    @property
    def finished(self) -> bool:
        """True once the batch has been committed or discarded."""
        return self._finished

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value`` when the batch is committed."""
        self._check_usable()
        self._put(require_bytes("key", key), require_bytes("value", value))

    def delete(self, key: bytes) -> None:
        """Remove ``key`` (if present) when the batch is committed."""
        self._check_usable()
        self._delete(require_bytes("key", key))

    def commit(self) -> None:
        """Apply every operation in the batch atomically; the batch cannot be used afterwards.

        If the write fails (``StorageError``), nothing was applied and the batch is still finished.
        """
        self._check_usable()
        self._finished = True
        self._write()

    def discard(self) -> None:
        """Drop every operation in the batch without applying any; idempotent."""
        if not self._finished:
            self._finished = True
            self._clear()

    def __enter__(self) -> Self:
        self._check_usable()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
        elif not self._finished:
            # An explicit commit() or discard() inside the block already decided the outcome.
            self.commit()

    def _check_usable(self) -> None:
        if self._finished:
            raise BatchClosedError("write batch already committed or discarded")
        self._store._check_open()

    @abstractmethod
    def _put(self, key: bytes, value: bytes) -> None:
        """Record a put (arguments already validated)."""

    @abstractmethod
    def _delete(self, key: bytes) -> None:
        """Record a delete (argument already validated)."""

    @abstractmethod
    def _write(self) -> None:
        """Apply the recorded operations atomically, honouring ``self.sync``."""

    @abstractmethod
    def _clear(self) -> None:
        """Forget the recorded operations."""


class KeyValueStore(ABC):
    """An ordered map from ``bytes`` to ``bytes`` with prefix iteration and atomic batches.

    Closing the store (``close()`` or leaving its ``with`` block) releases the backend; every later
    operation raises ``StorageClosedError``.
    """

    def __init__(self) -> None:
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._closed

    def get(self, key: bytes) -> bytes | None:
        """Return the value stored under ``key``, or ``None`` if there is none."""
        self._check_open()
        return self._get(require_bytes("key", key))

    def put(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value (not synced)."""
        self._check_open()
        self._put(require_bytes("key", key), require_bytes("value", value))

    def delete(self, key: bytes) -> None:
        """Remove ``key``; removing a missing key is not an error (not synced)."""
        self._check_open()
        self._delete(require_bytes("key", key))

    def iterate(
        self, prefix: bytes = b"", *, reverse: bool = False, after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for every key starting with ``prefix``, in key byte order.

        The order is ascending, or descending with ``reverse=True``. ``after`` is a cursor: the
        iteration starts strictly past that key in its direction (above it ascending, below it
        descending), seeking there instead of reading the keys before it, so a page costs what
        it returns; ``after`` must start with ``prefix`` (``ValueError`` otherwise) and need not
        exist. The iteration reflects the store at the time of this call. Advancing it after the
        store is closed raises ``StorageClosedError``.
        """
        self._check_open()
        prefix = require_bytes("prefix", prefix)
        if after is not None and not require_bytes("after", after).startswith(prefix):
            raise ValueError("the cursor 'after' must start with the prefix")
        return self._guarded(self._iterate(prefix, reverse, after))

    def write_batch(self, sync: bool = True) -> WriteBatch:
        """Start an atomic batch; with ``sync=True`` its commit waits for stable storage."""
        self._check_open()
        return self._new_batch(sync)

    def compact(self, prefix: bytes = b"") -> None:
        """Ask the backend to reclaim space held by deleted keys under ``prefix``.

        A hint, with no effect on what the store holds: LevelDB keeps deletion markers until a
        compaction removes them, and an iteration has to step over them, so a range with much
        churn (spent coins, say) is worth compacting now and then. Other backends may do nothing.
        """
        self._check_open()
        self._compact(require_bytes("prefix", prefix))

    def _compact(self, prefix: bytes) -> None:
        """Backend compaction hook; nothing by default."""
        del prefix

    def copy_into(self, target: KeyValueStore, *, batch_bytes: int = COPY_BATCH_BYTES) -> int:
        """Put every key of this store into ``target`` (which should start empty), in batches of
        at most ``batch_bytes``, the last one synced; return how many keys were copied.

        The copy is the store as it was when the call began (``iterate`` reads a snapshot), so
        writes made meanwhile are not in it; ``target`` may be of another backend."""
        self._check_open()
        count = 0
        size = 0
        chunk: list[tuple[bytes, bytes]] = []
        for key, value in self.iterate(b""):
            if size >= batch_bytes:  # more is coming: this chunk is not the last one
                _write_all(target, chunk, sync=False)
                chunk, size = [], 0
            chunk.append((key, value))
            size += len(key) + len(value)
            count += 1
        _write_all(target, chunk, sync=True)  # the last: what came before is durable with it
        return count

    def replace_contents(self, source: KeyValueStore) -> None:
        """Make this store hold exactly the keys and values of ``source`` (any backend, left
        open and unchanged). A crash in the middle leaves the old contents or the new, never a
        mixture (each backend says how); batches and iterations begun before are invalid
        afterwards."""
        self._check_open()
        source._check_open()
        self._replace_contents(source)

    def close(self) -> None:
        """Release the backend; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosedError(f"{type(self).__name__} is closed")

    def _guarded(self, items: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
        while True:
            self._check_open()
            try:
                item = next(items)
            except StopIteration:
                return
            yield item

    @abstractmethod
    def _get(self, key: bytes) -> bytes | None:
        """Backend lookup (argument already validated)."""

    @abstractmethod
    def _put(self, key: bytes, value: bytes) -> None:
        """Backend write (arguments already validated)."""

    @abstractmethod
    def _delete(self, key: bytes) -> None:
        """Backend delete (argument already validated); a missing key is fine."""

    @abstractmethod
    def _iterate(
        self, prefix: bytes, reverse: bool, after: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Return an iterator over the snapshot taken now (not a lazy generator); ``after``
        (already checked to start with ``prefix``) is exclusive, in the iteration's direction."""

    @abstractmethod
    def _new_batch(self, sync: bool) -> WriteBatch:
        """Return a fresh, empty batch bound to this store."""

    @abstractmethod
    def _replace_contents(self, source: KeyValueStore) -> None:
        """Backend hook of ``replace_contents`` (both stores already checked open)."""

    @abstractmethod
    def _close(self) -> None:
        """Release backend resources; called at most once."""
