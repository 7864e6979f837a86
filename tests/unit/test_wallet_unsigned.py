"""Unsigned transaction files are read bounded and strictly: size, counts, types, addresses of the
file's network, and fee, size and txid consistent with the transaction described."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from consensus import TxOut, encode_address, get_params
from wallet import unsigned
from wallet.builder import unsigned_transaction
from wallet.coinselect import Selection, Utxo, tx_size

REGTEST = get_params("regtest")
PAYEE = encode_address(b"\x01" * 20, REGTEST)
MINE = encode_address(b"\x02" * 20, REGTEST)


def good() -> dict[str, Any]:
    amount, pay = 50 * 10**8, 10**8
    size = tx_size([0], [pay, amount - pay - 300])
    fee = amount - pay - (amount - pay - 300)
    selection = Selection(
        (Utxo(b"\xaa" * 32, 0, amount, b"\x02" * 20, 5),),
        (TxOut(pay, b"\x01" * 20), TxOut(amount - pay - 300, b"\x02" * 20)),
        1,
        fee,
        size,
        Decimal(1),
    )
    txid = unsigned_transaction(selection).txid()[::-1].hex()
    return {
        "format": "tally-unsigned-tx",
        "version": 1,
        "network": "regtest",
        "account_xpub": "Rpub",
        "txid": txid,
        "fee": fee,
        "size": size,
        "inputs": [
            {
                "txid": "aa" * 32,
                "index": 0,
                "amount": amount,
                "address": MINE,
                "path": "m/44'/1'/0'/0/0",
            }
        ],
        "outputs": [
            {"address": PAYEE, "amount": pay, "change": False, "path": None},
            {
                "address": MINE,
                "amount": amount - pay - 300,
                "change": True,
                "path": "m/44'/1'/0'/1/0",
            },
        ],
        "signed": None,
    }


def test_round_trip(tmp_path: Path) -> None:
    doc = unsigned.parse(good())
    path = tmp_path / "tx.json"
    unsigned.write(path, doc)
    assert unsigned.read(path) == doc
    assert doc.to_json() == good()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(version=2), "unsupported"),
        (lambda d: d.update(format="psbt"), "not an unsigned"),
        (lambda d: d.update(network="moon"), "unknown network"),
        (lambda d: d.update(fee=d["fee"] + 1), "inputs minus outputs"),
        (lambda d: d.update(size=d["size"] + 1), "size"),
        (lambda d: d.update(txid="00" * 32), "txid"),
        (lambda d: d.update(inputs=[]), "inputs must be"),
        (lambda d: d.update(inputs=d["inputs"] * 2), "one output twice"),
        (lambda d: d["inputs"][0].update(amount=True), "amount must be"),
        (lambda d: d["inputs"][0].update(amount=-1), "amount must be"),
        (lambda d: d["inputs"][0].update(txid="zz" * 32), "64 hex"),
        (lambda d: d["outputs"][0].update(address="1BoatSLRHtKNngkdXEeobR76b53LETtpyT"), "not a"),
        (lambda d: d["outputs"][0].update(change="yes"), "true or false"),
        (lambda d: d.update(signed="00"), "does not decode"),
        (lambda d: d.update(signed="zz"), "hex"),
    ],
)
def test_malformed_files_are_refused(change: Any, expected: str) -> None:
    data = good()
    change(data)
    with pytest.raises(unsigned.UnsignedError, match=expected):
        unsigned.parse(data)


def test_size_and_count_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (unsigned.MAX_FILE_BYTES + 1))
    with pytest.raises(unsigned.UnsignedError, match="larger than"):
        unsigned.read(path)
    data = good()
    data["outputs"] = data["outputs"] * (unsigned.MAX_OUTPUTS // 2 + 1)
    with pytest.raises(unsigned.UnsignedError, match="outputs must be a list of 1 to"):
        unsigned.parse(data)
    path.write_text("not json")
    with pytest.raises(unsigned.UnsignedError, match="not JSON"):
        unsigned.read(path)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(unsigned.UnsignedError, match="not an unsigned"):
        unsigned.read(path)
