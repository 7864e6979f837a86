"""The chainstate: blocks, the active chain, the UTXO set, undo data and indexes on a
key-value store (see ``chainstate.Chainstate`` and the key schema in ``schema``)."""

from node.chainstate.blockindex import BlockIndexEntry, Status
from node.chainstate.chainstate import (
    AcceptResult,
    AddressStats,
    BlockSummary,
    Chainstate,
    ChainstateError,
    ConfirmedTx,
    GenesisBlockError,
    UnknownBlockError,
    UtxoSetInfo,
)
from node.chainstate.events import BlockConnected, BlockDisconnected, ChainEvent, TipChanged
from node.chainstate.utxohash import UtxoStats

__all__ = [
    "AcceptResult",
    "AddressStats",
    "BlockConnected",
    "BlockDisconnected",
    "BlockIndexEntry",
    "BlockSummary",
    "ChainEvent",
    "Chainstate",
    "ChainstateError",
    "ConfirmedTx",
    "GenesisBlockError",
    "Status",
    "TipChanged",
    "UnknownBlockError",
    "UtxoSetInfo",
    "UtxoStats",
]
