"""The explorer page (issue 8, SPEC 5) in headless Chromium against a real node.

Playwright drives ``/usr/bin/chromium`` through pages of a node that ``conftest.chain`` filled
with real blocks and transactions. Every figure the tests read from the page (amounts, fees,
confirmations, counts) is compared with the REST API, fetched separately with urllib. The
``page`` fixture fails a test if the page requested anything outside the node's origin or threw
a JavaScript error. Screenshots of every page at 375 and 1,280 px go to
``bench-report/screenshots/explorer/`` (or ``$TALLY_SCREENSHOTS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Chain
from tests.helpers import key

COIN = 100_000_000
MINUS = "\u2212"

# Finds what sticks out of the viewport horizontally. Clipping or scrolling containers
# (overflow-x other than visible) may hold wider content; nothing else may.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const contained = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible") return true;
    }
    return false;
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width <= 1 && r.height <= 1) continue;  // empty, or visually hidden (screen readers)
    if ((r.right > width + 0.5 || r.left < -0.5) && !contained(el)) {
      bad.push(`${el.tagName}.${el.className} [${Math.round(r.left)}, ${Math.round(r.right)}]`
        + ` ${(el.textContent || "").trim().slice(0, 40)}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth, bad};
}"""


def tly(units: int, signed: bool = False) -> str:
    """The page's format: exact, 8 decimals, thousands separated, U+2212 for minus."""
    sign = MINUS if units < 0 else "+" if signed and units > 0 else ""
    units = abs(units)
    return f"{sign}{units // COIN:,}.{units % COIN:08d} TLY"


def goto(page: Page, chain: Chain, route: str) -> None:
    page.goto(f"{chain.url}/{route}")
    wait_route(page, route or "#/")


def wait_route(page: Page, route: str, state: str = "ready") -> None:
    """Until ``route`` is rendered (``data-route`` is the hash the page rendered)."""
    page.wait_for_selector(f'main[data-state="{state}"][data-route="{route}"]')


def search(page: Page, text: str) -> None:
    box = page.get_by_role("searchbox")
    box.fill(text)
    box.press("Enter")


def field(page: Page, name: str) -> str:
    return page.locator(f'main [data-field="{name}"]').inner_text().strip()


def address_history(chain: Chain, address: str) -> list[str]:
    """Every txid of the address through the API's cursor paging, newest first."""
    txids: list[str] = []
    while True:
        path = f"address/{address}/txs" + (f"?after_txid={txids[-1]}" if txids else "")
        page = chain.api(path)
        txids += [t["txid"] for t in page]
        if len(page) < 25:
            return txids


# --- 1. the home page ----------------------------------------------------------------------------


def test_home_lists_newest_blocks_and_updates_by_itself(page: Page, chain: Chain) -> None:
    goto(page, chain, "#/")
    blocks = chain.api("blocks")
    rows = page.locator("#blocks tbody tr")
    expect(rows).to_have_count(len(blocks))
    for row, b in zip(rows.all(), blocks, strict=True):
        assert row.get_attribute("data-hash") == b["hash"]
        assert row.locator("td.height").inner_text() == str(b["height"])
        assert row.locator("td.txs").inner_text() == str(b["tx_count"])
        assert row.locator("td.size").inner_text() == f"{b['size']:,} B"
        assert row.locator("td.fees").inner_text() == tly(b["total_fees"])
    pool = chain.api("mempool")
    assert pool["count"] > 0
    assert field(page, "mempool-count") == str(pool["count"])
    assert field(page, "mempool-bytes") == f"{pool['bytes']:,} B"
    assert field(page, "mempool-fee") == tly(pool["total_fee"])
    assert field(page, "height") == str(chain.api("info")["height"])

    page.evaluate("window.stillTheSamePage = true")
    # a transaction arrives: it shows in the mempool list without a reload
    txid = chain.pay(key(3), 1_234_567)
    expect(page.locator(f'#mempool-recent tr[data-txid="{txid}"]')).to_have_count(1)
    expect(page.locator('[data-field="mempool-count"]')).to_have_text(
        str(chain.api("mempool")["count"])
    )
    # a block is mined: it tops the list, and the mempool empties, without a reload
    new_hash = chain.node.generate(1, chain.miner)[0]
    expect(rows.first).to_have_attribute("data-hash", new_hash)
    new_block = chain.api(f"block/{new_hash}")
    expect(rows.first.locator("td.height")).to_have_text(str(new_block["height"]))
    expect(rows.first.locator("td.txs")).to_have_text(str(new_block["tx_count"]))
    expect(page.locator('[data-field="mempool-count"]')).to_have_text("0")
    expect(page.locator('[data-field="height"]')).to_have_text(str(new_block["height"]))
    expect(rows).to_have_count(10)
    assert page.evaluate("window.stillTheSamePage") is True


