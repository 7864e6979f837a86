"""Unsigned transaction files: what a watch-only wallet writes and the wallet with keys signs.

Format (``"format": "tally-unsigned-tx"``, ``"version": 1``; JSON, documented in
docs/PROTOCOL.md)::

    {
      "format": "tally-unsigned-tx", "version": 1, "network": "regtest",
      "account_xpub": "Rpub...",              the account whose keys must sign
      "txid": "<display hex>",                fixed before signing (signatures are not in it)
      "fee": 226, "size": 226,                base units; bytes of the signed transaction
      "inputs":  [{"txid", "index", "amount", "address", "path": "m/44'/1'/0'/0/3"}],
      "outputs": [{"address", "amount", "change": false, "path": null}],
      "signed": null                          or the signed transaction, hex, after 'sign'
    }

The transaction is version 1, locktime 0, inputs and outputs in the listed order. Each input
names the output it spends, its amount and address (what the signature commits to, SPEC 2.3) and
the derivation path of its key; a change output names its path, so the signer can check that the
change is its own. Nothing secret is in the file: no private key, seed or mnemonic.

Reading is bounded and strict (``read``): at most ``MAX_FILE_BYTES``, ``MAX_INPUTS`` inputs and
``MAX_OUTPUTS`` outputs, every field of its type and range, every address valid on the file's
network, fee and size consistent with the transaction they describe. ``sign`` refuses unless the
file is for the signer's network and account, every input's path derives its address, every
spent output exists unspent on the node with that amount and address (a hostile watch-only side
cannot make the signer sign away more than it sees), and every change output's path derives its
address.

Left to others: choosing the coins (``wallet.service``), the signature itself (``wallet.builder``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client.http import NodeError
from consensus import (
    MAX_MONEY,
    AddressError,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    decode_address,
    encode_address,
    get_params,
)
from wallet.builder import build_signed, unsigned_transaction
from wallet.coinselect import MAX_TX_SIZE, TX_LOCKTIME, TX_VERSION, Selection, Utxo, tx_size

if TYPE_CHECKING:
    from wallet.service import Wallet

FORMAT = "tally-unsigned-tx"
VERSION = 1
MAX_FILE_BYTES = 4 * 2**20
"""An unsigned file is read only up to this size (a block-sized transaction's file fits)."""
MAX_INPUTS = 10_000
MAX_OUTPUTS = 10_000
MAX_PATH_CHARS = 64


class UnsignedError(Exception):
    """The file is unreadable, malformed, or must not be signed; the message says why."""


@dataclass(frozen=True)
class Input:
    txid: str
    index: int
    amount: int
    address: str
    path: str


@dataclass(frozen=True)
class Output:
    address: str
    amount: int
    change: bool = False
    path: str | None = None


@dataclass(frozen=True)
class UnsignedTx:
    network: str
    account_xpub: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    fee: int
    size: int
    txid: str
    raw: bytes | None = None
    """The signed transaction, once signed."""

    def signed_raw(self) -> bytes:
        if self.raw is None:
            raise UnsignedError("the file is not signed yet: run 'tally-wallet sign FILE' first")
        return self.raw

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "network": self.network,
            "account_xpub": self.account_xpub,
            "txid": self.txid,
            "fee": self.fee,
            "size": self.size,
            "inputs": [vars(i) for i in self.inputs],
            "outputs": [vars(o) for o in self.outputs],
            "signed": None if self.raw is None else self.raw.hex(),
        }


# --- from a selection -----------------------------------------------------------------------------


def from_selection(selection: Selection, wallet: Wallet) -> UnsignedTx:
    """The file for ``selection``, made by ``wallet`` (whose account derived every key in it)."""
    params = wallet.params
    inputs = []
    for u in selection.inputs:
        key = wallet.account.key_of(u.pubkey_hash)
        if key is None:  # pragma: no cover - the scan derived every coin's key
            raise UnsignedError("a selected coin's key was never derived")
        inputs.append(
            Input(
                u.txid[::-1].hex(),
                u.index,
                u.amount,
                encode_address(u.pubkey_hash, params),
                wallet.account.key_path(key),
            )
        )
    outputs = []
    for n, o in enumerate(selection.outputs):
        change = n == selection.change_position
        key = wallet.account.key_of(o.pubkey_hash) if change else None
        outputs.append(
            Output(
                encode_address(o.pubkey_hash, params),
                o.amount,
                change,
                None if key is None else wallet.account.key_path(key),
            )
        )
    tx = unsigned_transaction(selection)
    return UnsignedTx(
        params.name,
        wallet.account.account_xpub,
        tuple(inputs),
        tuple(outputs),
        selection.fee,
        selection.size,
        tx.txid()[::-1].hex(),
    )


