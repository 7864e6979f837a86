"""Fixtures for the explorer's browser tests: a real node with real data, and headless Chromium.

``chain`` starts one ``tally-node run --network regtest`` process per module and fills it through
the public API only: 101 blocks to key 0, a fan-out transaction, 65 payments of different amounts
to key 1 (63 confirmed across three blocks, two left in the mempool), a spend by key 1 to key 2
and a two-input transaction. Key 1's address then has 66 transactions, more than two pages.

``browser`` is the system Chromium (``/usr/bin/chromium``, installed by ``scripts/test.sh`` with
apt-get when missing), never a browser downloaded by Playwright. ``page`` is a fresh context per
test that records every request it makes; the teardown fails the test if one left the node's
origin. Screenshots go to ``bench-report/screenshots/explorer/`` (git-ignored) unless
``TALLY_SCREENSHOTS`` names another folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from consensus import OutPoint, Transaction, TxOut
from tests.functional.node_process import NodeProcess, address_of, http
from tests.helpers import Key, key, spend

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COIN = 100_000_000
LIVE_TIMEOUT_MS = 15_000  # the page polls every 2 s; slow CI machines get room

expect.set_options(timeout=LIVE_TIMEOUT_MS)
PAYMENTS = 65
IN_MEMPOOL = 2  # the last payments stay unconfirmed


def display(txid: bytes) -> str:
    return txid[::-1].hex()


@dataclass
class Chain:
    """The node under test and what the fixture put on its chain."""

    node: NodeProcess
    miner: str  # key 0's address: coinbases, the fan-out, change
    payee: str  # key 1's address: 65 payments in, one spend out
    other: str  # key 2's address
    payments: list[str] = field(default_factory=list)  # txids, oldest first
    spend_txid: str = ""  # key 1 spending its first payment
    two_inputs_txid: str = ""
    spare: list[tuple[OutPoint, TxOut]] = field(default_factory=list)  # fan-out outputs left

    @property
    def url(self) -> str:
        return self.node.url

    def api(self, path: str) -> Any:
        """``GET /api/v1/<path>`` as JSON (or text), asserting 200."""
        r = http(self.url + "/api/v1/" + path)
        assert r.status == 200, (path, r.status, r.body)
        return (
            r.json()
            if r.headers.get("Content-Type", "").startswith("application/json")
            else (r.body.decode())
        )

    def submit(self, tx: Transaction) -> str:
        r = self.node.post_raw("/api/v1/tx", tx.serialize())
        assert r.status == 200, r.body
        txid: str = r.json()["txid"]
        assert txid == display(tx.txid())
        return txid

    def pay(self, to: Key, amount: int) -> str:
        """A new unconfirmed payment from a spare fan-out output (key 0's) to ``to``."""
        outpoint, out = self.spare.pop()
        tx = spend(
            [(outpoint, out, key(0))],
            [
                TxOut(amount, to.pubkey_hash),
                TxOut(out.amount - amount - 10_000, key(0).pubkey_hash),
            ],
        )
        return self.submit(tx)


def build_chain(node: NodeProcess) -> Chain:
    k0, k1, k2 = key(0), key(1), key(2)
    chain = Chain(
        node, address_of(k0.pubkey_hash), address_of(k1.pubkey_hash), address_of(k2.pubkey_hash)
    )
    node.generate(101, chain.miner)

    # The coinbase of block 1 is mature: fan it out into 80 coins of 0.1 TLY.
    block1 = chain.api("block-height/1")
    cb = bytes.fromhex(chain.api(f"block/{block1}/txids")[0])[::-1]
    fan_n, fan_amount = 80, COIN // 10
    fan_out = spend(
        [(OutPoint(cb, 0), TxOut(50 * COIN, k0.pubkey_hash), k0)],
        [TxOut(fan_amount, k0.pubkey_hash) for _ in range(fan_n)]
        + [TxOut(50 * COIN - fan_n * fan_amount - 100_000, k0.pubkey_hash)],
    )
    chain.submit(fan_out)
    node.generate(1, chain.miner)
    coins = [(OutPoint(fan_out.txid(), n), TxOut(fan_amount, k0.pubkey_hash)) for n in range(fan_n)]

    # 65 payments to key 1, each its own transaction, mined 25, 25 and 13 a block.
    first_payment: Transaction | None = None
    for i in range(PAYMENTS):
        outpoint, out = coins.pop(0)
        amount = 1_000_000 + i * 1_001
        fee = 2_000 + i
        tx = spend(
            [(outpoint, out, k0)],
            [TxOut(amount, k1.pubkey_hash), TxOut(out.amount - amount - fee, k0.pubkey_hash)],
        )
        first_payment = first_payment or tx
        chain.payments.append(chain.submit(tx))
        if i in (24, 49):
            node.generate(1, chain.miner)
        if i == PAYMENTS - IN_MEMPOOL - 1:
            # key 1 spends its first payment; two inputs from key 0 pay key 2
            assert first_payment is not None
            chain.spend_txid = chain.submit(
                spend(
                    [(OutPoint(first_payment.txid(), 0), first_payment.outputs[0], k1)],
                    [TxOut(400_000, k2.pubkey_hash), TxOut(590_000, k1.pubkey_hash)],
                )
            )
            (a, a_out), (b, b_out) = coins.pop(0), coins.pop(0)
            chain.two_inputs_txid = chain.submit(
                spend(
                    [(a, a_out, k0), (b, b_out, k0)],
                    [TxOut(15_000_000, k2.pubkey_hash), TxOut(4_990_000, k0.pubkey_hash)],
                )
            )
            node.generate(1, chain.miner)
    chain.spare = coins
    return chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    node = NodeProcess(tmp_path_factory.mktemp("explorer") / "n1").start()
    try:
        yield build_chain(node)
    finally:
        node.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while it
    is open, which would break ``asyncio.run`` in the tests collected after these."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        raise FileNotFoundError(f"{CHROMIUM} is missing: run scripts/test.sh as root to install it")
    b = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser, chain: Chain) -> Iterator[Page]:
    """A desktop-sized page; fails at teardown if any request left the node's origin."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    context.on("request", lambda req: requests.append(req.url))
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda err: errors.append(str(err)))
    p.set_default_timeout(LIVE_TIMEOUT_MS)
    yield p
    context.close()
    origin = chain.url + "/"
    foreign = [u for u in requests if not u.startswith(origin)]
    assert not foreign, f"requests outside {origin}: {foreign}"
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(
        os.environ.get("TALLY_SCREENSHOTS", ROOT / "bench-report" / "screenshots" / "explorer")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder
