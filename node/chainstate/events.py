"""Events the chainstate publishes after each state change is committed.

Subscribers (the mempool, the miner, P2P, metrics) receive them in order, synchronously, after
the write batch that made them true has been committed: a subscriber never sees an event for a
state that a crash could still undo.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus import Block, BlockUndo


@dataclass(frozen=True)
class BlockConnected:
    """``block`` became part of the active chain at ``height``; ``undo`` lists what it spent."""

    block: Block
    height: int
    undo: BlockUndo


@dataclass(frozen=True)
class BlockDisconnected:
    """``block`` (at ``height``) left the active chain; ``undo`` lists the coins it restored."""

    block: Block
    height: int
    undo: BlockUndo


@dataclass(frozen=True)
class TipChanged:
    """The active chain's tip moved; ``reorg_depth`` blocks were disconnected on the way."""

    old_hash: bytes
    new_hash: bytes
    height: int
    reorg_depth: int


ChainEvent = BlockConnected | BlockDisconnected | TipChanged
