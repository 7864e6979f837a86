"""The Tally node: every part of the system that holds state or does I/O.

This package holds the storage layer (``node.storage``), the chainstate built on it, the mempool,
the miner, the P2P layer and the HTTP API. Pure, deterministic consensus rules (encoding, hashing,
validation) live in the separate ``consensus`` package, which ``node`` depends on and never the
other way round.
"""
