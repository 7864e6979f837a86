"""Relay policy limits that the node and the wallet must agree on (SPEC 2.5, 3.2).

Job: name the standardness limits that are not consensus rules but that both sides need: the
node's mempool refuses what exceeds them (with the policy reject code), the miner's template
relies on them, and the wallet never builds what a node would refuse. A block may still hold a
larger transaction (``consensus.validation.MAX_TX_SIZE``): these are policy, as Bitcoin Core's
``policy/policy.h`` is beside its consensus code. Constants only: nothing here does I/O.
"""

from __future__ import annotations

from typing import Final

MAX_STANDARD_TX_SIZE: Final = 100_000
"""The largest transaction (serialized bytes) a node accepts into its mempool and relays
(``tx-size`` beyond). Core's limit is 400,000 weight units, about 100 kB; a tenth of a block,
so a pool full of the largest standard transactions is still mined in blocks, and a low-fee
giant cannot pin a replacement behind a whole block's worth of bytes."""
