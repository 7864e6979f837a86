"""The event stream in a browser (SPEC 3.6 and 5; issue 20 acceptance 6), headless Chromium.

A fresh regtest node per module, with 1,000 spendable coins. Checked:

- a page's own ``EventSource`` on ``/api/v1/events`` (the browser's implementation, nobody's
  code here) receives the events of 1,000 transactions and 10 blocks, each with the SSE id equal
  to its seq, and the seqs consecutive;
- the explorer follows the stream (``<body data-live="stream">``): a new block and the emptied
  mempool show without a reload, and an idle page asks the node nothing (no polling) while the
  stream is open;
- when the stream cannot be reached the explorer polls (``data-live="poll"``) and still updates;
  when the stream is back it leaves polling for the stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.conftest import LIVE_TIMEOUT_MS
from tests.functional.node_process import NodeProcess, address_of
from tests.helpers import key
from tests.integration.hardening_support import Coin, fan_out, spends

API = "/api/v1"
TXS = 1_000
BLOCKS = 10
IDLE_MS = 5_000  # two and a half poll intervals of a page that would poll


@dataclass
class Env:
    node: NodeProcess
    miner: str
    coins: list[Coin]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    node = NodeProcess(tmp_path_factory.mktemp("explorer-events") / "n1").start()
    try:
        miner = address_of(key(0).pubkey_hash)
        yield Env(node, miner, fan_out(node, key(0), TXS + 10))
    finally:
        node.stop()


@pytest.fixture
def page(browser: Browser, env: Env) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda err: errors.append(str(err)))
    p.set_default_timeout(LIVE_TIMEOUT_MS)
    yield p
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def submit_batch(env: Env, coins: list[Coin]) -> list[str]:
    txs = spends(coins, key(2))
    body = json.dumps([{"raw": tx.serialize().hex()} for tx in txs]).encode()
    r = env.node.get(
        f"{API}/txs", method="POST", body=body, headers={"Content-Type": "application/json"}
    )
    assert r.status == 200, r.body[:300]
    return [item["txid"] for item in r.json()]


LISTEN = """() => new Promise((resolve) => {
  window.seen = [];
  const source = new EventSource("/api/v1/events");
  source.onmessage = (e) => window.seen.push([e.lastEventId, e.data]);
  source.onopen = () => resolve(true);
})"""


def test_event_source_gets_every_event_with_consecutive_seq(page: Page, env: Env) -> None:
    page.goto(env.node.url + "/#/")
    assert page.evaluate(LISTEN) is True
    txids = submit_batch(env, env.coins[:TXS])
    del env.coins[:TXS]
    env.node.generate(BLOCKS, env.miner)
    expected = TXS + TXS + 2 * BLOCKS  # added, confirmed, each block's connect and tip
    page.wait_for_function(f"window.seen.length >= {expected}", timeout=120_000)
    seen = page.evaluate("window.seen")
    assert len(seen) == expected
    events = [json.loads(data) for _, data in seen]
    assert [int(last_id) for last_id, _ in seen] == [e["seq"] for e in events]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + expected))
    assert [e["txid"] for e in events if e["type"] == "tx_added"] == txids
    confirmed = [e["txid"] for e in events if e["type"] == "tx_removed"]
    assert sorted(confirmed) == sorted(txids)
    assert sum(e["type"] == "block_connected" for e in events) == BLOCKS


def wait_idle_requests(page: Page, requests: list[str], ms: int) -> list[str]:
    requests.clear()
    page.wait_for_timeout(ms)
    return [u for u in requests if "/api/v1/" in u]


def test_the_explorer_follows_the_stream_and_polls_only_without_it(page: Page, env: Env) -> None:
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(env.node.url + "/#/")
    live = page.locator("body")
    expect(live).to_have_attribute("data-live", "stream")
    rows = page.locator("#blocks tbody tr")
    # A transaction and a block: the page shows them without a reload.
    (txid,) = submit_batch(env, env.coins[:1])
    del env.coins[:1]
    expect(page.locator(f'#mempool-recent tr[data-txid="{txid}"]')).to_have_count(1)
    (new_hash,) = env.node.generate(1, env.miner)
    expect(rows.first).to_have_attribute("data-hash", new_hash)
    expect(page.locator('[data-field="mempool-count"]')).to_have_text("0")
    # Idle with the stream open: the page asks the node nothing.
    assert wait_idle_requests(page, requests, IDLE_MS) == []
    assert live.get_attribute("data-live") == "stream"


def test_without_the_stream_the_explorer_polls_and_comes_back(page: Page, env: Env) -> None:
    def refuse(route: Route) -> None:
        route.abort()

    page.route("**/api/v1/events*", refuse)
    page.goto(env.node.url + "/#/")
    live = page.locator("body")
    expect(live).to_have_attribute("data-live", "poll")
    rows = page.locator("#blocks tbody tr")
    (new_hash,) = env.node.generate(1, env.miner)
    expect(rows.first).to_have_attribute("data-hash", new_hash)  # by polling
    page.unroute("**/api/v1/events*", refuse)
    expect(live).to_have_attribute("data-live", "stream", timeout=60_000)
    (newer,) = env.node.generate(1, env.miner)
    expect(rows.first).to_have_attribute("data-hash", newer)
