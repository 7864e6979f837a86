"""``history`` rows (issue 15, points 7 and 8), against the node's documented shapes.

- A transaction the wallet replaced with ``bump-fee`` is remembered in the encrypted part of the
  wallet file; ``history`` asks the node about it and, when the node answers the replaced
  transaction with ``status: {"confirmed": false, "replaced_by": TXID}`` (SPEC 3.5, the node side
  of point 7), shows it as ``replaced`` with what replaced it. The node here is a stub answering
  that documented shape (``client.models``, as ``client.http.Client`` decodes it).
- Every row has a direction (received, sent, to self, mined), the counterparty address, time,
  amount, fee and confirmations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from client import models as m
from client.http import NodeError, tx_status
from consensus import get_params
from wallet import keystore
from wallet.keys import CHANGE, RECEIVE, KeyId, account_path
from wallet.service import AddressState, Scan, Wallet, history_row, replacement_of

MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
REGTEST = get_params("regtest")
FAST = keystore.KdfParams(n=2**10)
OTHER = "r" + "1" * 33  # an address that is not the wallet's (only compared, never decoded)
T = TypeVar("T")
R = TypeVar("R")


def txid(n: int) -> str:
    return f"{n:064x}"


def model(tx: dict[str, Any]) -> m.Transaction:
    """``GET /tx``'s answer from the fields a test cares about (the rest made up), decoded as
    ``client.http.Client`` decodes it."""
    inputs = [
        {"txid": txid(0), "index": 0, "address": None, "amount": 0, "coinbase": False, **i}
        for i in tx["inputs"]
    ]
    outputs = [{"spent": False, **o} for o in tx["outputs"]]
    full = {"wtxid": tx["txid"], "version": 1, "locktime": 0, "size": 200, **tx}
    full.update(inputs=inputs, outputs=outputs)
    decoded = msgspec.convert(full, m.Transaction)
    decoded.status = tx_status(decoded.status)
    return decoded


class StubNode:
    """The routes ``Wallet.history`` uses, answering SPEC 3.5's shapes."""

    def __init__(self, by_address: dict[str, list[dict[str, Any]]], txs: dict[str, Any]) -> None:
        self.by_address = {a: [model(tx) for tx in page] for a, page in by_address.items()}
        self.txs = {t: model(tx) for t, tx in txs.items()}

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return [fn(x) for x in items]

    def address_txs(self, address: str, after: str | None = None) -> list[m.Transaction]:
        return self.by_address.get(address, [])

    def tx(self, wanted: str) -> m.Transaction:
        if wanted not in self.txs:
            raise NodeError(404, "not-found", "unknown transaction")
        return self.txs[wanted]


def make_wallet(tmp_path: Path, replaced: tuple[tuple[str, str], ...], node: StubNode) -> Wallet:
    secret = keystore.Secrets(MNEMONIC, "", replaced=replaced)
    store = keystore.seal(secret, "pw", "regtest", REGTEST.coin_type, account_path(REGTEST), FAST)
    keystore.save(tmp_path / "w.json", store)
    _, key = store.unlock_with_key("pw")  # as the CLI opens it: the key seals changes again
    return Wallet(tmp_path / "w.json", store, secret, node, key)  # type: ignore[arg-type]


def scan_of(wallet: Wallet) -> Scan:
    states = []
    for chain in (RECEIVE, CHANGE):
        key = KeyId(chain, 0)
        summary = m.AddressSummary(
            address=wallet.address_of(key),
            chain_stats=m.AddressStats(tx_count=1, funded_sum=0, spent_sum=0),
            mempool_stats=m.AddressStats(tx_count=0, funded_sum=0, spent_sum=0),
            balance=m.Balance(confirmed=0, unconfirmed=0, immature=0),
        )
        states.append(
            AddressState(key, wallet.address_of(key), wallet.account.pubkey_hash(chain, 0), summary)
        )
    return Scan(200, states)


def confirmed(height: int) -> dict[str, Any]:
    return {
        "confirmed": True,
        "block_hash": "ab" * 32,
        "block_height": height,
        "block_time": 1_795_305_600 + height,
        "confirmations": 200 - height + 1,
    }


PENDING = {
    "confirmed": False,
    "block_hash": None,
    "block_height": None,
    "block_time": None,
    "confirmations": 0,
}


def test_replacement_of_reads_only_the_documented_shape() -> None:
    assert replacement_of(tx_status({"confirmed": False, "replaced_by": txid(9)})) == txid(9)
    assert replacement_of(tx_status(PENDING)) is None
    assert replacement_of(tx_status(confirmed(5))) is None
    # an answer that is not a txid is refused where it is decoded, never taken as one
    for bad in ("zz" * 32, txid(9)[:-1], 7, None, ["x"]):
        with pytest.raises(NodeError) as err:
            tx_status({"confirmed": False, "replaced_by": bad})
        assert err.value.code == "bad-answer"
    with pytest.raises(NodeError):
        tx_status("not a dict")


