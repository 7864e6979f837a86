"""Keystore format version 2: version 1 files are read and upgraded when unlocked; the node URL,
labels, frozen coins and watch-only wallets round-trip; labels and frozen coins of a wallet with
keys are encrypted; metadata is bounded."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consensus import get_params
from wallet import keystore
from wallet.keys import Account, account_path, mnemonic_to_seed
from wallet.service import Wallet

MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
FAST = keystore.KdfParams(n=2**10)
REGTEST = get_params("regtest")
TXID = "ab" * 32


def version_1_file(path: Path, password: str = "pw") -> None:
    """A file exactly as version 1 wrote it (associated data bound to version 1)."""
    store = keystore.seal(
        keystore.Secrets(MNEMONIC), password, "regtest", 1, account_path(REGTEST), FAST
    )
    data = store.to_json()
    data["version"] = 1
    salt = bytes.fromhex(data["kdf"]["salt"])
    key = keystore.derive_key(password, replace(FAST, salt=salt))
    nonce = bytes.fromhex(data["cipher"]["nonce"])
    ad = json.dumps(["tally-wallet", 1, "regtest", 1, "m/44'/1'/0'"], separators=(",", ":"))
    plain = json.dumps({"mnemonic": MNEMONIC, "passphrase": ""}).encode()
    data["ciphertext"] = AESGCM(key).encrypt(nonce, plain, ad.encode()).hex()
    path.write_text(json.dumps(data))


def test_version_1_is_read_and_upgraded_when_unlocked(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    version_1_file(path)
    store = keystore.load(path)
    assert store.version == 1 and store.node_url is None
    secret, key = store.unlock_with_key("pw")
    assert secret.mnemonic == MNEMONIC and secret.meta == keystore.Metadata()
    wallet = Wallet(path, store, secret, None, key)
    wallet.upgrade_format()
    upgraded = keystore.load(path)
    assert upgraded.version == 2 == json.loads(path.read_text())["version"]
    assert upgraded.unlock("pw").mnemonic == MNEMONIC
    # a version-1 file whose version field is changed to 2 does not open: the version is bound
    version_1_file(path)
    data = json.loads(path.read_text())
    data["version"] = 2
    path.write_text(json.dumps(data))
    with pytest.raises(keystore.WrongPasswordError):
        keystore.load(path).unlock("pw")


def test_labels_and_frozen_coins_are_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    store = keystore.seal(keystore.Secrets(MNEMONIC), "pw", "regtest", 1, "m/44'/1'/0'", FAST)
    store = store.with_node("http://127.0.0.1:1")
    keystore.save(path, store, exclusive=True)
    secret, key = store.unlock_with_key("pw")
    wallet = Wallet(path, store, secret, None, key)
    address = Account(mnemonic_to_seed(MNEMONIC), REGTEST).address(0, 0)
    meta = wallet.meta.with_label(address, "shop till").with_frozen(f"{TXID}:1", True)
    wallet.save_meta(meta.with_label(TXID, "rent"))
    text = path.read_text()
    for clear in (address, TXID, "shop till", "rent"):
        assert clear not in text
    assert json.loads(text)["node"] == "http://127.0.0.1:1"
    again = keystore.load(path).unlock("pw").meta
    assert again.label_map == {address: "shop till", TXID: "rent"}
    assert again.frozen == (f"{TXID}:1",)
    assert again.with_frozen(f"{TXID}:1", False).frozen == ()
    assert again.with_label(TXID, "").label_map == {address: "shop till"}


def test_watch_only_round_trip_holds_no_cipher(tmp_path: Path) -> None:
    account = Account(mnemonic_to_seed(MNEMONIC), REGTEST)
    path = tmp_path / "watch.json"
    store = keystore.watch_only(account.account_xpub, "regtest", 1, "m/44'/1'/0'", None)
    keystore.save(path, store, exclusive=True)
    data = json.loads(path.read_text())
    assert data["watch_only"] == {"xpub": account.account_xpub}
    assert not {"kdf", "cipher", "ciphertext"} & set(data)
    loaded = keystore.load(path)
    assert loaded == store and loaded.watch_only
    with pytest.raises(keystore.KeystoreError, match="watch-only"):
        loaded.unlock("pw")
    wallet = Wallet(path, loaded, None, None)
    assert wallet.address_of(wallet.receive_address()[0]) == account.address(0, 0)
    with pytest.raises(Exception, match="no private keys"):
        wallet.account.privkey(0, 0)
    # a watch-only file claiming a ciphertext too is refused
    data["ciphertext"] = "00"
    path.write_text(json.dumps(data))
    with pytest.raises(keystore.KeystoreError):
        keystore.load(path)


def test_metadata_is_bounded() -> None:
    meta = keystore.Metadata()
    with pytest.raises(keystore.KeystoreError, match="at most"):
        meta.with_label(TXID, "x" * (keystore.MAX_LABEL_CHARS + 1))
    many = {f"{n:064x}": "x" for n in range(keystore.MAX_LABELS + 1)}
    with pytest.raises(ValueError, match="too many"):
        keystore.Metadata.from_json({"labels": many})
    with pytest.raises(ValueError):
        keystore.Metadata.from_json({"labels": {TXID: 5}})
    with pytest.raises(ValueError):
        keystore.Metadata.from_json({"frozen": "abc"})


def test_labels_up_to_the_cap_still_make_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    store = keystore.seal(keystore.Secrets(MNEMONIC), "pw", "regtest", 1, "m/44'/1'/0'", FAST)
    keystore.save(path, store, exclusive=True)
    secret, key = store.unlock_with_key("pw")
    wallet = Wallet(path, store, secret, None, key)
    meta = wallet.meta
    wide = "\u20ac" * keystore.MAX_LABEL_CHARS  # 6 bytes each once JSON-escaped
    refused = False
    for n in range(keystore.MAX_LABELS):
        try:
            meta = meta.with_label(f"{n:064x}", wide)
        except keystore.KeystoreError as err:
            assert "KiB" in str(err)
            refused = True
            break
    assert refused
    wallet.save_meta(meta)
    assert path.stat().st_size <= keystore.MAX_FILE_BYTES
    assert keystore.load(path).unlock("pw").meta == meta
