"""P2P message formats: msgpack maps with fixed fields, decoded strictly (SPEC 3.4).

Every ``/p2p/`` request and answer body is one msgpack map whose keys are short strings and whose
values are integers, ``bin`` strings, strings or arrays of those, exactly as the schemas below
say. Decoding sets msgpack's limits from the body's size, refuses ext types, floats and unknown or
missing fields, and checks every value's type, length and range, so a hostile peer gets a
``ProtocolError`` (a 4xx and misbehaviour score) and never an exception from deep inside.

Consensus objects inside messages (blocks, transactions, headers) travel as their own canonical
bytes in ``bin`` fields and are decoded by ``consensus`` with its own strict rules.

The schemas (the byte-level description is in ``docs/PROTOCOL.md``)::

    handshake   {magic bin4, genesis bin32, version int, height int, work bin32, url str,
                 nonce bin8}                                   (request and answer)
    inv         {kind "tx"|"block", hashes [bin32] <= 1000}    -> {}
    getdata     {kind "tx"|"block", hashes [bin32] <= 500}     -> {items [bin]}
    getheaders  {locator [bin32] <= 64, stop bin32}            -> {headers [bin80] <= 2000}
    addr        {urls [str] <= 100}                            -> {urls [str] <= 100}
    mempool     {}                                             -> {txids [bin32]}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

PROTOCOL_VERSION = 2  # 2: block merkle roots over wtxids (SPEC 2.4); 1 committed to txids
MIN_PEER_VERSION = 2
"""The oldest protocol a peer may speak: a version-1 node follows the old merkle rule, so every
block of it with a transaction would be a mutated body here (refused at the handshake instead)."""
MAX_INV = 1_000
MAX_GETDATA = 500
MAX_LOCATOR = 64
MAX_HEADERS = 2_000
MAX_ADDRS = 100
MAX_URL = 200
MAX_MEMPOOL_TXIDS = 100_000
"""Txids in a ``mempool`` answer at most (the serving side stops there; the asking side refuses
more)."""
KINDS = ("tx", "block")


class ProtocolError(ValueError):
    """A malformed P2P message. ``code`` is the slug answered with HTTP 400."""

    def __init__(self, message: str, code: str = "bad-message") -> None:
        super().__init__(message)
        self.code = code


def encode(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)  # type: ignore[no-any-return]


def decode_map(body: bytes) -> dict[str, Any]:
    """A msgpack map with string keys, nothing else; ``ProtocolError`` otherwise."""
    n = len(body)
    if n == 0:
        raise ProtocolError("empty body")
    try:
        value = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_bin_len=n,
            max_str_len=n,
            max_array_len=n,
            max_map_len=min(n, 32),
            max_ext_len=0,
        )
    except Exception as exc:  # every msgpack failure is the peer's malformed message
        raise ProtocolError(f"not msgpack: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError("the message must be a map")
    if not all(type(k) is str for k in value):
        raise ProtocolError("map keys must be strings")
    return value


Check = Callable[[Any, str], Any]


def bin_(size: int | None = None, max_size: int | None = None) -> Check:
    def check(v: Any, name: str) -> bytes:
        if type(v) is not bytes:
            raise ProtocolError(f"{name}: expected bin")
        if size is not None and len(v) != size:
            raise ProtocolError(f"{name}: expected {size} bytes")
        if max_size is not None and len(v) > max_size:
            raise ProtocolError(f"{name}: more than {max_size} bytes")
        return v

    return check


def uint(bits: int = 64) -> Check:
    def check(v: Any, name: str) -> int:
        if type(v) is not int or not 0 <= v < (1 << bits):
            raise ProtocolError(f"{name}: expected an unsigned integer")
        return v

    return check


def text(max_len: int = MAX_URL) -> Check:
    def check(v: Any, name: str) -> str:
        if type(v) is not str or len(v) > max_len:
            raise ProtocolError(f"{name}: expected a string of at most {max_len} characters")
        return v

    return check


def one_of(*choices: str) -> Check:
    def check(v: Any, name: str) -> str:
        if v not in choices:
            raise ProtocolError(f"{name}: expected one of {', '.join(choices)}")
        return str(v)

    return check


def array(item: Check, max_items: int) -> Check:
    def check(v: Any, name: str) -> list[Any]:
        if type(v) is not list:
            raise ProtocolError(f"{name}: expected an array")
        if len(v) > max_items:
            raise ProtocolError(f"{name}: more than {max_items} items", "too-many-items")
        return [item(x, name) for x in v]

    return check


SCHEMAS: dict[str, dict[str, Check]] = {
    "handshake": {
        "magic": bin_(4),
        "genesis": bin_(32),
        "version": uint(32),
        "height": uint(32),
        "work": bin_(32),
        "url": text(),
        "nonce": bin_(8),
    },
    "inv": {"kind": one_of(*KINDS), "hashes": array(bin_(32), MAX_INV)},
    "getdata": {"kind": one_of(*KINDS), "hashes": array(bin_(32), MAX_GETDATA)},
    "getheaders": {"locator": array(bin_(32), MAX_LOCATOR), "stop": bin_(32)},
    "addr": {"urls": array(text(), MAX_ADDRS)},
    "mempool": {},
    # answers
    "items": {"items": array(bin_(max_size=2_000_000), MAX_GETDATA)},
    "headers": {"headers": array(bin_(80), MAX_HEADERS)},
    "txids": {"txids": array(bin_(32), MAX_MEMPOOL_TXIDS)},
    "empty": {},
}


def parse(schema: str, body: bytes) -> dict[str, Any]:
    """Decode ``body`` and check it against ``SCHEMAS[schema]`` (exact field set)."""
    fields = SCHEMAS[schema]
    message = decode_map(body)
    if set(message) != set(fields):
        missing = sorted(set(fields) - set(message))
        extra = sorted(set(message) - set(fields))
        raise ProtocolError(f"{schema}: missing {missing}, unexpected {extra}")
    return {name: check(message[name], name) for name, check in fields.items()}
