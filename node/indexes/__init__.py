"""Optional explorer indexes over the active chain, kept apart from consensus state as
Bitcoin Core keeps ``src/index/`` apart from the chainstate.

Each index is an ``IndexWriter`` (``base``): it owns its key prefixes, adds its writes to the
chain's own connect and disconnect batches (so it moves atomically with the UTXO set and the
tip), and offers its reads. ``default_indexes`` is the set a node runs; the chainstate takes the
list in its constructor.
"""

from node.indexes.address import AddressIndex, AddressStats
from node.indexes.base import BlockChange, IndexWriter
from node.indexes.spender import SpenderIndex
from node.indexes.tx import BlockSummary, TxIndex, TxRecord
from node.storage import KeyValueStore


def default_indexes(store: KeyValueStore) -> list[IndexWriter]:
    """The indexes every node keeps, in the order they add to a batch."""
    return [TxIndex(store), SpenderIndex(store), AddressIndex(store)]


__all__ = [
    "AddressIndex",
    "AddressStats",
    "BlockChange",
    "BlockSummary",
    "IndexWriter",
    "SpenderIndex",
    "TxIndex",
    "TxRecord",
    "default_indexes",
]
