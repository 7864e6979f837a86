"""Base58 and Base58Check, and addresses: Base58Check(version byte || HASH160(pubkey)) (SPEC 2.7).

``decode_address`` tells exactly what is wrong with a string that is not an address of the given
network, through ``AddressError.reason``:

- ``bad-character``: a character outside Bitcoin's Base58 alphabet;
- ``bad-checksum``: the 4-byte SHA256d checksum does not match;
- ``bad-length``: the payload is not one version byte plus 20 bytes;
- ``wrong-network``: a valid address of another network (or of Bitcoin), named when known.

Pure functions; the wallet and the API turn the reasons into messages for people.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus.hashing import sha256d

if TYPE_CHECKING:
    from consensus.params import NetworkParams

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
PUBKEY_HASH_SIZE = 20
MAX_BASE58_LENGTH = 200
"""Longer strings are refused before decoding, so a hostile input costs little."""

_KNOWN_VERSIONS = {
    0x00: "Bitcoin mainnet",
    0x05: "Bitcoin mainnet (P2SH)",
    0x6F: "Bitcoin testnet",
    0xC4: "Bitcoin testnet (P2SH)",
}


class AddressError(ValueError):
    """Not a usable address or Base58Check string; ``reason`` says why (see module doc)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def b58encode(data: bytes) -> str:
    """Base58 with Bitcoin's alphabet; each leading zero byte becomes a ``1``."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of ``b58encode``; ``AddressError('bad-character')`` on any other character."""
    if len(text) > MAX_BASE58_LENGTH:
        raise AddressError("bad-length", f"longer than {MAX_BASE58_LENGTH} characters")
    n = 0
    for pos, char in enumerate(text):
        digit = _INDEX.get(char)
        if digit is None:
            raise AddressError("bad-character", f"{char!r} at position {pos} is not Base58")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body


def b58check_encode(payload: bytes) -> str:
    """Base58 of ``payload`` followed by the first 4 bytes of its SHA256d."""
    return b58encode(payload + sha256d(payload)[:4])


def b58check_decode(text: str) -> bytes:
    """The payload of a Base58Check string (version byte included)."""
    raw = b58decode(text)
    if len(raw) < 5:
        raise AddressError("bad-length", "too short to hold a checksum")
    payload, checksum = raw[:-4], raw[-4:]
    if sha256d(payload)[:4] != checksum:
        raise AddressError("bad-checksum", "checksum does not match (a mistyped character?)")
    return payload


PAYMENT_URI_SCHEME = "tally"
"""The scheme of a payment URI, ``tally:<address>?amount=...`` (SPEC 4; ``wallet.uri`` reads and
writes the whole URI, the node's explorer shows the QR code of ``tally:<address>``)."""


def payment_uri(address: str) -> str:
    """The payment URI that names ``address`` alone (no amount, label or message)."""
    return f"{PAYMENT_URI_SCHEME}:{address}"


def encode_address(pubkey_hash: bytes, params: NetworkParams) -> str:
    """The address of a 20-byte public key hash on ``params``' network."""
    if len(pubkey_hash) != PUBKEY_HASH_SIZE:
        raise ValueError("a public key hash is 20 bytes")
    return b58check_encode(bytes([params.address_version]) + pubkey_hash)


def decode_address(text: str, params: NetworkParams) -> bytes:
    """The 20-byte public key hash that ``text`` encodes on ``params``' network.

    Raises ``AddressError`` with ``reason`` one of ``bad-character``, ``bad-checksum``,
    ``bad-length``, ``wrong-network``.
    """
    if not isinstance(text, str):
        raise AddressError("bad-character", "an address is a string")
    payload = b58check_decode(text.strip())
    if len(payload) != 1 + PUBKEY_HASH_SIZE:
        raise AddressError(
            "bad-length", f"holds {len(payload)} bytes, an address holds {1 + PUBKEY_HASH_SIZE}"
        )
    version = payload[0]
    if version != params.address_version:
        raise AddressError(
            "wrong-network",
            f"an address of {_network_of(version)}, not of the {params.name} network",
        )
    return payload[1:]


def _network_of(version: int) -> str:
    from consensus.params import NETWORKS

    for p in NETWORKS.values():
        if p.address_version == version:
            return f"the Tally {p.name} network"
    return _KNOWN_VERSIONS.get(version, f"an unknown network (version byte {version:#04x})")
