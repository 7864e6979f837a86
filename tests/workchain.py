"""Chains of differing work that are cheap to mine, for tests of chain selection by work.

On regtest every block carries ``pow_limit`` bits, so "most work" and "most blocks" cannot be
told apart. ``WORK_PARAMS`` is regtest with Bitcoin's retarget switched on every 4 blocks at a
30-second spacing (a 120-second interval, clamped to [30 s, 480 s]). Its ``pow_limit`` is
regtest's (about 2 hashes a block), so the genesis block is regtest's own, and a branch whose
blocks come 1 second apart retargets at height 4 to a quarter of the limit (about 8 hashes a
block): 4 times the work per block. Blocks 120 seconds apart keep ``pow_limit`` (the new target
is clamped to the limit). Work is plain arithmetic: ``block_work(bits)`` summed over a chain,
so a test can say how much work each branch has without asking the code under test.

Blocks are made by ``tests.helpers.mine_block`` (the shared block builder), with the bits the
retarget rule requires (``consensus.required_bits``); nothing here fakes a rule.

Left to others: which network a node process runs (``tests/integration/worknet_node.py`` runs
a real node on these parameters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from consensus import Block, NetworkParams, block_work, required_bits
from tests.helpers import REGTEST, Key, key, mine_block

WORK_PARAMS: NetworkParams = dataclasses.replace(
    REGTEST, name="worktest", retarget_interval=4, target_spacing=30
)
"""Regtest's rules and genesis, with a retarget every 4 blocks of 30 s."""

FAST = 1
"""Seconds between blocks of a branch whose next retarget makes blocks 4 times harder."""
SLOW = 120
"""Seconds between blocks of a branch that stays at ``pow_limit``."""


def chain_work(blocks: Sequence[Block]) -> int:
    """The work of ``blocks`` (genesis first): the sum of ``block_work`` of their bits."""
    return sum(block_work(b.header.bits) for b in blocks)


@dataclass
class WorkChain:
    """One branch, genesis first; ``grow`` mines blocks with the bits the retarget requires."""

    miner: Key = field(default_factory=lambda: key(0))
    params: NetworkParams = WORK_PARAMS
    blocks: list[Block] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.blocks:
            self.blocks.append(self.params.genesis)

    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    @property
    def tip(self) -> Block:
        return self.blocks[-1]

    @property
    def work(self) -> int:
        return chain_work(self.blocks)

    def work_at(self, height: int) -> int:
        return chain_work(self.blocks[: height + 1])

    def fork(self, height: int, miner: Key) -> WorkChain:
        """A new branch sharing this one's blocks up to ``height``, mined by ``miner``."""
        return WorkChain(miner, self.params, list(self.blocks[: height + 1]))

    def next_block(self, spacing: int, fees: int = 0) -> Block:
        """The block that would extend the tip ``spacing`` seconds after it (not added); a
        coinbase claiming ``fees`` it has no transactions for makes it ``bad-cb-amount``."""
        height = self.height + 1
        parent = self.tip.header
        bits = required_bits(self.params, height, parent.bits, lambda h: self.blocks[h].header.time)
        return mine_block(
            self.tip.hash(),
            height,
            [],
            parent.time + spacing,
            self.miner.pubkey_hash,
            self.params,
            fees,
            bits=bits,
        )

    def grow(self, count: int, spacing: int) -> list[Block]:
        """Mine ``count`` empty blocks, each ``spacing`` seconds after its parent."""
        made = [self.add(self.next_block(spacing)) for _ in range(count)]
        return made

    def add(self, block: Block) -> Block:
        """Append ``block`` (made by ``next_block``) to this branch."""
        self.blocks.append(block)
        return block

    @property
    def new_blocks(self) -> list[Block]:
        """Every block after the genesis."""
        return self.blocks[1:]
