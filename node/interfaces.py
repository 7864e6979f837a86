"""The narrow surfaces the HTTP API depends on, so that it never imports the service.

``node.service`` is the composition root: it builds the state, P2P, the miner and the HTTP
application, and it is the one module that knows them all. The API's handlers need only part of
it, written down here as protocols: ``NodeCommands`` (the commands and published snapshots a
handler uses), ``PeersView`` (what ``/info`` and ``/admin/peers`` read of P2P) and ``FeeView``.
``NodeService`` satisfies ``NodeCommands`` structurally (mypy checks it where the service hands
itself to ``make_app``). Also here, because both sides name them: the node's ``VERSION``,
``CommandError`` (a command refused as asked: HTTP 400 with its code) and ``NodeStatus``, the
immutable snapshot the state thread publishes after every call. ``ToolkitCommands`` is the devnet
toolkit's surface (``node.toolkit``: the clock, automine, clearing the mempool, a scripted reorg),
with the plain results it answers (``ClockState``, ``AutomineState``, ``ReorgResult``).

Invariants: nothing here touches state; this module imports no other part of the node but the
types it names (``tests/unit/test_layering.py`` keeps the direction api -> interfaces).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from client.models import AutomineMode
from consensus import NetworkParams, ValidationError
from node.chainstate import AcceptResult as BlockAcceptResult
from node.chainstate.blockindex import BlockIndexEntry
from node.config import Settings
from node.events import EventHub
from node.mempool import AcceptResult as TxAcceptResult
from node.metrics import NodeMetrics
from node.snapshots import SnapshotInfo

__all__ = [
    "VERSION",
    "AutomineState",
    "ClockState",
    "CommandError",
    "FeeView",
    "NodeCommands",
    "NodeStatus",
    "PeersView",
    "ReorgResult",
    "ToolkitCommands",
    "SnapshotInfo",
]

VERSION = "0.1.0"

T = TypeVar("T")


class CommandError(Exception):
    """A command that cannot be carried out as asked (HTTP 400 with ``code``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NodeStatus:
    """What ``/info`` shows of the chainstate and the mempool, as of the end of the latest call
    on the state thread: published there (``NodeService``), read on any thread (it is never
    changed, only replaced)."""

    tip: BlockIndexEntry
    mempool_count: int
    mempool_bytes: int


class PeersView(Protocol):
    """What the API reads of P2P (on the event loop, which owns P2P's tables)."""

    @property
    def peers(self) -> dict[str, Any]: ...

    def synced(self) -> bool: ...

    def describe(self) -> dict[str, Any]: ...


class FeeView(Protocol):
    def estimates(self) -> dict[int, int]: ...


@dataclass(frozen=True)
class ClockState:
    """The node's clock: ``now`` (Unix seconds) and how far it runs from the wall clock."""

    now: int
    offset: int


@dataclass(frozen=True)
class AutomineState:
    """The background mining mode, its interval (``None``: back to back, or not ``interval``
    mode) and the address it pays (``None`` when off)."""

    mode: AutomineMode
    interval: float | None
    address: str | None


@dataclass(frozen=True)
class ReorgResult:
    """A scripted reorg: the tips before and after, the new height, the blocks that left the
    chain (the old tip first) and the txids taken out of the mempool (``drop``, descendants)."""

    old_tip: bytes
    new_tip: bytes
    height: int
    disconnected: tuple[bytes, ...]
    dropped: tuple[bytes, ...]


class ToolkitCommands(Protocol):
    """The devnet toolkit's commands (``node.toolkit``), as the API's handlers see them; the
    API offers them on regtest only."""

    def clock_state(self) -> ClockState: ...

    def set_time(self, unix: int) -> Awaitable[ClockState]: ...

    def advance_time(self, seconds: int) -> Awaitable[ClockState]: ...

    def reset_time(self) -> Awaitable[ClockState]: ...

    def automine_state(self) -> AutomineState: ...

    def set_automine(
        self, mode: AutomineMode, address: str | None, interval: float | None
    ) -> Awaitable[AutomineState]: ...

    def clear_mempool(self, txids: list[bytes] | None) -> Awaitable[int]: ...

    def reorg(
        self, depth: int, drop: list[bytes], address: str | None
    ) -> Awaitable[ReorgResult]: ...


class NodeCommands(Protocol):
    """The service as the API's handlers see it."""

    settings: Settings
    params: NetworkParams
    metrics: NodeMetrics
    token: str
    status: NodeStatus | None
    events: EventHub

    @property
    def fees(self) -> FeeView: ...

    @property
    def p2p(self) -> PeersView: ...

    @property
    def mining(self) -> bool: ...

    @property
    def toolkit(self) -> ToolkitCommands: ...

    def read(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]: ...

    def published_tip(self) -> BlockIndexEntry: ...

    def refresh_gauges(self) -> None: ...

    def submit_tx(self, raw: bytes) -> Awaitable[TxAcceptResult]: ...

    def submit_txs(
        self, raws: list[bytes]
    ) -> Awaitable[list[TxAcceptResult | ValidationError]]: ...

    def submit_block(self, raw: bytes) -> Awaitable[BlockAcceptResult]: ...

    def invalidate_block(self, block_hash: bytes) -> Awaitable[tuple[bytes, int]]: ...

    def reconsider_block(self, block_hash: bytes) -> Awaitable[tuple[bytes, int]]: ...

    def generate(self, count: int, address: Any) -> Awaitable[list[bytes]]: ...

    def set_mining(self, enabled: bool, address: str | None, block_time: float | None) -> None: ...

    def add_peer(self, url: str) -> Awaitable[bool]: ...

    def request_stop(self) -> None: ...

    # devnet toolkit: snapshots, partitions (regtest only: CommandError not-allowed elsewhere)

    def take_snapshot(self, name: str) -> Awaitable[SnapshotInfo]: ...

    def list_snapshots(self) -> Awaitable[list[SnapshotInfo]]: ...

    def revert(self, name: str) -> Awaitable[SnapshotInfo]: ...

    def partition(self, urls: list[str]) -> list[str]: ...

    def heal(self) -> Awaitable[tuple[list[str], list[str]]]: ...
