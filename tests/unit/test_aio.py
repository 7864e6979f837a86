"""``node.aio.wait_event``: a cancellation always reaches the waiting loop.

Regression: the relay's background loops waited with ``asyncio.wait_for(event.wait(), t)``. On
Python 3.11 a cancellation arriving in the same loop iteration as the event being set is
swallowed (``wait_for`` returns instead of raising), so a node stopping right after a block
(which sets the relay's flush event) waited for ever for its announcer task:
``tests/integration/test_storage_faults.py`` hung in its fixture. The race is made exact here.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest

from node.aio import wait_event


async def loop_until_cancelled(wait: object, event: asyncio.Event, rounds: list[int]) -> None:
    while True:
        await wait(event)  # type: ignore[operator]
        event.clear()
        rounds.append(1)


async def cancel_as_the_event_is_set(wait: object) -> bool:
    """Whether a loop waiting with ``wait`` ends when cancelled as its event is set."""
    event = asyncio.Event()
    rounds: list[int] = []
    task = asyncio.create_task(loop_until_cancelled(wait, event, rounds))
    await asyncio.sleep(0.01)  # the loop is waiting
    event.set()
    task.cancel()  # same iteration: the waiter completes and the task is cancelled
    await asyncio.sleep(0.3)  # several of the loop's 50 ms rounds, had it gone on
    ended = task.done()
    task.cancel()  # clean up a loop that swallowed the first cancellation
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(task, 1)
    return ended


def test_wait_event_lets_a_cancellation_through_when_the_event_fires_at_once() -> None:
    async def wait(event: asyncio.Event) -> bool:
        return await wait_event(event, 0.05)

    assert asyncio.run(cancel_as_the_event_is_set(wait)) is True


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the race is 3.11's wait_for")
def test_wait_for_on_311_swallows_that_cancellation() -> None:
    """The positive control: the old way loses the cancellation (so the test above can fail)."""

    async def wait(event: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), 0.05)

    assert asyncio.run(cancel_as_the_event_is_set(wait)) is False


def test_wait_event_times_out_and_reports_a_set_event() -> None:
    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        timed_out = await wait_event(event, 0.01)
        event.set()
        return timed_out, await wait_event(event, 1)

    assert asyncio.run(scenario()) == (False, True)
