"""The ``after`` cursor of ``KeyValueStore.iterate``, on every backend (a contract test).

``iterate(prefix, after=K)`` starts strictly past ``K`` in the iteration's direction; ``K`` need
not exist. A model (a sorted list filtered by hand) is the oracle, for fixed edge cases and for
random key sets; the LevelDB backend is also checked past plyvel's quirk with reverse ranges.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.storage import KeyValueStore
from tests.unit.test_storage_contract import BACKENDS, open_store


def model(keys: set[bytes], prefix: bytes, reverse: bool, after: bytes | None) -> list[bytes]:
    chosen = sorted(k for k in keys if k.startswith(prefix))
    if after is not None:
        chosen = [k for k in chosen if (k < after if reverse else k > after)]
    return chosen[::-1] if reverse else chosen


def fill(store: KeyValueStore, keys: set[bytes]) -> None:
    with store.write_batch() as batch:
        for k in keys:
            batch.put(k, b"v" + k)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    s = open_store(request.param, tmp_path)
    yield s
    s.close()


KEYS = {
    b"a",
    b"ab",
    b"ab\x00",
    b"ab\x01",
    b"ab\xff",
    b"ab\xff\xff",
    b"ac",
    b"b",
    b"\xff",
    b"\xff\xff",
}
CASES = [
    (b"ab", b"ab"),
    (b"ab", b"ab\x00"),
    (b"ab", b"ab\x00\x00"),  # absent, between two keys
    (b"ab", b"ab\xff\xff"),
    (b"ab", b"ab\xff\xff\xff"),  # absent, past the last key of the prefix
    (b"", b"a"),
    (b"", b"\xff\xff"),
    (b"\xff", b"\xff"),
    (b"\xff", b"\xff\xff"),
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("prefix", "after"), CASES)
def test_the_cursor_is_exclusive_in_both_directions(
    store: KeyValueStore, prefix: bytes, after: bytes, reverse: bool
) -> None:
    fill(store, KEYS)
    got = [k for k, _ in store.iterate(prefix, reverse=reverse, after=after)]
    assert got == model(KEYS, prefix, reverse, after)


def test_values_come_with_their_keys(store: KeyValueStore) -> None:
    fill(store, KEYS)
    assert list(store.iterate(b"ab", after=b"ab\x00")) == [
        (k, b"v" + k) for k in model(KEYS, b"ab", False, b"ab\x00")
    ]


def test_a_cursor_outside_the_prefix_is_refused(store: KeyValueStore) -> None:
    with pytest.raises(ValueError, match="start with the prefix"):
        store.iterate(b"ab", after=b"ac")


@pytest.mark.parametrize("backend", BACKENDS)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.sets(st.binary(min_size=1, max_size=3), max_size=30),
    prefix=st.binary(max_size=2),
    tail=st.binary(max_size=3),
    reverse=st.booleans(),
)
def test_any_cursor_agrees_with_the_model(
    backend: str, tmp_path: Path, keys: set[bytes], prefix: bytes, tail: bytes, reverse: bool
) -> None:
    directory = Path(tempfile.mkdtemp(dir=tmp_path))  # a fresh store for every example
    store = open_store(backend, directory)
    try:
        fill(store, keys)
        after = prefix + tail
        got = [k for k, _ in store.iterate(prefix, reverse=reverse, after=after)]
        assert got == model(keys, prefix, reverse, after)
    finally:
        store.close()
