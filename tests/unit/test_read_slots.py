"""API reads never queue deep on the state thread (issue 17, item 1: reads off the validator's
back).

``NodeService.call`` runs work on the one state thread, first come first served; the API's reads
go through ``NodeService.read``, which lets at most ``READS_IN_FLIGHT`` of them wait there. So
however many clients read at once, a command (a block from a peer, a transaction) finds at most
that many reads ahead of it. And every call publishes a ``NodeStatus`` that ``/info`` reads
without going to the state thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from node.config import Settings
from node.service import READS_IN_FLIGHT, NodeService

READERS = 20


def test_a_command_waits_behind_at_most_the_reads_in_flight(tmp_path: Path) -> None:
    service = NodeService(Settings(network="regtest", datadir=tmp_path))
    order: list[str] = []
    lock = threading.Lock()

    def slow_read(n: int) -> int:
        time.sleep(0.02)
        with lock:
            order.append(f"read{n}")
        return n

    def command() -> str:
        with lock:
            order.append("command")
        return "done"

    async def scenario() -> None:
        reads = [asyncio.ensure_future(service.read(slow_read, n)) for n in range(READERS)]
        await asyncio.sleep(0)  # every read has asked for its slot
        assert await service.call(command) == "done"
        assert await asyncio.gather(*reads) == list(range(READERS))

    try:
        asyncio.run(scenario())
    finally:
        service._state.shutdown(wait=True)
    assert len(order) == READERS + 1
    assert order.index("command") <= READS_IN_FLIGHT, order


def test_every_call_publishes_the_status(tmp_path: Path) -> None:
    service = NodeService(Settings(network="regtest", datadir=tmp_path))
    tip = object()
    service.chainstate = cast(Any, SimpleNamespace(tip=tip))

    class Pool:
        total_bytes = 1234

        def __len__(self) -> int:
            return 7

    service.mempool = cast(Any, Pool())

    async def scenario() -> None:
        assert service.status is None
        await service.call(lambda: None)
        status = service.status
        assert status is not None
        assert (status.tip, status.mempool_count, status.mempool_bytes) == (tip, 7, 1234)
        Pool.total_bytes = 99
        await service.read(lambda: None)
        assert service.status is not status and service.status.mempool_bytes == 99

    try:
        asyncio.run(scenario())
    finally:
        service._state.shutdown(wait=True)
