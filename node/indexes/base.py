"""What every index writer is given and promises: the ``IndexWriter`` protocol.

Job: define the contract between the chain and its optional explorer indexes, as Bitcoin
Core's ``BaseIndex`` does for ``src/index/``. An index writer derives its keys from the blocks
of the active chain; when a block is connected or disconnected it is handed the block, its undo
data and the UTXO changes of that block (a ``BlockChange``), and adds its puts and deletes to
the write batch the chain is about to commit.

State owned: none here; each writer owns the key prefixes it declares (registered, with a
description, in ``node.chainstate.schema``).

Invariants every writer keeps:
- It writes only through the batch it is given, and only under its own prefixes: the chain's
  connect or disconnect batch then moves the index with the UTXO set and the tip, atomically and
  synced, so a crash leaves the index at the chain's tip, never before or after it.
- ``disconnect_block`` undoes exactly what ``connect_block`` wrote for the same block.
- Its reads see only committed state (what was written before the current batch).
- It never validates anything: the block it is given has passed every rule.

Left to others: when blocks connect (``node.chainstate.chain``), the UTXO set
(``node.chainstate.coins``), rebuilding (``node.chainstate.reindex`` wipes the derived prefixes
and connects every block again, which rebuilds each index), and joining index records with the
block index (the ``Chainstate`` facade).

This package imports nothing from ``node.chainstate``: the chainstate depends on its indexes,
not the other way round.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from consensus import Block, BlockUndo, Coin, OutPoint
from node.storage import WriteBatch

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def u32(n: int) -> bytes:
    """``n`` as 4 big-endian bytes (key order is numeric order)."""
    return _U32.pack(n)


def u64(n: int) -> bytes:
    """``n`` as 8 big-endian bytes."""
    return _U64.pack(n)


def read_u32(b: bytes) -> int:
    return int(_U32.unpack(b)[0])


def read_u64(b: bytes) -> int:
    return int(_U64.unpack(b)[0])


@dataclass(frozen=True)
class BlockChange:
    """One block entering or leaving the active chain, with what an index needs to follow it.

    ``coins`` are the UTXO set's changes in the same batch (``None``: the coin is removed, or
    was created and spent inside the block); ``gone`` holds the coin behind every ``None``;
    ``encoded`` each new coin serialized (the bytes of its ``c`` record, made once).
    Connecting, ``undo`` lists the coins the block spent; disconnecting, the coins it restores.
    """

    block: Block
    height: int
    undo: BlockUndo
    coins: Mapping[OutPoint, Coin | None]
    gone: Mapping[OutPoint, Coin]
    encoded: Mapping[OutPoint, bytes]


class IndexWriter(Protocol):
    """An index kept in the chain's own write batches (see the module's invariants)."""

    @property
    def name(self) -> str:
        """A short name, for logs."""
        ...

    @property
    def prefixes(self) -> tuple[bytes, ...]:
        """The key prefixes it owns (each registered in ``node.chainstate.schema``)."""
        ...

    def connect_block(self, batch: WriteBatch, change: BlockChange) -> None:
        """Add the puts and deletes that record ``change.block`` joining the active chain."""
        ...

    def disconnect_block(self, batch: WriteBatch, change: BlockChange) -> None:
        """Add the puts and deletes that undo ``connect_block`` for ``change.block``."""
        ...

    def maintain(self, height: int) -> None:
        """Housekeeping after a connect at ``height`` has been committed (outside the batch)."""
        ...
