"""Two explorer pages of SPEC 5 in Chromium: an address's QR code, and an account (xpub) page.

- The address page shows the QR code of its payment URI: the image the page loads from its own
  node is screenshotted from the rendered page and decoded by ``zbarimg`` (zbar, nobody's code
  here); it must give exactly ``tally:<address>``, the text under it.
- Search takes an account's extended public key and leads to its page: used addresses with their
  paths, balances and history, each compared with the node's ``/xpub`` routes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from playwright.sync_api import Page, expect

from consensus import hash160
from tests.browser.conftest import Chain
from tests.browser.test_explorer import OVERFLOW_JS, field, goto, search, tly, wait_route
from tests.helpers import REGTEST, Key
from wallet.keys import CHANGE, RECEIVE, Account, mnemonic_to_seed


def test_the_address_page_shows_a_qr_code_that_scans_to_its_uri(
    page: Page, chain: Chain, tmp_path: Path
) -> None:
    goto(page, chain, f"#/address/{chain.payee}")
    wait_route(page, f"#/address/{chain.payee}")
    figure = page.locator("#address-qr")
    expect(figure.locator("figcaption")).to_have_text(f"tally:{chain.payee}")
    image = figure.locator("img")
    page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=image.element_handle(), timeout=10_000
    )
    shot = tmp_path / "qr.png"
    image.screenshot(path=str(shot), scale="device")
    zbar = shutil.which("zbarimg")
    assert zbar, "zbarimg (zbar-tools) is needed: scripts/test.sh installs it as root"
    done = subprocess.run(
        [zbar, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(shot)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().removesuffix("\n") == f"tally:{chain.payee}"


def account_key(account: Account, chain: int, index: int) -> Key:
    pub = account.pubkey(chain, index)
    return Key(account.privkey(chain, index), pub, hash160(pub))


def test_search_by_xpub_shows_the_account(page: Page, chain: Chain) -> None:
    account = Account(mnemonic_to_seed("abandon " * 11 + "about"), REGTEST)
    for where in [(RECEIVE, 0), (RECEIVE, 3), (CHANGE, 1)]:
        chain.pay(account_key(account, *where), 2_000_000)
    chain.node.generate(1, chain.miner)
    pending = chain.pay(account_key(account, RECEIVE, 5), 1_000_000)
    xpub = account.account_xpub
    api = chain.api(f"xpub/{xpub}")

    goto(page, chain, "#/")
    search(page, xpub)
    wait_route(page, f"#/xpub/{xpub}")
    paths = [r.get_attribute("data-path") for r in page.locator("#xpub-addresses tbody tr").all()]
    assert sorted(p or "" for p in paths) == ["0/0", "0/3", "0/5", "1/1"]
    assert sorted(paths) == sorted(a["path"] for a in api["addresses"])
    assert field(page, "balance-confirmed") == tly(api["balance"]["confirmed"])
    assert api["balance"]["confirmed"] == 6_000_000
    assert api["balance"]["unconfirmed"] == 1_000_000
    txids = [r.get_attribute("data-txid") for r in page.locator("#xpub-txs tbody tr").all()]
    assert txids == [t["txid"] for t in chain.api(f"xpub/{xpub}/txs")]
    assert txids[0] == pending
    outputs = page.locator("#xpub-utxo tbody tr[data-outpoint]")
    expect(outputs).to_have_count(len(chain.api(f"xpub/{xpub}/utxo")))
    # Nothing sticks out at a phone's width (the key is 111 characters long).
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        found = page.evaluate(OVERFLOW_JS)
        assert found["bad"] == [], (width, found["bad"])
        assert found["scrollWidth"] <= found["innerWidth"], width
