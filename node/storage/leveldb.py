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

Replacing the contents (``replace_contents``, a devnet revert) never writes into the live
directory ``P``: the new contents are copied into ``P.incoming``, synced, renamed to ``P.ready``
(complete from then on), and swapped in with two renames, ``P`` -> ``P.old`` and ``P.ready`` ->
``P``, after which ``P.old`` is removed and the database reopened. Every open of ``P`` first runs
``recover_replacement(P)``, which finishes or undoes a swap a crash cut short: ``P.incoming`` is
deleted (an unfinished copy, never used); a ``P.ready`` is swapped in (moving ``P`` aside first
if it is still there); a ``P.old`` is deleted if ``P`` exists and renamed back to ``P`` if not.
So whatever moment a crash hits, ``P`` opens as either the old database or the new one, whole.

Left to others: the data directory layout and choosing the path (the node's configuration), the
key schema and its version (the chainstate), and recovery policy after a ``StorageError`` (the
node stops with the message).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

import plyvel

from node.state import state_owned
from node.storage.kv import KeyValueStore, StorageError, WriteBatch, prefix_upper_bound

__all__ = ["INCOMING", "OLD", "READY", "LevelDBStore", "recover_replacement"]

INCOMING = ".incoming"
READY = ".ready"
OLD = ".old"
"""Suffixes of the directories a replacement of ``P``'s contents goes through (see above)."""

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


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: str) -> None:
    """Every file of the directory ``path`` (not recursive: LevelDB's are flat), then itself."""
    for name in os.listdir(path):
        child = os.path.join(path, name)
        if os.path.isfile(child):
            fd = os.open(child, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(path)


def recover_replacement(path: str | os.PathLike[str]) -> None:
    """Finish or undo a replacement of ``path``'s contents that a crash interrupted (see the
    module's docstring); nothing to do, and nothing done, when none was under way."""
    live = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(live))
    if os.path.exists(live + INCOMING):
        shutil.rmtree(live + INCOMING)
        _log_recovery("removed an unfinished copy", live + INCOMING)
    if os.path.exists(live + READY):
        if os.path.exists(live):
            if os.path.exists(live + OLD):
                shutil.rmtree(live + OLD)
            os.replace(live, live + OLD)
        os.replace(live + READY, live)
        _fsync_dir(parent)
        _log_recovery("finished swapping in the replacement", live)
    if os.path.exists(live + OLD):
        if os.path.exists(live):
            shutil.rmtree(live + OLD)
        else:
            os.replace(live + OLD, live)
            _fsync_dir(parent)
            _log_recovery("put back the previous database", live)


def _log_recovery(what: str, path: str) -> None:
    logger.warning("interrupted replacement of a database: %s (%s)", what, path)


@state_owned
class LevelDBStore(KeyValueStore):
    """A ``KeyValueStore`` backed by the LevelDB database in directory ``path``."""

    def __init__(self, path: str | os.PathLike[str], *, create_if_missing: bool = True) -> None:
        super().__init__()
        self._path = os.fspath(path)
        try:
            recover_replacement(self._path)
        except OSError as exc:
            raise StorageError(
                f"cannot recover an interrupted revert at {self._path}: {exc}"
            ) from exc
        self._db: Any = self._open_db(create_if_missing)
        logger.debug("opened LevelDB at %s", self._path)

    def _open_db(self, create_if_missing: bool) -> Any:
        try:
            # A bloom filter spares point reads that miss (unknown coins, say) a disk seek per
            # level, so their cost does not grow with the database.
            return plyvel.DB(self._path, create_if_missing=create_if_missing, bloom_filter_bits=10)
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

    def _replace_contents(self, source: KeyValueStore) -> None:
        live = self._path
        try:
            for leftover in (live + INCOMING, live + READY, live + OLD):
                if os.path.exists(leftover):
                    shutil.rmtree(leftover)
            incoming = LevelDBStore(live + INCOMING)
            try:
                source.copy_into(incoming)
            finally:
                incoming.close()
            _fsync_tree(live + INCOMING)
            os.replace(live + INCOMING, live + READY)  # complete from here on
            parent = os.path.dirname(os.path.abspath(live))
            _fsync_dir(parent)
            self._db.close()
            self._closed = True  # until reopened: a failure below leaves a closed store
            os.replace(live, live + OLD)  # a crash from here: recover_replacement rolls forward
            os.replace(live + READY, live)
            _fsync_dir(parent)
            shutil.rmtree(live + OLD)
        except OSError as exc:
            raise StorageError(f"replacing the database at {live} failed: {exc}") from exc
        except plyvel.Error as exc:
            raise self._failed("replacement", exc) from exc
        self._db = self._open_db(create_if_missing=False)
        self._closed = False
        logger.info("replaced the contents of %s", live)

    def _close(self) -> None:
        try:
            self._db.close()
        except plyvel.Error as exc:
            raise self._failed("close", exc) from exc
        logger.debug("closed LevelDB at %s", self._path)
