"""The keystore: round trip, wrong password changes nothing, mode 0600, no secret in any encoding,
network binding, and atomic writes (a crash mid-write leaves the old file)."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from bip32 import BIP32  # type: ignore[import-untyped]

from consensus import b58check_encode, b58encode, get_params
from wallet import cli, keystore
from wallet.keys import CHANGE, RECEIVE, Account, account_path, mnemonic_to_seed

MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
PASSPHRASE = "correct horse"
FAST = keystore.KdfParams(n=2**10)
REGTEST = get_params("regtest")


def make(path: Path, password: str = "pw", kdf: keystore.KdfParams = FAST) -> keystore.Keystore:
    store = keystore.seal(
        keystore.Secrets(MNEMONIC, PASSPHRASE),
        password,
        "regtest",
        REGTEST.coin_type,
        account_path(REGTEST),
        kdf,
    )
    keystore.save(path, store, exclusive=True)
    return store


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    store = make(path)
    loaded = keystore.load(path)
    assert loaded == store
    secret = loaded.unlock("pw")
    assert secret.mnemonic == MNEMONIC and secret.passphrase == PASSPHRASE
    assert "hidden" in repr(secret) and "legal" not in repr(secret)
    # index updates keep the ciphertext and round-trip
    keystore.save(path, loaded.with_indexes(receive_index=3, receive_used=2, change_index=5))
    again = keystore.load(path)
    assert (again.receive_index, again.receive_used, again.change_index) == (3, 2, 5)
    assert again.unlock("pw") == secret


def test_default_kdf_is_scrypt_2_17(tmp_path: Path) -> None:
    store = keystore.seal(keystore.Secrets(MNEMONIC), "pw", "regtest", 1, "m/44'/1'/0'")
    data = store.to_json()
    assert data["kdf"]["name"] == "scrypt" and data["kdf"]["n"] == 2**17
    assert data["cipher"]["name"] == "aes-256-gcm"
    assert len(bytes.fromhex(data["kdf"]["salt"])) == 16
    assert len(bytes.fromhex(data["cipher"]["nonce"])) == 12


def test_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "w.json"
    old = os.umask(0)
    try:
        make(path)
        keystore.save(path, keystore.load(path).with_indexes(receive_index=1))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["w.json"]  # no temporary file left


def test_wrong_password_is_clear_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    make(path)
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    with pytest.raises(keystore.WrongPasswordError, match="wrong password"):
        keystore.load(path).unlock("not the password")
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_wrong_password_through_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.json"
    make(path)
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    monkeypatch.setenv("TALLY_WALLET_PASSWORD", "nope")
    for command in (["address", "--new"], ["address"], ["info"], ["balance"]):
        err = io.StringIO()
        status = cli.run(["--wallet", str(path), *command], stdout=io.StringIO(), stderr=err)
        assert status == 1
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tally-wallet: wrong password")
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def secret_encodings() -> list[str]:
    """Every encoding of every secret (and key) an attacker could grep the file for."""
    seed = mnemonic_to_seed(MNEMONIC, PASSPHRASE)
    master = BIP32.from_seed(seed)
    account = Account(seed, REGTEST)
    found = [
        MNEMONIC,
        " ".join(MNEMONIC.split()[:3]),
        PASSPHRASE,
        seed.hex(),
        seed.hex().upper(),
        b58encode(seed),
        master.get_xpriv(),
        master.get_xpub(),
        master.get_xpriv_from_path(account_path(REGTEST)),
        account.account_xpub,
        master.privkey.hex(),
        master.chaincode.hex(),
    ]
    for chain in (RECEIVE, CHANGE):
        for index in range(25):
            priv = account.privkey(chain, index)
            pub = account.pubkey(chain, index)
            found += [
                priv.hex(),
                pub.hex(),
                b58encode(priv),
                b58check_encode(b"\x80" + priv + b"\x01"),  # WIF, compressed
                b58check_encode(b"\x80" + priv),
                b58check_encode(b"\xef" + priv + b"\x01"),
                account.address(chain, index),
                account.pubkey_hash(chain, index).hex(),
            ]
    return found


def test_file_holds_no_secret_in_any_encoding(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    make(path)
    text = path.read_text()
    raw = path.read_bytes()
    for secret in secret_encodings():
        assert secret not in text, secret[:12]
        assert secret.lower() not in text.lower(), secret[:12]
    seed = mnemonic_to_seed(MNEMONIC, PASSPHRASE)
    account = Account(seed, REGTEST)
    for blob in (seed, account.privkey(RECEIVE, 0), MNEMONIC.encode()):
        assert blob not in raw
    for word in set(MNEMONIC.split()):
        assert word not in text
    data = json.loads(text)
    assert set(data) == {
        "format",
        "version",
        "network",
        "coin_type",
        "account_path",
        "receive_index",
        "receive_used",
        "change_index",
        "created",
        "kdf",
        "cipher",
        "ciphertext",
    }


def test_network_is_bound_to_the_ciphertext(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    make(path)
    data = json.loads(path.read_text())
    data["network"] = "main"
    path.write_text(json.dumps(data))
    with pytest.raises(keystore.WrongPasswordError):
        keystore.load(path).unlock("pw")


def test_tampered_ciphertext_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    make(path)
    data = json.loads(path.read_text())
    ct = bytearray(bytes.fromhex(data["ciphertext"]))
    ct[0] ^= 1
    data["ciphertext"] = ct.hex()
    path.write_text(json.dumps(data))
    with pytest.raises(keystore.WrongPasswordError):
        keystore.load(path).unlock("pw")


@pytest.mark.parametrize(
    "content",
    ["", "not json", "[]", '{"format": "other"}', '{"format": "tally-wallet", "version": 1}'],
)
def test_malformed_files_are_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "w.json"
    path.write_text(content)
    with pytest.raises(keystore.KeystoreError):
        keystore.load(path)


def test_hostile_scrypt_cost_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    make(path)
    data = json.loads(path.read_text())
    data["kdf"]["n"] = 2**30
    path.write_text(json.dumps(data))
    with pytest.raises(keystore.KeystoreError, match="scrypt n"):
        keystore.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(keystore.KeystoreError, match="no wallet at"):
        keystore.load(tmp_path / "nothing.json")


def test_create_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    make(path)
    before = path.read_bytes()
    with pytest.raises(keystore.KeystoreError, match="already exists"):
        make(path, password="other")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.json"]


@pytest.mark.parametrize("crash", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_crash_mid_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: BaseException
) -> None:
    path = tmp_path / "w.json"
    make(path)
    before = path.read_bytes()

    def half_then_crash(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise crash

    monkeypatch.setattr(keystore, "_write_all", half_then_crash)
    store = keystore.load(path).with_indexes(receive_index=9)
    with pytest.raises((keystore.KeystoreError, KeyboardInterrupt)):
        keystore.save(path, store)
    assert path.read_bytes() == before
    assert keystore.load(path).unlock("pw").mnemonic == MNEMONIC
    assert [p.name for p in tmp_path.iterdir()] == ["w.json"]


def test_crash_before_rename_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.json"
    make(path)
    before = path.read_bytes()

    def no_replace(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(keystore.os, "replace", no_replace)
    with pytest.raises(keystore.KeystoreError, match="cannot write wallet"):
        keystore.save(path, keystore.load(path).with_indexes(change_index=4))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.json"]
