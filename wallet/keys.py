"""Keys: BIP39 mnemonics (the ``mnemonic`` package) and BIP32 derivation (the ``bip32`` package).

Every key of a wallet comes from one BIP39 mnemonic (12 or 24 English words, plus an optional
BIP39 passphrase) through BIP32 on the BIP44 path ``m/44'/<coin type>'/0'/<chain>/<index>``, where
``chain`` is 0 for receive addresses and 1 for change (SPEC 4), and the coin type is the network's
(``get_params(name).coin_type``: 1987 on main, 1 on test and regtest). ``Account`` holds the
account-level extended key (``m/44'/<coin type>'/0'``) and the two chain keys, and caches derived
public keys, so deriving address ``i`` costs one public derivation, not five hardened ones.

Invariants: public keys are 33-byte compressed points, so ``hash160(pubkey)`` is the pubkey hash
an address encodes (SPEC 2.7); the same mnemonic, passphrase and network always give the same
addresses. The master key is shown with Bitcoin's mainnet version bytes (``xprv``), as the BIP32 and
BIP39 test vectors use them; the account's extended public key, which other programs are given,
with the network's own (``Rpub...`` on regtest; ``consensus.extkey``).

Left to others: keeping the mnemonic secret at rest (``wallet.keystore``), deciding which
addresses are used (the gap-limit scan in ``wallet.service``). Python cannot wipe memory, so keys
live in this process's memory while it runs, and never leave it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Final

from bip32 import BIP32  # type: ignore[import-untyped]
from mnemonic import Mnemonic

from consensus import NetworkParams, convert_xpub_version, encode_address, hash160

RECEIVE: Final = 0
"""BIP44 chain of receive (external) addresses."""
CHANGE: Final = 1
"""BIP44 chain of change (internal) addresses."""
HARDENED: Final = 0x8000_0000
WORD_COUNTS: Final = {12: 128, 24: 256}
"""Mnemonic length -> entropy bits, for the lengths ``create`` offers."""
LANGUAGE: Final = "english"


class MnemonicError(ValueError):
    """Not a valid BIP39 English mnemonic; the message says why (never echoes the words)."""


def _mnemo() -> Mnemonic:
    return Mnemonic(LANGUAGE)


def new_mnemonic(words: int = 12) -> str:
    """A fresh random mnemonic of 12 or 24 words (``secrets``-grade entropy, in the package)."""
    if words not in WORD_COUNTS:
        raise ValueError(f"a new mnemonic has 12 or 24 words, not {words}")
    return str(_mnemo().generate(strength=WORD_COUNTS[words]))


def normalize_mnemonic(text: str) -> str:
    """``text`` as the canonical mnemonic (NFKD, lower case, single spaces), or ``MnemonicError``.

    The error says which position holds an unknown word, or that the checksum fails, without
    repeating any word (the message may end up in a log).
    """
    words = unicodedata.normalize("NFKD", text).lower().split()
    if len(words) not in (12, 15, 18, 21, 24):
        raise MnemonicError(f"a mnemonic has 12, 15, 18, 21 or 24 words; this one has {len(words)}")
    known = set(_mnemo().wordlist)
    for position, word in enumerate(words, 1):
        if word not in known:
            raise MnemonicError(f"word {position} is not in the BIP39 English word list")
    phrase = " ".join(words)
    if not _mnemo().check(phrase):
        raise MnemonicError("the mnemonic's checksum does not match (a word is wrong or missing)")
    return phrase


def mnemonic_to_seed(mnemonic: str, passphrase: str = "") -> bytes:
    """The 64-byte BIP39 seed (PBKDF2-HMAC-SHA512, 2048 rounds, salt ``"mnemonic" + pass``)."""
    return bytes(Mnemonic.to_seed(mnemonic, passphrase))


def master_xprv(seed: bytes) -> str:
    """The BIP32 master extended private key of ``seed`` (``xprv...``), as in the vectors."""
    return str(BIP32.from_seed(seed).get_xpriv())


def account_path(params: NetworkParams, account: int = 0) -> str:
    """``m/44'/<coin type>'/<account>'``: the account's BIP44 path on ``params``' network."""
    return f"m/44'/{params.coin_type}'/{account}'"


def key_path(params: NetworkParams, chain: int, index: int) -> str:
    """The full BIP44 path of address ``index`` on ``chain``."""
    return f"{account_path(params)}/{chain}/{index}"


@dataclass(frozen=True)
class KeyId:
    """Where a key sits in the account: ``chain`` (0 receive, 1 change) and ``index``."""

    chain: int
    index: int


class AccountKeys:
    """The public half of a BIP44 account: addresses and public keys of its two chains.

    Subclasses give ``_chains`` (chain -> its BIP32 node, private or public: public derivation
    of a non-hardened child is the same either way) and ``path``; derived keys are cached, and
    ``key_of`` finds a derived key by its hash.
    """

    params: NetworkParams
    path: str
    account_xpub: str
    master_fingerprint: str | None

    def __init__(self, params: NetworkParams, chains: dict[int, Any]) -> None:
        self.params = params
        self.path = account_path(params)
        self._chains = chains
        self._pubkeys: dict[KeyId, bytes] = {}
        self._by_hash: dict[bytes, KeyId] = {}

    def _check(self, chain: int, index: int) -> None:
        if chain not in self._chains or not 0 <= index < HARDENED:
            raise ValueError(f"no key at chain {chain} index {index}")

    def pubkey(self, chain: int, index: int) -> bytes:
        """The 33-byte compressed public key at ``chain``/``index`` (cached)."""
        key = KeyId(chain, index)
        pub = self._pubkeys.get(key)
        if pub is None:
            self._check(chain, index)
            pub = bytes(self._chains[chain].get_pubkey_from_path([index]))
            self._pubkeys[key] = pub
            self._by_hash[hash160(pub)] = key
        return pub

    def pubkey_hash(self, chain: int, index: int) -> bytes:
        return hash160(self.pubkey(chain, index))

    def address(self, chain: int, index: int) -> str:
        return encode_address(self.pubkey_hash(chain, index), self.params)

    def key_of(self, pubkey_hash: bytes) -> KeyId | None:
        """Which derived key (among those derived so far) has this pubkey hash."""
        return self._by_hash.get(pubkey_hash)

    def key_path(self, key: KeyId) -> str:
        return f"{self.path}/{key.chain}/{key.index}"


class Account(AccountKeys):
    """The BIP44 account 0 of one seed on one network: addresses and signing keys."""

    def __init__(self, seed: bytes, params: NetworkParams) -> None:
        master = BIP32.from_seed(seed)
        path = account_path(params)
        self.master_fingerprint = bytes(master.get_fingerprint()).hex()
        chaincode, privkey = master.get_extended_privkey_from_path(path)
        self.account_xpub = convert_xpub_version(str(master.get_xpub_from_path(path)), params)
        """The account's extended public key in this network's version bytes (``Rpub...`` on
        regtest): what a watch-only wallet and the node's ``/xpub/{xpub}`` routes take."""
        account = BIP32(chaincode=chaincode, privkey=privkey, depth=3)
        chains: dict[int, Any] = {}
        for chain in (RECEIVE, CHANGE):
            cc, pk = account.get_extended_privkey_from_path([chain])
            chains[chain] = BIP32(chaincode=cc, privkey=pk, depth=4, index=chain)
        super().__init__(params, chains)

    def privkey(self, chain: int, index: int) -> bytes:
        """The 32-byte private key at ``chain``/``index``; it must not leave this process."""
        self._check(chain, index)
        return bytes(self._chains[chain].get_privkey_from_path([index]))
