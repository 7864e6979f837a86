"""Issue 21 acceptance 4, through ``tally-wallet`` against a real regtest node.

A watch-only wallet made from the full wallet's account xpub (no password asked: the command
runs without a terminal and without ``TALLY_WALLET_PASSWORD``; its file holds no key material)
shows the same balance, addresses and coins as the full wallet, through the node's ``/xpub``
routes; it writes an unsigned payment (no secret in the file); the full wallet signs it, after
checking its inputs against the node (a file that lies about an amount or a change path is
refused); ``broadcast`` sends it and it confirms.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from bip32 import BIP32  # type: ignore[import-untyped]

from consensus import COIN, b58check_encode, convert_xpub_version, get_params
from tests.functional.node_process import NodeProcess, address_of
from tests.functional.wallet_process import API, Wallets, wallet_command
from wallet.keys import CHANGE, RECEIVE, Account, mnemonic_to_seed

REGTEST = get_params("regtest")
BURN = address_of(b"\x00" * 19 + b"\x04")


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wallets]:
    base = tmp_path_factory.mktemp("offline")
    home = base / "home"
    home.mkdir()
    with NodeProcess(base / "node") as node:
        yield Wallets(node, home)


def no_password(w: Wallets, *args: str) -> subprocess.CompletedProcess[str]:
    """Without a password in the environment, and without a controlling terminal: any attempt
    to ask for a password would fail."""
    return subprocess.run(
        [*wallet_command(), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=w.env(TALLY_WALLET_PASSWORD=None),
        timeout=120,
        start_new_session=True,
    )


def watch_ok(w: Wallets, *args: str) -> Any:
    r = no_password(w, *args, "--json")
    assert r.returncode == 0, r.stderr
    assert "password" not in r.stderr.lower()
    return json.loads(r.stdout)


def test_watch_only_unsigned_sign_broadcast(w: Wallets) -> None:
    full = w.home / "full.json"
    made = w.ok("--wallet", str(full), "--node", w.node.url, "create")
    mnemonic = made["mnemonic"]
    account = Account(mnemonic_to_seed(mnemonic), REGTEST)
    w.node.generate(3, account.address(RECEIVE, 0))
    w.node.generate(REGTEST.coinbase_maturity, BURN)
    # a used address past the first few, found by both wallets
    w.ok("--wallet", str(full), "send", account.address(RECEIVE, 7), "2")
    w.node.generate(1, BURN)
    xpub = w.ok("--wallet", str(full), "info")["account_xpub"]
    assert xpub.startswith("Rpub")

    # keys that are not this network's account key are one-line errors, and write nothing
    bad = w.home / "bad-watch.json"
    master_xpub = BIP32.from_seed(mnemonic_to_seed(mnemonic)).get_xpub()  # Bitcoin's, depth 0
    for key, expected in (
        (master_xpub, "not an account key for regtest"),
        (convert_xpub_version(master_xpub, REGTEST), "depth 0"),
    ):
        r = no_password(
            w, "--wallet", str(bad), "--node", w.node.url, "create", "--watch-only", key
        )
        assert r.returncode == 1 and expected in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert not bad.exists()
    watch = w.home / "watch.json"
    created = watch_ok(
        w, "--wallet", str(watch), "--node", w.node.url, "create", "--watch-only", xpub
    )
    assert created["watch_only"] is True and created["network"] == "regtest"
    assert created["address"] == account.address(RECEIVE, 0)
    # no key material in the file, in any usual encoding
    text = watch.read_text()
    data = json.loads(text)
    assert not {"kdf", "cipher", "ciphertext"} & set(data)
    seed = mnemonic_to_seed(mnemonic)
    master = BIP32.from_seed(seed)
    secrets = [mnemonic, seed.hex(), master.get_xpriv(), master.get_xpriv_from_path("m/44'/1'/0'")]
    for chain in (RECEIVE, CHANGE):
        for i in range(25):
            priv = account.privkey(chain, i)
            secrets += [priv.hex(), b58check_encode(b"\xef" + priv + b"\x01")]
    for secret in secrets:
        assert secret.lower() not in text.lower()
    for word in set(mnemonic.split()):
        assert f" {word} " not in f" {text} "

    # the same balance, addresses and coins
    full_balance = w.ok("--wallet", str(full), "balance")
    assert watch_ok(w, "--wallet", str(watch), "balance") == full_balance
    assert watch_ok(w, "--wallet", str(watch), "address") == w.ok("--wallet", str(full), "address")
    coins = {
        (u["txid"], u["index"], u["amount"], u["path"])
        for u in w.ok("--wallet", str(full), "utxos")
    }
    watched = {
        (u["txid"], u["index"], u["amount"], u["path"])
        for u in watch_ok(w, "--wallet", str(watch), "utxos")
    }
    assert watched == coins and any(p.endswith("/0/7") for *_, p in coins)
    full_history = {h["txid"] for h in w.ok("--wallet", str(full), "history")}
    assert {h["txid"] for h in watch_ok(w, "--wallet", str(watch), "history")} == full_history

    # a watch-only wallet cannot sign
    r = no_password(w, "--wallet", str(watch), "send", BURN, "1")
    assert r.returncode == 1 and "--unsigned FILE" in r.stderr
    r = no_password(w, "--wallet", str(watch), "sign-message", account.address(RECEIVE, 0), "x")
    assert r.returncode == 1 and "watch-only" in r.stderr

    # the unsigned payment: what a signer needs, and nothing secret
    file = w.home / "payment.json"
    before = set(w.mempool())
    unsigned = watch_ok(w, "--wallet", str(watch), "send", BURN, "12.5", "--unsigned", str(file))
    assert set(w.mempool()) == before
    doc = json.loads(file.read_text())
    assert doc["format"] == "tally-unsigned-tx" and doc["version"] == 1
    assert doc["signed"] is None and doc["account_xpub"] == xpub and doc["txid"] == unsigned["txid"]
    for i in doc["inputs"]:
        assert i["path"].startswith("m/44'/1'/0'/") and i["amount"] > 0
    assert [(o["address"], o["amount"]) for o in doc["outputs"] if not o["change"]] == [
        (BURN, 1_250_000_000)
    ]
    change = [o for o in doc["outputs"] if o["change"]]
    assert len(change) == 1 and change[0]["path"].startswith("m/44'/1'/0'/1/")
    file_text = file.read_text().lower()
    for secret in secrets:
        assert secret.lower() not in file_text
    assert (
        "already"
        in no_password(w, "--wallet", str(watch), "send", BURN, "1", "--unsigned", str(file)).stderr
    )

    # a file that lies is refused before signing
    for field, expected in (
        ("amount", "the node says"),
        ("change_path", "is not this wallet's"),
    ):
        bad = dict(
            doc, inputs=[dict(i) for i in doc["inputs"]], outputs=[dict(o) for o in doc["outputs"]]
        )
        if field == "amount":
            bad["inputs"][0]["amount"] += 1
            bad["fee"] += 1
        else:
            other = next(o for o in bad["outputs"] if o["change"])
            other["path"] = other["path"].rsplit("/", 1)[0] + "/999"
        bad_file = w.home / f"bad-{field}.json"
        bad_file.write_text(json.dumps(bad))
        r = w.run("--wallet", str(full), "sign", str(bad_file))
        assert r.returncode == 1 and expected in r.stderr, r.stderr
        assert json.loads(bad_file.read_text())["signed"] is None

    # broadcasting before signing is refused; the full wallet signs; the watch-only one sends
    r = no_password(w, "--wallet", str(watch), "broadcast", str(file))
    assert r.returncode == 1 and "not signed yet" in r.stderr
    line = w.fails("--wallet", str(full), "sign", str(file), "--max-fee", "0.000001")
    assert "above --max-fee" in line and "as the file" in line
    assert json.loads(file.read_text())["signed"] is None
    signed_file = w.home / "signed.json"
    signed = w.ok("--wallet", str(full), "sign", str(file), "--output", str(signed_file))
    assert signed["txid"] == unsigned["txid"] and signed["signed"] is True
    assert json.loads(file.read_text())["signed"] is None  # --output leaves the input alone
    w.ok("--wallet", str(full), "sign", str(file))  # in place
    assert json.loads(file.read_text())["signed"] == json.loads(signed_file.read_text())["signed"]
    sent = watch_ok(w, "--wallet", str(watch), "broadcast", str(file))
    assert sent["txid"] == unsigned["txid"] and unsigned["txid"] in w.mempool()
    w.node.generate(1, BURN)
    status = w.node.get(f"{API}/tx/{unsigned['txid']}/status").json()
    assert status["confirmed"] is True
    after = w.ok("--wallet", str(full), "balance")
    assert after["total"] == full_balance["total"] - 1_250_000_000 - unsigned["fee"] + 0
    assert watch_ok(w, "--wallet", str(watch), "balance") == after
    assert after["total"] > 100 * COIN

    # a watch-only wallet can ask to be paid and sweep offline too, still without a password
    request = watch_ok(w, "--wallet", str(watch), "request", "1", "--label", "offline shop")
    assert request["uri"].startswith(f"tally:{request['address']}?amount=1&label=offline")
    sweep_file = w.home / "sweep.json"
    sweep = watch_ok(w, "--wallet", str(watch), "sendall", BURN, "--unsigned", str(sweep_file))
    assert len(sweep["outputs"]) == 1 and sweep["outputs"][0]["address"] == BURN
    coins_now = w.ok("--wallet", str(full), "utxos")
    mature = [u for u in coins_now if u["spendable"]]
    assert {(i["txid"], i["index"]) for i in sweep["inputs"]} == {
        (u["txid"], u["index"]) for u in mature
    }
    w.ok("--wallet", str(full), "sign", str(sweep_file))
    watch_ok(w, "--wallet", str(watch), "broadcast", str(sweep_file))
    w.node.generate(1, BURN)
    swept = watch_ok(w, "--wallet", str(watch), "balance")
    assert swept == w.ok("--wallet", str(full), "balance")
    assert swept["confirmed"] == 0
