"""Block index entries: what the node knows about each block it has stored.

Value of ``h`` + hash (plain msgpack, written and read only by the node)::

    [header bin80, height, chainwork bin32 (big-endian), status, sequence, reject_code bin]

``status`` is a set of flags. ``sequence`` counts blocks in the order they were stored and breaks
ties between chains of equal work: the chain whose tip was seen first stays (SPEC 2.2).
``reject_code`` is the reason a block failed, empty otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntFlag

import msgpack

from consensus import BlockHeader


class Status(IntFlag):
    """Flags of a block index entry."""

    HAVE_DATA = 1
    """The block's body is stored."""
    CONNECTED = 2
    """The block passed every rule once, when it connected."""
    FAILED = 4
    """The block itself breaks a rule; never accepted again."""
    FAILED_CHILD = 8
    """An ancestor failed; never accepted again."""


@dataclass(frozen=True)
class BlockIndexEntry:
    """One stored block: its header, place in the tree of chains, and status."""

    hash: bytes
    header: BlockHeader
    height: int
    chainwork: int
    status: Status
    sequence: int
    reject_code: str = ""

    @property
    def prev_hash(self) -> bytes:
        return self.header.prev_hash

    @property
    def failed(self) -> bool:
        return bool(self.status & (Status.FAILED | Status.FAILED_CHILD))

    @property
    def have_data(self) -> bool:
        return bool(self.status & Status.HAVE_DATA)

    def better_than(self, other: BlockIndexEntry) -> bool:
        """More work, or equal work and seen first."""
        if self.chainwork != other.chainwork:
            return self.chainwork > other.chainwork
        return self.sequence < other.sequence

    def with_status(self, status: Status, reject_code: str | None = None) -> BlockIndexEntry:
        return replace(
            self,
            status=status,
            reject_code=self.reject_code if reject_code is None else reject_code,
        )

    def serialize(self) -> bytes:
        return msgpack.packb(  # type: ignore[no-any-return]
            [
                self.header.serialize(),
                self.height,
                self.chainwork.to_bytes(32, "big"),
                int(self.status),
                self.sequence,
                self.reject_code.encode("ascii"),
            ],
            use_bin_type=True,
        )

    @classmethod
    def deserialize(cls, block_hash: bytes, data: bytes) -> BlockIndexEntry:
        header, height, work, status, sequence, code = msgpack.unpackb(data, raw=True)
        return cls(
            block_hash,
            BlockHeader.deserialize(header),
            height,
            int.from_bytes(work, "big"),
            Status(status),
            sequence,
            code.decode("ascii"),
        )
