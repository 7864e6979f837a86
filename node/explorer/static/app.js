/*
 * Tally explorer: the page every Tally node serves at "/".
 *
 * A single-page app with hash routes, plain JavaScript, no framework and no build step. It talks
 * to nothing but this node's own HTTP API (relative URLs under /api/v1/), and inserts every piece
 * of data into the DOM as text (createElement + textContent, never innerHTML).
 *
 * Routes:
 *   #/                         overview: chain summary, charts (charts.js), latest blocks, mempool
 *                              (updates by itself)
 *   #/blocks[/<height>]        ten blocks at or below a height, with older/newer links
 *   #/block/<hash>[?start=N]   one block: every header field, its transactions 25 a page
 *   #/block-height/<n>         resolves a height to its block's hash
 *   #/tx/<txid>                one transaction: inputs, outputs (spent by), fee, status
 *   #/address/<addr>[?after=<txid>&n=<offset>][&utxos=all]
 *                              balances, history newest first 25 a page (cursor paging), UTXOs
 *   #/xpub/<xpub>[?after=<txid>]  an account: totals, used addresses, history, coins
 *   #/search/<query>           asks /api/v1/search and goes to the page it names
 *
 * Organisation (sections below, in order):
 *   1. Formatting: exact TLY amounts (BigInt, 8 decimals), counts, bytes, times, short hashes.
 *   2. DOM helpers: h() builds elements; tables (key/value and lists that stack on phones).
 *   3. API client: GET /api/v1/<path>; errors become ApiError with the node's code and message.
 *   4. Views: one async function per route, returning {view, title, node} or {redirect}.
 *   5. Router: hashchange -> view -> swaps <main>; keeps focus and scroll sensible.
 *   6. Live updates: the node's event stream (EventSource on /api/v1/events) says when the
 *      chain or the mempool changed, and /api/v1/info is then read (250 ms after a new tip, 1 s
 *      after mempool events, once for a burst); if the stream drops, /api/v1/info is polled
 *      every 2 s until it is back. A new tip or mempool change re-renders the current view in
 *      place (focus kept on the same link), a new block is announced. <body data-live> says
 *      which: "stream" or "poll".
 *   7. Start-up: search form, "/" shortcut, skip link.
 */

const POLL_MS = 2000;
const STREAM_TIP_MS = 250; // a new tip is shown this soon
const STREAM_DEBOUNCE_MS = 1000; // one /info read for a burst of mempool events
const STREAM_RETRY_POLLS = 5; // polls between attempts to open a new stream
const TXS_PAGE = 25; // the API's page size for block and address transactions
const UTXOS_SHOWN = 25; // unspent outputs listed before "show all"
const COINBASE_MATURITY = 100; // SPEC 2.6, the same on every network
const HEX64 = /^[0-9a-fA-F]{64}$/;
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]{20,60}$/; // looks like an address (Base58Check)
const UNITS_PER_BYTE = "base units per byte of the transaction (1 TLY = 100,000,000 base units)";
const WTXID_TITLE = "The hash of the whole transaction, signatures included (the transaction "
  + "id leaves them out, so it cannot be changed by re-signing); the block's merkle root commits "
  + "to it";

// --- 1. Formatting ------------------------------------------------------------------------------

const UNITS_PER_TLY = 100000000n;
const MINUS = "\u2212";

/** "1234567" -> "1,234,567" (digits only). */
function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function count(n) {
  return group(String(n));
}

/** Base units to "12.34500000 TLY", exactly (integer arithmetic, no floating point). */
function tlyText(units, signed = false) {
  let n = BigInt(units);
  const negative = n < 0n;
  if (negative) n = -n;
  const sign = negative ? MINUS : signed && n > 0n ? "+" : "";
  const whole = group((n / UNITS_PER_TLY).toString());
  const fraction = (n % UNITS_PER_TLY).toString().padStart(8, "0");
  return `${sign}${whole}.${fraction} TLY`;
}

/**
 * An amount as a <data> element: the text in TLY, the value in base units. The API gives null
 * for what it cannot know (inputs of a transaction in a block off the best chain).
 */
function amount(units, signed = false) {
  if (units == null) return h("span", { class: "unknown" }, "unknown");
  let cls = "amount";
  if (signed && units > 0) cls += " in";
  if (signed && units < 0) cls += " out";
  return h("data", { class: cls, value: String(units) }, tlyText(units, signed));
}

function bytes(n) {
  return `${count(n)} B`;
}

/** Fee per byte with one decimal, from integers. */
function feeRate(fee, size) {
  if (!size) return "\u2014";
  const tenths = Math.round((fee * 10) / size);
  return fragment(`${count(Math.floor(tenths / 10))}.${tenths % 10} `,
    h("abbr", { title: UNITS_PER_BYTE }, "units/B"));
}

function utc(t) {
  return `${new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19)} UTC`;
}

