"""The chainstate's key schema in the node's one LevelDB database (version 3).

Every key starts with one byte naming its table. Integers inside keys are big-endian so that
LevelDB's byte order is numeric order; hashes are in internal byte order.

====================================  ==============================================  ============
key                                   value                                           written at
====================================  ==============================================  ============
``V``                                 schema version, u32 BE (3)                      creation
``N``                                 network name (ASCII)                            creation
``T``                                 hash of the active chain's tip                  (dis)connect
``S``                                 UTXO stats: msgpack [count, total, acc bin256]  (dis)connect
``Q``                                 next block sequence number, u64 BE              block stored
``R``                                 hash a reorganisation is heading to (if any)    reorg
``X``                                 present while a reindex is in progress          reindex
``h`` + hash                          block index entry (see ``BlockIndexEntry``)     block stored
``b`` + hash                          the block, canonical msgpack                    block stored
``u`` + hash                          its undo data (``consensus.BlockUndo``)         connect
``H`` + height u32 BE                 hash of the active chain's block at height      connect
``c`` + txid + index u32 BE           unspent coin (``consensus.Coin`` encoding)      (dis)connect
``t`` + txid                          msgpack [block hash, position, raw tx, spent]   connect
``s`` + txid + index u32 BE           spender: msgpack [spending txid, input index]   connect
``a`` + pkh + height u32 + pos u32    txid touching that address (history)           connect
``o`` + pkh + txid + index u32 BE     unspent coin of that address (``Coin`` enc.)    (dis)connect
``A`` + pkh                           msgpack [funded_sum, spent_sum, tx_count]       (dis)connect
``i`` + pkh + height u32 + index u32  coinbase output to that address: amount u64 BE   connect
``k`` + hash                          block summary: msgpack [tx_count, size, fees]   connect
``j`` + height u32 + position u32     txid + wtxid there, in the active chain         connect
``D`` + height u32 + hash             (empty) a block that left the active chain and  disconnect
                                      whose transactions the mempool has not yet
                                      taken back (``returned_blocks``)
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

import struct

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
P_TX = b"t"
P_SPENDER = b"s"
P_ADDR_TX = b"a"
P_ADDR_UTXO = b"o"
P_ADDR_STATS = b"A"
P_IMMATURE = b"i"
P_BLOCK_SUMMARY = b"k"
P_BLOCK_TX = b"j"
P_RETURNED = b"D"

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
"""What ``reindex`` wipes and rebuilds from the stored blocks."""

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


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


def u32(n: int) -> bytes:
    return _U32.pack(n)


def u64(n: int) -> bytes:
    return _U64.pack(n)


def read_u32(b: bytes) -> int:
    return int(_U32.unpack(b)[0])


def read_u64(b: bytes) -> int:
    return int(_U64.unpack(b)[0])


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


def tx_key(txid: bytes) -> bytes:
    return P_TX + txid


def spender_key(txid: bytes, index: int) -> bytes:
    return P_SPENDER + txid + u32(index)


def addr_tx_key(pubkey_hash: bytes, height: int, position: int) -> bytes:
    return P_ADDR_TX + pubkey_hash + u32(height) + u32(position)


def addr_utxo_key(pubkey_hash: bytes, txid: bytes, index: int) -> bytes:
    return P_ADDR_UTXO + pubkey_hash + txid + u32(index)


def addr_stats_key(pubkey_hash: bytes) -> bytes:
    return P_ADDR_STATS + pubkey_hash


def immature_key(pubkey_hash: bytes, height: int, index: int) -> bytes:
    return P_IMMATURE + pubkey_hash + u32(height) + u32(index)


def block_summary_key(block_hash: bytes) -> bytes:
    return P_BLOCK_SUMMARY + block_hash


def returned_key(height: int, block_hash: bytes) -> bytes:
    return P_RETURNED + u32(height) + block_hash


def block_tx_key(height: int, position: int) -> bytes:
    return P_BLOCK_TX + u32(height) + u32(position)
