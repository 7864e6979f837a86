"""Canonical msgpack: the byte format of every consensus object (SPEC 2.1).

A consensus object is a msgpack array of fixed shape holding only integers, ``bin`` strings and
further arrays. There is exactly one valid encoding of each object: the one ``msgpack.packb``
produces with ``use_bin_type=True`` (smallest integer and length headers). The decoder accepts a
byte string only if re-encoding what it decoded gives the same bytes back, which rejects in one
comparison: integers in wider types than needed, ``str`` where ``bin`` belongs, non-minimal
length headers, and trailing bytes. Shape checks (arity, types, ranges) are done by the helpers
below, used by the ``from_obj`` parsers of each type.

Invariants:
- decoding never allocates more than the input's own size (msgpack's ``max_*_len`` limits are set
  from the input length, and maps and ext types are refused outright);
- every failure is ``ValidationError("bad-encoding")``, never another exception type.

The field layouts themselves live with their types (``consensus.tx``, ``consensus.block``).
"""

from __future__ import annotations

from typing import Any

import msgpack

from consensus.errors import BAD_ENCODING, ValidationError

MAX_DECODE_BYTES = 32 * 1024 * 1024
"""No consensus object is larger than this; anything larger is refused before decoding."""


def pack(obj: Any) -> bytes:
    """Encode a tree of lists, ints and bytes canonically."""
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def as_bytes(data: Any) -> bytes:
    """``data`` as ``bytes`` if it is a bytes-like object; ``bad-encoding`` otherwise."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValidationError(BAD_ENCODING, f"expected bytes, got {type(data).__name__}")
    return bytes(data)


def unpack_canonical(data: bytes) -> Any:
    """Decode ``data`` and insist that it is the canonical encoding of what it holds.

    Returns the decoded tree (lists, ints, bytes and whatever else the bytes held: the caller's
    shape checks refuse the rest). Raises ``ValidationError("bad-encoding")``.
    """
    data = as_bytes(data)
    n = len(data)
    if n == 0:
        raise ValidationError(BAD_ENCODING, "empty input")
    if n > MAX_DECODE_BYTES:
        raise ValidationError(BAD_ENCODING, f"input of {n} bytes exceeds {MAX_DECODE_BYTES}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=True,
            use_list=True,
            strict_map_key=False,
            max_bin_len=n,
            max_str_len=n,
            max_array_len=n,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types; all of them mean "not our encoding"
        raise ValidationError(BAD_ENCODING, f"not valid msgpack: {exc}") from None
    try:
        again = pack(obj)
    except Exception as exc:
        raise ValidationError(BAD_ENCODING, f"cannot re-encode: {exc}") from None
    if again != data:
        raise ValidationError(BAD_ENCODING, "not the canonical encoding")
    return obj


# --- shape helpers used by the from_obj parsers -----------------------------------------------


def expect_array(value: Any, arity: int | None, what: str) -> list[Any]:
    """``value`` must be a list (of exactly ``arity`` items when given)."""
    if type(value) is not list:
        raise ValidationError(BAD_ENCODING, f"{what}: expected an array")
    if arity is not None and len(value) != arity:
        raise ValidationError(BAD_ENCODING, f"{what}: expected {arity} fields, got {len(value)}")
    return value


def expect_uint(value: Any, bits: int, what: str) -> int:
    """``value`` must be an ``int`` (not a bool) in [0, 2**bits)."""
    if type(value) is not int or not 0 <= value < (1 << bits):
        raise ValidationError(BAD_ENCODING, f"{what}: expected an unsigned {bits}-bit integer")
    return value


def expect_int64(value: Any, what: str) -> int:
    """``value`` must be an ``int`` (not a bool) in the signed 64-bit range."""
    if type(value) is not int or not -(1 << 63) <= value < (1 << 63):
        raise ValidationError(BAD_ENCODING, f"{what}: expected a signed 64-bit integer")
    return value


def expect_bytes(value: Any, what: str, size: int | None = None) -> bytes:
    """``value`` must be ``bin`` (of exactly ``size`` bytes when given)."""
    if type(value) is not bytes:
        raise ValidationError(BAD_ENCODING, f"{what}: expected bin")
    if size is not None and len(value) != size:
        raise ValidationError(BAD_ENCODING, f"{what}: expected {size} bytes, got {len(value)}")
    return value
