"""The overview's charts (SPEC 5) in headless Chromium against real nodes.

``charts.js`` draws, as SVG, the fee rates in the mempool (one bar per band of
``/api/v1/mempool``'s ``fee_histogram``) and the transactions of each of the last 30 blocks. The
node of ``conftest.chain`` holds blocks of 1, 2, 16 and 26 transactions; the tests add mempool
transactions at fee rates in different bands and read every figure the charts show (bar labels,
axis ticks, each bar's ``<title>``, the "Show the figures" tables) against the REST API, then mine
a block and see both charts follow it by themselves: a new bar, and an empty mempool drawn as an
empty chart that says so. A second node holding only its genesis block shows one bar and the empty
fee chart, without a JavaScript error. The ``page`` fixture fails a test if the page requested
anything outside the node or threw. Screenshots go where conftest says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect

from consensus import TxOut
from tests.browser.conftest import LIVE_TIMEOUT_MS, Chain
from tests.browser.test_explorer import OVERFLOW_JS, goto, wait_route
from tests.functional.node_process import NodeProcess
from tests.helpers import key, spend

# Error events the "pageerror" check of conftest does not see (a ResizeObserver loop, for one).
RECORD_ERRORS = (
    "window.errorEvents = []; addEventListener('error', (e) => errorEvents.push(e.message));"
)
EN_DASH = "\u2013"


def band(rate: int) -> str:
    """A fee band's label: from ``rate`` up to (not including) twice it; 0 is under 1."""
    return f"{rate:,}{EN_DASH}{(rate * 2 if rate else 1):,}"


def chart_blocks(page: Page) -> int:
    """How many blocks the chart shows at most: charts.js's constant, read from the page."""
    n = page.evaluate("TallyCharts.CHART_BLOCKS")
    assert isinstance(n, int) and n >= 30
    return n


