"""``tally-wallet`` as a person runs it (SPEC 4), against a real ``tally-node`` on regtest.

Acceptance of issue 7: a payment with ``--wait`` (balances right to the base unit, fee included,
``history`` and ``utxos`` equal to what the explorer API says), ``bump-fee`` replacing a stuck
transaction until the replacement confirms, restores (BIP39 vectors with passphrase TREZOR give
the vectors' master keys; coins at receive indexes 0, 15 and 30 are found, one at 51 is not: the
gap limit is 20), the keystore file (mode 0600, no secret in any encoding, a wrong password
changes nothing), one-line errors, and coin selection on the chain (immature coinbase outputs
never spent, change to a fresh internal address, fee = rate x size).

Every command is the installed ``tally-wallet`` in a subprocess, with ``TALLY_WALLET_PASSWORD``
in its environment and ``HOME`` pointing into the test's temporary directory. Blocks are mined
with the node's admin ``generate`` from a thread while a ``--wait`` is running.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bip32 import BIP32  # type: ignore[import-untyped]

from consensus import (
    COIN,
    b58check_encode,
    b58encode,
    convert_xpub_version,
    encode_address,
    get_params,
)
from tests.functional.node_process import NodeProcess, address_of, free_port
from wallet.keys import CHANGE, RECEIVE, Account, mnemonic_to_seed

API = "/api/v1"
PASSWORD = "correct horse battery staple"
REGTEST = get_params("regtest")
BURN = address_of(b"\x00" * 19 + b"\x01")
"""Blocks that should pay nobody in the test are mined here."""
ALICE_BLOCKS = 110
GAP_MNEMONIC = "letter advice cage absurd amount doctor acoustic avoid letter advice cage above"


def wallet_command() -> list[str]:
    exe = Path(sys.executable).parent / "tally-wallet"
    assert exe.exists(), "tally-wallet is not installed (pip install -e .)"
    return [str(exe)]


@dataclass
class Env:
    node: NodeProcess
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        env.update({"HOME": str(self.home), "TALLY_WALLET_PASSWORD": PASSWORD, **extra})
        return env

    def run(
        self,
        wallet: Path,
        *args: str,
        stdin: str = "",
        node: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *wallet_command(),
                "--network",
                "regtest",
                "--wallet",
                str(wallet),
                "--node",
                node or self.node.url,
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            env=env or self.env(),
            timeout=120,
        )

    def ok(self, wallet: Path, *args: str, stdin: str = "", **env: str) -> Any:
        """Run with ``--json``; the parsed answer (the command must succeed)."""
        r = self.run(wallet, "--json", *args, stdin=stdin, env=self.env(**env))
        assert r.returncode == 0, f"{args}: {r.returncode}\n{r.stderr}"
        assert "Traceback" not in r.stderr
        return json.loads(r.stdout)

    def fails(self, wallet: Path, *args: str, node: str | None = None) -> str:
        """Run a command that must fail with one line on stderr; that line."""
        r = self.run(wallet, *args, node=node)
        assert r.returncode == 1, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("tally-wallet: "), r.stderr
        assert "Traceback" not in r.stderr
        return lines[0]

    # --- chain helpers ---

    def tip(self) -> int:
        return int(self.node.get(API + "/blocks/tip/height").body)

    def mempool(self) -> list[str]:
        txids: list[str] = self.node.get(API + "/mempool/txids").json()
        return txids

    def mine_when_new_tx(self, count: int = 1) -> threading.Thread:
        """In a thread: as soon as a transaction not in the mempool now arrives, mine
        ``count`` blocks to ``BURN``."""
        before = set(self.mempool())

        def run() -> None:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if set(self.mempool()) - before:
                    self.node.generate(count, BURN)
                    return
                time.sleep(0.1)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def explorer_utxos(self, addresses: list[str]) -> set[tuple[str, int, int]]:
        found = set()
        for a in addresses:
            for u in self.node.get(f"{API}/address/{a}/utxo").json():
                found.add((u["txid"], u["index"], u["amount"]))
        return found

    def explorer_txids(self, addresses: list[str]) -> set[str]:
        found: set[str] = set()
        for a in addresses:
            after = ""
            while True:
                page = self.node.get(f"{API}/address/{a}/txs{after}").json()
                found.update(t["txid"] for t in page)
                if len(page) < 25:
                    break
                after = "?after_txid=" + page[-1]["txid"]
        return found


@dataclass
class Person:
    path: Path
    mnemonic: str
    account: Account

    def addresses(self, n: int = 40) -> list[str]:
        return [self.account.address(c, i) for c in (RECEIVE, CHANGE) for i in range(n)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("wallet")
    home = base / "home"
    home.mkdir()
    with NodeProcess(base / "node") as node:
        yield Env(node, home)


def create(env: Env, name: str) -> Person:
    path = env.home / f"{name}.json"
    data = env.ok(path, "create")
    assert data["network"] == "regtest" and data["derivation_path"] == "m/44'/1'/0'"
    account = Account(mnemonic_to_seed(data["mnemonic"]), REGTEST)
    assert data["address"] == account.address(RECEIVE, 0)
    return Person(path, data["mnemonic"], account)


@pytest.fixture(scope="module")
def alice(env: Env) -> Person:
    person = create(env, "alice")
    env.node.generate(ALICE_BLOCKS, person.account.address(RECEIVE, 0))
    return person


@pytest.fixture(scope="module")
def bob(env: Env) -> Person:
    return create(env, "bob")


def balance(env: Env, person: Person) -> dict[str, int]:
    data: dict[str, int] = env.ok(person.path, "balance")
    assert data["total"] == data["confirmed"] + data["unconfirmed"] + data["immature"]
    return data


# --- 1. a payment with --wait --------------------------------------------------------------------


def test_send_with_wait(env: Env, alice: Person, bob: Person) -> None:
    before = balance(env, alice)
    # heights 1..110 mined to alice; at tip 110 those up to 11 are mature (next block 111)
    assert before["confirmed"] == 11 * 50 * COIN
    assert before["immature"] == 99 * 50 * COIN
    tip = env.tip()
    amount = 1_234_567_891  # 12.34567891 TLY
    miner = env.mine_when_new_tx()
    sent = env.ok(alice.path, "send", bob.account.address(RECEIVE, 0), "12.34567891", "--wait")
    miner.join(10)
    assert env.tip() == tip + 1
    assert sent["sent"] is True and sent["confirmations"] >= 1
    assert sent["requested_fee_rate"] == 1  # a fresh regtest network: the estimate floor
    assert isinstance(sent["fee_rate"], float) and isinstance(sent["requested_fee_rate"], float)
    assert sent["fee"] == 1 * sent["size"] == len(bytes.fromhex(sent["raw"]))
    assert sent["change_address"] == alice.account.address(CHANGE, 0)
    status = env.node.get(f"{API}/tx/{sent['txid']}").json()
    assert status["status"]["confirmed"] and status["fee"] == sent["fee"]

    after = balance(env, alice)
    fee = sent["fee"]
    matured = 50 * COIN  # height 12 matured with the new block
    assert after["confirmed"] == before["confirmed"] + matured - amount - fee
    assert after["immature"] == before["immature"] - matured
    assert after["unconfirmed"] == 0
    assert after["total"] == before["total"] - amount - fee
    assert balance(env, bob) == {
        "confirmed": amount,
        "unconfirmed": 0,
        "immature": 0,
        "total": amount,
        "height": tip + 1,
        "frozen": 0,
    }

    # utxos and history agree with the explorer API
    for person in (alice, bob):
        addresses = person.addresses()
        utxos = env.ok(person.path, "utxos")
        assert {(u["txid"], u["index"], u["amount"]) for u in utxos} == env.explorer_utxos(
            addresses
        )
        history = env.ok(person.path, "history")
        assert {h["txid"] for h in history} == env.explorer_txids(addresses)
        row = next(h for h in history if h["txid"] == sent["txid"])
        assert row["confirmations"] == 1 and row["height"] == tip + 1
        if person is alice:
            assert row["net"] == -(amount + fee) and row["fee"] == fee
            assert len(history) == ALICE_BLOCKS + 1
            change = [u for u in utxos if u["address"] == alice.account.address(CHANGE, 0)]
            assert [u["amount"] for u in change] == [50 * COIN - amount - fee]
        else:
            assert row["net"] == amount and row["fee"] is None
            assert [(u["amount"], u["confirmations"]) for u in utxos] == [(amount, 1)]
    # the table form is readable and agrees
    text = env.run(alice.path, "history").stdout
    assert sent["txid"] in text and "-12.34568089" in text


# --- 2. bump-fee ---------------------------------------------------------------------------------


def test_bump_fee_replaces_a_stuck_transaction(env: Env, alice: Person, bob: Person) -> None:
    bob_before = balance(env, bob)
    stuck = env.ok(alice.path, "send", bob.account.address(RECEIVE, 1), "1.5", "--fee-rate", "1")
    assert stuck["fee"] == stuck["size"]
    assert stuck["txid"] in env.mempool()
    assert balance(env, bob)["unconfirmed"] == 150_000_000

    miner = env.mine_when_new_tx()
    bumped = env.ok(alice.path, "bump-fee", stuck["txid"], "--wait")
    miner.join(10)
    assert bumped["replaces"] == stuck["txid"] and bumped["txid"] != stuck["txid"]
    assert bumped["fee"] * stuck["size"] > stuck["fee"] * bumped["size"]  # higher fee rate
    assert bumped["fee"] >= stuck["fee"] + bumped["size"]  # pays for its own relay
    assert bumped["fee"] == 2 * bumped["size"]  # default: old rate + 1
    assert bumped["confirmations"] >= 1
    assert {i["txid"] for i in bumped["inputs"]} >= {i["txid"] for i in stuck["inputs"]}
    payments = [(o["address"], o["amount"]) for o in bumped["outputs"] if not o["change"]]
    assert payments == [(bob.account.address(RECEIVE, 1), 150_000_000)]

    assert env.node.get(f"{API}/tx/{bumped['txid']}/status").json()["confirmed"] is True
    replaced = env.node.get(f"{API}/tx/{stuck['txid']}")  # remembered as replaced (issue 15.7)
    assert replaced.status == 200
    assert replaced.json()["status"] == {"confirmed": False, "replaced_by": bumped["txid"]}
    line = env.fails(alice.path, "bump-fee", stuck["txid"])
    assert f"already replaced by {bumped['txid']}" in line
    bob_after = balance(env, bob)
    assert bob_after["confirmed"] == bob_before["confirmed"] + 150_000_000
    assert bob_after["unconfirmed"] == 0

    line = env.fails(alice.path, "bump-fee", bumped["txid"])
    assert "already confirmed" in line


def test_bump_fee_rate_below_the_original_is_refused(env: Env, alice: Person, bob: Person) -> None:
    stuck = env.ok(alice.path, "send", bob.account.address(RECEIVE, 2), "0.5", "--fee-rate", "3")
    line = env.fails(alice.path, "bump-fee", stuck["txid"], "--fee-rate", "2")
    assert "more than the original" in line
    bumped = env.ok(alice.path, "bump-fee", stuck["txid"], "--fee-rate", "5")
    assert bumped["fee"] == 5 * bumped["size"]
    assert bumped["txid"] in env.mempool() and stuck["txid"] not in env.mempool()
    env.node.generate(1, BURN)


# --- 3. restores ---------------------------------------------------------------------------------


def test_restore_bip39_vectors_gives_their_master_keys(env: Env, vectors: Path) -> None:
    english = json.loads(
        (vectors / "bip39/original/trezor-python-mnemonic_vectors.json").read_text()
    )["english"]
    # the first vector of each length (12, 18 and 24 words); all 24 are checked in
    # tests/unit/test_wallet_keys.py through the same wallet.keys functions
    firsts = {len(v[1].split()): n for n, v in reversed(list(enumerate(english)))}
    assert sorted(firsts) == [12, 18, 24]
    for n in sorted(firsts.values()):
        _, mnemonic, _, xprv = english[n]
        path = env.home / f"vector-{n}.json"
        restored = env.ok(
            path,
            "restore",
            "--bip39-passphrase",
            stdin=mnemonic + "\n",
            TALLY_WALLET_BIP39_PASSPHRASE="TREZOR",
        )
        master = BIP32.from_xpriv(xprv)
        assert restored["master_fingerprint"] == master.get_fingerprint().hex()
        info = env.ok(path, "info")
        assert info["master_fingerprint"] == master.get_fingerprint().hex()
        assert info["account_xpub"] == convert_xpub_version(
            master.get_xpub_from_path("m/44'/1'/0'"), REGTEST
        )
        assert info["account_xpub"].startswith("Rpub")
        assert info["network"] == "regtest" and info["coin_type"] == 1
        assert info["derivation_path"] == "m/44'/1'/0'"


def test_restore_finds_coins_within_the_gap_limit(env: Env, alice: Person) -> None:
    account = Account(mnemonic_to_seed(GAP_MNEMONIC), REGTEST)
    pay = {0: "1", 15: "2", 30: "3", 51: "4"}  # 51 is 21 past 30: beyond the gap limit
    args = [a for i, amount in pay.items() for a in (account.address(RECEIVE, i), amount)]
    miner = env.mine_when_new_tx()
    env.ok(alice.path, "send", *args, "--wait")
    miner.join(10)

    path = env.home / "restored.json"
    restored = env.ok(path, "restore", stdin=f"  {GAP_MNEMONIC.upper()}  \n")
    assert restored["scanned"] is True
    assert restored["balance"]["confirmed"] == 6 * COIN  # 1 + 2 + 3, not the 4 at index 51
    assert restored["receive_index"] == 31
    assert balance(env, Person(path, GAP_MNEMONIC, account))["confirmed"] == 6 * COIN
    info = env.ok(path, "info")
    assert info["receive_index"] == 31
    assert env.ok(path, "address")["address"] == account.address(RECEIVE, 31)
    # restoring over an existing wallet never overwrites it
    before = path.read_bytes()
    r = env.run(path, "restore", stdin=GAP_MNEMONIC)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert path.read_bytes() == before


def test_restore_refuses_a_bad_mnemonic(env: Env) -> None:
    path = env.home / "bad-mnemonic.json"
    r = env.run(path, "restore", stdin="abandon " * 12)
    assert r.returncode == 1 and "checksum" in r.stderr and "Traceback" not in r.stderr
    assert "abandon" not in r.stderr
    assert not path.exists()


# --- 4. the keystore file ------------------------------------------------------------------------


def json_strings(data: Any) -> Iterator[str]:
    """Every string value in a JSON document (keys left out)."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for v in data.values():
            yield from json_strings(v)
    elif isinstance(data, list):
        for v in data:
            yield from json_strings(v)


