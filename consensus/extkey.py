"""BIP32 extended public keys in each network's own encoding (SPEC 3.5 ``/xpub/{xpub}``).

An extended key is BIP32's 78 bytes, Base58Check-encoded::

    version u32 (big-endian) | depth u8 | parent fingerprint 4 | child number u32 (big-endian)
    | chain code 32 | key 33 (a compressed public key, or 0x00 + a 32-byte private key)

The version bytes are the network's (``NetworkParams.xpub_version``, ``xprv_version``), so
``decode_xpub`` says which of these is wrong, as ``decode_address`` does for addresses:
``bad-character``, ``bad-checksum``, ``bad-length``, ``wrong-network`` (another Tally network's
key, or Bitcoin's ``xpub``/``tpub``), ``private-key`` (an extended *private* key, which must never
be handed to a node), ``bad-key`` (not a compressed point prefix).

Pure format code: deriving child keys needs elliptic-curve arithmetic and is the caller's (the
node and the wallet use the ``bip32`` package on libsecp256k1). Whether the point is on the curve
is checked there, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.address import AddressError, b58check_decode, b58check_encode
from consensus.params import NETWORKS, NetworkParams

EXTENDED_KEY_SIZE = 78
MAX_TEXT_LENGTH = 120
"""A Base58Check extended key is 111 or 112 characters; longer text is refused unread."""
BITCOIN_VERSIONS = {
    0x0488B21E: "Bitcoin's xpub",
    0x0488ADE4: "Bitcoin's xprv",
    0x043587CF: "Bitcoin's tpub",
    0x04358394: "Bitcoin's tprv",
}


class ExtendedKeyError(AddressError):
    """Not a usable extended public key here; ``reason`` says why (see the module docstring)."""


@dataclass(frozen=True)
class ExtendedPublicKey:
    """An account-level (or any) BIP32 extended public key."""

    depth: int
    parent_fingerprint: bytes
    child_number: int
    chain_code: bytes
    pubkey: bytes


def encode_xpub(key: ExtendedPublicKey, params: NetworkParams) -> str:
    """``key`` as Base58Check with ``params``' extended public key version bytes."""
    return b58check_encode(
        params.xpub_version.to_bytes(4, "big")
        + bytes([key.depth])
        + key.parent_fingerprint
        + key.child_number.to_bytes(4, "big")
        + key.chain_code
        + key.pubkey
    )


def decode_xpub(text: str, params: NetworkParams) -> ExtendedPublicKey:
    """The extended public key ``text`` encodes on ``params``' network, or ``ExtendedKeyError``."""
    if len(text) > MAX_TEXT_LENGTH:
        raise ExtendedKeyError("bad-length", f"an extended key is at most {MAX_TEXT_LENGTH} chars")
    try:
        raw = b58check_decode(text)
    except AddressError as err:
        raise ExtendedKeyError(err.reason, str(err)) from None
    if len(raw) != EXTENDED_KEY_SIZE:
        raise ExtendedKeyError(
            "bad-length", f"an extended key is {EXTENDED_KEY_SIZE} bytes, this is {len(raw)}"
        )
    version = int.from_bytes(raw[:4], "big")
    if version != params.xpub_version:
        if version == params.xprv_version:
            raise ExtendedKeyError(
                "private-key", "this is an extended PRIVATE key: give the account's xpub instead"
            )
        others = {
            v: f"the {p.name} network's"
            for p in NETWORKS.values()
            for v in (p.xpub_version, p.xprv_version)
            if p.name != params.name
        }
        whose = others.get(version) or BITCOIN_VERSIONS.get(version)
        raise ExtendedKeyError(
            "wrong-network",
            f"{whose or 'unknown'} extended key version, not {params.name}'s",
        )
    pubkey = raw[45:78]
    if pubkey[0] not in (2, 3):
        raise ExtendedKeyError("bad-key", "the key is not a compressed public key")
    return ExtendedPublicKey(
        depth=raw[4],
        parent_fingerprint=raw[5:9],
        child_number=int.from_bytes(raw[9:13], "big"),
        chain_code=raw[13:45],
        pubkey=pubkey,
    )


def convert_xpub_version(text: str, params: NetworkParams) -> str:
    """An extended public key in any version bytes (e.g. a library's ``xpub``) re-encoded with
    ``params``' own; the 74 bytes after the version are kept as they are."""
    raw = b58check_decode(text)
    if len(raw) != EXTENDED_KEY_SIZE or raw[45] not in (2, 3):
        raise ExtendedKeyError("bad-length", "not an extended public key")
    return b58check_encode(params.xpub_version.to_bytes(4, "big") + raw[4:])
