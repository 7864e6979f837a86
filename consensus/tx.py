"""Transactions: ``OutPoint``, ``TxIn``, ``TxOut``, ``Transaction`` (SPEC 2.3) and their encoding.

Wire and disk format (canonical msgpack, see ``consensus.encoding``)::

    Transaction = [version u32, [TxIn, ...], [TxOut, ...], locktime u32]
    TxIn        = [prev_txid bin32, prev_index u32, pubkey bin, signature bin]
    TxOut       = [amount i64, pubkey_hash bin20]

``txid`` is SHA256d of that encoding with ``pubkey`` and ``signature`` emptied in every input of
a non-coinbase transaction, so signatures cannot change it (no malleability). A coinbase keeps its
``signature`` field (the block height and extra nonce), so no two coinbases share a txid.
``wtxid`` is SHA256d of the full encoding.

Invariants: the types are frozen; ``serialize()`` of a decoded object returns exactly the bytes it
was decoded from; hashes are ``bytes`` in internal order (display hex is reversed, as Bitcoin's).
Amount ranges, duplicate inputs and the like are rules, not encoding: they belong to
``consensus.validation``, so a decoded transaction may still be invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consensus.encoding import (
    as_bytes,
    expect_array,
    expect_bytes,
    expect_int64,
    expect_uint,
    pack,
    unpack_canonical,
)
from consensus.hashing import sha256d

COIN = 100_000_000
"""Base units in one TLY."""
MAX_MONEY = 21_000_000 * COIN
"""No amount, and no sum of amounts, may exceed this."""
NULL_TXID = b"\x00" * 32
NULL_INDEX = 0xFFFFFFFF


@dataclass(frozen=True)
class OutPoint:
    """A reference to output ``index`` of transaction ``txid`` (internal byte order)."""

    txid: bytes
    index: int

    def is_null(self) -> bool:
        """The coinbase's prevout: 32 zero bytes and index 0xFFFFFFFF."""
        return self.index == NULL_INDEX and self.txid == NULL_TXID

    def __str__(self) -> str:
        return f"{self.txid[::-1].hex()}:{self.index}"


NULL_OUTPOINT = OutPoint(NULL_TXID, NULL_INDEX)


@dataclass(frozen=True)
class TxIn:
    """An input: what it spends, the 33-byte compressed public key and the 64-byte signature."""

    prevout: OutPoint
    pubkey: bytes = b""
    signature: bytes = b""

    def to_obj(self) -> list[Any]:
        return [self.prevout.txid, self.prevout.index, self.pubkey, self.signature]

    @classmethod
    def from_obj(cls, obj: Any) -> TxIn:
        f = expect_array(obj, 4, "input")
        return cls(
            OutPoint(expect_bytes(f[0], "prev_txid", 32), expect_uint(f[1], 32, "prev_index")),
            expect_bytes(f[2], "pubkey"),
            expect_bytes(f[3], "signature"),
        )


@dataclass(frozen=True)
class TxOut:
    """An output: ``amount`` base units locked to the 20-byte HASH160 of a public key."""

    amount: int
    pubkey_hash: bytes

    def to_obj(self) -> list[Any]:
        return [self.amount, self.pubkey_hash]

    @classmethod
    def from_obj(cls, obj: Any) -> TxOut:
        f = expect_array(obj, 2, "output")
        return cls(expect_int64(f[0], "amount"), expect_bytes(f[1], "pubkey_hash", 20))


@dataclass(frozen=True)
class Transaction:
    """A transaction. Hashes and the encoding are computed once and cached on the instance."""

    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int = 0
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    # --- encoding -----------------------------------------------------------------------------

    def to_obj(self) -> list[Any]:
        return [
            self.version,
            [i.to_obj() for i in self.inputs],
            [o.to_obj() for o in self.outputs],
            self.locktime,
        ]

    @classmethod
    def from_obj(cls, obj: Any, raw: bytes | None = None) -> Transaction:
        f = expect_array(obj, 4, "transaction")
        tx = cls(
            expect_uint(f[0], 32, "version"),
            tuple(TxIn.from_obj(i) for i in expect_array(f[1], None, "inputs")),
            tuple(TxOut.from_obj(o) for o in expect_array(f[2], None, "outputs")),
            expect_uint(f[3], 32, "locktime"),
        )
        if raw is not None:
            tx._cache["raw"] = raw
        return tx

    def serialize(self) -> bytes:
        raw = self._cache.get("raw")
        if raw is None:
            raw = self._cache["raw"] = pack(self.to_obj())
        return raw

    @classmethod
    def deserialize(cls, data: bytes) -> Transaction:
        """Decode one transaction; ``ValidationError("bad-encoding")`` unless canonical."""
        data = as_bytes(data)
        return cls.from_obj(unpack_canonical(data), raw=data)

    def size(self) -> int:
        """Serialized size in bytes (what fee rates are measured against)."""
        return len(self.serialize())

    # --- identity ------------------------------------------------------------------------------

    def is_coinbase(self) -> bool:
        """One input, spending the null outpoint."""
        cb = self._cache.get("coinbase")
        if cb is None:
            cb = self._cache["coinbase"] = (
                len(self.inputs) == 1 and self.inputs[0].prevout.is_null()
            )
        return cb

    def txid(self) -> bytes:
        """SHA256d of the encoding without input public keys and signatures (not coinbase's)."""
        txid = self._cache.get("txid")
        if txid is None:
            if self.is_coinbase():
                stripped = self.serialize()
            else:
                stripped = pack(
                    [
                        self.version,
                        [[i.prevout.txid, i.prevout.index, b"", b""] for i in self.inputs],
                        [o.to_obj() for o in self.outputs],
                        self.locktime,
                    ]
                )
            txid = self._cache["txid"] = sha256d(stripped)
        return txid

    def wtxid(self) -> bytes:
        """SHA256d of the full encoding, signatures included."""
        wtxid = self._cache.get("wtxid")
        if wtxid is None:
            wtxid = self._cache["wtxid"] = sha256d(self.serialize())
        return wtxid

    def total_out(self) -> int:
        return sum(o.amount for o in self.outputs)