def test_keystore_file_mode_secrets_and_wrong_password(env: Env, alice: Person) -> None:
    path = alice.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    seed = mnemonic_to_seed(alice.mnemonic)
    master = BIP32.from_seed(seed)
    secrets = [
        alice.mnemonic,
        seed.hex(),
        master.get_xpriv(),
        master.get_xpub(),
        master.get_xpriv_from_path("m/44'/1'/0'"),
        alice.account.account_xpub,
    ]
    for chain in (RECEIVE, CHANGE):
        for i in range(25):
            priv = alice.account.privkey(chain, i)
            secrets += [
                priv.hex(),
                b58encode(priv),
                b58check_encode(b"\xef" + priv + b"\x01"),
                b58check_encode(b"\x80" + priv + b"\x01"),
                alice.account.pubkey(chain, i).hex(),
                alice.account.address(chain, i),
            ]
    for secret in secrets:
        assert secret.lower() not in text.lower(), secret[:10]
    # No string in the file holds a word of the mnemonic as a word (a JSON key such as
    # "network" may be a BIP39 word by chance: keys are the format's, not the user's), and no
    # two consecutive words of it appear anywhere.
    words = alice.mnemonic.split()
    for value in json_strings(json.loads(text)):
        assert not set(value.split()) & set(words), value[:20]
    for pair in itertools.pairwise(words):
        assert " ".join(pair) not in text

    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    bad = env.env(TALLY_WALLET_PASSWORD="not the password")
    for args in (["balance"], ["address", "--new"], ["send", BURN, "1"], ["info"]):
        r = env.run(path, *args, env=bad)
        assert r.returncode == 1, args
        assert r.stderr.count("\n") == 1 and "wrong password" in r.stderr
        assert "Traceback" not in r.stderr
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_password_file(env: Env, alice: Person, tmp_path: Path) -> None:
    file = tmp_path / "password"
    file.write_text(PASSWORD + "\n")
    r = subprocess.run(
        [
            *wallet_command(),
            "--wallet",
            str(alice.path),
            "--password-file",
            str(file),
            "address",
            "--json",
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.env().items() if k != "TALLY_WALLET_PASSWORD"},
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["path"].startswith("m/44'/1'/0'/0/")


# --- 5. one-line errors --------------------------------------------------------------------------


def test_errors_are_one_line(env: Env, alice: Person, bob: Person) -> None:
    good = bob.account.address(RECEIVE, 0)
    typo = good[:-1] + ("2" if good[-1] != "2" else "3")
    other_network = encode_address(bob.account.pubkey_hash(RECEIVE, 0), get_params("main"))
    cases = [
        (["send", typo, "1"], "bad checksum"),
        (["send", other_network, "1"], "another network"),
        (["send", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "1"], "Bitcoin mainnet"),
        (["send", good, "0.000000001"], "more than 8 decimal places"),
        (["send", good, "0"], "is zero"),
        (["send", good, "0.00"], "is zero"),
        (["send", good, "-1"], "is negative"),
        (["send", good, "-0.5"], "is negative"),
        (["send", good, "1e3"], "not a decimal number"),
        (["send", good, "20000000"], "not enough funds"),
        (["send", good, "1", good, "20000000"], "not enough funds"),
        (["send", good, "1", "--fee-rate", "0"], "fee rate"),
        (["bump-fee", "00" * 32], "does not know"),
        (["bump-fee", "xyz"], "not a transaction id"),
    ]
    for args, expected in cases:
        line = env.fails(alice.path, *args)
        assert expected in line, (args, line)
    unreachable = f"http://127.0.0.1:{free_port()}"
    for args in (["balance"], ["send", good, "1"], ["history"], ["utxos"]):
        line = env.fails(alice.path, *args, node=unreachable)
        assert f"cannot reach the node at {unreachable}" in line
    line = env.fails(env.home / "nobody.json", "balance")
    assert "no wallet at" in line
    # usage errors: status 2
    r = env.run(alice.path, "send", good)
    assert r.returncode == 2 and "ADDRESS AMOUNT pairs" in r.stderr


def test_wrong_network_wallet_and_node(env: Env, alice: Person) -> None:
    r = subprocess.run(
        [*wallet_command(), "--network", "main", "--wallet", str(alice.path), "balance"],
        capture_output=True,
        text=True,
        env=env.env(),
        timeout=60,
    )
    assert r.returncode == 1 and "is for the regtest network, not main" in r.stderr


# --- 6. immature coins, fresh change, exact fee ---------------------------------------------------


def test_immature_never_spent_change_fresh_fee_exact(env: Env) -> None:
    carol = create(env, "carol")
    home = carol.account.address(RECEIVE, 0)
    env.node.generate(1, home)
    env.node.generate(REGTEST.coinbase_maturity - 1, BURN)  # carol's first coin is now mature
    env.node.generate(3, home)  # and these are not
    utxos = env.ok(carol.path, "utxos")
    mature = [u for u in utxos if u["spendable"]]
    immature = {u["txid"] for u in utxos if not u["spendable"]}
    assert len(mature) == 1 and len(immature) == 3
    assert all(u["coinbase"] for u in utxos)
    b = balance(env, carol)
    assert b["confirmed"] == mature[0]["amount"]
    assert b["immature"] == sum(u["amount"] for u in utxos if not u["spendable"])

    line = env.fails(carol.path, "send", BURN, str(mature[0]["amount"] / COIN + 1))
    assert "not enough funds" in line and "not mature yet" in line

    sent = env.ok(carol.path, "send", BURN, "10", "--fee-rate", "3")
    assert [i["txid"] for i in sent["inputs"]] == [mature[0]["txid"]]
    assert sent["fee"] == 3 * sent["size"] == 3 * len(bytes.fromhex(sent["raw"]))
    change0 = carol.account.address(CHANGE, 0)
    assert sent["change_address"] == change0
    assert [o["change"] for o in sent["outputs"]] == [False, True]
    assert sent["outputs"][1]["amount"] == mature[0]["amount"] - 10 * COIN - sent["fee"]

    # the next transaction's change goes to the next, never-used internal address, and it
    # spends the unconfirmed change, never an immature coinbase
    dry = env.ok(carol.path, "send", BURN, "1", "--fee-rate", "2", "--dry-run")
    assert dry["sent"] is False and dry["txid"] not in env.mempool()
    assert dry["change_address"] == carol.account.address(CHANGE, 1) != change0
    assert dry["fee"] == 2 * dry["size"]
    assert {i["txid"] for i in dry["inputs"]} == {sent["txid"]}
    assert not {i["txid"] for i in dry["inputs"]} & immature
    receive = {carol.account.address(RECEIVE, i) for i in range(40)}
    assert dry["change_address"] not in receive
    # a dry run hands out nothing: the same change address again
    again = env.ok(carol.path, "send", BURN, "1", "--fee-rate", "2", "--dry-run")
    assert again["change_address"] == dry["change_address"]
    assert env.ok(carol.path, "info")["change_index"] == 1
    env.node.generate(1, BURN)


def test_address_new_and_table_output(env: Env, bob: Person) -> None:
    first = env.ok(bob.path, "address")
    new = env.ok(bob.path, "address", "--new")
    assert new["index"] == first["index"] + 1
    assert new["address"] == bob.account.address(RECEIVE, new["index"])
    r = env.run(bob.path, "balance")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["balance", "TLY"]
    assert [line.split()[0] for line in lines[2:]] == [
        "confirmed",
        "unconfirmed",
        "immature",
        "total",
    ]
    info = env.run(bob.path, "info").stdout
    assert "m/44'/1'/0'" in info and "regtest" in info