# --- reading and writing --------------------------------------------------------------------------


def _int(value: Any, name: str, low: int = 0, high: int = MAX_MONEY) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise UnsignedError(f"{name} must be an integer from {low} to {high}")
    return value


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise UnsignedError(f"{name} must be text of at most {limit} characters")
    return value


def _hash(value: Any, name: str) -> str:
    text = _text(value, name, 64).lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise UnsignedError(f"{name} must be 64 hex characters")
    return text


def parse(data: Any) -> UnsignedTx:
    """An ``UnsignedTx`` from decoded JSON, checked field by field (``UnsignedError``)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UnsignedError(f"not an unsigned transaction file (format {FORMAT!r} expected)")
    if data.get("version") != VERSION:
        raise UnsignedError(f"unsupported unsigned file version {data.get('version')!r}")
    network = _text(data.get("network"), "network", 16)
    try:
        params = get_params(network)
    except (KeyError, ValueError):
        raise UnsignedError(f"unknown network {network!r}") from None

    def address(value: Any, name: str) -> str:
        text = _text(value, name, 64)
        try:
            decode_address(text, params)
        except AddressError as err:
            raise UnsignedError(f"{name} {text!r} is not a {network} address: {err}") from None
        return text

    raw_inputs, raw_outputs = data.get("inputs"), data.get("outputs")
    if not isinstance(raw_inputs, list) or not 1 <= len(raw_inputs) <= MAX_INPUTS:
        raise UnsignedError(f"inputs must be a list of 1 to {MAX_INPUTS}")
    if not isinstance(raw_outputs, list) or not 1 <= len(raw_outputs) <= MAX_OUTPUTS:
        raise UnsignedError(f"outputs must be a list of 1 to {MAX_OUTPUTS}")
    inputs = []
    for n, i in enumerate(raw_inputs):
        if not isinstance(i, dict):
            raise UnsignedError(f"input {n} is not an object")
        inputs.append(
            Input(
                _hash(i.get("txid"), f"input {n} txid"),
                _int(i.get("index"), f"input {n} index", 0, 2**32 - 1),
                _int(i.get("amount"), f"input {n} amount", 1),
                address(i.get("address"), f"input {n} address"),
                _text(i.get("path"), f"input {n} path", MAX_PATH_CHARS),
            )
        )
    outputs = []
    for n, o in enumerate(raw_outputs):
        if not isinstance(o, dict):
            raise UnsignedError(f"output {n} is not an object")
        change = o.get("change", False)
        if not isinstance(change, bool):
            raise UnsignedError(f"output {n} change must be true or false")
        path = o.get("path")
        outputs.append(
            Output(
                address(o.get("address"), f"output {n} address"),
                _int(o.get("amount"), f"output {n} amount", 1),
                change,
                None if path is None else _text(path, f"output {n} path", MAX_PATH_CHARS),
            )
        )
    signed = data.get("signed")
    raw = None
    if signed is not None:
        text = _text(signed, "signed", 2 * MAX_TX_SIZE)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise UnsignedError("signed must be hex") from None
    doc = UnsignedTx(
        network,
        _text(data.get("account_xpub"), "account_xpub", 200),
        tuple(inputs),
        tuple(outputs),
        _int(data.get("fee"), "fee", 0),
        _int(data.get("size"), "size", 1, MAX_TX_SIZE),
        _hash(data.get("txid"), "txid"),
        raw,
    )
    check_consistent(doc)
    return doc


def transaction(doc: UnsignedTx) -> Transaction:
    """The unsigned transaction the file describes."""
    params = get_params(doc.network)
    return Transaction(
        TX_VERSION,
        tuple(TxIn(OutPoint(bytes.fromhex(i.txid)[::-1], i.index)) for i in doc.inputs),
        tuple(TxOut(o.amount, decode_address(o.address, params)) for o in doc.outputs),
        TX_LOCKTIME,
    )


def check_consistent(doc: UnsignedTx) -> None:
    """Fee, size and txid agree with the inputs and outputs; a signed transaction is this one."""
    if len({(i.txid, i.index) for i in doc.inputs}) != len(doc.inputs):
        raise UnsignedError("the file spends one output twice")
    total_in = sum(i.amount for i in doc.inputs)
    total_out = sum(o.amount for o in doc.outputs)
    if total_in > MAX_MONEY or total_out > MAX_MONEY:
        raise UnsignedError("the amounts add up to more than can ever exist")
    if total_in - total_out != doc.fee:
        raise UnsignedError(
            f"the file says fee {doc.fee}, but its inputs minus outputs are {total_in - total_out}"
        )
    size = tx_size([i.index for i in doc.inputs], [o.amount for o in doc.outputs])
    if size != doc.size:
        raise UnsignedError(f"the file says size {doc.size}, the transaction is {size} bytes")
    tx = transaction(doc)
    if tx.txid()[::-1].hex() != doc.txid:
        raise UnsignedError("the file's txid is not that of its inputs and outputs")
    if doc.raw is not None:
        try:
            signed = Transaction.deserialize(doc.raw)
        except Exception as err:  # consensus raises its ValidationError for bad encodings
            raise UnsignedError(f"the signed transaction does not decode: {err}") from None
        if signed.txid() != tx.txid() or signed.size() != doc.size:
            raise UnsignedError("the signed transaction is not the one the file describes")


def read(path: Path) -> UnsignedTx:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise UnsignedError(f"cannot read {path}: {err.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UnsignedError(f"{path} is larger than an unsigned file can be ({MAX_FILE_BYTES} B)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UnsignedError(f"{path} is not an unsigned transaction file (not JSON)") from None
    return parse(data)


def write(path: Path, doc: UnsignedTx, *, exclusive: bool = False) -> None:
    """Write ``doc`` to ``path`` atomically (a temporary file replaced over it)."""
    data = (json.dumps(doc.to_json(), indent=2) + "\n").encode()
    directory = path.parent if str(path.parent) else Path(".")
    if exclusive and path.exists():
        raise UnsignedError(f"{path} exists already; it was left as it is")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as err:
        raise UnsignedError(f"cannot write {path}: {err.strerror}") from None


# --- signing --------------------------------------------------------------------------------------


def _key_of_path(path: str, account_path: str) -> tuple[int, int]:
    prefix = account_path + "/"
    rest = path[len(prefix) :] if path.startswith(prefix) else ""
    chain, _, index = rest.partition("/")
    if chain not in ("0", "1") or not index.isdigit() or len(index) > 10 or int(index) >= 2**31:
        raise UnsignedError(f"path {path!r} is not a key of this wallet's account {account_path}")
    return int(chain), int(index)


def sign(doc: UnsignedTx, wallet: Wallet) -> UnsignedTx:
    """``doc`` signed by ``wallet``'s keys, after the checks of the module docstring."""
    params = wallet.params
    if doc.network != params.name:
        raise UnsignedError(f"the file is for {doc.network}, this wallet for {params.name}")
    if doc.account_xpub != wallet.account.account_xpub:
        raise UnsignedError("the file was made for another account than this wallet's")
    utxos = []
    keys: dict[bytes, bytes] = {}
    for n, i in enumerate(doc.inputs):
        chain, index = _key_of_path(i.path, wallet.account.path)
        pubkey_hash = wallet.account.pubkey_hash(chain, index)
        if encode_address(pubkey_hash, params) != i.address:
            raise UnsignedError(f"input {n}: the key at {i.path} is not that of {i.address}")
        _check_on_node(wallet, n, i)
        keys[pubkey_hash] = wallet.account.privkey(chain, index)
        utxos.append(Utxo(bytes.fromhex(i.txid)[::-1], i.index, i.amount, pubkey_hash, None))
    change_position = None
    for n, o in enumerate(doc.outputs):
        if not o.change:
            continue
        if change_position is not None:
            raise UnsignedError("the file names two change outputs")
        if o.path is None:
            raise UnsignedError(f"output {n} is called change but has no path")
        chain, index = _key_of_path(o.path, wallet.account.path)
        if wallet.account.address(chain, index) != o.address:
            raise UnsignedError(f"output {n}: the change at {o.path} is not this wallet's")
        change_position = n
    tx = transaction(doc)
    selection = Selection(
        tuple(utxos),
        tx.outputs,
        change_position,
        doc.fee,
        doc.size,
        Decimal(doc.fee) / Decimal(doc.size),
    )
    signed = build_signed(selection, keys.__getitem__, params)
    return replace(doc, raw=signed.serialize())


def _check_on_node(wallet: Wallet, n: int, i: Input) -> None:
    try:
        prev = wallet.client.tx(i.txid)
    except NodeError as err:
        if err.status == 404:
            raise UnsignedError(f"input {n}: the node does not know transaction {i.txid}") from None
        raise
    outputs = prev.outputs
    if i.index >= len(outputs):
        raise UnsignedError(f"input {n}: {i.txid} has no output {i.index}")
    out = outputs[i.index]
    if out.amount != i.amount or out.address != i.address:
        raise UnsignedError(
            f"input {n}: the node says {i.txid}:{i.index} pays {out.amount} to "
            f"{out.address}, the file says {i.amount} to {i.address}; not signed"
        )
    if out.spent:
        raise UnsignedError(f"input {n}: {i.txid}:{i.index} is already spent")