# --- 2. search lands on the right page with the right figures ----------------------------------


def check_block_page(page: Page, chain: Chain, block_hash: str) -> dict[str, Any]:
    b: dict[str, Any] = chain.api(f"block/{block_hash}")
    assert page.locator("h1").inner_text() == f"Block {b['height']:,}"
    assert field(page, "hash") == b["hash"]
    assert field(page, "height") == str(b["height"])
    assert field(page, "confirmations") == str(b["confirmations"])
    assert field(page, "tx-count") == str(b["tx_count"])
    assert field(page, "size") == f"{b['size']:,} B"
    assert field(page, "fees") == tly(b["total_fees"])
    assert field(page, "prev") == b["prev_hash"]
    return b


def test_search_by_height_shows_the_block_and_pages_its_transactions(
    page: Page, chain: Chain
) -> None:
    goto(page, chain, "#/")
    height = 103  # 26 transactions: two pages
    block_hash = chain.api(f"block-height/{height}")
    search(page, str(height))
    wait_route(page, f"#/block/{block_hash}")
    b = check_block_page(page, chain, block_hash)
    txids = chain.api(f"block/{block_hash}/txids")
    assert b["tx_count"] == len(txids) == 26
    rows = page.locator("#txs tbody tr")
    assert [r.get_attribute("data-txid") for r in rows.all()] == txids[:25]
    first = chain.api(f"block/{block_hash}/txs")
    for row, tx in zip(rows.all()[:3], first, strict=False):
        assert row.locator("td.fee").inner_text() == tly(tx["fee"])
        assert row.locator("td.value").inner_text() == tly(sum(o["amount"] for o in tx["outputs"]))
    assert field(page, "range") == "Transactions 1\u201325 of 26"
    page.get_by_role("link", name="Next \u2192").click()
    wait_route(page, f"#/block/{block_hash}?start=25")
    assert [r.get_attribute("data-txid") for r in rows.all()] == txids[25:]
    # the next block's link
    page.get_by_role("link", name=f"Block {height + 1} \u2192").click()
    wait_route(page, f"#/block/{chain.api(f'block-height/{height + 1}')}")
    check_block_page(page, chain, chain.api(f"block-height/{height + 1}"))


def test_search_by_block_hash(page: Page, chain: Chain) -> None:
    goto(page, chain, "#/")
    block_hash = chain.api("block-height/50")
    search(page, block_hash.upper())
    wait_route(page, f"#/block/{block_hash}")
    check_block_page(page, chain, block_hash)
    coinbase = chain.api(f"block/{block_hash}/txids")[0]
    expect(page.locator(f'#txs tr[data-txid="{coinbase}"] td.inputs')).to_have_text("coinbase")


