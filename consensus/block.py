"""Blocks: the 80-byte ``BlockHeader`` (exactly Bitcoin's) and ``Block`` (SPEC 2.2, 2.4).

Header layout, little-endian: ``version`` u32, ``prev_hash`` 32, ``merkle_root`` 32, ``time`` u32,
``bits`` u32, ``nonce`` u32. Its hash is SHA256d of those 80 bytes, in internal order; shown
reversed as display hex.

Block encoding (canonical msgpack)::

    Block = [header bin80, [Transaction, ...]]

The header's ``merkle_root`` commits to the **wtxids** (SPEC 2.4): every byte of every
transaction, signatures included, so a body matching its header is the only one there is (but for
CVE-2012-2459's duplicated subtrees, which ``merkle_root`` reports). A coinbase's txid is its
wtxid, so a coinbase-only block (every genesis) has the same root under either rule.

Invariants: frozen; ``Block.serialize()`` of a decoded block returns its input bytes. Whether a
header or block obeys the rules is ``consensus.validation``'s business, not this module's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consensus.encoding import as_bytes, expect_array, expect_bytes, pack, unpack_canonical
from consensus.errors import BAD_ENCODING, ValidationError
from consensus.hashing import sha256d
from consensus.merkle import merkle_root
from consensus.tx import Transaction

HEADER_SIZE = 80
_HEADER = struct.Struct("<I32s32sIII")


def block_merkle_root(txs: Sequence[Transaction]) -> tuple[bytes, bool]:
    """``(root, mutated)`` of the merkle tree a header commits ``txs`` with: over the wtxids.

    Whoever builds a block (the miner's template, tests, benchmarks) calls this for its header.
    """
    return merkle_root([tx.wtxid() for tx in txs])


@dataclass(frozen=True)
class BlockHeader:
    """Bitcoin's block header."""

    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def serialize(self) -> bytes:
        """The 80 bytes."""
        return _HEADER.pack(
            self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce
        )

    @classmethod
    def deserialize(cls, data: bytes) -> BlockHeader:
        """Parse exactly 80 bytes; anything else is ``bad-encoding``."""
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) != HEADER_SIZE:
            raise ValidationError(BAD_ENCODING, "a header is exactly 80 bytes")
        return cls(*_HEADER.unpack(bytes(data)))

    def hash(self) -> bytes:
        """SHA256d of the 80 bytes, internal byte order."""
        return sha256d(self.serialize())

    def hash_hex(self) -> str:
        """The hash as Bitcoin shows it (byte-reversed hex)."""
        return self.hash()[::-1].hex()


@dataclass(frozen=True)
class Block:
    """A header and its transactions, the coinbase first."""

    header: BlockHeader
    txs: tuple[Transaction, ...]
    _cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def to_obj(self) -> list[Any]:
        return [self.header.serialize(), [tx.to_obj() for tx in self.txs]]

    def serialize(self) -> bytes:
        raw = self._cache.get("raw")
        if raw is None:
            raw = self._cache["raw"] = pack(self.to_obj())
        return raw

    @classmethod
    def deserialize(cls, data: bytes) -> Block:
        """Decode one block; ``ValidationError("bad-encoding")`` unless canonical."""
        data = as_bytes(data)
        f = expect_array(unpack_canonical(data), 2, "block")
        header = BlockHeader.deserialize(expect_bytes(f[0], "header", HEADER_SIZE))
        txs = tuple(Transaction.from_obj(t) for t in expect_array(f[1], None, "transactions"))
        block = cls(header, txs)
        block._cache["raw"] = data
        return block

    def size(self) -> int:
        return len(self.serialize())

    def hash(self) -> bytes:
        return self.header.hash()

    def hash_hex(self) -> str:
        return self.header.hash_hex()

    def txids(self) -> list[bytes]:
        return [tx.txid() for tx in self.txs]

    def wtxids(self) -> list[bytes]:
        return [tx.wtxid() for tx in self.txs]

    def compute_merkle_root(self) -> tuple[bytes, bool]:
        """``(root, mutated)`` over this block's wtxids (what the header commits to)."""
        found: tuple[bytes, bool] | None = self._cache.get("merkle")
        if found is None:
            found = self._cache["merkle"] = block_merkle_root(self.txs)
        return found