def last_blocks(chain: Chain, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` block summaries of the best chain, oldest first."""
    blocks: list[dict[str, Any]] = chain.api("blocks")
    while len(blocks) < count and blocks[-1]["height"] > 0:
        blocks += chain.api(f"blocks?start_height={blocks[-1]['height'] - 1}")
    return blocks[:count][::-1]


def texts(locator: Locator) -> list[str]:
    return [t.strip() for t in locator.all_text_contents()]


def pay_at_rate(chain: Chain, rate: int) -> tuple[str, int]:
    """A mempool transaction paying about ``rate`` base units per byte: (txid, its fee rate)."""
    outpoint, out = chain.spare.pop()
    k0 = key(0)

    def build(fee: int) -> Any:
        return spend(
            [(outpoint, out, k0)],
            [TxOut(500_000, key(4).pubkey_hash), TxOut(out.amount - 500_000 - fee, k0.pubkey_hash)],
        )

    size = len(build(rate * 200).serialize())
    tx = build(rate * size)
    assert len(tx.serialize()) == size
    return chain.submit(tx), rate


def check_blocks_chart(page: Page, chain: Chain) -> list[dict[str, Any]]:
    """Every bar of the transactions-per-block chart against the API, oldest first."""
    blocks = last_blocks(chain, chart_blocks(page))
    bars = page.locator("#blocks-chart svg .bar-tx")
    expect(bars.last).to_have_attribute("data-height", str(blocks[-1]["height"]))
    expect(bars).to_have_count(len(blocks))
    assert [b.get_attribute("data-height") for b in bars.all()] == [
        str(b["height"]) for b in blocks
    ]
    assert [b.get_attribute("data-hash") for b in bars.all()] == [b["hash"] for b in blocks]
    assert texts(page.locator("#blocks-chart svg .bar-tx title")) == [
        f"Block {b['height']:,}: {b['tx_count']:,} transaction{'' if b['tx_count'] == 1 else 's'}"
        for b in blocks
    ]
    # the count above each bar, as text (there is room for two digits at 1,280 px)
    assert texts(page.locator("#blocks-chart svg .bar-tx text.value")) == [
        str(b["tx_count"]) for b in blocks
    ]
    # the height axis: labelled heights sit under their own bars, the newest always labelled
    heights = page.locator("#blocks-chart svg .bar-tx")
    labelled = [
        (bar.get_attribute("data-height"), bar.locator("text.height").text_content())
        for bar in heights.all()
        if bar.locator("text.height").count()
    ]
    assert labelled and all(f"{int(h or 0):,}" == t for h, t in labelled)
    assert labelled[-1][0] == str(blocks[-1]["height"])
    # the count axis starts at 0 and reaches the largest count
    ticks = [int(t.replace(",", "")) for t in texts(page.locator("#blocks-chart svg .grid text"))]
    assert ticks[0] == 0 and ticks == sorted(ticks)
    assert ticks[-1] >= max(b["tx_count"] for b in blocks)
    return blocks


def check_fee_chart(page: Page, chain: Chain) -> list[list[int]]:
    """Every band of the fee-rate chart against ``/api/v1/mempool``'s histogram."""
    histogram: list[list[int]] = chain.api("mempool")["fee_histogram"]
    bands = page.locator("#fee-chart svg .bar-fee")
    expect(page.locator("#fee-chart svg .bar-fee text.label")).to_have_text(
        [band(rate) for rate, _ in histogram]
    )
    expect(page.locator("#fee-chart svg .bar-fee text.value")).to_have_text(
        [f"{size:,} B" for _, size in histogram]
    )
    assert [(b.get_attribute("data-rate"), b.get_attribute("data-bytes")) for b in bands.all()] == [
        (str(rate), str(size)) for rate, size in histogram
    ]
    # longer bars for more bytes
    widths = [float(r.get_attribute("width") or 0) for r in bands.locator("rect").all()]
    by_size = sorted(zip((size for _, size in histogram), widths, strict=True))
    assert [w for _, w in by_size] == sorted(w for _, w in by_size)
    return histogram


def check_drawn_at_box_width(page: Page) -> None:
    """Each chart is drawn at the width of its box, so its text is not scaled down."""
    for chart in ("#fee-chart", "#blocks-chart"):
        box, drawn = page.locator(f"{chart} .chart-box").evaluate(
            "b => [b.getBoundingClientRect().width, Number(b.firstChild.getAttribute('width'))]"
        )
        assert 0 <= box - drawn < 1, (chart, box, drawn)


def test_charts_match_the_api_and_follow_a_new_block(
    page: Page, chain: Chain, screenshots: Path
) -> None:
    # the fixture leaves two payments in the mempool; add three more, each in another band
    for rate in (2, 40, 300):
        pay_at_rate(chain, rate)
    histogram = chain.api("mempool")["fee_histogram"]
    assert len(histogram) >= 4, histogram
    page.add_init_script(RECORD_ERRORS)
    goto(page, chain, "#/")

    blocks = check_blocks_chart(page, chain)
    assert len(blocks) == chart_blocks(page)
    assert {1, 2, 16, 26} <= {b["tx_count"] for b in blocks}  # blocks of different sizes
    histogram = check_fee_chart(page, chain)

    # accessible names and descriptions, the same figures in the tables under the charts
    pool = chain.api("mempool")
    fee_img = page.get_by_role("img", name="Fee rates in the mempool", exact=True)
    expect(fee_img).to_have_attribute("data-empty", "false")
    fee_desc = fee_img.locator("desc").text_content() or ""
    assert f"{pool['count']:,} transactions ({pool['bytes']:,} B)" in fee_desc
    assert f"{len(histogram)} fee-rate bands" in fee_desc
    blocks_img = page.get_by_role("img", name="Transactions per block", exact=True)
    assert f"blocks {blocks[0]['height']:,} to {blocks[-1]['height']:,}" in (
        blocks_img.locator("desc").text_content() or ""
    )
    expect(blocks_img).to_have_accessible_description(
        f"Transactions in blocks {blocks[0]['height']:,} to {blocks[-1]['height']:,}: from 1 to 26"
        f" a block; the newest, {blocks[-1]['height']:,}, has {blocks[-1]['tx_count']}."
    )
    expect(page.locator("#blocks-chart figcaption")).to_have_text(
        f"Transactions per block blocks {blocks[0]['height']}\u2013{blocks[-1]['height']}"
    )
    expect(page.locator("#fee-chart figcaption")).to_have_text(
        f"Fee rates in the mempool {pool['count']} transactions, {pool['bytes']:,} B"
    )
    check_drawn_at_box_width(page)
    page.get_by_text("Show the figures").first.click()
    page.get_by_text("Show the figures").last.click()
    fee_rows = page.locator("#fee-chart table tbody tr")
    assert [texts(r.locator("td")) for r in fee_rows.all()] == [
        [band(rate), f"{size:,} B"] for rate, size in histogram
    ]
    block_rows = page.locator("#blocks-chart table tbody tr")
    assert [texts(r.locator("td")) for r in block_rows.all()] == [
        [f"{b['height']:,}", str(b["tx_count"])] for b in blocks[::-1]
    ]
    assert [a.get_attribute("href") for a in block_rows.locator("a").all()] == [
        f"#/block/{b['hash']}" for b in blocks[::-1]
    ]
    page.locator("#charts").screenshot(path=str(screenshots / "charts-1280.png"))

    # on a phone the charts stack, are redrawn at their new width and stick out nowhere
    page.set_viewport_size({"width": 375, "height": 900})
    expect(page.locator("#blocks-chart svg")).to_have_attribute(
        "width", str(int(page.locator("#blocks-chart .chart-box").bounding_box()["width"]))
    )
    check_drawn_at_box_width(page)
    result = page.evaluate(OVERFLOW_JS)
    assert result["bad"] == [], result
    expect(page.locator("#blocks-chart svg .bar-tx")).to_have_count(len(blocks))
    page.locator("#charts").screenshot(path=str(screenshots / "charts-375.png"))
    page.set_viewport_size({"width": 1280, "height": 900})

    # a new block takes the whole mempool: both charts follow by themselves, the tables stay open
    page.evaluate("window.stillTheSamePage = true")
    mempool_count = chain.api("mempool")["count"]
    (new_hash,) = chain.node.generate(1, chain.miner)
    newest = page.locator("#blocks-chart svg .bar-tx").last
    expect(newest).to_have_attribute("data-hash", new_hash)
    expect(newest).to_have_attribute("data-count", str(mempool_count + 1))
    after = check_blocks_chart(page, chain)
    assert [b["hash"] for b in after[:-1]] == [b["hash"] for b in blocks[1:]]  # one bar on
    empty = page.get_by_role("img", name="Fee rates in the mempool", exact=True)
    expect(empty).to_have_attribute("data-empty", "true")
    expect(empty).to_contain_text("The mempool is empty.")
    assert page.locator("#fee-chart svg .bar-fee").count() == 0
    expect(page.locator("#fee-chart table tbody tr")).to_have_text(["The mempool is empty."])
    for chart in ("#fee-chart", "#blocks-chart"):  # the figures the reader opened stay open
        expect(page.locator(f"{chart} details")).to_have_attribute("open", "")
    assert page.evaluate("window.stillTheSamePage") is True
    page.locator("#charts").screenshot(path=str(screenshots / "charts-empty-mempool-1280.png"))

    # a transaction arrives: its band appears
    pay_at_rate(chain, 40)
    expect(page.locator("#fee-chart svg .bar-fee text.label")).to_have_text([band(32)])
    check_fee_chart(page, chain)
    assert page.evaluate("window.errorEvents") == []


def check_genesis_page(browser: Browser, node: NodeProcess, width: int, folder: Path) -> None:
    """The overview of a node holding its genesis block only, in dark mode."""
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme="dark")
    requests: list[str] = []
    errors: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(LIVE_TIMEOUT_MS)
    page.add_init_script(RECORD_ERRORS)
    page.goto(node.url + "/#/")
    wait_route(page, "#/")
    genesis = node.get("/api/v1/block-height/0").body.decode().strip()
    bars = page.locator("#blocks-chart svg .bar-tx")
    expect(bars).to_have_count(1)
    assert bars.first.get_attribute("data-hash") == genesis
    assert bars.first.locator("title").text_content() == "Block 0: 1 transaction"
    assert bars.first.locator("text.height").text_content() == "0"
    if width == 1280:
        assert bars.first.locator("text.value").text_content() == "1"
    blocks_img = page.get_by_role("img", name="Transactions per block", exact=True)
    expect(blocks_img.locator("desc")).to_have_text(
        "Transactions in block 0: from 1 to 1 a block; the newest, 0, has 1."
    )
    fee_img = page.get_by_role("img", name="Fee rates in the mempool", exact=True)
    expect(fee_img).to_have_attribute("data-empty", "true")
    expect(fee_img).to_contain_text("The mempool is empty.")
    result = page.evaluate(OVERFLOW_JS)
    assert result["bad"] == [], result
    page.screenshot(path=str(folder / f"home-genesis-dark-{width}.png"), full_page=True)
    assert page.evaluate("window.errorEvents") == []
    context.close()
    assert errors == []
    assert node.url + "/static/charts.js" in requests
    assert [u for u in requests if not u.startswith(node.url + "/")] == []


def test_charts_of_a_chain_of_its_genesis_only(
    browser: Browser, tmp_path: Path, screenshots: Path
) -> None:
    node = NodeProcess(tmp_path / "genesis").start()
    try:
        for width in (375, 1280):
            check_genesis_page(browser, node, width, screenshots)
    finally:
        node.stop()
