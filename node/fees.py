"""Fee estimates from the fee rates that recent blocks confirmed (SPEC 3.2, ``/fee-estimates``).

For each connected block the estimator records the fee rate (base units per byte) of every
non-coinbase transaction, computed from the block and its undo data, and how full the block was.
The estimate for a confirmation target of ``t`` blocks is a percentile of the fee rates confirmed
in the last ``WINDOW`` blocks that were at least half full: the 75th percentile for 1 block, the
median for 3, the 25th for 6, the 10th for 12, the 5th for 25 (a farther target accepts a lower
rate). A target between these uses the nearest one below it. Blocks with room to spare say
nothing about competition, so they are left out.

The floor: no estimate is ever below the minimum relay fee rate (1 unit per byte), and with no
data (a fresh regtest chain, or blocks that were never half full) every target answers the floor,
so sending on a new local network never fails for lack of fee data. Estimates never rise with the
target. Disconnected blocks are forgotten. Nothing is persisted: the window refills from the
blocks the node connects after a restart.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from client.models import TARGETS
from consensus import MAX_BLOCK_SIZE, tx_fee
from consensus.policy import MIN_RELAY_FEE_RATE
from node.chainstate.events import BlockConnected, BlockDisconnected, ChainEvent

PERCENTILES = {1: 0.75, 3: 0.50, 6: 0.25, 12: 0.10, 25: 0.05}
WINDOW = 25
FULL_ENOUGH = 0.5
FLOOR = MIN_RELAY_FEE_RATE


@dataclass(frozen=True)
class _BlockFees:
    block_hash: bytes
    size: int
    rates: tuple[float, ...]


class FeeEstimator:
    """Keeps the fee rates of the last ``WINDOW`` connected blocks."""

    def __init__(self, floor: int = FLOOR, max_block_size: int = MAX_BLOCK_SIZE) -> None:
        self.floor = floor
        self._max_block_size = max_block_size
        self._blocks: deque[_BlockFees] = deque(maxlen=WINDOW)

    def on_chain_event(self, event: ChainEvent) -> None:
        if isinstance(event, BlockConnected):
            rates = []
            for tx, spent in zip(event.block.txs[1:], event.undo.spent, strict=True):
                rates.append(tx_fee(tx, spent) / tx.size())
            self._blocks.append(_BlockFees(event.block.hash(), event.block.size(), tuple(rates)))
        elif (
            isinstance(event, BlockDisconnected)
            and self._blocks
            and self._blocks[-1].block_hash == event.block.hash()
        ):
            self._blocks.pop()

    def reset(self) -> None:
        """Forget every block (the chain was replaced by a devnet revert: as after a restart)."""
        self._blocks.clear()

    def estimate(self, target: int) -> int:
        """Base units per byte to confirm within ``target`` blocks (at least the floor)."""
        chosen = max((t for t in TARGETS if t <= target), default=TARGETS[0])
        rates = sorted(
            r for b in self._blocks if b.size >= FULL_ENOUGH * self._max_block_size for r in b.rates
        )
        if not rates:
            return self.floor
        # The percentile of recently confirmed rates: higher for a nearer target.
        position = min(len(rates) - 1, int(len(rates) * PERCENTILES[chosen]))
        return max(self.floor, math.ceil(rates[position]))

    def estimates(self) -> dict[int, int]:
        return {t: self.estimate(t) for t in TARGETS}
