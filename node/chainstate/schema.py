"""The node's key schema in its one LevelDB database (version 3), and the registry of prefixes.

Every key starts with one byte naming its table. Integers inside keys are big-endian so that
LevelDB's byte order is numeric order; hashes are in internal byte order. ``REGISTRY`` lists
every prefix with the one module that writes it (its owner) and a line on what it holds; the
table below and ``docs/PROTOCOL.md`` section 8 say the same (``tests/unit/test_key_prefixes.py``
checks that no prefix has two owners, none starts another, and every key a chainstate writes
is registered). The explorer indexes' prefixes and key builders are defined by their own
modules in ``node.indexes`` (which import nothing from the chainstate) and re-exported here;
``m`` and ``B`` are defined by the mempool and the ban manager, registered here only.

====================================  ==============================================  ============
key (owner)                           value                                           written at
====================================  ==============================================  ============
``V`` (chainstate)                    schema version, u32 BE (3)                      creation
``N`` (chainstate)                    network name (ASCII)                            creation
``T`` (chain)                         hash of the active chain's tip                  (dis)connect
``S`` (coins)                         UTXO stats: msgpack [count, total, acc bin256]  (dis)connect
``Q`` (chain)                         next block sequence number, u64 BE              block stored
``R`` (chain)                         hash a reorganisation is heading to (if any)    reorg
``X`` (reindex)                       present while a reindex is in progress          reindex
``h`` + hash (chain)                  block index entry (see ``BlockIndexEntry``)     block stored
``b`` + hash (blockstore)             the block, canonical msgpack                    block stored
``u`` + hash (blockstore)             its undo data (``consensus.BlockUndo``)         connect
``H`` + height u32 BE (chain)         hash of the active chain's block at height      connect
``c`` + txid + index u32 BE (coins)   unspent coin (``consensus.Coin`` encoding)      (dis)connect
``t`` + txid (indexes.tx)             msgpack [block hash, position, raw tx, spent]   connect
``s`` + txid + index u32 BE           spender: msgpack [spending txid, input index]   connect
(indexes.spender)
``a`` + pkh + height u32 + pos u32    txid touching that address (history)           connect
(indexes.address)
``o`` + pkh + txid + index u32 BE     unspent coin of that address (``Coin`` enc.)    (dis)connect
(indexes.address)
``A`` + pkh (indexes.address)         msgpack [funded_sum, spent_sum, tx_count]       (dis)connect
``i`` + pkh + height u32 + index u32  coinbase output to that address: amount u64 BE   connect
(indexes.address)
``k`` + hash (indexes.tx)             block summary: msgpack [tx_count, size, fees]   connect
``j`` + height u32 + position u32     txid + wtxid there, in the active chain         connect
(indexes.tx)
``D`` + height u32 + hash (chain)     (empty) a block that left the active chain and  disconnect
                                      whose transactions the mempool has not yet
                                      taken back (``returned_blocks``)
``m`` + txid (node.mempool)           mempool entry: msgpack [raw tx, entry time]     mempool
``B`` + key (node.p2p.banman)         ban expiry, u64 BE seconds                      ban
====================================  ==============================================  ============

``t`` holds the transaction itself (its canonical bytes) and ``spent``, the coins its inputs spent
(a list of ``Coin`` objects, ``[amount, pubkey_hash, height, is_coinbase]``; empty for a
coinbase): one transaction is read without reading, let alone decoding, its block or the block's
undo data, at the price of storing active-chain transactions twice (in ``b`` and in ``t``).
``i`` lets the immature balance of an address be summed by reading only its coinbase outputs of
the last ``coinbase_maturity`` blocks (newest first, stopping at the first mature one); entries
are not pruned when they mature (one small key per coinbase output, never read again). ``k``
and ``j`` let a block's summary, a page of its transactions and a merkle proof (``j`` holds the
wtxids, the tree's leaves) be answered without decoding it.

``D`` makes the transactions of disconnected blocks as durable as the disconnection itself: it
is written in the disconnecting batch and deleted only by the mempool, once what it took back is
persisted under its own keys (issue 17, item 3), so a crash in the middle of a reorganisation, or
before the mempool has seen it at all (one resumed at start-up), loses none of them. It is not a
derived key (``reindex`` keeps it) and needs no version of its own: a node that does not know it
ignores it.

Everything from ``T`` down to ``j`` describes the active chain and moves in one synced write batch
per connected or disconnected block, so a crash leaves either the old state or the new one.
Block bodies and index entries are written (synced) when a block is accepted, before it
connects. ``reindex`` rebuilds ``T``, ``S``, ``u``, ``H``, ``c``, ``t``, ``s``, ``a``, ``o``,
``A``, ``i``, ``k`` and ``j`` from ``h`` and ``b``.

Versions. The version is raised whenever what is stored would be misread by the rules of
another version; a node refuses (``ChainstateError``, without writing anything) a database of any
version but its own, and says what to do:

- 1: block headers committed to the txids (signatures left out).
- 2: block headers commit to the wtxids (SPEC 2.4). The layout is version 1's, but a version-1
  database holds blocks whose merkle roots are invalid under this rule (any block with a
  transaction besides its coinbase), so reading one would be a silent misreading of its chain.
- 3: ``t`` holds the transaction and the coins it spent; ``i``, ``k`` and ``j`` added (issue 17:
  reads cost what they return). Blocks and the block index are version 2's, so a version-2
  database is upgraded by ``tally-node reindex`` (``UPGRADABLE_BY_REINDEX``), which rebuilds
  every derived key; a node refuses to run on one until then.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.indexes.address import (
    P_ADDR_STATS,
    P_ADDR_TX,
    P_ADDR_UTXO,
    P_IMMATURE,
    addr_stats_key,
    addr_tx_key,
    addr_utxo_key,
    immature_key,
)
from node.indexes.base import read_u32, read_u64, u32, u64
from node.indexes.spender import P_SPENDER, spender_key
from node.indexes.tx import (
    P_BLOCK_SUMMARY,
    P_BLOCK_TX,
    P_TX,
    block_summary_key,
    block_tx_key,
    tx_key,
)

SCHEMA_VERSION = 3
"""Raise it when stored data would be misread by the new code (see the list above)."""
MERKLE_OVER_WTXIDS_SINCE = 2
"""The first version whose block headers commit to wtxids."""
UPGRADABLE_BY_REINDEX = frozenset({2})
"""Older versions whose blocks and block index this version reads as they are: ``reindex``
rebuilds the rest (the keys in ``DERIVED_PREFIXES``) and raises the version."""

K_VERSION = b"V"
K_NETWORK = b"N"
K_TIP = b"T"
K_STATS = b"S"
K_SEQUENCE = b"Q"
K_REORG = b"R"
K_REINDEX = b"X"

P_INDEX = b"h"
P_BLOCK = b"b"
P_UNDO = b"u"
P_HEIGHT = b"H"
P_COIN = b"c"
P_RETURNED = b"D"
P_MEMPOOL = b"m"
"""Defined by ``node.mempool`` (``P_MEMPOOL``), which owns it; registered here."""
P_BAN = b"B"
"""Defined by ``node.p2p.banman`` (``P_BAN``), which owns it; registered here."""

DERIVED_PREFIXES = (
    K_TIP,
    K_STATS,
    K_REORG,
    P_UNDO,
    P_HEIGHT,
    P_COIN,
    P_TX,
    P_SPENDER,
    P_ADDR_TX,
    P_ADDR_UTXO,
    P_ADDR_STATS,
    P_IMMATURE,
    P_BLOCK_SUMMARY,
    P_BLOCK_TX,
)
"""What ``reindex`` wipes and rebuilds from the stored blocks (in this order)."""


__all__ = [
    "DERIVED_PREFIXES",
    "K_NETWORK",
    "K_REINDEX",
    "K_REORG",
    "K_SEQUENCE",
    "K_STATS",
    "K_TIP",
    "K_VERSION",
    "MERKLE_OVER_WTXIDS_SINCE",
    "P_ADDR_STATS",
    "P_ADDR_TX",
    "P_ADDR_UTXO",
    "P_BAN",
    "P_BLOCK",
    "P_BLOCK_SUMMARY",
    "P_BLOCK_TX",
    "P_COIN",
    "P_HEIGHT",
    "P_IMMATURE",
    "P_INDEX",
    "P_MEMPOOL",
    "P_RETURNED",
    "P_SPENDER",
    "P_TX",
    "P_UNDO",
    "REGISTRY",
    "SCHEMA_VERSION",
    "UPGRADABLE_BY_REINDEX",
    "KeyPrefix",
    "addr_stats_key",
    "addr_tx_key",
    "addr_utxo_key",
    "block_key",
    "block_summary_key",
    "block_tx_key",
    "coin_key",
    "height_key",
    "immature_key",
    "index_key",
    "owned_by",
    "read_u32",
    "read_u64",
    "returned_key",
    "schema_mismatch_message",
    "spender_key",
    "tx_key",
    "u32",
    "u64",
    "undo_key",
]


@dataclass(frozen=True)
class KeyPrefix:
    """One table of the database: its first key byte(s), the module that writes it, what it
    holds (one line), and whether ``reindex`` rebuilds it from the stored blocks."""

    prefix: bytes
    owner: str
    description: str
    derived: bool = False


_CHAINSTATE = "node.chainstate.chainstate"
_BLOCKSTORE = "node.chainstate.blockstore"
_CHAIN = "node.chainstate.chain"
_COINS = "node.chainstate.coins"
_REINDEX = "node.chainstate.reindex"
_TX_INDEX = "node.indexes.tx"
_SPENDER_INDEX = "node.indexes.spender"
_ADDRESS_INDEX = "node.indexes.address"

REGISTRY: tuple[KeyPrefix, ...] = (
    KeyPrefix(K_VERSION, _CHAINSTATE, "schema version, u32 BE"),
    KeyPrefix(K_NETWORK, _CHAINSTATE, "network name, ASCII"),
    KeyPrefix(K_TIP, _CHAIN, "hash of the active chain's tip", derived=True),
    KeyPrefix(K_STATS, _COINS, "UTXO stats: msgpack [count, total, accumulator]", derived=True),
    KeyPrefix(K_SEQUENCE, _CHAIN, "next block sequence number, u64 BE"),
    KeyPrefix(
        K_REORG,
        _CHAIN,
        "candidate tips of a change of the active chain, then the old tip",
        derived=True,
    ),
    KeyPrefix(K_REINDEX, _REINDEX, "present while a reindex is in progress"),
    KeyPrefix(P_INDEX, _CHAIN, "block index entry by block hash (``BlockIndexEntry``)"),
    KeyPrefix(P_BLOCK, _BLOCKSTORE, "block by hash, canonical msgpack"),
    KeyPrefix(
        P_UNDO, _BLOCKSTORE, "undo data of an active-chain block (``BlockUndo``)", derived=True
    ),
    KeyPrefix(P_HEIGHT, _CHAIN, "hash of the active chain's block at a height", derived=True),
    KeyPrefix(P_COIN, _COINS, "unspent coin by outpoint (``Coin`` encoding)", derived=True),
    KeyPrefix(
        P_TX, _TX_INDEX, "active-chain tx: [block hash, position, raw tx, spent]", derived=True
    ),
    KeyPrefix(
        P_SPENDER, _SPENDER_INDEX, "spender of an outpoint: [txid, input index]", derived=True
    ),
    KeyPrefix(
        P_ADDR_TX, _ADDRESS_INDEX, "txid touching an address, by height and position", derived=True
    ),
    KeyPrefix(
        P_ADDR_UTXO, _ADDRESS_INDEX, "unspent coin of an address (``Coin`` encoding)", derived=True
    ),
    KeyPrefix(
        P_ADDR_STATS, _ADDRESS_INDEX, "address totals: [funded, spent, tx_count]", derived=True
    ),
    KeyPrefix(
        P_IMMATURE, _ADDRESS_INDEX, "coinbase output to an address: amount u64 BE", derived=True
    ),
    KeyPrefix(
        P_BLOCK_SUMMARY,
        _TX_INDEX,
        "active-chain block summary: [tx_count, size, fees]",
        derived=True,
    ),
    KeyPrefix(P_BLOCK_TX, _TX_INDEX, "txid + wtxid at a height and position", derived=True),
    KeyPrefix(P_RETURNED, _CHAIN, "a disconnected block the mempool has not yet taken back"),
    KeyPrefix(P_MEMPOOL, "node.mempool", "mempool entry: [raw tx, entry time]"),
    KeyPrefix(P_BAN, "node.p2p.banman", "ban of a peer: expiry, u64 BE seconds"),
)
"""Every key prefix of the node's database, each with the one module that writes it."""


