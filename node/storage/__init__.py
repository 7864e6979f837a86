"""Key-value storage for the Tally node: one interface, two backends.

``KeyValueStore`` (in ``kv``) is the interface the chainstate is written against. ``MemoryStore``
is the in-memory backend for unit tests; ``LevelDBStore`` is the on-disk backend (plyvel) used by
a running node, one database per data directory. Both pass the same contract test suite
(``tests/unit/test_storage_contract.py``).

This package stores opaque bytes only: the key schema, its versioning and the encoding of values
belong to the chainstate.
"""

from node.storage.kv import (
    BatchClosedError,
    KeyValueStore,
    StorageClosedError,
    StorageError,
    WriteBatch,
)
from node.storage.leveldb import LevelDBStore
from node.storage.memory import MemoryStore

__all__ = [
    "BatchClosedError",
    "KeyValueStore",
    "LevelDBStore",
    "MemoryStore",
    "StorageClosedError",
    "StorageError",
    "WriteBatch",
]
