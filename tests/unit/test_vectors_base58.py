"""Base58, Base58Check and addresses against Bitcoin Core's and bitcoinjs-lib's vectors.

Bitcoin's addresses use version bytes 0x00/0x05/0x6f/0xc4 and WIF 0x80/0xef; Tally's networks
use 0x41 (main), 0x80 (test) and 0x7a (regtest). So every valid Bitcoin address is a well-formed
Base58Check string that ``decode_address`` must refuse as ``wrong-network`` on every Tally network.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from consensus import (
    NETWORKS,
    AddressError,
    b58check_decode,
    b58check_encode,
    b58decode,
    b58encode,
    decode_address,
    encode_address,
    engine,
    get_params,
    hash160,
)
from consensus.address import MAX_BASE58_LENGTH

BITCOIN_VERSIONS = {"p2pkh": {"main": 0x00, "test": 0x6F}, "p2sh": {"main": 0x05, "test": 0xC4}}


@pytest.fixture(scope="module")
def keys(vectors: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (vectors / "base58" / "base58check_addresses_wif.json").read_text()
    )
    return data


def _valid(keys: dict[str, Any]) -> list[dict[str, Any]]:
    return [*keys["valid_from_base58_keys_valid"], *keys["valid_from_key_io_valid"]]


def _invalid(keys: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *keys["invalid_from_base58_keys_invalid"],
        *keys["invalid_from_key_io_invalid_non_bech32"],
    ]


def test_bitcoin_core_base58_encode_decode(vectors: Path) -> None:
    pairs = json.loads(
        (vectors / "base58" / "original" / "bitcoin-core_base58_encode_decode.json").read_text()
    )
    assert len(pairs) == 21
    capped = 0
    for hex_data, text in pairs:
        data = bytes.fromhex(hex_data)
        assert b58encode(data) == text
        if len(text) <= MAX_BASE58_LENGTH:
            assert b58decode(text) == data
        else:
            # Core decodes this one (256 bytes, 348 characters); Tally's b58decode refuses
            # strings over its documented DoS cap before decoding.
            with pytest.raises(AddressError) as err:
                b58decode(text)
            assert err.value.reason == "bad-length"
            capped += 1
    assert capped <= 1


def test_valid_base58check_entries(keys: dict[str, Any]) -> None:
    valid = _valid(keys)
    assert len(valid) == 104
    for entry in valid:
        payload = b58check_decode(entry["string"])
        version = bytes.fromhex(entry["version_byte"])
        expected = version + bytes.fromhex(entry["payload_hex"])
        if entry["kind"] == "wif" and entry.get("compressed"):
            # WIF of a compressed key: 32-byte secret + 0x01 suffix (the file lists the secret).
            assert payload in (expected, expected + b"\x01")
            assert payload[-1:] == b"\x01" and len(payload) == 34
        else:
            assert payload == expected, entry["string"]
        assert b58check_encode(payload) == entry["string"]
        network = entry.get("network", entry.get("chain"))
        if entry["kind"] in BITCOIN_VERSIONS:
            base = "test" if network in ("test", "regtest") else "main"
            assert payload[0] == BITCOIN_VERSIONS[entry["kind"]][base]
            assert len(payload) == 21


def test_bitcoin_addresses_are_wrong_network_on_tally(keys: dict[str, Any]) -> None:
    addresses = [e for e in _valid(keys) if e["kind"] in BITCOIN_VERSIONS]
    assert len(addresses) >= 26
    for entry in addresses:
        for name in NETWORKS:
            with pytest.raises(AddressError) as err:
                decode_address(entry["string"], get_params(name))
            assert err.value.reason == "wrong-network", (entry["string"], name)
        # With a network whose version byte matches, the same string decodes to the payload.
        version = int(entry["version_byte"], 16)
        params = dataclasses.replace(get_params("main"), address_version=version)
        assert decode_address(entry["string"], params).hex() == entry["payload_hex"]


def _expected_reason(reason: str, payload: bytes | None) -> str:
    """Map the file's classification to ``AddressError.reason`` (for ``decode_address``).

    - ``bad_checksum`` -> ``bad-checksum``; ``invalid_base58_char`` -> ``bad-character``;
    - ``empty``/``too_short`` (fewer than 5 bytes: no room for a checksum) -> ``bad-length``;
    - ``wrong_payload_length_*`` / ``wrong_wif_payload_length_*``: the checksum is fine, but the
      payload is not 1 + 20 bytes -> ``bad-length``;
    - ``valid_base58check_but_unknown_version_byte_0xVV_lenN``: the checksum is fine and N counts
      the bytes after the version byte. Tally checks the length before the version, so N == 20
      (address-shaped, unknown version) -> ``wrong-network``, any other N -> ``bad-length``.
    """
    if reason == "bad_checksum":
        return "bad-checksum"
    if reason == "invalid_base58_char":
        return "bad-character"
    if reason in ("empty", "too_short") or reason.startswith(
        ("wrong_payload_length_", "wrong_wif_payload_length_")
    ):
        return "bad-length"
    match = re.fullmatch(
        r"valid_base58check_but_unknown_version_byte_0x([0-9a-f]{2})_len(\d+)", reason
    )
    assert match, reason
    assert payload is not None
    assert payload[0] == int(match[1], 16) and len(payload) - 1 == int(match[2])
    return "wrong-network" if len(payload) == 21 else "bad-length"


def test_invalid_entries_are_refused_with_the_right_reason(keys: dict[str, Any]) -> None:
    invalid = _invalid(keys)
    assert len(invalid) == 101
    seen = {"bad-checksum": 0, "bad-character": 0, "bad-length": 0, "wrong-network": 0}
    for entry in invalid:
        text, reason = entry["string"], entry["reason"]
        payload = None
        if reason.startswith(("valid_base58check", "wrong_payload", "wrong_wif")):
            payload = b58check_decode(text)  # the checksum itself is fine
            assert len(payload) != 21 or payload[0] not in {0x00, 0x05, 0x6F, 0xC4}
        expected = _expected_reason(reason, payload)
        seen[expected] += 1
        for name in NETWORKS:
            with pytest.raises(AddressError) as err:
                decode_address(text, get_params(name))
            assert err.value.reason == expected, (text, reason, name)
        if expected in ("bad-checksum", "bad-character") or reason in ("empty", "too_short"):
            with pytest.raises(AddressError) as err:
                b58check_decode(text)
            assert err.value.reason == expected, (text, reason)
    assert all(count > 0 for count in seen.values()), seen


def test_unknown_version_addresses_decode_on_a_matching_network(keys: dict[str, Any]) -> None:
    """The ``wrong-network`` above is really about the version byte: match it and they decode."""
    found = 0
    for entry in _invalid(keys):
        match = re.fullmatch(
            r"valid_base58check_but_unknown_version_byte_0x(..)_len20", entry["reason"]
        )
        if not match:
            continue
        params = dataclasses.replace(get_params("test"), address_version=int(match[1], 16))
        assert decode_address(entry["string"], params) == b58check_decode(entry["string"])[1:]
        found += 1
    assert found >= 5


def test_tally_round_trip_and_cross_network() -> None:
    hashes = [bytes(20), b"\xff" * 20, hash160(b"tally"), bytes(range(20))]
    for pubkey_hash in hashes:
        encoded = {name: encode_address(pubkey_hash, p) for name, p in NETWORKS.items()}
        assert len(set(encoded.values())) == 3
        for name, text in encoded.items():
            assert decode_address(text, NETWORKS[name]) == pubkey_hash
            assert b58check_decode(text) == bytes([NETWORKS[name].address_version]) + pubkey_hash
            for other in NETWORKS:
                if other == name:
                    continue
                with pytest.raises(AddressError) as err:
                    decode_address(text, NETWORKS[other])
                assert err.value.reason == "wrong-network"
    assert encode_address(bytes(20), get_params("main")).startswith("T")
    assert encode_address(bytes(20), get_params("test")).startswith("t")
    assert encode_address(bytes(20), get_params("regtest")).startswith("r")


def test_tally_address_errors() -> None:
    main = get_params("main")
    text = encode_address(hash160(b"x"), main)
    last = text[-1]
    typo = text[:-1] + ("2" if last != "2" else "3")
    with pytest.raises(AddressError) as err:
        decode_address(typo, main)
    assert err.value.reason == "bad-checksum"
    with pytest.raises(AddressError) as err:
        decode_address(text[:5] + "0" + text[6:], main)  # '0' is not in the alphabet
    assert err.value.reason == "bad-character"
    with pytest.raises(AddressError) as err:
        decode_address(b58check_encode(bytes([main.address_version]) + bytes(19)), main)
    assert err.value.reason == "bad-length"
    with pytest.raises(ValueError):
        encode_address(bytes(19), main)


@pytest.mark.parametrize("engine_name", ["coincurve", "ecdsa"])
def test_privkey_pubkey_address_wif(engine_name: str, vectors: Path) -> None:
    data = json.loads((vectors / "base58" / "privkey_pubkey_address_wif.json").read_text())
    valid = data["valid"]
    assert len(valid) == 8
    eng = engine(engine_name)
    for entry in valid:
        d = bytes.fromhex(entry["d"])
        q = bytes.fromhex(entry["Q"])
        pub = eng.pubkey(d)
        if entry["compressed"]:
            assert pub == q
        else:
            assert len(q) == 65 and q[0] == 4
            assert pub == bytes([2 + (q[-1] & 1)]) + q[1:33]
        pubkey_hash = hash160(q)
        assert pubkey_hash.hex() == entry["hash160"]
        version = 0x00 if entry["network"] == "bitcoin" else 0x6F
        assert b58check_decode(entry["address"]) == bytes([version]) + pubkey_hash
        params = dataclasses.replace(get_params("main"), address_version=version)
        assert encode_address(pubkey_hash, params) == entry["address"]
        wif_version = 0x80 if entry["network"] == "bitcoin" else 0xEF
        suffix = b"\x01" if entry["compressed"] else b""
        assert b58check_decode(entry["WIF"]) == bytes([wif_version]) + d + suffix
        assert b58check_encode(bytes([wif_version]) + d + suffix) == entry["WIF"]
        with pytest.raises(AddressError) as err:
            decode_address(entry["address"], get_params("main"))
        assert err.value.reason == "wrong-network"