def owned_by(owner: str) -> tuple[bytes, ...]:
    """The prefixes ``owner`` (a module's dotted name) writes, in registry order."""
    return tuple(p.prefix for p in REGISTRY if p.owner == owner)


def schema_mismatch_message(found: int) -> str:
    """What the operator is told when the database's version is not ``SCHEMA_VERSION``."""
    if found < MERKLE_OVER_WTXIDS_SINCE:
        return (
            f"this data directory was written by an older Tally (chainstate schema {found}, "
            f"this node reads {SCHEMA_VERSION}) whose merkle rule differs: its blocks commit to "
            "txids, this node's to wtxids, so its chain is not valid here. Remove the data "
            "directory (or its chainstate folder) or start with a new --datadir; the chain is "
            "downloaded again from peers. Nothing was changed."
        )
    if found in UPGRADABLE_BY_REINDEX:
        return (
            f"this data directory was written by an older Tally (chainstate schema {found}, "
            f"this node reads {SCHEMA_VERSION}) whose indexes differ. Stop the node and run "
            "`tally-node reindex` (with the same --datadir and --network) to rebuild them from "
            "the stored blocks; nothing has to be downloaded again. Nothing was changed."
        )
    if found > SCHEMA_VERSION:
        return (
            f"this data directory was written by a newer Tally (chainstate schema {found}, this "
            f"node reads {SCHEMA_VERSION}): run that version, or use a new --datadir. "
            "Nothing was changed."
        )
    return f"unknown chainstate schema {found} (this node reads {SCHEMA_VERSION})"


def index_key(block_hash: bytes) -> bytes:
    return P_INDEX + block_hash


def block_key(block_hash: bytes) -> bytes:
    return P_BLOCK + block_hash


def undo_key(block_hash: bytes) -> bytes:
    return P_UNDO + block_hash


def height_key(height: int) -> bytes:
    return P_HEIGHT + u32(height)


def coin_key(txid: bytes, index: int) -> bytes:
    return P_COIN + txid + u32(index)


def returned_key(height: int, block_hash: bytes) -> bytes:
    return P_RETURNED + u32(height) + block_hash
