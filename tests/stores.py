"""Key-value stores for tests that run on both backends, with a real reopen.

``Stores(backend, root)`` makes empty stores of one backend (``memory`` or ``leveldb``, the
LevelDB ones in directories under ``root``). ``reopen(store)`` is what a node restart does to
its store: a LevelDB store is closed and its directory opened again (so only what reached the
disk comes back); a memory store cannot be reopened and is handed back as it is.
``close_all()`` closes every store still open.
"""

from __future__ import annotations

from pathlib import Path

from node.storage import KeyValueStore, LevelDBStore, MemoryStore

BACKENDS = ("memory", "leveldb")


class Stores:
    """Makes, reopens and finally closes stores of one backend."""

    def __init__(self, backend: str, root: Path) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}")
        self.backend = backend
        self.root = root
        self._open: dict[int, tuple[KeyValueStore, Path | None]] = {}
        self._made = 0

    def new(self) -> KeyValueStore:
        self._made += 1
        if self.backend == "memory":
            store: KeyValueStore = MemoryStore()
            path = None
        else:
            path = self.root / f"db{self._made}"
            store = LevelDBStore(path)
        self._open[id(store)] = (store, path)
        return store

    def reopen(self, store: KeyValueStore) -> KeyValueStore:
        _, path = self._open.pop(id(store))
        if path is None:
            self._open[id(store)] = (store, None)
            return store
        store.close()
        again = LevelDBStore(path)
        self._open[id(again)] = (again, path)
        return again

    def close_all(self) -> None:
        for store, _ in self._open.values():
            store.close()
        self._open.clear()