def test_history_shows_a_replaced_transaction_and_what_replaced_it(tmp_path: Path) -> None:
    placeholder = make_wallet(tmp_path, (), StubNode({}, {}))
    me, change = (placeholder.address_of(KeyId(c, 0)) for c in (RECEIVE, CHANGE))
    funding = {
        "txid": txid(1),
        "fee": 0,
        "inputs": [{"coinbase": True}],
        "outputs": [{"address": me, "amount": 50_0000_0000}],
        "status": confirmed(100),
    }
    replacement = {
        "txid": txid(3),
        "fee": 400,
        "inputs": [{"txid": txid(1), "index": 0, "address": me, "amount": 50_0000_0000}],
        "outputs": [
            {"address": OTHER, "amount": 1_0000_0000},
            {"address": change, "amount": 49_0000_0000 - 400},
        ],
        "status": PENDING,
    }
    original = {
        **replacement,
        "txid": txid(2),
        "fee": 200,
        "outputs": [
            {"address": OTHER, "amount": 1_0000_0000},
            {"address": change, "amount": 49_0000_0000 - 200},
        ],
        "status": {"confirmed": False, "replaced_by": txid(3)},  # the node side's shape
    }
    node = StubNode(
        {me: [replacement, funding], change: [replacement]},
        {txid(2): original, txid(7): {**funding, "txid": txid(7)}},
    )
    # txid(2) was replaced and the node says so; txid(5)'s the node forgot (404); txid(7) the
    # node knows but not as replaced: neither of those two is shown
    pairs = ((txid(2), txid(3)), (txid(5), txid(6)), (txid(7), txid(8)))
    wallet = make_wallet(tmp_path, pairs, node)
    rows = wallet.history(scan_of(wallet))
    by_txid = {r["txid"]: r for r in rows}
    assert set(by_txid) == {txid(1), txid(2), txid(3)}
    gone = by_txid[txid(2)]
    assert gone["direction"] == "replaced" and gone["replaced_by"] == txid(3)
    assert gone["net"] == -(1_0000_0000 + 200) and gone["fee"] == 200
    assert by_txid[txid(3)]["direction"] == "sent" and by_txid[txid(3)]["replaced_by"] is None
    assert by_txid[txid(3)]["counterparty"] == OTHER
    assert by_txid[txid(1)]["direction"] == "mined"
    assert rows[-1]["txid"] == txid(1)  # confirmed last, unconfirmed first


def test_the_replacements_are_kept_encrypted_and_bounded(tmp_path: Path) -> None:
    wallet = make_wallet(tmp_path, (), StubNode({}, {}))
    for n in range(keystore.MAX_REPLACED + 5):
        wallet.record_replacement(txid(1000 + n), txid(5000 + n))
    text = (tmp_path / "w.json").read_text()
    assert txid(1000) not in text and txid(1000 + keystore.MAX_REPLACED + 4) not in text
    reopened = keystore.load(tmp_path / "w.json").unlock("pw")
    assert len(reopened.replaced) == keystore.MAX_REPLACED
    assert reopened.replaced[-1] == (txid(1000 + keystore.MAX_REPLACED + 4), txid(5054))
    assert reopened.mnemonic == MNEMONIC
    with pytest.raises(keystore.WrongPasswordError):
        keystore.load(tmp_path / "w.json").unlock("not pw")


@pytest.mark.parametrize(
    ("inputs", "outputs", "direction", "counterparty"),
    [
        ([("me", 10)], [("other", 4), ("me", 5)], "sent", "other"),
        ([("me", 10)], [("me", 9)], "to self", None),
        ([("other", 10)], [("me", 4), ("other", 5)], "received", "other"),
    ],
)
def test_direction_and_counterparty(
    inputs: list[tuple[str, int]],
    outputs: list[tuple[str, int]],
    direction: str,
    counterparty: str | None,
) -> None:
    tx = {
        "txid": txid(1),
        "fee": 1,
        "inputs": [{"address": a, "amount": v, "txid": txid(0), "index": 0} for a, v in inputs],
        "outputs": [{"address": a, "amount": v} for a, v in outputs],
        "status": confirmed(150),
    }
    row = history_row(model(tx), {"me": object()})
    assert row["direction"] == direction and row["counterparty"] == counterparty
    assert row["confirmations"] == 51 and row["time"] == 1_795_305_750
