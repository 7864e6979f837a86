"""Wallet keys: BIP39 (all 24 English vectors, passphrase TREZOR), BIP32 (test vectors 1 and 2,
every path), our BIP44 paths per network, and mnemonic checking that never echoes a word."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bip32 import BIP32  # type: ignore[import-untyped]

from consensus import b58check_encode, get_params, hash160, pubkey_from_privkey
from wallet.keys import (
    CHANGE,
    RECEIVE,
    Account,
    MnemonicError,
    account_path,
    key_path,
    master_xprv,
    mnemonic_to_seed,
    new_mnemonic,
    normalize_mnemonic,
)

ABANDON = "abandon " * 11 + "about"


def bip39_english(vectors: Path) -> list[list[str]]:
    data = json.loads((vectors / "bip39/original/trezor-python-mnemonic_vectors.json").read_text())
    english: list[list[str]] = data["english"]
    return english


def bip32_vectors(vectors: Path) -> list[dict[str, Any]]:
    data = json.loads((vectors / "bip32/bip32_test_vectors_1-5.json").read_text())
    found: list[dict[str, Any]] = data["vectors"]
    return found


def test_all_24_english_vectors_give_the_master_xprv(vectors: Path) -> None:
    english = bip39_english(vectors)
    assert len(english) == 24
    for entropy, mnemonic, seed_hex, xprv in english:
        phrase = normalize_mnemonic(mnemonic)
        assert phrase == mnemonic
        seed = mnemonic_to_seed(phrase, "TREZOR")
        assert seed.hex() == seed_hex
        assert master_xprv(seed) == xprv
        # and the words encode the vector's entropy
        from mnemonic import Mnemonic

        assert bytes(Mnemonic("english").to_entropy(phrase)).hex() == entropy


@pytest.mark.parametrize("number", [1, 2])
def test_bip32_vectors_every_path(vectors: Path, number: int) -> None:
    vector = next(v for v in bip32_vectors(vectors) if v["vector"] == number)
    master = BIP32.from_seed(bytes.fromhex(vector["seed_hex"]))
    assert vector["chains"], "no chains in the vector"
    for chain in vector["chains"]:
        path = chain["path"]
        assert master.get_xpriv_from_path(path) == chain["xprv"], path
        assert master.get_xpub_from_path(path) == chain["xpub"], path
        priv = master.get_privkey_from_path(path)
        assert priv.hex() == chain["private_key"]
        assert pubkey_from_privkey(priv).hex() == chain["public_key"]


def test_coin_type_path_per_network() -> None:
    assert account_path(get_params("main")) == "m/44'/1987'/0'"
    assert account_path(get_params("test")) == "m/44'/1'/0'"
    assert account_path(get_params("regtest")) == "m/44'/1'/0'"
    assert key_path(get_params("main"), CHANGE, 7) == "m/44'/1987'/0'/1/7"


def test_account_matches_independent_full_path_derivation() -> None:
    seed = mnemonic_to_seed(ABANDON)
    for name in ("main", "test", "regtest"):
        params = get_params(name)
        account = Account(seed, params)
        master = BIP32.from_seed(seed)
        for chain in (RECEIVE, CHANGE):
            for index in (0, 1, 19, 20, 1000):
                path = key_path(params, chain, index)
                pub = bytes(master.get_pubkey_from_path(path))
                assert account.pubkey(chain, index) == pub
                priv = account.privkey(chain, index)
                assert priv == bytes(master.get_privkey_from_path(path))
                assert pubkey_from_privkey(priv) == pub
                assert account.key_of(hash160(pub)) is not None


def test_bip44_testnet_known_address() -> None:
    """The well-known first BIP44 testnet address of the 'abandon ... about' mnemonic: our
    regtest account (coin type 1) derives the same key (shown with Bitcoin testnet's 0x6f)."""
    account = Account(mnemonic_to_seed(ABANDON), get_params("regtest"))
    address = b58check_encode(b"\x6f" + account.pubkey_hash(RECEIVE, 0))
    assert address == "mkpZhYtJu2r87Js3pDiWJDmPte2NRZ8bJV"
    assert account.address(RECEIVE, 0).startswith("r")


def test_networks_give_different_addresses_for_the_same_mnemonic() -> None:
    seed = mnemonic_to_seed(ABANDON)
    main = Account(seed, get_params("main")).address(RECEIVE, 0)
    reg = Account(seed, get_params("regtest")).address(RECEIVE, 0)
    assert main.startswith("T") and reg.startswith("r")
    assert main != reg


@pytest.mark.parametrize("words", [12, 24])
def test_new_mnemonic(words: int) -> None:
    phrase = new_mnemonic(words)
    assert len(phrase.split()) == words
    assert normalize_mnemonic(phrase) == phrase
    assert new_mnemonic(words) != phrase


def test_new_mnemonic_refuses_other_lengths() -> None:
    with pytest.raises(ValueError):
        new_mnemonic(15)


def test_normalize_mnemonic_spacing_and_case() -> None:
    assert normalize_mnemonic("  ABANDON  " + " abandon" * 10 + "\n about\n") == ABANDON


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abandon " * 11, "this one has 11"),
        ("abandon " * 11 + "zzzzz", "word 12 is not in the BIP39 English word list"),
        ("abandon " * 12, "checksum does not match"),
        ("", "this one has 0"),
    ],
)
def test_bad_mnemonics_are_explained_without_echoing_words(text: str, expected: str) -> None:
    with pytest.raises(MnemonicError) as info:
        normalize_mnemonic(text)
    message = str(info.value)
    assert expected in message
    assert "abandon" not in message and "zzzzz" not in message


def test_passphrase_changes_the_keys() -> None:
    params = get_params("regtest")
    plain = Account(mnemonic_to_seed(ABANDON), params).address(RECEIVE, 0)
    with_pass = Account(mnemonic_to_seed(ABANDON, "TREZOR"), params).address(RECEIVE, 0)
    assert plain != with_pass


def test_account_refuses_bad_indexes() -> None:
    account = Account(mnemonic_to_seed(ABANDON), get_params("regtest"))
    with pytest.raises(ValueError):
        account.pubkey(2, 0)
    with pytest.raises(ValueError):
        account.privkey(RECEIVE, 2**31)