def check_tx_page(page: Page, chain: Chain, txid: str) -> dict[str, Any]:
    tx: dict[str, Any] = chain.api(f"tx/{txid}")
    status = tx["status"]
    assert field(page, "txid") == txid
    assert field(page, "fee") == tly(tx["fee"])
    assert field(page, "size") == f"{tx['size']:,} B"
    assert field(page, "confirmations") == str(status["confirmations"])
    assert field(page, "status") == (
        "Confirmed" if status["confirmed"] else "Unconfirmed (in the mempool)"
    )
    if status["confirmed"]:
        assert field(page, "block").startswith(str(status["block_height"]))
        link = page.locator('[data-field="block"] a').first
        assert link.get_attribute("href") == f"#/block/{status['block_hash']}"
    assert field(page, "total-out") == tly(sum(o["amount"] for o in tx["outputs"]))
    inputs = page.locator("#inputs tbody tr")
    expect(inputs).to_have_count(len(tx["inputs"]))
    for n, i in enumerate(tx["inputs"]):
        row = page.locator(f'#inputs tr[data-index="{n}"]')
        assert row.locator("td.amount").inner_text() == tly(i["amount"])
        assert row.locator("td.address").inner_text() == i["address"]
        prev = row.locator("td.prevout a")
        assert prev.get_attribute("href") == f"#/tx/{i['txid']}"
        assert prev.inner_text().endswith(f":{i['index']}")
    outputs = page.locator("#outputs tbody tr")
    expect(outputs).to_have_count(len(tx["outputs"]))
    spenders = chain.api(f"tx/{txid}/outspends")
    for n, o in enumerate(tx["outputs"]):
        row = page.locator(f'#outputs tr[data-index="{n}"]')
        assert row.locator("td.amount").inner_text() == tly(o["amount"])
        assert row.locator("td.address").inner_text() == o["address"]
        assert row.get_attribute("data-spent") == ("true" if o["spent"] else "false")
        if o["spent"]:
            spender = row.locator("td.spent a")
            assert spender.get_attribute("href") == f"#/tx/{spenders[n]['txid']}"
        else:
            assert row.locator("td.spent").inner_text() == "Unspent"
    return tx


def test_search_by_txid(page: Page, chain: Chain) -> None:
    goto(page, chain, "#/")
    # key 1 spending its first payment: one input, two outputs, a fee
    search(page, chain.spend_txid)
    wait_route(page, f"#/tx/{chain.spend_txid}")
    tx = check_tx_page(page, chain, chain.spend_txid)
    assert tx["fee"] == 10_000
    assert field(page, "total-in") == tly(1_000_000)
    # the payment it spent: output 0 links to its spender
    first_payment = chain.payments[0]
    page.locator(f'#inputs a[href="#/tx/{first_payment}"]').click()
    wait_route(page, f"#/tx/{first_payment}")
    check_tx_page(page, chain, first_payment)
    expect(page.locator('#outputs tr[data-index="0"] td.spent a')).to_have_attribute(
        "href", f"#/tx/{chain.spend_txid}"
    )
    # two inputs
    search(page, chain.two_inputs_txid)
    wait_route(page, f"#/tx/{chain.two_inputs_txid}")
    assert check_tx_page(page, chain, chain.two_inputs_txid)["fee"] == 10_000
    # a coinbase
    coinbase = chain.api(f"block/{chain.api('block-height/7')}/txids")[0]
    search(page, coinbase)
    wait_route(page, f"#/tx/{coinbase}")
    assert field(page, "fee") == f"{tly(0)} (coinbase)"
    assert field(page, "confirmations") == str(chain.api(f"tx/{coinbase}/status")["confirmations"])


def test_unconfirmed_transaction_confirms_by_itself(page: Page, chain: Chain) -> None:
    txid = chain.pay(key(3), 2_500_000)
    goto(page, chain, "#/")
    search(page, txid)
    wait_route(page, f"#/tx/{txid}")
    check_tx_page(page, chain, txid)
    assert field(page, "status") == "Unconfirmed (in the mempool)"
    assert field(page, "confirmations") == "0"
    chain.node.generate(1, chain.miner)
    expect(page.locator('[data-field="status"]')).to_have_text("Confirmed")
    expect(page.locator('[data-field="confirmations"]')).to_have_text("1")
    check_tx_page(page, chain, txid)


