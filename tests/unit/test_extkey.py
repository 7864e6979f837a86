"""Extended public keys in each network's own version bytes (``consensus.extkey``).

BIP32's own test vectors (``tests/data/bip32``) are decoded after re-encoding with Tally's version
bytes: the fields must be the vectors' (depth, fingerprint, child number, chain code, key), and
the BIP's invalid keys with a bad key prefix are refused with ``bad-key``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from consensus import (
    ExtendedKeyError,
    ExtendedPublicKey,
    b58check_decode,
    b58check_encode,
    convert_xpub_version,
    decode_xpub,
    encode_xpub,
    get_params,
)

REGTEST, TEST, MAIN = get_params("regtest"), get_params("test"), get_params("main")


def chains(vectors: Path) -> list[dict[str, Any]]:
    data = json.loads((vectors / "bip32/bip32_test_vectors_1-5.json").read_text())
    return [c for v in data["vectors"] for c in v["chains"]]


def test_each_network_has_its_own_readable_prefix(vectors: Path) -> None:
    xpub = chains(vectors)[0]["xpub"]
    assert convert_xpub_version(xpub, MAIN).startswith("Tpub")
    assert convert_xpub_version(xpub, TEST).startswith("Spub")
    assert convert_xpub_version(xpub, REGTEST).startswith("Rpub")
    versions = {p.xpub_version for p in (MAIN, TEST, REGTEST)} | {
        p.xprv_version for p in (MAIN, TEST, REGTEST)
    }
    assert len(versions) == 6
    assert versions.isdisjoint({0x0488B21E, 0x0488ADE4, 0x043587CF, 0x04358394})


def test_the_bip32_vectors_decode_to_their_fields(vectors: Path) -> None:
    for chain in chains(vectors):
        text = convert_xpub_version(chain["xpub"], REGTEST)
        key = decode_xpub(text, REGTEST)
        assert key.depth == chain["depth"]
        assert key.parent_fingerprint.hex() == chain["parent_fingerprint"]
        assert key.child_number == chain["child_index"]
        assert key.chain_code.hex() == chain["chain_code"]
        assert key.pubkey.hex() == chain["public_key"]
        assert encode_xpub(key, REGTEST) == text
        assert b58check_decode(text)[4:] == b58check_decode(chain["xpub"])[4:]


def test_round_trip() -> None:
    key = ExtendedPublicKey(
        3, b"\x01\x02\x03\x04", 0x80000000, bytes(range(32)), b"\x02" + bytes(32)
    )
    for params in (MAIN, TEST, REGTEST):
        assert decode_xpub(encode_xpub(key, params), params) == key


@pytest.mark.parametrize(
    ("which", "reason", "words"),
    [
        ("bitcoin-xpub", "wrong-network", "Bitcoin's xpub"),
        ("main-xpub", "wrong-network", "main network's"),
        ("regtest-xprv", "private-key", "PRIVATE"),
        ("bad-checksum", "bad-checksum", "checksum"),
        ("bad-character", "bad-character", "not Base58"),
        ("short", "bad-length", "78 bytes"),
        ("long-text", "bad-length", "at most"),
        ("bad-prefix", "bad-key", "compressed"),
    ],
)
def test_unusable_keys_say_why(vectors: Path, which: str, reason: str, words: str) -> None:
    xpub = chains(vectors)[0]["xpub"]
    raw = b58check_decode(xpub)
    mine = convert_xpub_version(xpub, REGTEST)
    text = {
        "bitcoin-xpub": xpub,
        "main-xpub": convert_xpub_version(xpub, MAIN),
        "regtest-xprv": b58check_encode(
            REGTEST.xprv_version.to_bytes(4, "big") + raw[4:45] + b"\x00" + bytes(32)
        ),
        "bad-checksum": mine[:-1] + ("2" if mine[-1] != "2" else "3"),
        "bad-character": mine[:10] + "0" + mine[11:],
        "short": b58check_encode(REGTEST.xpub_version.to_bytes(4, "big") + raw[4:-1]),
        "long-text": mine * 2,
        "bad-prefix": b58check_encode(
            REGTEST.xpub_version.to_bytes(4, "big") + raw[4:45] + b"\x04" + raw[46:]
        ),
    }[which]
    with pytest.raises(ExtendedKeyError, match=words) as caught:
        decode_xpub(text, REGTEST)
    assert caught.value.reason == reason
