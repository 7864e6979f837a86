"""Signed messages: prove control of an address by signing a text (SPEC 4, Bitcoin's scheme).

Layout, as Bitcoin Core's ``signmessage`` with Tally's own tag (so a Tally signature is never a
Bitcoin one, nor the other way round)::

    digest    = SHA256d( compact_size(len(TAG)) || TAG || compact_size(len(text)) || text )
    TAG       = b"Tally Signed Message:\\n"          text: the message as UTF-8 bytes
    signature = base64( header || r || s )           65 bytes before base64
    header    = 31 + recovery_id                     (27 + 4: the key is compressed)

The signature is recoverable: ``verify_message`` recovers the public key from it and the digest,
and the message is verified when that key's HASH160 is the address's. Only low-S signatures
(``s <= n/2``, as every signature libsecp256k1 makes) and the compressed-key header are accepted,
so a signature has one encoding. A malformed signature (not base64, not 65 bytes, a bad header) is
``MessageSignatureError``; a well-formed one by another key, or over another text, is simply not
valid (``False``). Texts are at most ``MAX_MESSAGE_BYTES``.

Pure functions over keys and texts; which key signs (the wallet's address index) is the caller's.
"""

from __future__ import annotations

import base64
import binascii

import coincurve

from consensus import NetworkParams, decode_address, hash160, sha256d

TAG = b"Tally Signed Message:\n"
SIGNATURE_BYTES = 65
HEADER_COMPRESSED = 31
"""27 + 4: Bitcoin's header for a signature by a compressed key, plus the recovery id (0-3)."""
MAX_MESSAGE_BYTES = 64 * 1024
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class MessageSignatureError(ValueError):
    """A signature or message that cannot be checked at all; the message says why."""


def compact_size(n: int) -> bytes:
    """Bitcoin's CompactSize encoding of a length."""
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def message_digest(text: str, tag: bytes = TAG) -> bytes:
    """The 32 bytes a message signature signs (layout in the module docstring)."""
    data = text.encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageSignatureError(f"a message is at most {MAX_MESSAGE_BYTES} bytes")
    return sha256d(compact_size(len(tag)) + tag + compact_size(len(data)) + data)


def sign_message(privkey: bytes, text: str) -> str:
    """The base64 signature of ``text`` by the 32-byte private key ``privkey``."""
    recoverable = coincurve.PrivateKey(privkey).sign_recoverable(message_digest(text), hasher=None)
    r_s, recovery_id = recoverable[:64], recoverable[64]
    return base64.b64encode(bytes([HEADER_COMPRESSED + recovery_id]) + r_s).decode("ascii")


def _decode_signature(signature: str) -> bytes:
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MessageSignatureError("the signature is not base64") from None
    if len(raw) != SIGNATURE_BYTES:
        raise MessageSignatureError(
            f"a message signature is {SIGNATURE_BYTES} bytes, this one is {len(raw)}"
        )
    if not HEADER_COMPRESSED <= raw[0] <= HEADER_COMPRESSED + 3:
        raise MessageSignatureError(
            "the signature's header byte is not that of a compressed key (31-34)"
        )
    return raw


def recover_pubkey(signature: str, text: str) -> bytes | None:
    """The compressed public key that made ``signature`` over ``text``, or ``None``."""
    raw = _decode_signature(signature)
    r = int.from_bytes(raw[1:33], "big")
    s = int.from_bytes(raw[33:65], "big")
    if not (0 < r < CURVE_ORDER and 0 < s <= CURVE_ORDER // 2):
        return None  # out of range, or the high-S twin of a valid signature
    recoverable = raw[1:65] + bytes([raw[0] - HEADER_COMPRESSED])
    try:
        key = coincurve.PublicKey.from_signature_and_message(
            recoverable, message_digest(text), hasher=None
        )
    except (ValueError, TypeError):
        return None
    return bytes(key.format(compressed=True))


def verify_message(address: str, signature: str, text: str, params: NetworkParams) -> bool:
    """Whether ``signature`` over ``text`` was made by the key of ``address``.

    ``consensus.AddressError`` if the address is unusable on this network;
    ``MessageSignatureError`` if the signature is malformed.
    """
    pubkey_hash = decode_address(address, params)
    pubkey = recover_pubkey(signature, text)
    return pubkey is not None and hash160(pubkey) == pubkey_hash
