"""ECDSA over secp256k1: one ``sign``/``verify_signature`` interface, two engines.

- ``coincurve`` (default): libsecp256k1 through cffi. Verification calls the library directly
  (parse compact signature, parse public key, verify) with no DER round trip.
- ``ecdsa``: the pure-Python ``ecdsa`` package, the portable fallback (``TALLY_CRYPTO=ecdsa``).

The format is the protocol's (SPEC 2.3): 33-byte compressed public keys and 64-byte compact
``r || s`` signatures (big-endian), low-S only (``s <= n/2``), over a 32-byte digest. Signing is
deterministic (RFC 6979) and always yields low-S. ``verify_signature`` never raises on bad input:
wrong lengths, points off the curve, ``r`` or ``s`` out of range and high-S all give ``False``.

The engine is chosen once, from ``TALLY_CRYPTO`` at import; ``engine(name)`` returns a specific
one (tests use both). Caching verified signatures is the node's concern, not this module's.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol

import coincurve
import ecdsa
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from ecdsa.util import sigdecode_string, sigencode_string_canonize

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = SECP256K1_N // 2


class SignatureEngine(Protocol):
    """What both engines offer."""

    name: str

    def sign(self, privkey: bytes, digest: bytes) -> bytes: ...

    def verify(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool: ...

    def pubkey(self, privkey: bytes) -> bytes: ...


def _check_sign_args(privkey: bytes, digest: bytes) -> None:
    if len(privkey) != 32 or not 0 < int.from_bytes(privkey, "big") < SECP256K1_N:
        raise ValueError("a private key is 32 bytes in 1..n-1")
    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes")


def _is_compressed_pubkey(pubkey: bytes) -> bool:
    return len(pubkey) == 33 and pubkey[0] in (2, 3)


class CoincurveEngine:
    """libsecp256k1 through ``coincurve``'s cffi bindings."""

    name = "coincurve"

    def __init__(self) -> None:
        self._ctx = GLOBAL_CONTEXT.ctx

    def sign(self, privkey: bytes, digest: bytes) -> bytes:
        _check_sign_args(privkey, digest)
        sig = ffi.new("secp256k1_ecdsa_signature *")
        if not lib.secp256k1_ecdsa_sign(self._ctx, sig, digest, privkey, ffi.NULL, ffi.NULL):
            raise ValueError("signing failed")
        out = ffi.new("unsigned char[64]")
        lib.secp256k1_ecdsa_signature_serialize_compact(self._ctx, out, sig)
        return bytes(ffi.buffer(out, 64))

    def verify(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        if len(signature) != 64 or len(digest) != 32 or not _is_compressed_pubkey(pubkey):
            return False
        ctx = self._ctx
        sig = ffi.new("secp256k1_ecdsa_signature *")
        if not lib.secp256k1_ecdsa_signature_parse_compact(ctx, sig, signature):
            return False  # r or s >= n
        key = ffi.new("secp256k1_pubkey *")
        if not lib.secp256k1_ec_pubkey_parse(ctx, key, pubkey, 33):
            return False
        # libsecp256k1 accepts only lower-S signatures here, as the protocol requires.
        return bool(lib.secp256k1_ecdsa_verify(ctx, sig, digest, key))

    def pubkey(self, privkey: bytes) -> bytes:
        return coincurve.PrivateKey(privkey).public_key.format(compressed=True)


class EcdsaEngine:
    """Pure Python, through the ``ecdsa`` package."""

    name = "ecdsa"

    def sign(self, privkey: bytes, digest: bytes) -> bytes:
        _check_sign_args(privkey, digest)
        key = ecdsa.SigningKey.from_string(privkey, curve=ecdsa.SECP256k1)
        return key.sign_digest_deterministic(  # type: ignore[no-any-return]
            digest, hashfunc=hashlib.sha256, sigencode=sigencode_string_canonize
        )

    def verify(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        if len(signature) != 64 or len(digest) != 32 or not _is_compressed_pubkey(pubkey):
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < SECP256K1_N and 0 < s <= HALF_N):
            return False
        try:
            key = ecdsa.VerifyingKey.from_string(pubkey, curve=ecdsa.SECP256k1)
            return bool(key.verify_digest(signature, digest, sigdecode=sigdecode_string))
        except (
            ecdsa.BadSignatureError,
            ecdsa.MalformedPointError,
            ValueError,
            AssertionError,
            TypeError,  # python-ecdsa meets the point at infinity (u1*G + u2*Q = O)
        ):
            return False

    def pubkey(self, privkey: bytes) -> bytes:
        key = ecdsa.SigningKey.from_string(privkey, curve=ecdsa.SECP256k1)
        return key.get_verifying_key().to_string("compressed")  # type: ignore[no-any-return]


_ENGINES: dict[str, SignatureEngine] = {"coincurve": CoincurveEngine(), "ecdsa": EcdsaEngine()}


def engine(name: str) -> SignatureEngine:
    """The engine called ``name`` (``coincurve`` or ``ecdsa``)."""
    try:
        return _ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown signature engine {name!r}; use 'coincurve' or 'ecdsa'") from None


ACTIVE: SignatureEngine = engine(os.environ.get("TALLY_CRYPTO", "coincurve") or "coincurve")
"""The engine ``sign``, ``verify_signature`` and ``pubkey_from_privkey`` use."""


def sign(privkey: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest: RFC 6979 nonce, low-S, 64-byte compact ``r || s``."""
    return ACTIVE.sign(privkey, digest)


def verify_signature(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    """True if ``signature`` (64 bytes, low-S) by ``pubkey`` (33 bytes) signs ``digest``."""
    return ACTIVE.verify(pubkey, signature, digest)


def pubkey_from_privkey(privkey: bytes) -> bytes:
    """The 33-byte compressed public key of a 32-byte private key."""
    return ACTIVE.pubkey(privkey)
