"""A wallet file cannot demand unbounded key-derivation work or memory (issue 21, keystore limits).

A wallet file is data anyone could have handed the user. Its scrypt parameters are held to
``MAX_SCRYPT_MEMORY`` (``128 * n * r`` bytes) and ``MAX_SCRYPT_WORK`` (``n * r * p``) before any
derivation: the refusal costs arithmetic, never scrypt itself, which these tests make sure of by
replacing scrypt with a function that fails the test if called.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_wallet_keystore import make
from wallet import keystore


class ScryptCalledError(AssertionError):
    pass


@pytest.fixture
def wallet_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real wallet file; from then on, any scrypt call fails the test."""
    path = tmp_path / "w.json"
    make(path)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ScryptCalledError("scrypt ran for a file it should have refused first")

    monkeypatch.setattr(keystore, "Scrypt", refuse)
    return path


def rewrite(path: Path, **kdf: int) -> None:
    data = json.loads(path.read_text())
    data["kdf"].update(kdf)
    path.write_text(json.dumps(data))


HOSTILE = [
    pytest.param({"n": 2**22, "r": 32, "p": 16}, "MiB of memory", id="16-GiB-file-of-the-issue"),
    pytest.param({"n": 2**22, "r": 1, "p": 1}, "MiB of memory", id="n-above-cap"),
    pytest.param({"n": 2**17, "r": 17, "p": 1}, "MiB of memory", id="memory-one-step-over"),
    pytest.param({"n": 2**17, "r": 8, "p": 5}, "times the default work", id="work-one-step-over"),
    pytest.param({"n": 2**17, "r": 8, "p": 10**9}, "times the default work", id="huge-p"),
    pytest.param({"n": 3 * 2**10, "r": 8, "p": 1}, "power of two", id="n-not-power-of-two"),
    pytest.param({"n": 2**10, "r": 0, "p": 1}, "at least 1", id="r-zero"),
]


@pytest.mark.parametrize(("kdf", "message"), HOSTILE)
def test_costs_above_the_caps_are_refused_before_any_derivation(
    wallet_file: Path, kdf: dict[str, int], message: str
) -> None:
    path = wallet_file
    rewrite(path, **kdf)
    with pytest.raises(keystore.KeystoreError, match=message):
        keystore.load(path)
    with pytest.raises(ValueError, match=message):
        keystore.derive_key("pw", keystore.KdfParams(kdf["n"], kdf["r"], kdf["p"], bytes(16)))


def test_costs_at_the_caps_are_accepted(wallet_file: Path) -> None:
    path = wallet_file
    for n, r, p in [(2**17, 8, 4), (2**18, 8, 2), (2**21, 1, 2), (2**10, 8, 1)]:
        assert 128 * n * r <= keystore.MAX_SCRYPT_MEMORY and n * r * p <= keystore.MAX_SCRYPT_WORK
        rewrite(path, n=n, r=r, p=p)
        assert keystore.load(path).kdf == keystore.KdfParams(n, r, p, keystore.load(path).kdf.salt)


def test_the_default_cost_is_within_the_caps() -> None:
    keystore.check_kdf_cost(keystore.KdfParams())


def test_an_oversized_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    make(path)
    data = json.loads(path.read_text())
    data["ciphertext"] = "00" * keystore.MAX_FILE_BYTES
    path.write_text(json.dumps(data))
    with pytest.raises(keystore.KeystoreError, match="larger than a wallet file"):
        keystore.load(path)


def test_a_salt_of_absurd_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    make(path)
    data = json.loads(path.read_text())
    data["kdf"]["salt"] = "00" * 4096
    path.write_text(json.dumps(data))
    with pytest.raises(keystore.KeystoreError, match="salt"):
        keystore.load(path)
