"""Default relay policy limits of the node's mempool (SPEC 2.5, 3.2), not consensus rules.

Job: name the standardness limits that are not consensus rules: the defaults of the node's
mempool policy (``node.mempool.MempoolPolicy``), which refuses what exceeds them (with the policy
reject code) and which the miner's template relies on. A wallet does not read them here: it reads
the policy of the node it talks to from ``/info`` (``client.models.Policy``), so it never builds
what that node would refuse (docs/DECISIONS.md). A block may still hold a larger transaction
(``consensus.validation.MAX_TX_SIZE``): these are policy, as Bitcoin Core's ``policy/policy.h`` is
beside its consensus code. Constants only: nothing here does I/O.
"""

from __future__ import annotations

from typing import Final

MAX_STANDARD_TX_SIZE: Final = 100_000
"""The largest transaction (serialized bytes) a node accepts into its mempool and relays
(``tx-size`` beyond). Core's limit is 400,000 weight units, about 100 kB; a tenth of a block,
so a pool full of the largest standard transactions is still mined in blocks, and a low-fee
giant cannot pin a replacement behind a whole block's worth of bytes."""

MIN_RELAY_FEE_RATE: Final = 1
"""The minimum relay fee rate, base units per byte of serialized transaction (``min-relay-fee-
not-met`` below it): the mempool's default, and the floor of the node's fee estimates."""

INCREMENTAL_RELAY_FEE_RATE: Final = 1
"""A replacement pays at least the fees it evicts plus this many base units per byte of its own
size (``insufficient-fee`` otherwise; docs/DECISIONS.md): the mempool's default."""
