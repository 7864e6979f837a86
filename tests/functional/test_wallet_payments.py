"""Issue 21 acceptance 2 and 5, through ``tally-wallet`` against a real regtest node.

2. ``request 1.25 --label apples --qr FILE.png`` prints a URI; the PNG decodes back to exactly
   that URI with an independent decoder (``zbarimg``); a second wallet pays it with ``send URI``;
   ``watch URI`` in the first reports it seen, then confirmed, and exits 0 (a ``--timeout`` with
   nothing paid exits 1 with one line).
5. A message signed by an address verifies; changed text, address or signature does not
   (exit status 0 valid, 1 not valid, and ``--json``).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from consensus import get_params
from tests.functional.node_process import NodeProcess, address_of
from tests.functional.wallet_process import Wallets, wallet_command
from tests.unit.test_wallet_qr import zbarimg
from wallet.keys import RECEIVE, Account, mnemonic_to_seed

REGTEST = get_params("regtest")
BURN = address_of(b"\x00" * 19 + b"\x02")


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wallets]:
    base = tmp_path_factory.mktemp("payments")
    home = base / "home"
    home.mkdir()
    with NodeProcess(base / "node") as node:
        yield Wallets(node, home)


@pytest.fixture(scope="module")
def merchant(w: Wallets) -> Path:
    return w.create("merchant")


@pytest.fixture(scope="module")
def customer(w: Wallets) -> Path:
    path = w.home / "customer.json"
    data = w.ok("--wallet", str(path), "--node", w.node.url, "create")
    address = Account(mnemonic_to_seed(data["mnemonic"]), REGTEST).address(RECEIVE, 0)
    w.node.generate(3, address)
    w.node.generate(REGTEST.coinbase_maturity, BURN)
    return path


def test_request_qr_send_uri_and_watch(w: Wallets, merchant: Path, customer: Path) -> None:
    png = w.home / "apples.png"
    req = w.ok("--wallet", str(merchant), "request", "1.25", "--label", "apples", "--qr", str(png))
    address = req["address"]
    assert req["uri"] == f"tally:{address}?amount=1.25&label=apples"
    assert req["amount"] == 125_000_000 and req["path"] == "m/44'/1'/0'/0/0"
    assert zbarimg(png) == req["uri"]
    # the terminal form: the URI, then the QR code in half blocks
    text = w.run("--wallet", str(merchant), "request", "2", "--message", "pears & plums").stdout
    lines = text.splitlines()
    second = lines[0]
    assert second.startswith("tally:") and "message=" + quote("pears & plums", safe="") in second
    assert sum("\u2588" in line or "\u2580" in line for line in lines[1:]) > 10
    # a second request gets a fresh address: the first one is promised to the apples
    assert second.split("?")[0] != "tally:" + address

    watcher = subprocess.Popen(
        [
            *wallet_command(),
            "--wallet",
            str(merchant),
            "watch",
            req["uri"],
            "--json",
            "--timeout",
            "150",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=w.env(TALLY_WALLET_PASSWORD=None),  # watching needs no password
    )
    try:
        miner = w.mine_when(1, 1, BURN)
        sent = w.ok("--wallet", str(customer), "send", req["uri"])
        assert [(o["address"], o["amount"]) for o in sent["outputs"] if not o["change"]] == [
            (address, 125_000_000)
        ]
        miner.join(60)
        out, err = watcher.communicate(timeout=150)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    seen = [n for n, line in enumerate(err.splitlines()) if line.startswith("seen:")]
    confirmed = [n for n, line in enumerate(err.splitlines()) if line.startswith("confirmed:")]
    assert seen and confirmed and seen[0] < confirmed[0], err
    done = json.loads(out)
    assert done["status"] == "confirmed" and done["received"] == 125_000_000
    assert done["txids"] == [sent["txid"]] and done["confirmations"] >= 1
    # watching an already-paid request ends at once
    assert w.ok("--wallet", str(merchant), "watch", req["uri"], "--timeout", "30")["txids"] == [
        sent["txid"]
    ]
    assert w.ok("--wallet", str(merchant), "balance")["confirmed"] == 125_000_000


def test_watch_timeout_is_one_line(w: Wallets, merchant: Path) -> None:
    unpaid = w.ok("--wallet", str(merchant), "request", "3")["uri"]
    r = w.run("--wallet", str(merchant), "watch", unpaid, "--timeout", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    progress, line = r.stderr.splitlines()  # what is watched, then the one-line error
    assert progress.startswith("watching ") and line.startswith("tally-wallet: no payment of 3")
    assert "within 1 s" in line and "nothing seen" in line
    line = w.fails("--wallet", str(merchant), "watch", "tally:notanaddress?amount=1")
    assert "unusable" in line
    line = w.fails("--wallet", str(merchant), "send", "tally:" + BURN)
    assert "names no amount" in line
    line = w.fails("--wallet", str(merchant), "request", "1", "--qr", str(w.home / "x.gif"))
    assert ".png or .svg" in line


def test_sign_and_verify_message(w: Wallets, merchant: Path, customer: Path) -> None:
    address = w.ok("--wallet", str(merchant), "address")["address"]
    text = "I, the merchant, own this address."
    signed = w.ok("--wallet", str(merchant), "sign-message", address, text)
    signature = signed["signature"]
    assert len(base64.b64decode(signature)) == 65

    def verify(addr: str, sig: str, message: str) -> tuple[int, dict[str, object]]:
        r = w.run("--wallet", str(merchant), "verify-message", addr, sig, message, "--json")
        assert "Traceback" not in r.stderr
        return r.returncode, json.loads(r.stdout) if r.stdout else {}

    assert verify(address, signature, text) == (
        0,
        {"valid": True, "address": address, "network": "regtest"},
    )
    r = w.run("--wallet", str(merchant), "verify-message", address, signature, text)
    assert r.returncode == 0 and r.stdout.strip() == "valid"
    # changed text, another address, another signature: not valid, exit 1
    assert verify(address, signature, text + ".")[0] == 1
    assert verify(address, signature, text + ".")[1]["valid"] is False
    other = w.ok("--wallet", str(customer), "address")["address"]
    assert verify(other, signature, text) == (
        1,
        {"valid": False, "address": other, "network": "regtest"},
    )
    other_sig = w.ok("--wallet", str(merchant), "sign-message", address, "another text")
    assert verify(address, other_sig["signature"], text)[0] == 1
    raw = bytearray(base64.b64decode(signature))
    raw[40] ^= 1
    assert verify(address, base64.b64encode(bytes(raw)).decode(), text)[0] == 1
    # malformed signatures and foreign addresses are one-line errors
    line = w.fails("--wallet", str(merchant), "verify-message", address, "not base64!", text)
    assert "not base64" in line
    line = w.fails("--wallet", str(merchant), "sign-message", other, text)
    assert "not an address of this wallet" in line
    # verifying needs no wallet at all, only the network
    r = subprocess.run(
        [
            *wallet_command(),
            "--network",
            "regtest",
            "--wallet",
            str(w.home / "none.json"),
            "verify-message",
            address,
            signature,
            text,
        ],
        capture_output=True,
        text=True,
        env=w.env(TALLY_WALLET_PASSWORD=None),
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == "valid", r.stderr


def address_reads(w: Wallets) -> int:
    """How many times the node has answered ``/address/{address}/txs`` (its metrics)."""
    text = w.node.get("/metrics").body.decode()
    route = 'route="/api/v1/address/{address}/txs"'
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tally_http_request_seconds_count") and route in line
    ]
    return int(sum(counts))


def test_watch_waits_on_the_event_stream_instead_of_polling(
    w: Wallets, merchant: Path, customer: Path
) -> None:
    """SPEC 4: ``watch`` follows the node's event stream. While nothing happens it reads the
    address no more than once at the start (polling every 0.5 s would read it about ten times
    in five idle seconds), and it still sees the payment and its confirmation."""
    address = w.ok("--wallet", str(merchant), "address", "--new")["address"]
    before = address_reads(w)
    watcher = subprocess.Popen(
        [
            *wallet_command(),
            *("--wallet", str(merchant), "watch", address, "--json"),
            *("--confirmations", "1", "--timeout", "150"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=w.env(TALLY_WALLET_PASSWORD=None),
    )
    try:
        deadline = time.monotonic() + 60
        while address_reads(w) == before:  # the watch has opened its stream and read once
            assert watcher.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        idle_start = address_reads(w)
        time.sleep(5)
        idle_reads = address_reads(w) - idle_start
        sent = w.ok("--wallet", str(customer), "send", address, "0.5")
        w.node.generate(1, BURN)
        out, err = watcher.communicate(timeout=150)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    done = json.loads(out)
    assert done["status"] == "confirmed" and done["txids"] == [sent["txid"]]
    assert idle_reads == 0, f"{idle_reads} reads of the address in 5 idle seconds"
