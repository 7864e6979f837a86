"""LevelDB ``KeyValueStore`` backend (through plyvel): the node's on-disk database.

Job: implement the ``kv`` contract on one LevelDB database per data directory. Batches are plyvel
write batches (``transaction=True``), written with a single ``WriteBatch.write()`` on commit, so
LevelDB applies them atomically and, with ``sync=True``, durably: a crash (even ``kill -9``)
leaves either all of a batch or none of it. Iteration uses ``db.iterator(prefix=...)`` forward
and an upper-bounded ``db.iterator(stop=..., reverse=True)`` in reverse (working round a plyvel
bug, see ``_iterate``); either reads from an implicit snapshot taken when the iterator is created.

Invariants: LevelDB's default comparator orders keys as unsigned bytes, which is the order the
contract promises. The LevelDB ``LOCK`` file is held from open to close, so only one store (in any
process) has a data directory open; a second open fails with a ``StorageError`` that says the
directory is in use. Every plyvel error is re-raised as ``StorageError`` with the original chained.

Left to others: the data directory layout and choosing the path (the node's configuration), the
key schema and its version (the chainstate), and recovery policy after a ``StorageError`` (the
node stops with the message).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import plyvel

from node.state import state_owned
from node.storage.kv import KeyValueStore, StorageError, WriteBatch, prefix_upper_bound

__all__ = ["LevelDBStore"]

logger = logging.getLogger(__name__)


def _describe(exc: BaseException) -> str:
    """Render a plyvel error's message, which plyvel passes as ``bytes``, as text."""
    if exc.args and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", "replace")
    return str(exc)


class _LevelDBWriteBatch(WriteBatch):
    """Wraps a plyvel ``WriteBatch``; LevelDB itself resolves later-operation-wins."""

    def __init__(self, store: LevelDBStore, *, sync: bool) -> None:
        super().__init__(store, sync=sync)
        self._target = store
        self._batch: Any = store._db.write_batch(transaction=True, sync=sync)

    def _put(self, key: bytes, value: bytes) -> None:
        self._batch.put(key, value)

    def _delete(self, key: bytes) -> None:
        self._batch.delete(key)

    def _write(self) -> None:
        try:
            self._batch.write()
        except plyvel.Error as exc:
            raise StorageError(
                f"LevelDB batch write failed in {self._target.path}: {_describe(exc)}"
            ) from exc
        finally:
            self._batch.clear()

    def _clear(self) -> None:
        self._batch.clear()


@state_owned
class LevelDBStore(KeyValueStore):
    """A ``KeyValueStore`` backed by the LevelDB database in directory ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, create_if_missing: bool = True) -> None:
        super().__init__()
        self._path = os.fspath(path)
        try:
            # A bloom filter spares point reads that miss (unknown coins, say) a disk seek per
            # level, so their cost does not grow with the database.
            self._db: Any = plyvel.DB(
                self._path, create_if_missing=create_if_missing, bloom_filter_bits=10
            )
        except plyvel.IOError as exc:
            message = _describe(exc)
            if "lock" in message.lower():
                raise StorageError(
                    f"data directory {self._path} is in use by another process or store "
                    f"(LevelDB LOCK is held): {message}"
                ) from exc
            raise StorageError(f"cannot open LevelDB at {self._path}: {message}") from exc
        except plyvel.Error as exc:
            raise StorageError(f"cannot open LevelDB at {self._path}: {_describe(exc)}") from exc
        logger.debug("opened LevelDB at %s", self._path)

    @property
    def path(self) -> str:
        """The database directory."""
        return self._path

    def _compact(self, prefix: bytes) -> None:
        try:
            self._db.compact_range(start=prefix or None, stop=prefix_upper_bound(prefix))
        except plyvel.Error as exc:
            raise self._failed("compaction", exc) from exc

    def _failed(self, operation: str, exc: BaseException) -> StorageError:
        return StorageError(f"LevelDB {operation} failed in {self._path}: {_describe(exc)}")

    def _get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._db.get(key)
        except plyvel.Error as exc:
            raise self._failed("get", exc) from exc
        return value

    def _put(self, key: bytes, value: bytes) -> None:
        try:
            self._db.put(key, value)
        except plyvel.Error as exc:
            raise self._failed("put", exc) from exc

    def _delete(self, key: bytes) -> None:
        try:
            self._db.delete(key)
        except plyvel.Error as exc:
            raise self._failed("delete", exc) from exc

    def _iterate(
        self, prefix: bytes, reverse: bool, after: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        # Create the plyvel iterator (and with it the snapshot) now, not on the first next().
        try:
            if after is not None:
                # plyvel takes no prefix together with start/stop: bound the range by hand, and
                # let _drain stop at the first key outside the prefix.
                upper = prefix_upper_bound(prefix)
                if reverse:
                    raw: Any = self._db.iterator(stop=after, reverse=True)  # keys < after
                elif upper is None:
                    raw = self._db.iterator(start=after, include_start=False)
                else:
                    raw = self._db.iterator(start=after, include_start=False, stop=upper)
            elif not reverse:
                raw = self._db.iterator(prefix=prefix)
            else:
                # plyvel 1.5.1 (Iterator.real_prev) yields nothing in reverse when the last key
                # in range equals the ``start`` bound, and ``prefix=`` sets start=prefix: a
                # reverse scan of prefix b"ab" over the single key b"ab" comes back empty. So
                # bound only the top (exclusive ``stop``) and end at the first key below prefix.
                upper = prefix_upper_bound(prefix)
                if upper is None:
                    raw = self._db.iterator(reverse=True)
                else:
                    raw = self._db.iterator(stop=upper, reverse=True)
        except plyvel.Error as exc:
            raise self._failed("iterate", exc) from exc
        return self._drain(raw, prefix)

    def _drain(self, raw: Any, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        try:
            while True:
                try:
                    item: tuple[bytes, bytes] = next(raw)
                except StopIteration:
                    return
                except plyvel.Error as exc:
                    raise self._failed("iterate", exc) from exc
                if not item[0].startswith(prefix):
                    return  # reverse, or a cursor's range: the first key outside the prefix
                yield item
        finally:
            raw.close()

    def _new_batch(self, sync: bool) -> WriteBatch:
        return _LevelDBWriteBatch(self, sync=sync)

    def _close(self) -> None:
        try:
            self._db.close()
        except plyvel.Error as exc:
            raise self._failed("close", exc) from exc
        logger.debug("closed LevelDB at %s", self._path)