function ago(t) {
  const s = Math.round(Date.now() / 1000 - t);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A <time>: absolute UTC, or relative ("3 min ago", refreshed by the poll) with UTC as title. */
function time(t, relative = false) {
  const attrs = { datetime: new Date(t * 1000).toISOString() };
  if (relative) Object.assign(attrs, { title: utc(t), "data-ago": String(t) });
  return h("time", attrs, relative ? ago(t) : utc(t));
}

function short(hash) {
  return hash.length > 20 ? `${hash.slice(0, 8)}\u2026${hash.slice(-8)}` : hash;
}

function plural(n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

// --- 2. DOM helpers -----------------------------------------------------------------------------

/** Appends children: nodes, strings (as text), numbers, arrays; null/undefined/false skipped. */
function append(parent, children) {
  for (const child of children) {
    if (child == null || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
  return parent;
}

/** h("a", {href: "#/", class: "x"}, "text", child...): an element; attribute values as given. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  return append(el, children);
}

function fragment(...children) {
  return append(document.createDocumentFragment(), children);
}

const href = {
  block: (hash) => `#/block/${hash}`,
  tx: (txid) => `#/tx/${txid}`,
  address: (address) => `#/address/${encodeURIComponent(address)}`,
};

const link = {
  block: (hash) => h("a", { href: href.block(hash), class: "hash", title: hash }, short(hash)),
  blockFull: (hash) => h("a", { href: href.block(hash), class: "mono" }, hash),
  height: (height, hash) =>
    h("a", { href: hash ? href.block(hash) : `#/block-height/${height}` }, count(height)),
  tx: (txid) => h("a", { href: href.tx(txid), class: "hash", title: txid }, short(txid)),
  address: (address) => (address == null
    ? h("span", { class: "unknown" }, "unknown")
    : h("a", { href: href.address(address), class: "mono addr" }, address)),
  outpoint: (txid, index) => {
    const attrs = { href: href.tx(txid), class: "hash", title: `${txid}:${index}` };
    return h("a", attrs, `${short(txid)}:${index}`);
  },
};

/** The heading of a page: an <h1> that receives focus after navigation, and a subtitle. */
function heading(title, subtitle) {
  return fragment(
    h("h1", { tabindex: "-1" }, title),
    subtitle ? h("p", { class: "subtitle mono" }, subtitle) : null,
  );
}

/**
 * A key/value table. rows: [label, value, field] (falsy rows skipped); `field` becomes
 * data-field on the value cell so tests and scripts can find a figure.
 */
function kvTable(caption, rows) {
  const body = h("tbody", { role: "rowgroup" });
  for (const row of rows) {
    if (!row) continue;
    const [label, value, field] = row;
    body.append(
      h("tr", { role: "row" },
        h("th", { scope: "row", role: "rowheader" }, label),
        h("td", { role: "cell", "data-field": field }, value)),
    );
  }
  return h("table", { class: "kv", role: "table" },
    h("caption", { class: "visually-hidden" }, caption), body);
}

/**
 * A list table. columns: [{label, key, num, wide}]; rows: [{attrs, cells: {key: content}}].
 * On narrow screens the CSS turns each row into a card, labelling each cell from data-label
 * ("wide" cells take a whole line there); the explicit ARIA roles keep the table semantics
 * when CSS changes the display type.
 */
function listTable({ caption, columns, rows, empty, id }) {
  const head = h("tr", { role: "row" }, columns.map((c) =>
    h("th", {
      scope: "col", role: "columnheader", class: c.num ? "num" : null, title: c.title ?? null,
    }, c.label)));
  const body = h("tbody", { role: "rowgroup" });
  for (const row of rows) {
    const cells = columns.map((c) => {
      const cls = [c.key, c.num ? "num" : "", c.wide ? "wide" : ""].join(" ").trim();
      return h("td", { role: "cell", class: cls, "data-label": c.label },
        h("span", { class: "v" }, row.cells[c.key]));
    });
    body.append(h("tr", { role: "row", ...row.attrs }, cells));
  }
  if (!rows.length) {
    const cell = h("td", { role: "cell", colspan: columns.length, class: "empty" }, empty);
    body.append(h("tr", { role: "row" }, cell));
  }
  const table = h("table", { class: "list", role: "table", id },
    h("caption", {}, caption), h("thead", { role: "rowgroup" }, head), body);
  return h("div", { class: "table-box" }, table);
}

function pager(label, info, links, field = "range") {
  return h("nav", { class: "pager", "aria-label": label },
    info ? h("p", { class: "pager-info", "data-field": field }, info) : h("span"),
    h("p", { class: "pager-links" }, links.filter(Boolean)));
}

function buttonLink(url, text, rel) {
  return h("a", { href: url, class: "button-link", rel }, text);
}

// --- 3. API client ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** GET /api/v1/<path> on this node: JSON, or trimmed text when `text` is set. */
async function api(path, { text = false } = {}) {
  let response;
  try {
    response = await fetch(`/api/v1/${path}`, { cache: "no-store" });
  } catch {
    throw new ApiError(0, "offline", "The node cannot be reached. Is it still running?");
  }
  if (!response.ok) {
    let code = `http-${response.status}`;
    let message = response.statusText || "request failed";
    try {
      const body = await response.json();
      if (body && body.error) ({ code, message } = body.error);
    } catch {
      /* not JSON: keep the HTTP reason */
    }
    throw new ApiError(response.status, code, message);
  }
  return text ? (await response.text()).trim() : response.json();
}

function notFound(message) {
  return new ApiError(404, "not-found", message);
}

// --- 4. Views -----------------------------------------------------------------------------------

let homeTip = null; // the newest height the overview showed, to highlight blocks that arrive

function blockRows(blocks, freshAbove) {
  return blocks.map((b) => ({
    attrs: {
      "data-height": b.height,
      "data-hash": b.hash,
      class: freshAbove != null && b.height > freshAbove ? "fresh" : null,
    },
    cells: {
      height: link.height(b.height, b.hash),
      hash: link.block(b.hash),
      time: time(b.time, true),
      txs: count(b.tx_count),
      size: bytes(b.size),
      fees: amount(b.total_fees),
    },
  }));
}

const BLOCK_COLUMNS = [
  { label: "Height", key: "height" },
  { label: "Hash", key: "hash", wide: true },
  { label: "Time", key: "time" },
  { label: "Transactions", key: "txs", num: true },
  { label: "Size", key: "size", num: true },
  { label: "Fees", key: "fees", num: true },
];

async function viewHome() {
  const [info, blocks, pool, recent] = await Promise.all([
    api("info"), api("blocks"), api("mempool"), api("mempool/recent"),
  ]);
  const charts = globalThis.TallyCharts ? await TallyCharts.render(pool, blocks) : null; // charts.js
  const freshAbove = homeTip;
  homeTip = info.height;
  const oldest = blocks.length ? blocks[blocks.length - 1].height : 0;
  const stat = (label, value, field) =>
    h("div", {}, h("dt", {}, label), h("dd", { "data-field": field }, value));
  const node = fragment(
    heading("Overview"),
    h("p", { class: "live" }, h("span", { class: "dot", "aria-hidden": "true" }),
      "Live: new blocks and transactions appear here by themselves."),
    h("section", { "aria-labelledby": "summary-title" },
      h("h2", { id: "summary-title", class: "visually-hidden" }, "Summary"),
      h("dl", { class: "stats" },
        stat("Network", info.network, "network"),
        stat("Height", link.height(info.height, info.best_hash), "height"),
        stat("Mempool transactions", count(pool.count), "mempool-count"),
        stat("Mempool size", bytes(pool.bytes), "mempool-bytes"),
        stat("Mempool fees", amount(pool.total_fee), "mempool-fee"))),
    charts,
    h("section", { id: "latest-blocks" },
      listTable({
        caption: "Latest blocks",
        id: "blocks",
        columns: BLOCK_COLUMNS,
        rows: blockRows(blocks, freshAbove),
        empty: "No blocks yet.",
      }),
      oldest > 0
        ? pager("Blocks", null, [
          buttonLink(`#/blocks/${oldest - 1}`, "Older blocks \u2192", "next"),
        ])
        : null),
    h("section", { id: "mempool" },
      listTable({
        caption: `Mempool: ${plural(pool.count, "transaction")} waiting`
          + (pool.count > recent.length ? ` (the newest ${recent.length} below)` : ""),
        id: "mempool-recent",
        columns: [
          { label: "Transaction", key: "txid", wide: true },
          { label: "Output total", key: "value", num: true,
            title: "The sum of all outputs, change back to the sender included" },
          { label: "Fee", key: "fee", num: true },
          { label: "Size", key: "size", num: true },
          { label: "Fee rate", key: "rate", num: true },
        ],
        rows: recent.map((t) => ({
          attrs: { "data-txid": t.txid },
          cells: {
            txid: link.tx(t.txid),
            value: amount(t.value),
            fee: amount(t.fee),
            size: bytes(t.size),
            rate: feeRate(t.fee, t.size),
          },
        })),
        empty: "The mempool is empty.",
      })),
  );
  return { view: "home", title: "Overview", node };
}

async function viewBlocks([start]) {
  const tip = Number(await api("blocks/tip/height", { text: true }));
  let top = tip;
  if (start !== undefined) {
    if (!/^\d{1,10}$/.test(start)) throw notFound(`“${start}” is not a block height`);
    top = Math.min(Number(start), tip);
  }
  const blocks = await api(`blocks?start_height=${top}`);
  const bottom = blocks.length ? blocks[blocks.length - 1].height : 0;
  const node = fragment(
    heading("Blocks"),
    listTable({
      caption: blocks.length ? `Heights ${count(top)} to ${count(bottom)}` : "No blocks",
      columns: BLOCK_COLUMNS, rows: blockRows(blocks, null), empty: "No blocks.", id: "blocks",
    }),
    pager("Blocks", `Tip: block ${count(tip)}`, [
      top < tip ? buttonLink(`#/blocks/${Math.min(tip, top + 10)}`, "\u2190 Newer", "prev") : null,
      bottom > 0 ? buttonLink(`#/blocks/${bottom - 1}`, "Older \u2192", "next") : null,
    ]),
  );
  return { view: "blocks", title: "Blocks", node };
}

async function viewBlockHeight([height]) {
  if (!/^\d{1,10}$/.test(height ?? "")) throw notFound(`“${height}” is not a block height`);
  return { redirect: href.block(await api(`block-height/${height}`, { text: true })) };
}

function txSummaryRows(txs, start) {
  return txs.map((tx, i) => {
    const coinbase = tx.inputs.length > 0 && tx.inputs[0].coinbase;
    return {
      attrs: { "data-txid": tx.txid },
      cells: {
        n: count(start + i),
        txid: link.tx(tx.txid),
        inputs: coinbase ? h("span", { class: "badge" }, "coinbase") : count(tx.inputs.length),
        outputs: count(tx.outputs.length),
        value: amount(tx.outputs.reduce((sum, o) => sum + o.amount, 0)),
        fee: amount(tx.fee),
      },
    };
  });
}

async function viewBlock([hash], query) {
  if (!HEX64.test(hash ?? "")) throw notFound(`“${hash ?? ""}” is not a block hash`);
  const start = Number(query.get("start") ?? 0);
  if (!Number.isInteger(start) || start < 0 || start % TXS_PAGE) {
    throw notFound("No such page of transactions");
  }
  const [b, txs] = await Promise.all([
    api(`block/${hash}`), api(`block/${hash}/txs?start_index=${start}`),
  ]);
  const page = (from, text, rel) => buttonLink(`${href.block(hash)}?start=${from}`, text, rel);
  const range = `${count(start + 1)}\u2013${count(start + txs.length)}`;
  const node = fragment(
    heading(`Block ${count(b.height)}`),
    h("nav", { class: "pager", "aria-label": "Neighbouring blocks" },
      b.height > 0
        ? buttonLink(href.block(b.prev_hash), `\u2190 Block ${count(b.height - 1)}`, "prev")
        : h("span"),
      b.next_hash
        ? buttonLink(href.block(b.next_hash), `Block ${count(b.height + 1)} \u2192`, "next")
        : h("span")),
    b.in_best_chain
      ? null
      : h("p", { class: "status pending" },
        "This block is not in the best chain: its transactions are not confirmed by it."),
    kvTable("Block details", [
      ["Hash", h("span", { class: "mono" }, b.hash), "hash"],
      ["Height", count(b.height), "height"],
      ["Confirmations", count(b.confirmations), "confirmations"],
      ["Time", time(b.time), "time"],
      ["Median time past", time(b.median_time), "median-time"],
      ["Transactions", count(b.tx_count), "tx-count"],
      ["Size", bytes(b.size), "size"],
      ["Total fees", amount(b.total_fees), "fees"],
      ["Previous block", b.height > 0 ? link.blockFull(b.prev_hash) : "None (genesis)", "prev"],
      ["Next block", b.next_hash ? link.blockFull(b.next_hash) : "None yet", "next"],
      ["Merkle root", h("span", { class: "mono" }, b.merkle_root), "merkle-root"],
      ["Version", String(b.version), "version"],
      ["Bits", `0x${b.bits.toString(16).padStart(8, "0")}`, "bits"],
      ["Nonce", String(b.nonce), "nonce"],
    ]),
    h("section", { id: "block-txs" },
      listTable({
        caption: `Transactions (${count(b.tx_count)})`,
        id: "txs",
        columns: [
          { label: "#", key: "n", num: true },
          { label: "Transaction", key: "txid", wide: true },
          { label: "Inputs", key: "inputs", num: true },
          { label: "Outputs", key: "outputs", num: true },
          { label: "Output total", key: "value", num: true },
          { label: "Fee", key: "fee", num: true },
        ],
        rows: txSummaryRows(txs, start),
        empty: "No transactions on this page.",
      }),
      b.tx_count > TXS_PAGE
        ? pager("Transactions of this block", `Transactions ${range} of ${count(b.tx_count)}`, [
          start > 0 ? page(start - TXS_PAGE, "\u2190 Previous", "prev") : null,
          start + TXS_PAGE < b.tx_count ? page(start + TXS_PAGE, "Next \u2192", "next") : null,
        ])
        : null),
  );
  return { view: "block", title: `Block ${b.height}`, node };
}

async function viewTx([txid]) {
  if (!HEX64.test(txid ?? "")) throw notFound(`“${txid ?? ""}” is not a transaction id`);
  const [tx, outspends] = await Promise.all([
    api(`tx/${txid}`),
    api(`tx/${txid}/outspends`).catch(() => null), // only to link spenders; the flag is in tx
  ]);
  const s = tx.status;
  const coinbase = tx.inputs.length > 0 && tx.inputs[0].coinbase;
  const totalIn = tx.inputs.some((i) => i.amount == null)
    ? null
    : tx.inputs.reduce((sum, i) => sum + i.amount, 0);
  const totalOut = tx.outputs.reduce((sum, o) => sum + o.amount, 0);
  const replacedBy = !s.confirmed && HEX64.test(s.replaced_by ?? "") ? s.replaced_by : null;
  let statusLine;
  if (s.confirmed) {
    statusLine = h("p", { class: "status ok" },
      "Confirmed in block ", link.height(s.block_height, s.block_hash),
      ` \u00b7 ${plural(s.confirmations, "confirmation")}`);
  } else if (replacedBy) {
    statusLine = h("p", { class: "status alert", "data-field": "replaced-by" },
      "Replaced by ", link.tx(replacedBy),
      ": a transaction spending the same coins took its place; this one will not confirm.");
  } else {
    statusLine = h("p", { class: "status pending" },
      "Unconfirmed: waiting in the mempool to be mined.");
  }
  const spentCell = (o, n) => {
    const spender = outspends && outspends[n];
    if (spender && spender.spent) {
      const words = spender.confirmed ? "Spent by " : "Spent (unconfirmed) by ";
      return fragment(words, link.tx(spender.txid));
    }
    return o.spent ? "Spent" : h("span", { class: "badge unspent" }, "Unspent");
  };
  const node = fragment(
    heading("Transaction"),
    statusLine,
    kvTable("Transaction details", [
      ["Transaction id", h("span", { class: "mono" }, tx.txid), "txid"],
      ["Status", s.confirmed ? "Confirmed"
        : replacedBy ? fragment("Replaced by ", link.tx(replacedBy))
          : "Unconfirmed (in the mempool)", "status"],
      ["Confirmations", count(s.confirmations ?? 0), "confirmations"],
      s.confirmed
        ? ["Block", fragment(
          link.height(s.block_height, s.block_hash), " (", link.block(s.block_hash), ")",
        ), "block"]
        : null,
      s.confirmed ? ["Block time", time(s.block_time), "block-time"] : null,
      ["Fee", coinbase ? fragment(amount(0), " (coinbase)") : amount(tx.fee), "fee"],
      coinbase || tx.fee == null ? null : ["Fee rate", feeRate(tx.fee, tx.size), "fee-rate"],
      ["Size", bytes(tx.size), "size"],
      coinbase ? null : ["Total in", amount(totalIn), "total-in"],
      ["Total out", amount(totalOut), "total-out"],
      ["Version", String(tx.version), "version"],
      ["Locktime", String(tx.locktime), "locktime"],
      [h("abbr", { title: WTXID_TITLE }, "Witness txid"), h("span", { class: "mono" }, tx.wtxid),
        "wtxid"],
    ]),
    h("div", { class: "io" },
      listTable({
        caption: `Inputs (${count(tx.inputs.length)})`,
        id: "inputs",
        columns: [
          { label: "#", key: "n", num: true },
          { label: "Previous output", key: "prevout", wide: true },
          { label: "Address", key: "address", wide: true },
          { label: "Amount", key: "amount", num: true },
        ],
        rows: tx.inputs.map((i, n) => ({
          attrs: { "data-index": n },
          cells: i.coinbase
            ? {
              n: count(n),
              prevout: h("span", { class: "badge" }, "coinbase"),
              address: "Newly created coins",
              amount: "\u2014",
            }
            : {
              n: count(n),
              prevout: link.outpoint(i.txid, i.index),
              address: link.address(i.address),
              amount: amount(i.amount),
            },
        })),
        empty: "No inputs.",
      }),
      listTable({
        caption: `Outputs (${count(tx.outputs.length)})`,
        id: "outputs",
        columns: [
          { label: "#", key: "n", num: true },
          { label: "Address", key: "address", wide: true },
          { label: "Amount", key: "amount", num: true },
          { label: "Spent", key: "spent", wide: true },
        ],
        rows: tx.outputs.map((o, n) => ({
          attrs: { "data-index": n, "data-spent": o.spent ? "true" : "false" },
          cells: {
            n: count(n),
            address: link.address(o.address),
            amount: amount(o.amount),
            spent: spentCell(o, n),
          },
        })),
        empty: "No outputs.",
      })),
  );
  return { view: "tx", title: `Transaction ${short(tx.txid)}`, node };
}

/** What a transaction did to one address: received minus sent, in base units. */
/** What `tx` changed the balance of `addresses` (a Set) by. */
function changeFor(tx, addresses) {
  const sum = (items) =>
    items.filter((x) => addresses.has(x.address)).reduce((total, x) => total + x.amount, 0);
  return sum(tx.outputs) - sum(tx.inputs);
}

/** The history table of an address or an account: each transaction, its block, the change. */
function historyTable(id, txs, addresses) {
  return listTable({
    caption: "Transactions, newest first",
    id,
    columns: [
      { label: "Transaction", key: "txid", wide: true },
      { label: "Block", key: "block" },
      { label: "Time", key: "time" },
      { label: "Change", key: "change", num: true },
    ],
    rows: txs.map((tx) => ({
      attrs: { "data-txid": tx.txid },
      cells: {
        txid: link.tx(tx.txid),
        block: tx.status.confirmed
          ? link.height(tx.status.block_height, tx.status.block_hash)
          : h("span", { class: "badge pending" }, "unconfirmed"),
        time: tx.status.confirmed ? time(tx.status.block_time) : "\u2014",
        change: amount(changeFor(tx, addresses), true),
      },
    })),
    empty: "No transactions.",
  });
}

function addressRoute(address, params) {
  const q = new URLSearchParams(params).toString();
  return href.address(address) + (q ? `?${q}` : "");
}

async function viewAddress([address], query) {
  if (!address) throw notFound("No address given");
  const after = query.get("after");
  if (after !== null && !HEX64.test(after)) throw notFound("No such page of transactions");
  const offset = after === null ? 0 : Math.max(0, Number.parseInt(query.get("n") ?? "0", 10) || 0);
  // the cursors of the pages between the newest and this one, so "Newer" goes back one page
  const trail = after === null
    ? []
    : (query.get("trail") ?? "").split(",").filter((t) => HEX64.test(t));
  const allUtxos = query.get("utxos") === "all";
  const enc = encodeURIComponent(address);
  const [summary, txs, utxos] = await Promise.all([
    api(`address/${enc}`),
    api(`address/${enc}/txs${after ? `?after_txid=${after}` : ""}`),
    api(`address/${enc}/utxo`),
  ]);
  const chain = summary.chain_stats;
  const pool = summary.mempool_stats;
  const total = chain.tx_count + pool.tx_count;
  const keep = {};
  if (after) Object.assign(keep, { after, n: String(offset) });
  const more = txs.length === TXS_PAGE && offset + txs.length < total;
  const range = `${count(offset + 1)}\u2013${count(offset + txs.length)}`;
  const utxoParam = allUtxos ? { utxos: "all" } : {};
  const older = more
    ? {
      after: txs[txs.length - 1].txid,
      n: String(offset + txs.length),
      ...(after ? { trail: [...trail, after].join(",") } : {}),
      ...utxoParam,
    }
    : null;
  let newer = null;
  if (after && trail.length) {
    newer = {
      after: trail[trail.length - 1],
      n: String(Math.max(0, offset - TXS_PAGE)),
      ...(trail.length > 1 ? { trail: trail.slice(0, -1).join(",") } : {}),
      ...utxoParam,
    };
  } else if (after) {
    newer = utxoParam; // one page below the newest
  }

  // newest first: unconfirmed, then by height; within one transaction by output index
  const newest = (u) => (u.height == null ? Infinity : u.height);
  utxos.sort((a, b) => newest(b) - newest(a) || a.txid.localeCompare(b.txid) || a.index - b.index);
  const shown = allUtxos ? utxos : utxos.slice(0, UTXOS_SHOWN);
  const utxoNote = (u) => {
    if (u.height == null) return " (unconfirmed)";
    if (u.coinbase && u.confirmations < COINBASE_MATURITY) return " (coinbase, immature)";
    return u.coinbase ? " (coinbase)" : "";
  };

  const uri = `tally:${summary.address}`;
  const node = fragment(
    heading("Address", summary.address),
    // The QR code of the payment URI, rendered by this node (nothing loaded from outside).
    h("figure", { class: "qr", id: "address-qr" },
      h("img", {
        src: `/api/v1/address/${enc}/qr.svg`,
        alt: `QR code of ${uri}`,
        width: 132,
        height: 132,
      }),
      h("figcaption", { class: "mono" }, uri)),
    kvTable("Balances and totals", [
      ["Confirmed balance", amount(summary.balance.confirmed), "balance-confirmed"],
      ["Unconfirmed", amount(summary.balance.unconfirmed, true), "balance-unconfirmed"],
      ["Immature (coinbase)", amount(summary.balance.immature), "balance-immature"],
      ["Total received", amount(chain.funded_sum), "received"],
      ["Total sent", amount(chain.spent_sum), "sent"],
      ["Transactions",
        pool.tx_count ? `${count(total)} (${count(pool.tx_count)} unconfirmed)` : count(total),
        "tx-count"],
      ["Unspent outputs", count(utxos.length), "utxo-count"],
    ]),
    h("section", { id: "history" },
      historyTable("address-txs", txs, new Set([summary.address])),
      pager("Transaction history", txs.length ? `Transactions ${range} of ${count(total)}` : null, [
        after
          ? buttonLink(addressRoute(summary.address, utxoParam), "\u2190 Newest", "first")
          : null,
        newer ? buttonLink(addressRoute(summary.address, newer), "\u2190 Newer", "prev") : null,
        more ? buttonLink(addressRoute(summary.address, older), "Older \u2192", "next") : null,
      ])),
    h("section", { id: "utxos" },
      listTable({
        caption: `Unspent outputs (${count(utxos.length)})`,
        id: "utxo",
        columns: [
          { label: "Output", key: "outpoint", wide: true },
          { label: "Amount", key: "amount", num: true },
          { label: "Block", key: "height" },
          { label: "Confirmations", key: "confirmations" },
        ],
        rows: shown.map((u) => ({
          attrs: { "data-outpoint": `${u.txid}:${u.index}` },
          cells: {
            outpoint: link.outpoint(u.txid, u.index),
            amount: amount(u.amount),
            height: u.height == null ? "\u2014" : link.height(u.height),
            confirmations: `${count(u.confirmations)}${utxoNote(u)}`,
          },
        })),
        empty: "No unspent outputs.",
      }),
      utxos.length > shown.length
        ? pager("Unspent outputs", `Showing ${count(shown.length)} of ${count(utxos.length)}`, [
          buttonLink(addressRoute(summary.address, { ...keep, utxos: "all" }),
            `Show all ${count(utxos.length)}`),
        ], "utxo-range")
        : null),
  );
  return { view: "address", title: `Address ${summary.address}`, node };
}

/** An account page (SPEC 5): an account-level xpub's totals, used addresses, history, coins. */
async function viewXpub([xpub], query) {
  if (!xpub) throw notFound("No account key given");
  const after = query.get("after");
  if (after !== null && !HEX64.test(after)) throw notFound("No such page of transactions");
  const enc = encodeURIComponent(xpub);
  const [summary, txs, utxos] = await Promise.all([
    api(`xpub/${enc}`),
    api(`xpub/${enc}/txs${after ? `?after_txid=${after}` : ""}`),
    api(`xpub/${enc}/utxo`),
  ]);
  const chain = summary.chain_stats;
  const pool = summary.mempool_stats;
  const route = (params) => {
    const q = new URLSearchParams(params).toString();
    return `#/xpub/${enc}${q ? `?${q}` : ""}`;
  };
  const mine = new Set(summary.addresses.map((a) => a.address));
  const more = txs.length === TXS_PAGE;
  const node = fragment(
    heading("Account", summary.xpub),
    kvTable("Balances and totals", [
      ["Confirmed balance", amount(summary.balance.confirmed), "balance-confirmed"],
      ["Unconfirmed", amount(summary.balance.unconfirmed, true), "balance-unconfirmed"],
      ["Immature (coinbase)", amount(summary.balance.immature), "balance-immature"],
      ["Total received", amount(chain.funded_sum), "received"],
      ["Total sent", amount(chain.spent_sum), "sent"],
      ["Transactions",
        pool.tx_count ? `${count(chain.tx_count + pool.tx_count)} (${count(pool.tx_count)} `
          + "unconfirmed)" : count(chain.tx_count),
        "tx-count"],
      ["Next receive index", count(summary.next_receive_index), "next-receive"],
    ]),
    h("section", { id: "account-addresses" },
      listTable({
        caption: `Used addresses (gap limit ${summary.gap_limit})`,
        id: "xpub-addresses",
        columns: [
          { label: "Address", key: "address", wide: true },
          { label: "Path", key: "path" },
          { label: "Transactions", key: "txs", num: true },
          { label: "Balance", key: "balance", num: true },
        ],
        rows: summary.addresses.map((a) => ({
          attrs: { "data-address": a.address, "data-path": a.path },
          cells: {
            address: link.address(a.address),
            path: a.path,
            txs: count(a.tx_count),
            balance: amount(a.balance),
          },
        })),
        empty: "No address of this account has been used.",
      })),
    h("section", { id: "history" },
      historyTable("xpub-txs", txs, mine),
      pager("Account history", null, [
        after ? buttonLink(route({}), "\u2190 Newest", "first") : null,
        more ? buttonLink(route({ after: txs[txs.length - 1].txid }), "Older \u2192", "next") : null,
      ])),
    h("section", { id: "utxos" },
      listTable({
        caption: `Unspent outputs (${count(utxos.length)})`,
        id: "xpub-utxo",
        columns: [
          { label: "Output", key: "outpoint", wide: true },
          { label: "Path", key: "path" },
          { label: "Amount", key: "amount", num: true },
          { label: "Confirmations", key: "confirmations" },
        ],
        rows: utxos.map((u) => ({
          attrs: { "data-outpoint": `${u.txid}:${u.index}` },
          cells: {
            outpoint: link.outpoint(u.txid, u.index),
            path: u.path,
            amount: amount(u.amount),
            confirmations: count(u.confirmations),
          },
        })),
        empty: "No unspent outputs.",
      })),
  );
  return { view: "xpub", title: `Account ${summary.xpub.slice(0, 16)}\u2026`, node };
}

const ADDRESS_REASONS = {
  "bad-checksum": "it is not a valid address: its checksum does not match (a mistyped character?)",
  "wrong-network": "it is an address of another network",
  "bad-character": "it has a character no address has (0, O, I and l are never used)",
  "bad-length": "it is not a valid address: it has the wrong length",
};

/** Why `q`, which looks like an address, is not one of this network (the API knows), or null. */
async function addressProblem(q) {
  if (!BASE58.test(q)) return null;
  try {
    await api(`address/${encodeURIComponent(q)}`);
    return null;
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== "bad-address") return null;
    const reason = String(err.message).split(":", 1)[0];
    const detail = String(err.message).slice(reason.length + 1).trim();
    const words = ADDRESS_REASONS[reason];
    if (!words) return null;
    return { reason, text: reason === "wrong-network" && detail ? `${words} (${detail})` : words };
  }
}

function nothingFound(q, problem = null) {
  const line = problem
    ? `Nothing found for \u201c${q}\u201d: ${problem.text}.`
    : `Nothing found for \u201c${q}\u201d.`;
  return {
    view: "search",
    title: "Nothing found",
    error: true,
    node: fragment(
      heading("Nothing found"),
      h("p", { class: "status alert", role: "alert", "data-reason": problem?.reason ?? null },
        line),
      h("p", {}, "Search takes a block height, a block hash, a transaction id, an address or "
        + "an account's extended public key, "
        + "as this node knows them. A transaction this node never received cannot be found."),
      h("p", {}, h("a", { href: "#/" }, "Back to the overview")),
    ),
  };
}

async function viewSearch([q = ""]) {
  q = q.trim();
  if (!q || q.length > 200) return nothingFound(q);
  let found;
  try {
    found = await api(`search?q=${encodeURIComponent(q)}`);
  } catch (err) {
    const unknown = err instanceof ApiError && (err.status === 404 || err.status === 400);
    if (unknown) return nothingFound(q, await addressProblem(q));
    throw err;
  }
  const target = {
    block: href.block,
    tx: href.tx,
    address: href.address,
    xpub: (id) => `#/xpub/${encodeURIComponent(id)}`,
  }[found.type];
  if (!target) return nothingFound(q);
  searchInput.value = "";
  return { redirect: target(found.id) };
}

function errorView(err) {
  const status = err instanceof ApiError ? err.status : -1;
  const titles = { 404: "Not found", 400: "Cannot show this", 0: "Node unreachable" };
  const title = titles[status] ?? "Something went wrong";
  let message = err instanceof Error ? err.message : String(err);
  message = message.charAt(0).toUpperCase() + message.slice(1);
  if (!/[.!?]$/.test(message)) message += ".";
  return {
    view: "error",
    title,
    error: true,
    node: fragment(
      heading(title),
      h("p", { class: "status alert", role: "alert" }, message),
      h("p", {}, h("a", { href: "#/" }, "Back to the overview")),
    ),
  };
}

const VIEWS = {
  "": viewHome,
  blocks: viewBlocks,
  block: viewBlock,
  "block-height": viewBlockHeight,
  tx: viewTx,
  address: viewAddress,
  xpub: viewXpub,
  search: viewSearch,
};

/** Which changes re-render a view in place: a new tip, a mempool change. */
const LIVE = {
  home: { tip: true, pool: true },
  blocks: { tip: true },
  block: { tip: true },
  tx: { tip: true, pool: true },
  address: { tip: true, pool: true },
  xpub: { tip: true, pool: true },
};

// --- 5. Router ----------------------------------------------------------------------------------

const main = document.getElementById("main");
const searchForm = document.getElementById("search");
const searchInput = document.getElementById("q");
const announcer = document.getElementById("announcer");
const conn = document.getElementById("conn");

let renderSeq = 0;
let navigating = false;
let firstRender = true;
let lastPath = null; // the route last shown, without its query (paging stays on one page)
let loadingTimer = 0;

/** "#/address/x?after=y" -> {parts: ["address", "x"], query: URLSearchParams} */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?", 2);
  const parts = path.split("/").filter((p) => p !== "").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { parts, query: new URLSearchParams(search) };
}

/** Where focus is inside <main>, as something that survives a re-render. */
function focusKey() {
  const el = document.activeElement;
  if (!el || !main.contains(el)) return null;
  if (el.tagName === "H1") return { h1: true };
  if (el.tagName === "A") return { href: el.getAttribute("href"), text: el.textContent };
  return null;
}

function restoreFocus(key) {
  if (!key) return;
  let target = null;
  if (key.href) {
    const links = [...main.querySelectorAll("a[href]")]
      .filter((a) => a.getAttribute("href") === key.href);
    target = links.find((a) => a.textContent === key.text) ?? links[0] ?? null;
  }
  target = target ?? main.querySelector("h1");
  if (target) target.focus({ preventScroll: true });
}

function markNav(view) {
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function route({ refresh = false } = {}) {
  if (refresh && navigating) return;
  if (!location.hash.startsWith("#/") && location.hash !== "" && location.hash !== "#") return;
  const { parts, query } = parseHash();
  const [name = "", ...args] = parts;
  const view = VIEWS[name];
  const seq = ++renderSeq;
  if (!refresh) {
    navigating = true;
    main.dataset.state = "loading";
    main.setAttribute("aria-busy", "true");
    clearTimeout(loadingTimer);
    loadingTimer = setTimeout(() => {
      if (seq === renderSeq && navigating) {
        main.replaceChildren(h("p", { class: "loading" }, "Loading\u2026"));
      }
    }, 300);
  }
  let result;
  try {
    if (!view) throw notFound(`There is no page “${location.hash}”`);
    result = await view(args, query);
  } catch (err) {
    if (refresh) return; // keep what is shown; the poll reports a lost connection
    result = errorView(err);
  }
  if (seq !== renderSeq) return; // a newer navigation or refresh won
  if (!refresh) {
    navigating = false;
    clearTimeout(loadingTimer);
  }
  if (result.redirect) {
    location.replace(result.redirect);
    return;
  }
  const key = refresh ? focusKey() : null;
  main.replaceChildren(result.node);
  main.dataset.view = result.view;
  main.dataset.route = location.hash || "#/";
  main.dataset.state = result.error ? "error" : "ready";
  main.setAttribute("aria-busy", "false");
  document.title = `${result.title} \u00b7 Tally explorer`;
  markNav(result.view);
  const path = (location.hash || "#/").split("?", 1)[0];
  const paging = !refresh && !firstRender && path === lastPath && result.view === "address";
  if (refresh) {
    restoreFocus(key);
  } else if (paging) {
    // another page of the same address: stay at its history instead of jumping to the top
    const pagerLink = main.querySelector("#history nav.pager a");
    main.querySelector("#history")?.scrollIntoView({ block: "start" });
    (pagerLink ?? main.querySelector("h1"))?.focus({ preventScroll: true });
  } else {
    window.scrollTo(0, 0);
    if (!firstRender) main.querySelector("h1")?.focus();
  }
  lastPath = path;
  firstRender = false;
}

// --- 6. Live updates ----------------------------------------------------------------------------

let lastInfo = null;

function updateAgo() {
  for (const el of document.querySelectorAll("time[data-ago]")) {
    el.textContent = ago(Number(el.dataset.ago));
  }
}

async function check() {
  try {
    if (!document.hidden) {
      const info = await api("info");
      conn.hidden = true;
      const badge = document.getElementById("network");
      badge.textContent = info.network;
      badge.hidden = false;
      if (lastInfo) {
        const tip = info.best_hash !== lastInfo.best_hash;
        const pool = info.mempool.count !== lastInfo.mempool.count
          || info.mempool.bytes !== lastInfo.mempool.bytes;
        if (tip) announcer.textContent = `New block ${count(info.height)}.`;
        const live = LIVE[main.dataset.view] ?? {};
        if ((tip && live.tip) || (pool && live.pool)) await route({ refresh: true });
      }
      lastInfo = info;
      updateAgo();
    }
  } catch {
    conn.textContent = "Cannot reach the node. Retrying every few seconds\u2026";
    conn.hidden = false;
  }
}

let stream = null;
let checkTimer = null;
let polling = false;
let polls = 0;

function streamOpen() {
  return stream !== null && stream.readyState === EventSource.OPEN;
}

function startStream() {
  if (!("EventSource" in window)) return;
  stream = new EventSource("/api/v1/events");
  stream.onopen = () => {
    document.body.dataset.live = "stream";
    check(); // what changed while it was down
  };
  stream.onmessage = (event) => {
    const tip = event.data.includes('"type":"tip_changed"');
    scheduleCheck(tip ? STREAM_TIP_MS : STREAM_DEBOUNCE_MS);
  };
  stream.onerror = () => {
    // The browser reconnects by itself (sending Last-Event-ID) unless the stream is closed
    // for good; either way, poll until it is open again.
    if (stream.readyState === EventSource.CLOSED) stream = null;
    document.body.dataset.live = "poll";
    startPolling();
  };
}

let checkDue = 0;

/** Read /api/v1/info in `ms` milliseconds (or sooner, if a read is already due sooner). */
function scheduleCheck(ms) {
  const due = Date.now() + ms;
  if (checkTimer !== null) {
    if (checkDue <= due) return;
    clearTimeout(checkTimer);
  }
  checkDue = due;
  checkTimer = setTimeout(() => {
    checkTimer = null;
    check();
  }, ms);
}

function startPolling() {
  if (polling) return;
  polling = true;
  document.body.dataset.live = "poll";
  setTimeout(poll, POLL_MS);
}

async function poll() {
  await check();
  if (streamOpen()) {
    polling = false;
    return;
  }
  polls += 1;
  if (stream === null && polls % STREAM_RETRY_POLLS === 0) startStream();
  setTimeout(poll, POLL_MS);
}

// --- 7. Start-up --------------------------------------------------------------------------------

searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const q = searchInput.value.trim();
  if (!q) {
    searchInput.focus();
    return;
  }
  const target = `#/search/${encodeURIComponent(q)}`;
  if (location.hash === target) route();
  else location.hash = target;
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const el = document.activeElement;
  if (el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.isContentEditable)) return;
  event.preventDefault();
  searchInput.focus();
  searchInput.select();
});

document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") ?? main).focus();
});

window.addEventListener("hashchange", () => route());
check();
startStream();
if (stream === null) startPolling();
setInterval(updateAgo, POLL_MS);
route();
