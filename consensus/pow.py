"""Proof of work: compact ``bits``, targets, the PoW check, block work and Bitcoin's retarget.

Everything is Bitcoin Core's arithmetic, reproduced to the bit:

- ``decode_compact`` is ``arith_uint256::SetCompact`` (with its negative and overflow flags) and
  ``target_to_bits`` is ``GetCompact``;
- ``check_proof_of_work`` is ``CheckProofOfWork``: the bits must decode without the negative or
  overflow flag, to a non-zero target no easier than ``pow_limit``, and the hash read as a
  little-endian 256-bit integer must not exceed it;
- ``next_bits`` is ``CalculateNextWorkRequired``; ``required_bits`` adds the "only at retarget
  heights" rule and regtest's "never";
- ``block_work`` is ``GetBlockProof``: 2**256 // (target + 1).

Nothing here knows about a chain: callers pass the numbers (or an ``AncestorTime``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consensus.params import NetworkParams

MEDIAN_TIME_SPAN = 11
"""Median time past looks at this many blocks, as Bitcoin's does."""


def decode_compact(bits: int) -> tuple[int, bool, bool]:
    """``SetCompact``: return ``(magnitude, negative, overflow)``."""
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        word >>= 8 * (3 - size)
        value = word
    else:
        value = word << (8 * (size - 3))
    negative = word != 0 and (bits & 0x00800000) != 0
    overflow = word != 0 and (
        size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32)
    )
    return value & ((1 << 256) - 1), negative, overflow


def bits_to_target(bits: int) -> int:
    """The target that compact ``bits`` stand for; ``ValueError`` if negative or overflowing."""
    target, negative, overflow = decode_compact(bits)
    if negative:
        raise ValueError(f"bits {bits:#010x} encode a negative target")
    if overflow:
        raise ValueError(f"bits {bits:#010x} overflow 256 bits")
    return target


def target_to_bits(target: int, negative: bool = False) -> int:
    """``GetCompact``: the compact form of ``target`` (rounding down to 3 significant bytes)."""
    if target < 0:
        raise ValueError("target must not be negative")
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = target << (8 * (3 - size))
    else:
        compact = target >> (8 * (size - 3))
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    compact |= size << 24
    if negative and compact & 0x007FFFFF:
        compact |= 0x00800000
    return compact


def hash_to_int(block_hash: bytes) -> int:
    """A block hash (internal order) as the 256-bit number compared against the target."""
    return int.from_bytes(block_hash, "little")


def check_proof_of_work(block_hash: bytes, bits: int, pow_limit: int) -> bool:
    """Core's ``CheckProofOfWork``."""
    target, negative, overflow = decode_compact(bits)
    if negative or overflow or target == 0 or target > pow_limit:
        return False
    return hash_to_int(block_hash) <= target


def block_work(bits: int) -> int:
    """Expected hashes to find a block at ``bits``: 2**256 // (target + 1); 0 if invalid."""
    target, negative, overflow = decode_compact(bits)
    if negative or overflow or target == 0:
        return 0
    return (1 << 256) // (target + 1)


def next_bits(params: NetworkParams, last_bits: int, first_time: int, last_time: int) -> int:
    """Core's ``CalculateNextWorkRequired``.

    ``first_time`` is the time of the first block of the interval that just ended, ``last_time``
    and ``last_bits`` those of its last block. The timespan is clamped to [T/4, 4T].
    """
    if params.retarget_interval is None:
        return params.pow_limit_bits
    timespan = params.target_timespan
    actual = last_time - first_time
    actual = max(actual, timespan // 4)
    actual = min(actual, timespan * 4)
    new_target = bits_to_target(last_bits) * actual // timespan
    new_target = min(new_target, params.pow_limit)
    return target_to_bits(new_target)


AncestorTime = Callable[[int], int]
"""``time_at(height)``: the time of the ancestor at ``height`` on the chain being extended."""


def required_bits(params: NetworkParams, height: int, prev_bits: int, time_at: AncestorTime) -> int:
    """The ``bits`` a block at ``height`` must carry (Core's ``GetNextWorkRequired``).

    ``prev_bits`` are the parent's; ``time_at`` gives ancestors' times, used only at a retarget
    height, where the interval runs from ``height - interval`` to ``height - 1``.
    """
    interval = params.retarget_interval
    if interval is None:
        return params.pow_limit_bits
    if height == 0 or height % interval != 0:
        return prev_bits
    return next_bits(params, prev_bits, time_at(height - interval), time_at(height - 1))


def median_time_past(times: Sequence[int]) -> int:
    """The median of the last (up to) 11 block times, as Bitcoin's ``GetMedianTimePast``.

    ``times`` are in chain order, the newest last; only its last ``MEDIAN_TIME_SPAN`` count.
    The one median-time-past computation: ``median_time_past_at`` and every caller use it."""
    recent = sorted(times[-MEDIAN_TIME_SPAN:])
    if not recent:
        raise ValueError("median time past of no blocks")
    return recent[len(recent) // 2]


def median_time_past_at(height: int, time_at: AncestorTime) -> int:
    """The median time past a block at ``height`` must exceed: that of its (up to) 11 ancestors,
    heights ``height - 11`` to ``height - 1`` (``time_at`` gives their times; ``height`` > 0)."""
    if height <= 0:
        raise ValueError("median time past of no blocks")
    first = max(0, height - MEDIAN_TIME_SPAN)
    return median_time_past([time_at(h) for h in range(first, height)])