def check_address_page(page: Page, chain: Chain, address: str) -> dict[str, Any]:
    summary: dict[str, Any] = chain.api(f"address/{address}")
    balance, stats, pool = summary["balance"], summary["chain_stats"], summary["mempool_stats"]
    assert page.locator("main .subtitle").inner_text() == address
    assert field(page, "balance-confirmed") == tly(balance["confirmed"])
    assert field(page, "balance-unconfirmed") == tly(balance["unconfirmed"], signed=True)
    assert field(page, "balance-immature") == tly(balance["immature"])
    assert field(page, "received") == tly(stats["funded_sum"])
    assert field(page, "sent") == tly(stats["spent_sum"])
    total = stats["tx_count"] + pool["tx_count"]
    assert field(page, "tx-count").split(" ")[0] == f"{total:,}"
    utxos = chain.api(f"address/{address}/utxo")
    assert field(page, "utxo-count") == f"{len(utxos):,}"
    shown = page.locator("#utxo tbody tr[data-outpoint]")
    expect(shown).to_have_count(min(25, len(utxos)))
    by_outpoint = {f"{u['txid']}:{u['index']}": u for u in utxos}
    for row in shown.all()[:5]:
        u = by_outpoint[row.get_attribute("data-outpoint") or ""]
        assert row.locator("td.amount").inner_text() == tly(u["amount"])
        assert (
            row.locator("td.confirmations").inner_text().split(" ")[0] == f"{u['confirmations']:,}"
        )
    return summary


def test_search_by_address(page: Page, chain: Chain) -> None:
    goto(page, chain, "#/")
    search(page, chain.payee)
    wait_route(page, f"#/address/{chain.payee}")
    summary = check_address_page(page, chain, chain.payee)
    assert summary["chain_stats"]["spent_sum"] == 1_000_000
    # the change each transaction made to this address, newest first
    history = chain.api(f"address/{chain.payee}/txs")
    rows = page.locator("#address-txs tbody tr")
    assert [r.get_attribute("data-txid") for r in rows.all()] == [t["txid"] for t in history]
    spend_row = page.locator(f'#address-txs tr[data-txid="{chain.spend_txid}"]')
    assert spend_row.locator("td.change").inner_text() == tly(590_000 - 1_000_000, signed=True)
    # the miner: coinbases, so an immature balance, and more than 25 unspent outputs
    search(page, chain.miner)
    wait_route(page, f"#/address/{chain.miner}")
    summary = check_address_page(page, chain, chain.miner)
    assert summary["balance"]["immature"] > 0
    page.get_by_role("link", name="Show all").click()
    wait_route(page, f"#/address/{chain.miner}?utxos=all")
    utxos = chain.api(f"address/{chain.miner}/utxo")
    expect(page.locator("#utxo tbody tr[data-outpoint]")).to_have_count(len(utxos))


# --- 3. paging through a long history ------------------------------------------------------------


def test_address_with_more_than_60_transactions_pages_through_all(page: Page, chain: Chain) -> None:
    expected = address_history(chain, chain.payee)
    assert len(expected) > 60
    goto(page, chain, f"#/address/{chain.payee}")
    rows = page.locator("#address-txs tbody tr[data-txid]")
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen += [r.get_attribute("data-txid") or "" for r in rows.all()]
        assert field(page, "range") == (
            f"Transactions {len(seen) - rows.count() + 1}\u2013{len(seen)} of {len(expected)}"
        )
        older = page.get_by_role("link", name="Older \u2192")
        if older.count() == 0:
            break
        route = older.get_attribute("href") or ""
        older.focus()
        page.keyboard.press("Enter")  # paging works from the keyboard
        wait_route(page, route)
    assert pages == 3
    assert seen == expected
    # back to the newest page
    page.get_by_role("link", name="\u2190 Newest").click()
    wait_route(page, f"#/address/{chain.payee}")
    assert rows.first.get_attribute("data-txid") == expected[0]


