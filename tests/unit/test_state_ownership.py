"""The state's owner thread is checked (``node.state``; issue 19, acceptance 1).

The suite runs with ``TALLY_CHECK_THREADS=1`` (``tests/conftest.py``), so the store, the
chainstate and the mempool raise ``WrongThreadError`` when a thread other than the one that made
them touches them; these tests show it, and that the owner itself and a hand-over work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from node.chainstate import Chainstate
from node.mempool import ChainView, Mempool
from node.state import CHECK_THREADS_ENV, WrongThreadError, checking, hand_over, state_owned
from node.storage import MemoryStore
from tests.helpers import REGTEST


def on_another_thread(fn: Callable[[], object]) -> BaseException | None:
    """Run ``fn`` on a new thread; what it raised, if anything."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as err:  # reported to the test thread
            raised.append(err)

    thread = threading.Thread(target=run, name="intruder")
    thread.start()
    thread.join()
    return raised[0] if raised else None


def test_the_suite_runs_with_the_check_on() -> None:
    assert checking(), f"{CHECK_THREADS_ENV}=1 must be set for the whole suite"


def test_the_store_chainstate_and_mempool_refuse_another_thread() -> None:
    store = MemoryStore()
    chainstate = Chainstate(store, REGTEST, clock=lambda: 2**31)
    mempool = Mempool(ChainView.of(chainstate), REGTEST, store=store)
    for touch in (
        lambda: store.get(b"x"),
        lambda: store.put(b"x", b"y"),
        lambda: chainstate.tip,
        lambda: chainstate.get_block(REGTEST.genesis.hash()),
        lambda: mempool.get(b"\x00" * 32),
        lambda: len(list(mempool.transactions())),
    ):
        err = on_another_thread(touch)
        assert isinstance(err, WrongThreadError), err
        assert "intruder" in str(err) and "MainThread" in str(err)
    # The owner itself is served.
    assert store.get(b"x") is None
    assert chainstate.tip.height == 0
    assert mempool.get(b"\x00" * 32) is None


def test_state_made_on_the_state_thread_belongs_to_it() -> None:
    """As in a node: made by a call on a one-thread executor, used there, refused elsewhere."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="state") as state:
        store = state.submit(MemoryStore).result()
        assert state.submit(store.get, b"k").result() is None
        with pytest.raises(WrongThreadError, match="state"):
            store.get(b"k")


def test_hand_over_moves_ownership() -> None:
    store = MemoryStore()
    assert on_another_thread(lambda: (hand_over(store), store.put(b"k", b"v"))) is None
    with pytest.raises(WrongThreadError):
        store.get(b"k")


def test_a_class_defined_without_the_check_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHECK_THREADS_ENV)

    @state_owned
    class Plain:
        def value(self) -> int:
            return 1

    plain = Plain()
    assert on_another_thread(plain.value) is None
