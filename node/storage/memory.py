"""In-memory ``KeyValueStore`` backend, for unit tests and tools that need no persistence.

Job: implement the ``kv`` contract with a dict plus a sorted key list. ``get`` is O(1);
``put``/``delete`` of a new/existing key are O(log n) to locate plus a list insert/remove; prefix
iteration finds its range with ``bisect`` and copies only the matching items, so it costs
O(log n + k) for k results, not a sort per call.

Invariants: ``_keys`` is always exactly ``sorted(_data)``; an iteration works on a copy of its range
taken when ``iterate`` is called (the same snapshot semantics as the LevelDB backend).

``replace_contents`` builds the new dict and key list aside and swaps them in with one
assignment each (no crash can leave a mixture: nothing survives a crash here anyway).

Left to others: durability (there is none; ``sync`` is accepted and ignored), the key schema
(the chainstate), and thread-safety (none, as for every store).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from node.state import state_owned
from node.storage.kv import KeyValueStore, WriteBatch, prefix_upper_bound

__all__ = ["MemoryStore"]


class _MemoryWriteBatch(WriteBatch):
    """Buffers operations as ``key -> value`` (``None`` = delete) so a later one on a key wins."""

    def __init__(self, store: MemoryStore, *, sync: bool) -> None:
        super().__init__(store, sync=sync)
        self._target = store
        self._ops: dict[bytes, bytes | None] = {}

    def _put(self, key: bytes, value: bytes) -> None:
        self._ops[key] = value

    def _delete(self, key: bytes) -> None:
        self._ops[key] = None

    def _write(self) -> None:
        # Nothing below can fail half-way for valid bytes keys, so the batch is all-or-nothing.
        ops, self._ops = self._ops, {}
        for key, value in ops.items():
            if value is None:
                self._target._delete(key)
            else:
                self._target._put(key, value)

    def _clear(self) -> None:
        self._ops = {}


@state_owned
class MemoryStore(KeyValueStore):
    """A ``KeyValueStore`` held in a dict plus a sorted list of its keys."""

    def __init__(self) -> None:
        super().__init__()
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []

    def __len__(self) -> int:
        return len(self._data)

    def _get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def _put(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            self._keys.insert(bisect_left(self._keys, key), key)
        self._data[key] = value

    def _delete(self, key: bytes) -> None:
        if key in self._data:
            del self._data[key]
            del self._keys[bisect_left(self._keys, key)]

    def _iterate(
        self, prefix: bytes, reverse: bool, after: bytes | None
    ) -> Iterator[tuple[bytes, bytes]]:
        lo = bisect_left(self._keys, prefix)
        upper = prefix_upper_bound(prefix)
        hi = len(self._keys) if upper is None else bisect_left(self._keys, upper, lo)
        if after is not None:
            if reverse:
                hi = bisect_left(self._keys, after, lo, hi)
            else:
                lo = bisect_right(self._keys, after, lo, hi)
        items = [(key, self._data[key]) for key in self._keys[lo:hi]]
        if reverse:
            items.reverse()
        return iter(items)

    def _new_batch(self, sync: bool) -> WriteBatch:
        return _MemoryWriteBatch(self, sync=sync)

    def _replace_contents(self, source: KeyValueStore) -> None:
        items = list(source.iterate(b""))  # ascending key order: the sorted key list as it comes
        self._data = dict(items)
        self._keys = [key for key, _ in items]

    def _close(self) -> None:
        self._data = {}
        self._keys = []
