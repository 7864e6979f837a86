"""Snapshots of a node's whole state, and reverts to them (SPEC 6, the devnet toolkit).

Job: ``SnapshotArea`` keeps named copies of the node's store under ``<datadir>/snapshots/``:
taking one copies the live store (chain, UTXO set, indexes, the persisted mempool, bans: every
key) into a new LevelDB database; reverting replaces the live store's contents with a copy's
(``KeyValueStore.replace_contents``). Rebuilding the chainstate, mempool and fee estimator from
the replaced store is the service's (``NodeService.revert``), as start-up builds them.

Layout, one directory a snapshot::

    snapshots/<name>/db/          the LevelDB copy
    snapshots/<name>/meta.json    {"name", "height", "best_hash", "created"}
    snapshots/.tmp-<name>/        a snapshot being written (removed at the next open)
    snapshots/.old-<name>/        the snapshot a new one of the same name is replacing

Invariants:
- a snapshot directory is complete or absent: it is written under ``.tmp-<name>`` (the copy's
  last batch synced, ``meta.json`` synced) and renamed into place; retaking a name renames the
  old one to ``.old-<name>`` first and removes it after. Opening the area finishes or undoes
  what a crash left (``_recover``): ``.tmp-*`` are deleted, an ``.old-<name>`` is deleted if
  ``<name>`` exists and renamed back if not;
- names match ``client.models.SNAPSHOT_NAME_PATTERN`` (no leading dot, so no name is one of the
  area's own), at most ``client.models.MAX_SNAPSHOTS`` of them;
- a revert never writes into the live directory: see ``node.storage.leveldb`` for its
  crash-safe swap;
- everything here runs on the state thread (the stores belong to it, ``node.state``); a copy
  is consistent because the store's iteration reads one snapshot of it, and no other call runs
  meanwhile.

Left to others: what a name means to a devnet (``tally-devnet``), the HTTP routes
(``node.api.routes.snapshots``), pausing mining and resetting P2P around a revert (the service).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from client.models import MAX_SNAPSHOTS, SNAPSHOT_NAME_PATTERN
from node.storage import KeyValueStore, LevelDBStore, StorageError

__all__ = [
    "SnapshotArea",
    "SnapshotFailedError",
    "SnapshotInfo",
    "SnapshotLimitError",
    "UnknownSnapshotError",
]

log = logging.getLogger(__name__)

NAME = re.compile(SNAPSHOT_NAME_PATTERN)
DB = "db"
META = "meta.json"
TMP = ".tmp-"
OLD = ".old-"


class UnknownSnapshotError(LookupError):
    """No snapshot has that name."""


class SnapshotLimitError(ValueError):
    """A new name when ``MAX_SNAPSHOTS`` snapshots exist already."""


class SnapshotFailedError(RuntimeError):
    """A snapshot could not be written (disk full, say), or a snapshot's copy cannot be opened;
    the live store is as it was."""


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    height: int
    best_hash: bytes
    """Internal byte order."""
    created: int
    """Unix seconds (wall clock)."""


def valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME.fullmatch(name) is not None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotArea:
    """The snapshots of one data directory."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._clock = clock
        self.root.mkdir(parents=True, exist_ok=True)
        self._recover()

    def _recover(self) -> None:
        for entry in self.root.iterdir():
            if entry.name.startswith(TMP):
                shutil.rmtree(entry, ignore_errors=True)
                log.warning("removed an unfinished snapshot: %s", entry.name)
            elif entry.name.startswith(OLD):
                current = self.root / entry.name[len(OLD) :]
                if current.exists():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    os.replace(entry, current)
                    log.warning("put back snapshot %s (its replacement did not finish)", current)

    # --- reading --------------------------------------------------------------------------------

    def _read_meta(self, directory: Path) -> SnapshotInfo | None:
        try:
            data = json.loads((directory / META).read_text())
            return SnapshotInfo(
                str(data["name"]),
                int(data["height"]),
                bytes.fromhex(str(data["best_hash"])),
                int(data["created"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def list(self) -> list[SnapshotInfo]:
        """Every complete snapshot, oldest first (then by name)."""
        found: list[SnapshotInfo] = []
        if not self.root.is_dir():
            return found
        for entry in self.root.iterdir():
            if entry.is_dir() and valid_name(entry.name):
                info = self._read_meta(entry)
                if info is not None and info.name == entry.name:
                    found.append(info)
        return sorted(found, key=lambda i: (i.created, i.name))

    def get(self, name: str) -> SnapshotInfo:
        info = self._read_meta(self.root / name) if valid_name(name) else None
        if info is None:
            raise UnknownSnapshotError(f"no snapshot is named {name!r}")
        return info

    # --- taking and restoring -------------------------------------------------------------------

    def take(self, live: KeyValueStore, name: str, height: int, best_hash: bytes) -> SnapshotInfo:
        """Copy ``live`` (at the tip ``height``/``best_hash``) as snapshot ``name``, replacing
        one of that name. ``SnapshotLimitError`` for a new name past the limit,
        ``SnapshotFailedError`` if it cannot be written (nothing is left of it)."""
        if not valid_name(name):
            raise ValueError(f"{name!r} is not a snapshot name")
        final = self.root / name
        if not final.exists() and len(self.list()) >= MAX_SNAPSHOTS:
            raise SnapshotLimitError(
                f"there are {MAX_SNAPSHOTS} snapshots already: retake one of their names"
            )
        tmp = self.root / (TMP + name)
        try:
            info = self._write(live, tmp, name, height, best_hash)
        except (OSError, StorageError) as err:
            shutil.rmtree(tmp, ignore_errors=True)
            old = self.root / (OLD + name)
            if old.exists() and not final.exists():
                os.replace(old, final)  # the one it was replacing stays
            raise SnapshotFailedError(f"snapshot {name!r} could not be written: {err}") from err
        log.info("snapshot %s taken at height %d", name, height)
        return info

    def _write(
        self, live: KeyValueStore, tmp: Path, name: str, height: int, best_hash: bytes
    ) -> SnapshotInfo:
        """Write the snapshot under ``tmp``, then rename it into place (see the module)."""
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        copy = LevelDBStore(tmp / DB)
        try:
            live.copy_into(copy)
        finally:
            copy.close()
        info = SnapshotInfo(name, height, best_hash, int(self._clock()))
        meta = tmp / META
        meta.write_text(
            json.dumps(
                {
                    "name": info.name,
                    "height": info.height,
                    "best_hash": info.best_hash.hex(),
                    "created": info.created,
                }
            )
        )
        _fsync(meta)
        _fsync(tmp)
        final = self.root / name
        old = self.root / (OLD + name)
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync(self.root)
        shutil.rmtree(old, ignore_errors=True)
        return info

    def restore(self, live: KeyValueStore, name: str) -> SnapshotInfo:
        """Replace ``live``'s contents with snapshot ``name``'s, which is kept.
        ``UnknownSnapshotError`` or ``SnapshotFailedError`` (nothing changed) if there is none
        or its copy cannot be opened; a ``StorageError`` from the replacement itself (the live
        store may be closed: the node must stop)."""
        info = self.get(name)
        try:
            copy = LevelDBStore(self.root / name / DB, create_if_missing=False)
        except StorageError as err:
            raise SnapshotFailedError(f"snapshot {name!r} cannot be opened: {err}") from err
        try:
            live.replace_contents(copy)
        finally:
            copy.close()
        log.info("reverted to snapshot %s (height %d)", name, info.height)
        return info
