"""The encrypted keystore: one JSON file per wallet, written atomically with mode 0600 (SPEC 4).

File format (``"format": "tally-wallet"``, ``"version": 1``)::

    {
      "format": "tally-wallet", "version": 1,
      "network": "regtest", "coin_type": 1, "account_path": "m/44'/1'/0'",
      "receive_index": 0, "receive_used": -1, "change_index": 0,
      "created": 1795305600,
      "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "<hex 16 bytes>"},
      "cipher": {"name": "aes-256-gcm", "nonce": "<hex 12 bytes>"},
      "ciphertext": "<hex>"
    }

The ciphertext is AES-256-GCM, under a key that scrypt derives from the password and the salt,
of a JSON object ``{"mnemonic": ..., "passphrase": ..., "replaced": [[original, replacement],
...]}`` (the BIP39 words and passphrase; the txids ``bump-fee`` replaced, optional). The
associated data binds the clear fields that say whose keys these are (format, version, network,
coin type, account path), so a file moved to another network fails to open instead of signing
there. Nothing secret is in clear: no mnemonic, seed, extended key, private or public key, nor
any address; the indexes (how many addresses were handed out) are in clear, so that handing out
an address does not need the password again to re-encrypt: they are not secrets, and a wrong
value costs only a re-scan.

Invariants: a file is only ever replaced whole (temporary file in the same directory, created
with mode 0600, written, fsynced, ``os.replace``d over the old one, directory fsynced), so a
crash leaves either the old file or the new one; a wrong password raises ``WrongPasswordError``
before anything is written; the encryption key is never stored.

Left to others: where passwords come from (``wallet.cli``), what the mnemonic means
(``wallet.keys``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

FORMAT = "tally-wallet"
VERSION = 1
SCRYPT_N = 2**17
"""scrypt cost (OWASP's recommendation for scrypt: N=2^17, r=8, p=1: about 0.4 s, 128 MiB)."""
SCRYPT_R = 8
SCRYPT_P = 1
MAX_SCRYPT_MEMORY = 256 * 2**20
"""The most memory a wallet file may make scrypt use (``128 * n * r`` bytes): twice the default.

A file is data anyone could have handed us; one asking for more is refused before any work
(without this, n = 2^22, r = 32 asks for 16 GiB)."""
MAX_SCRYPT_WORK = 4 * SCRYPT_N * SCRYPT_R * SCRYPT_P
"""The most work a wallet file may ask of scrypt (``n * r * p``): four times the default unlock,
about 1.6 s on this project's reference machine."""
MAX_FILE_BYTES = 1 << 20
"""A wallet file is a few kilobytes; a larger one is refused before it is read whole."""
SALT_BYTES = 16
NONCE_BYTES = 12
FILE_MODE = 0o600
MAX_REPLACED = 50
"""Replacements the wallet remembers (``Secrets.replaced``); older ones are forgotten, as the
node forgets them too."""


class KeystoreError(Exception):
    """The wallet file is missing, unreadable, malformed, or cannot be written."""


class WrongPasswordError(KeystoreError):
    """The password does not open this wallet (or the file was altered)."""


@dataclass(frozen=True)
class Secrets:
    """What the keystore protects: the BIP39 mnemonic and passphrase, and the wallet's own
    record of the transactions it replaced (``bump-fee``): ``(original, replacement)`` txid
    pairs, newest last, at most ``MAX_REPLACED``. Those are private like addresses (they lead to
    them), so they are encrypted too."""

    mnemonic: str
    passphrase: str = ""
    replaced: tuple[tuple[str, str], ...] = ()

    def with_replacement(self, original: str, replacement: str) -> Secrets:
        kept = tuple(p for p in self.replaced if p[0] != original)
        return replace(self, replaced=(*kept, (original, replacement))[-MAX_REPLACED:])

    def __repr__(self) -> str:  # never print secrets by accident
        return "Secrets(<hidden>)"


@dataclass(frozen=True)
class KdfParams:
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P
    salt: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Keystore:
    """The contents of a wallet file; ``ciphertext`` decrypts with the password to ``Secrets``."""

    network: str
    coin_type: int
    account_path: str
    kdf: KdfParams
    nonce: bytes
    ciphertext: bytes = field(repr=False)
    receive_index: int = 0
    """Index of the current receive address (the one ``address`` shows)."""
    receive_used: int = -1
    """Highest receive index seen used on the chain (-1: none), for the gap-limit check."""
    change_index: int = 0
    """Index of the next fresh change address (never used, never handed out)."""
    created: int = 0

    def with_indexes(
        self,
        receive_index: int | None = None,
        receive_used: int | None = None,
        change_index: int | None = None,
    ) -> Keystore:
        return replace(
            self,
            receive_index=self.receive_index if receive_index is None else receive_index,
            receive_used=self.receive_used if receive_used is None else receive_used,
            change_index=self.change_index if change_index is None else change_index,
        )

    # --- (de)serialization ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "network": self.network,
            "coin_type": self.coin_type,
            "account_path": self.account_path,
            "receive_index": self.receive_index,
            "receive_used": self.receive_used,
            "change_index": self.change_index,
            "created": self.created,
            "kdf": {
                "name": "scrypt",
                "n": self.kdf.n,
                "r": self.kdf.r,
                "p": self.kdf.p,
                "salt": self.kdf.salt.hex(),
            },
            "cipher": {"name": "aes-256-gcm", "nonce": self.nonce.hex()},
            "ciphertext": self.ciphertext.hex(),
        }

    @classmethod
    def from_json(cls, data: Any) -> Keystore:
        try:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not a tally-wallet file")
            if data.get("version") != VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            kdf, cipher = data["kdf"], data["cipher"]
            if kdf["name"] != "scrypt" or cipher["name"] != "aes-256-gcm":
                raise ValueError("unknown key derivation or cipher")
            params = KdfParams(
                _int(kdf["n"]), _int(kdf["r"]), _int(kdf["p"]), bytes.fromhex(kdf["salt"])
            )
            check_kdf_cost(params)
            if not 8 <= len(params.salt) <= 64:
                raise ValueError("scrypt salt length out of range")
            nonce = bytes.fromhex(cipher["nonce"])
            if len(nonce) != NONCE_BYTES:
                raise ValueError("bad nonce length")
            return cls(
                network=_str(data["network"]),
                coin_type=_int(data["coin_type"]),
                account_path=_str(data["account_path"]),
                kdf=params,
                nonce=nonce,
                ciphertext=bytes.fromhex(data["ciphertext"]),
                receive_index=_int(data.get("receive_index", 0)),
                receive_used=_int(data.get("receive_used", -1), low=-1),
                change_index=_int(data.get("change_index", 0)),
                created=_int(data.get("created", 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise KeystoreError(f"not a valid wallet file: {err}") from None

    def associated_data(self) -> bytes:
        """What GCM authenticates besides the ciphertext: whose keys these are."""
        bound = [FORMAT, VERSION, self.network, self.coin_type, self.account_path]
        return json.dumps(bound, separators=(",", ":")).encode()

    # --- secrets --------------------------------------------------------------------------------

    def unlock(self, password: str) -> Secrets:
        """Decrypt; ``WrongPasswordError`` if ``password`` is not this wallet's."""
        key = derive_key(password, self.kdf)
        try:
            plain = AESGCM(key).decrypt(self.nonce, self.ciphertext, self.associated_data())
        except InvalidTag:
            raise WrongPasswordError("wrong password (or the wallet file was altered)") from None
        try:
            data = json.loads(plain)
            replaced = tuple(
                (_txid(a), _txid(b)) for a, b in data.get("replaced", [])[-MAX_REPLACED:]
            )
            return Secrets(_str(data["mnemonic"]), _str(data.get("passphrase", "")), replaced)
        except (ValueError, KeyError, TypeError) as err:
            raise KeystoreError(f"the wallet's encrypted contents are malformed: {err}") from None


def check_kdf_cost(kdf: KdfParams) -> None:
    """``ValueError`` unless the scrypt parameters are well formed and within the caps.

    Checked on every file before any key derivation, so a hostile or corrupt file costs nothing
    but this arithmetic: memory ``128 * n * r`` at most ``MAX_SCRYPT_MEMORY``, work ``n * r * p``
    at most ``MAX_SCRYPT_WORK``.
    """
    n, r, p = kdf.n, kdf.r, kdf.p
    if not (n >= 2 and n & (n - 1) == 0):
        raise ValueError(f"scrypt n={n} out of range (a power of two from 2)")
    if r < 1 or p < 1:
        raise ValueError("scrypt r and p must be at least 1")
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        raise ValueError(
            f"scrypt n={n}, r={r} would need {128 * n * r // 2**20} MiB of memory; "
            f"wallet files may ask for at most {MAX_SCRYPT_MEMORY // 2**20} MiB"
        )
    if n * r * p > MAX_SCRYPT_WORK:
        raise ValueError(
            f"scrypt n={n}, r={r}, p={p} asks for {n * r * p // (SCRYPT_N * SCRYPT_R * SCRYPT_P)}"
            f" times the default work; wallet files may ask for at most "
            f"{MAX_SCRYPT_WORK // (SCRYPT_N * SCRYPT_R * SCRYPT_P)} times"
        )


def _int(value: Any, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"expected an integer >= {low}, got {value!r}")
    return value


def _txid(value: Any) -> str:
    text = _str(value)
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"expected a txid, got {text!r}")
    return text


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def derive_key(password: str, kdf: KdfParams) -> bytes:
    """The 32-byte AES key scrypt derives from ``password`` (UTF-8, NFC not applied).

    The cost caps are checked here too, so no path reaches scrypt with parameters beyond them.
    """
    check_kdf_cost(kdf)
    return Scrypt(salt=kdf.salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(password.encode())


def seal(
    secret: Secrets,
    password: str,
    network: str,
    coin_type: int,
    account_path: str,
    kdf: KdfParams | None = None,
) -> Keystore:
    """A new ``Keystore`` holding ``secret`` under ``password`` (fresh salt and nonce)."""
    params = replace(kdf or KdfParams(), salt=secrets.token_bytes(SALT_BYTES))
    store = Keystore(
        network=network,
        coin_type=coin_type,
        account_path=account_path,
        kdf=params,
        nonce=secrets.token_bytes(NONCE_BYTES),
        ciphertext=b"",
        created=int(time.time()),
    )
    content: dict[str, Any] = {"mnemonic": secret.mnemonic, "passphrase": secret.passphrase}
    if secret.replaced:
        content["replaced"] = [list(p) for p in secret.replaced]
    key = derive_key(password, params)
    sealed = AESGCM(key).encrypt(store.nonce, json.dumps(content).encode(), store.associated_data())
    return replace(store, ciphertext=sealed)


def reseal(store: Keystore, secret: Secrets, password: str) -> Keystore:
    """``store`` with its encrypted part replaced by ``secret`` under ``password`` (fresh salt
    and nonce, the same key-derivation cost); the clear fields are kept."""
    fresh = seal(secret, password, store.network, store.coin_type, store.account_path, store.kdf)
    return replace(
        fresh,
        receive_index=store.receive_index,
        receive_used=store.receive_used,
        change_index=store.change_index,
        created=store.created,
    )


def load(path: Path) -> Keystore:
    """Read a wallet file (nothing is decrypted)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise KeystoreError(
                f"{path} is larger than a wallet file can be ({MAX_FILE_BYTES} bytes at most)"
            )
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeystoreError(f"{path} is not a wallet file (not UTF-8 text)") from None
    except FileNotFoundError:
        raise KeystoreError(
            f"no wallet at {path} (create one with 'tally-wallet create', or give --wallet FILE)"
        ) from None
    except OSError as err:
        raise KeystoreError(f"cannot read wallet {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise KeystoreError(f"{path} is not a wallet file (not JSON)") from None
    return Keystore.from_json(data)


def save(path: Path, store: Keystore, *, exclusive: bool = False) -> None:
    """Write ``store`` to ``path`` atomically with mode 0600.

    ``exclusive``: refuse if ``path`` exists (creating a wallet never overwrites one).
    """
    data = (json.dumps(store.to_json(), indent=2) + "\n").encode()
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if exclusive and path.exists():
            raise KeystoreError(f"a wallet already exists at {path}; it was left as it is")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise KeystoreError(f"cannot write wallet {path}: {err.strerror}") from None
    tmp = Path(tmp_name)
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # mkstemp already uses 0600; make it explicit
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            # Link instead of replace, so a wallet created meanwhile is never overwritten.
            os.link(tmp, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
        _fsync_dir(directory)
    except FileExistsError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise KeystoreError(f"a wallet already exists at {path}; it was left as it is") from None
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise KeystoreError(f"cannot write wallet {path}: {err.strerror}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
