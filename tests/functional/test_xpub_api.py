"""``/xpub/{xpub}`` routes (SPEC 3.5) against a real node: one request for a whole account.

A BIP39 seed's account (``wallet.keys.Account``, what ``tally-wallet`` derives) receives coins at
receive indexes 0, 15 and 30 (30 is past the 20th address, found because 15 moved the gap),
change index 3, and 51 (beyond the gap: not found, as a restoring wallet would not find it).
One transaction moves coins between two of its own addresses; one payment stays unconfirmed.
Every total, page and output is compared with the per-address routes, which are the oracle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consensus import (
    COIN,
    OutPoint,
    TxOut,
    b58check_decode,
    b58check_encode,
    convert_xpub_version,
    get_params,
    hash160,
)
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import REGTEST, Key, key, spend
from wallet.keys import CHANGE, RECEIVE, Account, mnemonic_to_seed

API = "/api/v1"
MNEMONIC = "abandon " * 11 + "about"
USED = [(RECEIVE, 0), (RECEIVE, 15), (RECEIVE, 30), (CHANGE, 3)]
BEYOND_GAP = (RECEIVE, 51)
UNCONFIRMED_TO = (RECEIVE, 2)


def account_key(account: Account, chain: int, index: int) -> Key:
    pub = account.pubkey(chain, index)
    return Key(account.privkey(chain, index), pub, hash160(pub))


@dataclass
class World:
    node: NodeProcess
    account: Account
    internal_txid: str
    unconfirmed_txid: str

    def get(self, path: str) -> Any:
        answer = self.node.get(API + path)
        assert answer.status == 200, (path, answer.body)
        return answer.json()

    def addr(self, chain: int, index: int) -> str:
        return self.account.address(chain, index)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    account = Account(mnemonic_to_seed(MNEMONIC), REGTEST)
    miner = key(20)
    with NodeProcess(Path(tmp_path_factory.mktemp("xpub")) / "n") as node:
        hashes = node.generate(102, address_of(miner.pubkey_hash))

        def coinbase(height: int) -> tuple[OutPoint, TxOut, Key]:
            txid = bytes.fromhex(node.get(f"{API}/block/{hashes[height - 1]}/txids").json()[0])
            return OutPoint(txid[::-1], 0), TxOut(50 * COIN, miner.pubkey_hash), miner

        pays = [*USED, BEYOND_GAP]
        fan = spend(
            [coinbase(1)],
            [TxOut(COIN, account.pubkey_hash(c, i)) for c, i in pays]
            + [TxOut(50 * COIN - len(pays) * COIN - 10_000, miner.pubkey_hash)],
        )
        assert node.post_raw(f"{API}/tx", fan.serialize()).status == 200
        node.generate(1, address_of(miner.pubkey_hash))
        # Receive 0 pays receive 15 and change 3: one transaction, three of the account's addresses.
        internal = spend(
            [(OutPoint(fan.txid(), 0), fan.outputs[0], account_key(account, RECEIVE, 0))],
            [
                TxOut(COIN // 2, account.pubkey_hash(RECEIVE, 15)),
                TxOut(COIN // 2 - 5_000, account.pubkey_hash(CHANGE, 3)),
            ],
        )
        assert node.post_raw(f"{API}/tx", internal.serialize()).status == 200
        node.generate(1, address_of(miner.pubkey_hash))
        pending = spend(
            [coinbase(2)],
            [
                TxOut(2 * COIN, account.pubkey_hash(*UNCONFIRMED_TO)),
                TxOut(48 * COIN - 10_000, miner.pubkey_hash),
            ],
        )
        assert node.post_raw(f"{API}/tx", pending.serialize()).status == 200
        yield World(node, account, internal.txid()[::-1].hex(), pending.txid()[::-1].hex())


def oracle_addresses(world: World) -> list[str]:
    return [world.addr(c, i) for c, i in [*USED, UNCONFIRMED_TO]]


def test_summary_sums_the_addresses_within_the_gap(world: World) -> None:
    xpub = world.account.account_xpub
    got = world.get(f"/xpub/{xpub}")
    per = [world.get(f"/address/{a}") for a in oracle_addresses(world)]
    for group in ("chain_stats", "mempool_stats"):
        for field in ("funded_sum", "spent_sum"):
            assert got[group][field] == sum(p[group][field] for p in per), (group, field)
    for field in ("confirmed", "unconfirmed", "immature"):
        assert got["balance"][field] == sum(p["balance"][field] for p in per), field
    # Two confirmed transactions touch the account (the fan-out, the internal move), one pooled.
    assert got["chain_stats"]["tx_count"] == 2 and got["mempool_stats"]["tx_count"] == 1
    assert sorted(a["path"] for a in got["addresses"]) == sorted(
        ["0/0", "0/15", "0/30", "1/3", "0/2"]
    )
    assert world.addr(*BEYOND_GAP) not in {a["address"] for a in got["addresses"]}
    assert got["next_receive_index"] == 31 and got["next_change_index"] == 4
    assert got["balance"]["confirmed"] == 4 * COIN - 5_000
    assert got["balance"]["unconfirmed"] == 2 * COIN


def test_history_is_the_union_newest_first_in_pages(world: World) -> None:
    xpub = world.account.account_xpub
    got = [t["txid"] for t in world.get(f"/xpub/{xpub}/txs")]
    assert got[0] == world.unconfirmed_txid and got[1] == world.internal_txid
    union: list[str] = []
    for a in oracle_addresses(world):
        union += [t["txid"] for t in world.get(f"/address/{a}/txs")]
    assert sorted(got) == sorted(set(union)) and len(got) == len(set(got)) == 3
    # The cursor pages on, with nothing repeated.
    rest = [t["txid"] for t in world.get(f"/xpub/{xpub}/txs?after_txid={got[0]}")]
    assert rest == got[1:]
    assert [t["txid"] for t in world.get(f"/xpub/{xpub}/txs?after_txid={got[1]}")] == got[2:]
    foreign = world.node.get(f"{API}/xpub/{xpub}/txs?after_txid={'ab' * 32}")
    assert foreign.status == 404


def test_unspent_outputs_with_their_paths(world: World) -> None:
    xpub = world.account.account_xpub
    got = world.get(f"/xpub/{xpub}/utxo")
    expected = []
    for a, (c, i) in zip(oracle_addresses(world), [*USED, UNCONFIRMED_TO], strict=True):
        for u in world.get(f"/address/{a}/utxo"):
            expected.append({**u, "address": a, "path": f"{c}/{i}"})
    key = lambda u: (u["txid"], u["index"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert [u["confirmations"] > 0 for u in got] == sorted(
        (u["confirmations"] > 0 for u in got), reverse=True
    )
    after = f"{got[0]['txid']}:{got[0]['index']}"
    assert world.get(f"/xpub/{xpub}/utxo?after={after}") == got[1:]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda x: convert_xpub_version(x, get_params("main")), "wrong-network"),
        (lambda x: x[:-1] + ("2" if x[-1] != "2" else "3"), "bad-checksum"),
        (lambda x: b58check_encode(b58check_decode(x)[:70]), "bad-length"),
        (lambda x: x.replace(x[5], "0", 1), "bad-character"),
    ],
)
def test_bad_xpubs_are_400_with_the_reason(world: World, mangle: Any, reason: str) -> None:
    answer = world.node.get(f"{API}/xpub/{mangle(world.account.account_xpub)}")
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["code"] == "bad-xpub"
    assert error["message"].startswith(f"{reason}: "), error


def test_bitcoins_xpub_is_another_network(world: World) -> None:
    raw = b58check_decode(world.account.account_xpub)
    bitcoin = b58check_encode(bytes.fromhex("0488b21e") + raw[4:])
    answer = world.node.get(f"{API}/xpub/{bitcoin}")
    assert answer.status == 400 and "Bitcoin's xpub" in answer.json()["error"]["message"]


def test_the_wallet_restored_from_the_seed_agrees_with_one_request_each(
    world: World, tmp_path: Path
) -> None:
    """Issue 21, acceptance 6: the routes show what the wallet itself shows (its own gap-limit
    restore finds receive 30 past the 20th, as the node's scan does)."""
    from tests.functional.wallet_process import Wallets

    wallets = Wallets(world.node, tmp_path)
    path = tmp_path / "restored.json"
    wallets.ok("--wallet", str(path), "--node", world.node.url, "restore", stdin=MNEMONIC + "\n")
    xpub = world.account.account_xpub
    summary = world.get(f"/xpub/{xpub}")
    balance = wallets.ok("--wallet", str(path), "balance")
    assert (balance["confirmed"], balance["unconfirmed"]) == (
        summary["balance"]["confirmed"],
        summary["balance"]["unconfirmed"],
    )
    utxos = wallets.ok("--wallet", str(path), "utxos")
    assert {(u["txid"], u["index"]) for u in utxos} == {
        (u["txid"], u["index"]) for u in world.get(f"/xpub/{xpub}/utxo")
    }
    history = wallets.ok("--wallet", str(path), "history")
    assert {r["txid"] for r in history} == {t["txid"] for t in world.get(f"/xpub/{xpub}/txs")}
