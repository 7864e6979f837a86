"""The encrypted keystore: one JSON file per wallet, written atomically with mode 0600 (SPEC 4).

File format (``"format": "tally-wallet"``, ``"version": 2``; version 1 is read, and upgraded to
2 the first time it is unlocked)::

    {
      "format": "tally-wallet", "version": 2,
      "network": "regtest", "coin_type": 1, "account_path": "m/44'/1'/0'",
      "receive_index": 0, "receive_used": -1, "change_index": 0,
      "created": 1795305600,
      "node": "http://127.0.0.1:18844",                      (version 2, optional)
      "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "<hex 16 bytes>"},
      "cipher": {"name": "aes-256-gcm", "nonce": "<hex 12 bytes>"},
      "ciphertext": "<hex>"
    }

The ciphertext is AES-256-GCM, under a key that scrypt derives from the password and the salt,
of a JSON object ``{"mnemonic": ..., "passphrase": ..., "labels": {...}, "frozen": [...],
"replaced": [[original, replacement], ...]}`` (the BIP39 words and passphrase; since version 2
also the wallet's labels and frozen coins, which name its addresses and coins; and the txids
``bump-fee`` replaced, optional). The associated data binds the clear fields that say whose
keys these are (format, the version the ciphertext was sealed under, network, coin type, account
path), so a file moved to another network fails to open instead of signing there. Nothing
secret is in clear: no mnemonic, seed, extended key, private or public key, nor any address,
label or outpoint; the
indexes (how many addresses were handed out) and the node URL are in clear, so that handing out
an address or naming the node needs no password: they are not secrets, and a wrong value costs
only a re-scan (or a failed command: the node URL is not trusted with anything the wallet signs).

A watch-only wallet (version 2, ``"watch_only": {"xpub": "<account xpub>"}``) has no ``kdf``,
``cipher`` nor ``ciphertext``, and keeps ``"labels"`` and ``"frozen"`` in clear: it holds no
secret at all, and its xpub already reveals every address it could label (docs/DECISIONS.md).
Labels and frozen coins are bounded (``MAX_LABELS``, ``MAX_LABEL_CHARS``, ``MAX_FROZEN``), so a
file stays within ``MAX_FILE_BYTES``.

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
VERSION = 2
"""The version written. Version 1 (no node URL, labels, frozen coins, watch-only) is read."""
READABLE_VERSIONS = (1, 2)
MAX_LABELS = 1000
"""Labels one wallet keeps at most (addresses and transactions together)."""
MAX_LABEL_CHARS = 200
MAX_FROZEN = 1000
"""Coins one wallet may keep frozen at most."""
MAX_NODE_URL_CHARS = 2048
MAX_META_BYTES = 256 * 1024
"""Labels and frozen coins together, as JSON, at most this many bytes: encrypted and hex-encoded
they stay well within ``MAX_FILE_BYTES``, so a wallet never writes a file it would refuse."""
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
class Metadata:
    """What a wallet remembers about its coins: labels (an address or a txid -> text) and the
    frozen outpoints (``"<txid>:<index>"``, never selected to spend)."""

    labels: tuple[tuple[str, str], ...] = ()
    frozen: tuple[str, ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def with_label(self, key: str, text: str) -> Metadata:
        """``text`` as the label of ``key`` (an empty text removes it)."""
        if len(text) > MAX_LABEL_CHARS:
            raise KeystoreError(f"a label is at most {MAX_LABEL_CHARS} characters")
        labels = self.label_map
        labels.pop(key, None)
        if text:
            labels[key] = text
        if len(labels) > MAX_LABELS:
            raise KeystoreError(f"a wallet keeps at most {MAX_LABELS} labels")
        return replace(self, labels=tuple(sorted(labels.items())))._checked()

    def with_frozen(self, outpoint: str, frozen: bool) -> Metadata:
        coins = set(self.frozen)
        if frozen:
            coins.add(outpoint)
        else:
            coins.discard(outpoint)
        if len(coins) > MAX_FROZEN:
            raise KeystoreError(f"a wallet keeps at most {MAX_FROZEN} frozen coins")
        return replace(self, frozen=tuple(sorted(coins)))._checked()

    def _checked(self) -> Metadata:
        if len(json.dumps(self.to_json())) > MAX_META_BYTES:
            raise KeystoreError(
                f"labels and frozen coins would take more than {MAX_META_BYTES // 1024} KiB; "
                "remove some labels first"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        return {"labels": dict(self.labels), "frozen": list(self.frozen)}

    @classmethod
    def from_json(cls, data: Any) -> Metadata:
        """From a decoded object (``{}`` for version 1); ``ValueError`` if malformed or too big."""
        if not isinstance(data, dict):
            raise ValueError("labels and frozen coins must be an object")
        labels = data.get("labels", {})
        frozen = data.get("frozen", [])
        if not isinstance(labels, dict) or not isinstance(frozen, list):
            raise ValueError("labels must be an object and frozen a list")
        if len(labels) > MAX_LABELS or len(frozen) > MAX_FROZEN:
            raise ValueError("too many labels or frozen coins")
        for key, text in labels.items():
            if not isinstance(text, str) or len(text) > MAX_LABEL_CHARS or len(key) > 100:
                raise ValueError("a label is too long or not text")
        for outpoint in frozen:
            if not isinstance(outpoint, str) or len(outpoint) > 80:
                raise ValueError("a frozen coin is not an outpoint")
        meta = cls(tuple(sorted(labels.items())), tuple(sorted(set(frozen))))
        if len(json.dumps(meta.to_json())) > MAX_META_BYTES:
            raise ValueError("labels and frozen coins are too large")
        return meta


@dataclass(frozen=True)
class Secrets:
    """What the keystore protects: the BIP39 mnemonic and passphrase; since version 2 the
    wallet's labels and frozen coins; and the wallet's own record of the transactions it replaced
    (``bump-fee``): ``(original, replacement)`` txid pairs, newest last, at most
    ``MAX_REPLACED``. Labels, coins and replacements are private like addresses (they lead to
    them), so they are encrypted too."""

    mnemonic: str
    passphrase: str = ""
    meta: Metadata = field(default_factory=Metadata)
    replaced: tuple[tuple[str, str], ...] = ()

    def with_replacement(self, original: str, replacement: str) -> Secrets:
        kept = tuple(p for p in self.replaced if p[0] != original)
        return replace(self, replaced=(*kept, (original, replacement))[-MAX_REPLACED:])

    def __repr__(self) -> str:  # never print secrets by accident
        return "Secrets(<hidden>)"

    def plaintext(self) -> bytes:
        content: dict[str, Any] = {
            "mnemonic": self.mnemonic,
            "passphrase": self.passphrase,
            **self.meta.to_json(),
        }
        if self.replaced:
            content["replaced"] = [list(p) for p in self.replaced]
        return json.dumps(content).encode()


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
    kdf: KdfParams | None
    """``None`` for a watch-only wallet (as ``nonce`` and ``ciphertext``)."""
    nonce: bytes | None
    ciphertext: bytes | None = field(repr=False)
    receive_index: int = 0
    """Index of the current receive address (the one ``address`` shows)."""
    receive_used: int = -1
    """Highest receive index seen used on the chain (-1: none), for the gap-limit check."""
    change_index: int = 0
    """Index of the next fresh change address (never used, never handed out)."""
    created: int = 0
    version: int = VERSION
    """The version the ciphertext is bound to (1 for a file not yet upgraded)."""
    node_url: str | None = None
    """The node the wallet was made with (commands use it when no other is given)."""
    watch_xpub: str | None = None
    """The account's extended public key of a watch-only wallet (no secrets then)."""
    clear_meta: Metadata = field(default_factory=Metadata)
    """A watch-only wallet's labels and frozen coins (a full wallet's are in the ciphertext)."""

    @property
    def watch_only(self) -> bool:
        return self.watch_xpub is not None

    def with_node(self, url: str | None) -> Keystore:
        if url is not None and len(url) > MAX_NODE_URL_CHARS:
            raise KeystoreError(f"a node URL is at most {MAX_NODE_URL_CHARS} characters")
        return replace(self, node_url=url)

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
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "network": self.network,
            "coin_type": self.coin_type,
            "account_path": self.account_path,
            "receive_index": self.receive_index,
            "receive_used": self.receive_used,
            "change_index": self.change_index,
            "created": self.created,
        }
        if self.node_url is not None:
            data["node"] = self.node_url
        if self.watch_xpub is not None:
            data["watch_only"] = {"xpub": self.watch_xpub}
            data.update(self.clear_meta.to_json())
            return data
        assert self.kdf is not None and self.nonce is not None and self.ciphertext is not None
        return data | {
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
            version = data.get("version")
            if version not in READABLE_VERSIONS or isinstance(version, bool):
                raise ValueError(f"unsupported version {data.get('version')!r}")
            node = data.get("node")
            if node is not None and (not isinstance(node, str) or len(node) > MAX_NODE_URL_CHARS):
                raise ValueError("the node URL is not a string of at most 2048 characters")
            common: dict[str, Any] = {
                "network": _str(data["network"]),
                "coin_type": _int(data["coin_type"]),
                "account_path": _str(data["account_path"]),
                "receive_index": _int(data.get("receive_index", 0)),
                "receive_used": _int(data.get("receive_used", -1), low=-1),
                "change_index": _int(data.get("change_index", 0)),
                "created": _int(data.get("created", 0)),
                "version": version,
                "node_url": node,
            }
            if version >= 2 and "watch_only" in data:
                watch = data["watch_only"]
                if not isinstance(watch, dict) or len(_str(watch["xpub"])) > 200:
                    raise ValueError("watch_only must be {xpub}")
                if any(k in data for k in ("kdf", "cipher", "ciphertext")):
                    raise ValueError("a watch-only wallet holds no encrypted secrets")
                return cls(
                    kdf=None,
                    nonce=None,
                    ciphertext=None,
                    watch_xpub=watch["xpub"],
                    clear_meta=Metadata.from_json(data),
                    **common,
                )
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
                kdf=params,
                nonce=nonce,
                ciphertext=bytes.fromhex(data["ciphertext"]),
                **common,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise KeystoreError(f"not a valid wallet file: {err}") from None

    def associated_data(self, version: int | None = None) -> bytes:
        """What GCM authenticates besides the ciphertext: whose keys these are."""
        v = self.version if version is None else version
        bound = [FORMAT, v, self.network, self.coin_type, self.account_path]
        return json.dumps(bound, separators=(",", ":")).encode()

    # --- secrets --------------------------------------------------------------------------------

    def unlock(self, password: str) -> Secrets:
        """Decrypt; ``WrongPasswordError`` if ``password`` is not this wallet's."""
        return self.unlock_with_key(password)[0]

    def unlock_with_key(self, password: str) -> tuple[Secrets, bytes]:
        """Decrypt; the secrets and the derived key (for ``resealed``, never stored)."""
        if self.kdf is None or self.nonce is None or self.ciphertext is None:
            raise KeystoreError("a watch-only wallet holds no secrets to unlock")
        key = derive_key(password, self.kdf)
        try:
            plain = AESGCM(key).decrypt(self.nonce, self.ciphertext, self.associated_data())
        except InvalidTag:
            raise WrongPasswordError("wrong password (or the wallet file was altered)") from None
        try:
            data = json.loads(plain)
            meta = Metadata.from_json(data)
            replaced = tuple(
                (_txid(a), _txid(b)) for a, b in data.get("replaced", [])[-MAX_REPLACED:]
            )
            secret = Secrets(
                _str(data["mnemonic"]), _str(data.get("passphrase", "")), meta, replaced
            )
            return secret, key
        except (ValueError, KeyError, TypeError) as err:
            raise KeystoreError(f"the wallet's encrypted contents are malformed: {err}") from None

    def resealed(self, secret: Secrets, key: bytes) -> Keystore:
        """The same wallet with ``secret`` encrypted again under ``key`` (from
        ``unlock_with_key``), with a fresh nonce and bound to the current ``VERSION``: how a
        version 1 file is upgraded and how labels and frozen coins are changed."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        store = replace(self, version=VERSION, nonce=nonce)
        sealed = AESGCM(key).encrypt(nonce, secret.plaintext(), store.associated_data())
        return replace(store, ciphertext=sealed)


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
    key = derive_key(password, params)
    assert store.nonce is not None
    sealed = AESGCM(key).encrypt(store.nonce, secret.plaintext(), store.associated_data())
    return replace(store, ciphertext=sealed)


def watch_only(
    xpub: str, network: str, coin_type: int, account_path: str, node_url: str | None
) -> Keystore:
    """A new watch-only ``Keystore`` for the account ``xpub`` (nothing secret, nothing sealed)."""
    return Keystore(
        network=network,
        coin_type=coin_type,
        account_path=account_path,
        kdf=None,
        nonce=None,
        ciphertext=None,
        created=int(time.time()),
        node_url=node_url,
        watch_xpub=xpub,
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
