"""Small asyncio helpers the node's background loops share.

``wait_event(event, timeout)`` waits for an ``asyncio.Event`` at most ``timeout`` seconds. It
exists because ``asyncio.wait_for`` in Python 3.11 swallows a cancellation that arrives in the
same loop iteration as the awaited future completes (it returns the result instead of raising
``CancelledError``): a loop such as "wait for a flush or an interval, then announce" then never
ends, and whoever cancelled it and awaits it (a node stopping) waits for ever. ``asyncio.timeout``
tells its own timeout apart from a cancellation from outside, so a cancellation always propagates.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """``True`` once ``event`` is set, ``False`` after ``timeout`` seconds; a cancellation of
    the caller always raises ``CancelledError`` (see the module docstring)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
