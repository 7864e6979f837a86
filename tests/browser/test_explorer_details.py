"""Explorer details a person trips over (issue 15, points 7 and 9), in headless Chromium at
1,280 px against the real node of ``conftest.chain``.

- A mistyped address, or another network's, in the search says why (the API's
  ``bad-checksum``/``wrong-network``) instead of a bare "Nothing found".
- Address history pages have "Newer" as well as "Older" and "Newest", and paging keeps the
  history in view instead of jumping to the top of the page.
- The mempool table's amount column says it is the output total, change included.
- Addresses do not wrap at 1,280 px; "Witness txid" and "units/B" carry an explanation.
- A transaction the node reports as replaced (``status: {"confirmed": false, "replaced_by":
  TXID}``, SPEC 3.5) says "Replaced by" with a link. That status comes from another branch's
  node work, so this test answers ``GET /api/v1/tx/{txid}`` with the documented shape through
  Playwright's request routing; the rest of the page is the real node's.
"""

from __future__ import annotations

import json

from playwright.sync_api import Page, Route, expect

from consensus import encode_address, get_params
from tests.browser.conftest import Chain
from tests.browser.test_explorer import address_history, goto, search, wait_route


def test_search_says_why_an_address_is_refused(page: Page, chain: Chain) -> None:
    goto(page, chain, "#/")
    last = chain.payee[-1]
    typo = chain.payee[:-1] + ("2" if last != "2" else "3")
    search(page, typo)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("checksum does not match")
    expect(alert).to_have_attribute("data-reason", "bad-checksum")
    mainnet = encode_address(bytes(20), get_params("main"))
    search(page, mainnet)
    expect(alert).to_contain_text("another network")
    expect(alert).to_have_attribute("data-reason", "wrong-network")
    search(page, "no-such-thing")  # not address-like: the plain message
    expect(alert).to_have_text("Nothing found for \u201cno-such-thing\u201d.")


def test_address_paging_has_newer_and_stays_at_the_history(page: Page, chain: Chain) -> None:
    expected = address_history(chain, chain.payee)
    goto(page, chain, f"#/address/{chain.payee}")
    rows = page.locator("#address-txs tbody tr[data-txid]")
    pages: list[list[str]] = []
    for _ in range(3):
        pages.append([r.get_attribute("data-txid") or "" for r in rows.all()])
        older = page.get_by_role("link", name="Older \u2192")
        if older.count() == 0:
            break
        route = older.get_attribute("href") or ""
        older.click()
        wait_route(page, route)
        top = page.evaluate("document.querySelector('#history').getBoundingClientRect().top")
        assert page.evaluate("window.scrollY") > 0 and abs(top) < 5  # the history, not the top
    assert [t for p in pages for t in p] == expected and len(pages) == 3
    for back in (1, 0):  # Newer, one page at a time, to the newest
        newer = page.get_by_role("link", name="\u2190 Newer")
        route = newer.get_attribute("href") or ""
        newer.click()
        wait_route(page, route)
        assert [r.get_attribute("data-txid") for r in rows.all()] == pages[back]
    expect(page.get_by_role("link", name="\u2190 Newer")).to_have_count(0)


def test_labels_titles_and_unwrapped_addresses(page: Page, chain: Chain) -> None:
    goto(page, chain, "#/")
    header = page.locator("#mempool-recent thead th").nth(1)
    expect(header).to_have_text("Output total")
    assert "change" in (header.get_attribute("title") or "")
    goto(page, chain, f"#/tx/{chain.two_inputs_txid}")
    wtxid = page.locator("main th abbr", has_text="Witness txid")
    assert "signatures" in (wtxid.get_attribute("title") or "")
    units = page.locator('main [data-field="fee-rate"] abbr')
    expect(units).to_have_text("units/B")
    assert "base units per byte" in (units.get_attribute("title") or "")
    addresses = page.locator("main a.addr")
    assert addresses.count() >= 3
    for a in addresses.all():  # one line box each: no wrapping at 1,280 px
        assert a.evaluate("el => el.getClientRects().length") == 1, a.inner_text()


def test_a_replaced_transaction_says_what_replaced_it(page: Page, chain: Chain) -> None:
    original = chain.api(f"tx/{chain.two_inputs_txid}")
    replacement = "ab" * 32
    shaped = {**original, "status": {"confirmed": False, "replaced_by": replacement}}

    def answer(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(shaped))

    page.route(f"**/api/v1/tx/{chain.two_inputs_txid}", answer)
    goto(page, chain, f"#/tx/{chain.two_inputs_txid}")
    line = page.locator('main [data-field="replaced-by"]')
    expect(line).to_contain_text("Replaced by")
    assert line.locator("a").get_attribute("href") == f"#/tx/{replacement}"
    expect(page.locator('main [data-field="status"]')).to_contain_text("Replaced by")
