"""Signed messages (SPEC 4 ``sign-message`` / ``verify-message``): Bitcoin's scheme, Tally's tag.

The construction is checked against Bitcoin Core's own vector (its functional test
``test/functional/rpc_signmessagewithprivkey.py``: the testnet key
``cUeKHd5orzT3mz8P9pxyREHfsWtVfgsfDjiZZBcjUBAaGk1BTj7N`` signs "This is just a test message"),
computed here with Bitcoin's tag in place of Tally's, and the recovery against the independent
pure-Python ``ecdsa`` package.
"""

from __future__ import annotations

import base64

import ecdsa  # type: ignore[import-untyped]
import pytest
from ecdsa.util import sigdecode_string  # type: ignore[import-untyped]

from consensus import b58check_decode, encode_address, get_params, hash160
from tests.helpers import key
from wallet.message import (
    MessageSignatureError,
    message_digest,
    recover_pubkey,
    sign_message,
    verify_message,
)

REGTEST = get_params("regtest")
CORE_WIF = "cUeKHd5orzT3mz8P9pxyREHfsWtVfgsfDjiZZBcjUBAaGk1BTj7N"
CORE_TEXT = "This is just a test message"
CORE_SIGNATURE = (
    "INbVnW4e6PeRmsv2Qgu8NuopvrVjkcxob+sX8OcZG0SALhWybUjzMLPdAsXI46YZGb0KQTRii+wWIQzRpG/U+S0="
)


def test_bitcoin_cores_vector_with_bitcoins_tag() -> None:
    import coincurve

    privkey = b58check_decode(CORE_WIF)[1:33]
    digest = message_digest(CORE_TEXT, b"Bitcoin Signed Message:\n")
    recoverable = coincurve.PrivateKey(privkey).sign_recoverable(digest, hasher=None)
    ours = base64.b64encode(bytes([31 + recoverable[64]]) + recoverable[:64]).decode()
    assert ours == CORE_SIGNATURE


def test_sign_then_verify() -> None:
    k = key(3)
    address = encode_address(k.pubkey_hash, REGTEST)
    signature = sign_message(k.privkey, "I own this address")
    assert len(base64.b64decode(signature)) == 65
    assert verify_message(address, signature, "I own this address", REGTEST)


def test_the_recovered_key_agrees_with_an_independent_implementation() -> None:
    k = key(4)
    text = "paid at the market stall"
    raw = base64.b64decode(sign_message(k.privkey, text))
    candidates = ecdsa.VerifyingKey.from_public_key_recovery_with_digest(
        raw[1:], message_digest(text), curve=ecdsa.SECP256k1, sigdecode=sigdecode_string
    )
    recovered = candidates[raw[0] - 31].to_string("compressed")
    assert recovered == k.pubkey == recover_pubkey(base64.b64encode(raw).decode(), text)


def test_changed_text_address_or_signature_does_not_verify() -> None:
    k, other = key(5), key(6)
    address = encode_address(k.pubkey_hash, REGTEST)
    signature = sign_message(k.privkey, "hello")
    assert not verify_message(address, signature, "hello!", REGTEST)
    elsewhere = encode_address(other.pubkey_hash, REGTEST)
    assert not verify_message(elsewhere, signature, "hello", REGTEST)
    raw = bytearray(base64.b64decode(signature))
    for position in (1, 20, 40, 64):
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        assert not verify_message(address, base64.b64encode(flipped).decode(), "hello", REGTEST)
    other_recovery = bytearray(raw)
    other_recovery[0] = 31 + ((raw[0] - 31) ^ 1)
    assert not verify_message(address, base64.b64encode(other_recovery).decode(), "hello", REGTEST)


def test_the_high_s_twin_is_refused() -> None:
    k = key(7)
    address = encode_address(k.pubkey_hash, REGTEST)
    raw = base64.b64decode(sign_message(k.privkey, "x"))
    n = ecdsa.SECP256k1.order
    s = int.from_bytes(raw[33:], "big")
    twin = bytes([31 + ((raw[0] - 31) ^ 1)]) + raw[1:33] + (n - s).to_bytes(32, "big")
    # The twin is a valid ECDSA signature of the same key (the independent library says so) ...
    candidates = ecdsa.VerifyingKey.from_public_key_recovery_with_digest(
        twin[1:], message_digest("x"), curve=ecdsa.SECP256k1, sigdecode=sigdecode_string
    )
    assert any(hash160(c.to_string("compressed")) == k.pubkey_hash for c in candidates)
    # ... but a message signature has one encoding: low S.
    assert not verify_message(address, base64.b64encode(twin).decode(), "x", REGTEST)


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(bytes(64)).decode(), "65 bytes"),
        (base64.b64encode(bytes([27]) + bytes(64)).decode(), "compressed key"),
    ],
)
def test_malformed_signatures_say_why(signature: str, message: str) -> None:
    address = encode_address(key(1).pubkey_hash, REGTEST)
    with pytest.raises(MessageSignatureError, match=message):
        verify_message(address, signature, "hello", REGTEST)


def test_a_signature_of_zeros_is_not_valid() -> None:
    address = encode_address(key(1).pubkey_hash, REGTEST)
    zeros = base64.b64encode(bytes([31]) + bytes(64)).decode()
    assert not verify_message(address, zeros, "a", REGTEST)