# --- 4. not found -------------------------------------------------------------------------------


def test_unknown_search_term_says_nothing_found(page: Page, chain: Chain) -> None:
    goto(page, chain, "#/")
    for term in ["no-such-thing", "0" * 64, "99999999", '<img src=x onerror="window.pwned=1">']:
        search(page, term)
        alert = page.get_by_role("alert")
        expect(alert).to_have_text(f"Nothing found for \u201c{term}\u201d.")
        expect(page.locator("h1")).to_have_text("Nothing found")
        # the term stays in the box to be corrected
        expect(page.get_by_role("searchbox")).to_have_value(term)
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.pwned") is None
    # a link to an unknown transaction says so as well
    goto(page, chain, "#/")
    page.goto(f"{chain.url}/#/tx/{'ab' * 32}")
    wait_route(page, f"#/tx/{'ab' * 32}", state="error")
    expect(page.get_by_role("alert")).to_contain_text("not found")


# --- 5. nothing but the node's own origin -------------------------------------------------------


def test_every_request_goes_to_the_node(page: Page, chain: Chain) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    block_hash = chain.api("block-height/104")
    for route in [
        "#/",
        "#/blocks",
        f"#/block/{block_hash}",
        f"#/tx/{chain.two_inputs_txid}",
        f"#/address/{chain.payee}",
    ]:
        goto(page, chain, route)
    search(page, "nothing-here")
    wait_route(page, "#/search/nothing-here", state="error")
    page.wait_for_timeout(2_500)  # at least one live-update poll
    origin = chain.url + "/"
    assert any(u.startswith(origin + "api/v1/") for u in requests)
    assert any(u.startswith(origin + "static/") for u in requests)
    assert origin + "static/charts.js" in requests  # the overview's charts, drawn by the page
    assert [u for u in requests if not u.startswith(origin)] == []


# --- 6. layout at phone and desktop widths ------------------------------------------------------


def test_nothing_overflows_at_375_and_1280(
    browser: Browser, chain: Chain, screenshots: Path
) -> None:
    block_hash = chain.api("block-height/103")
    pages = {
        "home": "#/",
        "blocks": "#/blocks/60",
        "block": f"#/block/{block_hash}",
        "tx": f"#/tx/{chain.spend_txid}",
        "tx-coinbase": f"#/tx/{chain.api(f'block/{block_hash}/txids')[0]}",
        "address": f"#/address/{chain.payee}",
        "address-miner": f"#/address/{chain.miner}",
        "not-found": "#/search/no-such-thing",
    }
    for width in (375, 1280):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        for name, route in pages.items():
            page.goto(f"{chain.url}/{route}")
            state = "error" if name == "not-found" else "ready"
            wait_route(page, route, state)
            result = page.evaluate(OVERFLOW_JS)
            assert result["scrollWidth"] <= result["innerWidth"], (name, width, result)
            assert result["bad"] == [], (name, width, result["bad"])
            page.screenshot(path=str(screenshots / f"{name}-{width}.png"), full_page=True)
        context.close()
    assert len(list(screenshots.glob("*-375.png"))) >= len(pages)


# --- keyboard -----------------------------------------------------------------------------------


def test_usable_from_the_keyboard(page: Page, chain: Chain) -> None:
    goto(page, chain, "#/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "q":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    block2 = chain.api("block-height/2")
    wait_route(page, f"#/block/{block2}")
    assert page.evaluate("document.activeElement.tagName") == "H1"  # focus follows the page
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.textContent, s.outlineStyle, s.outlineWidth]; })()"
    )
    assert focused[0] == "\u2190 Block 1"
    assert focused[1] != "none" and float(focused[2].removesuffix("px")) >= 2  # visible focus
    page.keyboard.press("Enter")
    wait_route(page, f"#/block/{chain.api('block-height/1')}")
    page.keyboard.press("/")  # the search shortcut
    assert page.evaluate("document.activeElement.id") == "q"
