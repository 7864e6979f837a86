"""The wallet builds within the relay policy its node states in ``/info`` (issue 19), not within
constants copied from the node: a node asking a higher minimum relay fee rate gets it, in the
check of ``--fee-rate`` and in the default rate, with the message naming the node's value."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from client import models as m
from consensus import get_params
from wallet import keystore
from wallet.coinselect import Payment, SelectionError, Utxo, select_coins
from wallet.keys import account_path
from wallet.service import Wallet, WalletError

MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
REGTEST = get_params("regtest")
STRICT = m.Policy(min_relay_fee_rate=5, incremental_relay_fee_rate=3, max_standard_tx_size=5_000)


class StubNode:
    url = "http://127.0.0.1:1"

    def __init__(self) -> None:
        self.info_calls = 0

    def info(self) -> m.Info:
        self.info_calls += 1
        return m.Info(
            network="regtest",
            height=200,
            best_hash="ab" * 32,
            chainwork="00" * 32,
            peers=0,
            mempool=m.MempoolCounts(count=0, bytes=0),
            synced=True,
            version="test",
            policy=STRICT,
        )

    def fee_estimates(self) -> dict[int, int]:
        return dict.fromkeys(m.TARGETS, 1)


def wallet(tmp_path: Path, node: StubNode) -> Wallet:
    secret = keystore.Secrets(MNEMONIC, "")
    store = keystore.seal(
        secret,
        "pw",
        "regtest",
        REGTEST.coin_type,
        account_path(REGTEST),
        keystore.KdfParams(n=2**10),
    )
    keystore.save(tmp_path / "w.json", store)
    return Wallet(tmp_path / "w.json", store, secret, node)  # type: ignore[arg-type]


def test_the_minimum_relay_fee_rate_is_the_nodes(tmp_path: Path) -> None:
    node = StubNode()
    w = wallet(tmp_path, node)
    assert w.policy == STRICT
    assert w.min_relay_fee_rate == Decimal(5)
    assert w.default_fee_rate() == Decimal(5)  # the estimates say 1: the node's floor wins
    assert node.info_calls == 1  # asked once per command
    other = w.account.address(0, 0)
    with pytest.raises(WalletError, match="minimum relay fee rate of 5 base unit"):
        w.send([(other, 1_000_000)], Decimal(4), dry_run=True)


def test_coin_selection_stays_within_the_nodes_largest_transaction() -> None:
    coins = [Utxo(bytes([n]) * 32, 0, 1_000, b"\x01" * 20, 10) for n in range(20)]
    pay = [Payment(b"\x02" * 20, 15_000)]
    select_coins(coins, pay, Decimal(1), b"\x03" * 20, 200, 100)  # the default size allows it
    with pytest.raises(SelectionError, match=r"more than a node relays \(1,000\)"):
        select_coins(coins, pay, Decimal(1), b"\x03" * 20, 200, 100, max_size=1_000)
