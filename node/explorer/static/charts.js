/*
 * Tally explorer: the overview's two charts (SPEC 5), drawn by the page itself as SVG.
 *
 *   1. Fee rates in the mempool: one horizontal bar per band of /api/v1/mempool's
 *      `fee_histogram` ([rate, bytes] pairs, highest rate first; a band holds the transactions
 *      paying from `rate` up to, not including, twice `rate` base units per byte, the band 0 those
 *      under 1), its length the bytes waiting in that band.
 *   2. Transactions per block: one vertical bar per block of the last CHART_BLOCKS of the best
 *      chain, oldest on the left, from /api/v1/blocks and its `start_height` pages.
 *
 * Interface (a global, as this file is loaded by index.html before app.js):
 *   TallyCharts.render(mempool, blocks) -> Promise<HTMLElement>: a new <section id="charts">
 *     holding both charts; `mempool` is /api/v1/mempool's answer and `blocks` the newest page of
 *     /api/v1/blocks. Older blocks are fetched from this node (at most MAX_FETCHES pages, reused
 *     from the last render while they are still the ancestors of `blocks`).
 *   TallyCharts.update(mempool, blocks) -> Promise<boolean>: the same, replacing the section
 *     already on the page in place (false when there is none).
 *
 * Invariants: nothing is requested outside this node (relative /api/v1/ URLs only); data reaches
 * the DOM as text only (createElementNS + textContent, never innerHTML); every figure a chart
 * shows is text in the SVG (axis ticks, band and bar labels, a <title> per bar) and in a table
 * under "Show the figures", and each chart has an accessible name and description
 * (role="img" named by its <title>, described by its <desc>). No data (an empty mempool, a chain
 * of its genesis only) draws an empty chart that says so. A chart is drawn at its box's width
 * in CSS pixels (a ResizeObserver redraws it when that changes), so its text is never scaled and
 * nothing overflows on a phone.
 * Colours are the page's CSS variables (style.css, light and dark).
 *
 * Left to app.js: when to render (it calls render from the overview, on every refresh) and where
 * the section goes; left to style.css: the look.
 */

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_BLOCKS = 30; // bars in the transactions-per-block chart
const MAX_FETCHES = 4; // older pages of /api/v1/blocks one render may fetch (10 blocks a page)
const FONT_PX = 12; // the charts' text size (style.css gives the family)
const DIGIT_PX = 7.2; // a digit's width at FONT_PX (tabular figures), for laying labels out
const BAR_H = 22; // a fee band's row height
const BLOCKS_H = 220; // the transactions-per-block chart's height
const EMPTY_H = 120; // a chart with nothing to show
const MIN_WIDTH = 120; // narrower than this, a box is hidden or not laid out yet: not redrawn
const EN_DASH = "\u2013";

// --- formatting ---------------------------------------------------------------------------------

function group(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** An axis tick in bytes: "0", "500 B", "1.5 kB", "2 MB" (1 kB = 1,000 B). */
function bytesTick(n) {
  if (n === 0) return "0";
  for (const [unit, size] of [["MB", 1e6], ["kB", 1e3]]) {
    if (n >= size) return `${group(Number((n / size).toFixed(n % size ? 1 : 0)))} ${unit}`;
  }
  return `${group(n)} B`;
}

/** A fee rate for a band's label: exact below a million, then "1.05M", "2.25P" (SI prefixes). */
function rateText(n) {
  if (n < 1e6) return group(n);
  const [prefix, size] = [["P", 1e15], ["T", 1e12], ["G", 1e9], ["M", 1e6]].find(([, v]) => n >= v);
  return `${(n / size).toPrecision(3)}${prefix}`;
}

function band(rate) {
  return `${rateText(rate)}${EN_DASH}${rateText(rate === 0 ? 1 : rate * 2)}`;
}

function textWidth(text) {
  return text.length * DIGIT_PX;
}

/** A round step for about `ticks` gridlines up to `max` (1, 2 or 5 times a power of ten, >= 1). */
function niceStep(max, ticks) {
  const raw = Math.max(1, max / ticks);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5]) if (m * magnitude >= raw) return m * magnitude;
  return 10 * magnitude;
}

// --- DOM ----------------------------------------------------------------------------------------

/** An element (SVG when `ns` is given); attributes set as given, children appended as text. */
function make(ns, tag, attrs = {}, ...children) {
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === "class") el.setAttribute("class", value);
    else el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const svg = (tag, attrs, ...children) => make(SVG_NS, tag, attrs, ...children);
const html = (tag, attrs, ...children) => make(null, tag, attrs, ...children);

let chartIds = 0;

/** The <svg> of a chart: an image whose name and description are its <title> and <desc>. */
function frame(width, height, title, description) {
  const id = `chart-${++chartIds}`;
  return svg("svg", {
    class: "chart-svg",
    width,
    height,
    "font-size": FONT_PX,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": `${id}-title`,
    "aria-describedby": `${id}-desc`,
  },
  svg("title", { id: `${id}-title` }, title),
  svg("desc", { id: `${id}-desc` }, description));
}

function emptyNote(root, width, height, text) {
  root.append(svg("text", {
    class: "empty-note", x: width / 2, y: height / 2, "text-anchor": "middle",
    "dominant-baseline": "middle",
  }, text));
}

// --- data ---------------------------------------------------------------------------------------

const isCount = (n) => Number.isSafeInteger(n) && n >= 0;
const HEX64 = /^[0-9a-f]{64}$/;

/** The histogram's well-formed [rate, bytes] pairs, highest rate first. */
function feeBands(mempool) {
  const raw = Array.isArray(mempool?.fee_histogram) ? mempool.fee_histogram : [];
  return raw
    .filter((p) => Array.isArray(p) && p.length === 2 && isCount(p[0]) && isCount(p[1]))
    .map(([rate, bytes]) => ({ rate, bytes }))
    .sort((a, b) => b.rate - a.rate);
}

function slim(b) {
  const ok = b && HEX64.test(b.hash) && isCount(b.height) && isCount(b.tx_count);
  return ok ? { hash: b.hash, height: b.height, prev: String(b.prev_hash), txs: b.tx_count } : null;
}

let known = new Map(); // hash -> slim block: the last chart's blocks, reused while still ancestors

async function blocksPage(startHeight) {
  const response = await fetch(`/api/v1/blocks?start_height=${startHeight}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`blocks: HTTP ${response.status}`);
  return response.json();
}

/**
 * The newest CHART_BLOCKS blocks, newest first: `newest` (the API's first page) and then their
 * ancestors, walked by prev_hash through the blocks known from the last render and, where that
 * runs out, through older pages. If the chain changes between two pages the walk stops there,
 * and the next refresh draws the rest; if the node cannot be reached, what is known is drawn.
 */
async function lastBlocks(newest) {
  const out = (Array.isArray(newest) ? newest : []).map(slim).filter(Boolean)
    .slice(0, CHART_BLOCKS);
  const seen = new Map(known);
  let fetches = 0;
  while (out.length && out.length < CHART_BLOCKS) {
    const oldest = out[out.length - 1];
    if (oldest.height === 0) break;
    let parent = seen.get(oldest.prev);
    if (!parent && fetches < MAX_FETCHES) {
      fetches += 1;
      try {
        for (const b of await blocksPage(oldest.height - 1)) {
          const s = slim(b);
          if (s) seen.set(s.hash, s);
        }
      } catch {
        break;
      }
      parent = seen.get(oldest.prev);
    }
    if (!parent || parent.height !== oldest.height - 1) break;
    out.push(parent);
  }
  known = new Map(out.map((b) => [b.hash, b]));
  return out;
}

// --- 1. fee rates in the mempool ----------------------------------------------------------------

function describeFees(bands, pool) {
  if (!bands.length) return "The mempool is empty: no transaction is waiting, so no fee rates.";
  const top = bands.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  const n = pool.count ?? 0;
  return `${group(n)} transaction${n === 1 ? "" : "s"} (${group(pool.bytes ?? 0)} B) waiting in `
    + `${bands.length} fee-rate band${bands.length === 1 ? "" : "s"} from `
    + `${band(bands.at(-1).rate)} to ${band(bands[0].rate)} base units per byte; the most `
    + `bytes, ${group(top.bytes)} B, pay ${band(top.rate)}.`;
}

function drawFees(width, { bands, pool }) {
  const title = "Fee rates in the mempool";
  if (!bands.length) {
    const root = frame(width, EMPTY_H, title, describeFees(bands, pool));
    root.dataset.empty = "true";
    emptyNote(root, width, EMPTY_H, "The mempool is empty.");
    return root;
  }
  const labels = bands.map((b) => band(b.rate));
  const values = bands.map((b) => `${group(b.bytes)} B`);
  const left = Math.max(textWidth("units/B"), ...labels.map(textWidth)) + 12;
  const right = Math.max(...values.map(textWidth)) + 12;
  const top = 22;
  const bottom = 26;
  const plot = Math.max(20, width - left - right);
  const height = top + bands.length * BAR_H + bottom;
  const max = Math.max(1, ...bands.map((b) => b.bytes));
  const step = niceStep(max, Math.max(1, Math.min(4, Math.floor(plot / 70))));
  const axisMax = Math.ceil(max / step) * step;
  const x = (v) => left + (v / axisMax) * plot;
  const root = frame(width, height, title, describeFees(bands, pool));
  root.dataset.empty = "false";

  const grid = svg("g", { class: "grid", "aria-hidden": "true" });
  for (let v = 0; v <= axisMax; v += step) {
    grid.append(svg("line", { x1: x(v), x2: x(v), y1: top - 4, y2: height - bottom }));
    grid.append(svg("text", {
      class: "tick", x: x(v), y: height - bottom + 16, "text-anchor": "middle",
    }, bytesTick(v)));
  }
  root.append(grid,
    svg("text", { class: "axis-title", x: left - 8, y: 14, "text-anchor": "end" }, "units/B"),
    svg("text", { class: "axis-title", x: left, y: 14 }, "bytes waiting"));

  const bars = svg("g", { class: "bars" });
  bands.forEach((b, i) => {
    const y = top + i * BAR_H;
    const length = b.bytes ? Math.max(1, x(b.bytes) - left) : 0;
    const percent = pool.bytes ? Math.round((b.bytes * 100) / pool.bytes) : null;
    const share = percent == null ? "" : ` (${percent}% of the mempool)`;
    bars.append(svg("g", {
      class: "bar bar-fee", "data-rate": b.rate, "data-bytes": b.bytes,
    },
    svg("title", {}, `${labels[i]} base units per byte: ${values[i]}${share}`),
    svg("rect", { x: left, y: y + 3, width: length, height: BAR_H - 6, rx: 2 }),
    svg("text", {
      class: "label", x: left - 8, y: y + BAR_H / 2, "text-anchor": "end",
      "dominant-baseline": "middle",
    }, labels[i]),
    svg("text", {
      class: "value", x: left + length + 6, y: y + BAR_H / 2, "dominant-baseline": "middle",
    }, values[i])));
  });
  root.append(bars,
    svg("line", { class: "axis", x1: left, x2: left, y1: top - 4, y2: height - bottom }));
  return root;
}

function feeTable(bands) {
  return dataTable("Fee rates in the mempool", ["Fee rate (units/B)", "Bytes"],
    bands.map((b) => [band(b.rate), `${group(b.bytes)} B`]), "The mempool is empty.");
}

// --- 2. transactions per block ------------------------------------------------------------------

function describeBlocks(blocks) {
  if (!blocks.length) return "No blocks yet.";
  const newest = blocks[0];
  const oldest = blocks.at(-1);
  const counts = blocks.map((b) => b.txs);
  const range = blocks.length === 1
    ? `block ${group(newest.height)}`
    : `blocks ${group(oldest.height)} to ${group(newest.height)}`;
  return `Transactions in ${range}: from ${group(Math.min(...counts))} to `
    + `${group(Math.max(...counts))} a block; the newest, ${group(newest.height)}, has `
    + `${group(newest.txs)}.`;
}

function drawBlocks(width, { blocks }) {
  const title = "Transactions per block";
  if (!blocks.length) {
    const root = frame(width, EMPTY_H, title, describeBlocks(blocks));
    root.dataset.empty = "true";
    emptyNote(root, width, EMPTY_H, "No blocks yet.");
    return root;
  }
  const ordered = [...blocks].reverse(); // oldest on the left
  const max = Math.max(1, ...ordered.map((b) => b.txs));
  const step = niceStep(max, 4);
  const axisMax = Math.ceil(max / step) * step;
  const left = textWidth(group(axisMax)) + 12;
  const right = 8;
  const top = 26;
  const bottom = 40;
  const plot = Math.max(20, width - left - right);
  const slot = plot / ordered.length;
  const barWidth = Math.max(1, Math.min(48, slot * 0.72));
  const floor = BLOCKS_H - bottom;
  const y = (v) => floor - (v / axisMax) * (floor - top);
  const root = frame(width, BLOCKS_H, title, describeBlocks(blocks));
  root.dataset.empty = "false";

  const grid = svg("g", { class: "grid", "aria-hidden": "true" });
  for (let v = 0; v <= axisMax; v += step) {
    grid.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v) }));
    grid.append(svg("text", {
      class: "tick", x: left - 6, y: y(v), "text-anchor": "end", "dominant-baseline": "middle",
    }, group(v)));
  }
  root.append(grid,
    svg("text", { class: "axis-title", x: left, y: 12 }, "transactions"),
    svg("text", {
      class: "axis-title", x: width - right, y: BLOCKS_H - 4, "text-anchor": "end",
    }, "block height"));

  // every `every`-th height under the axis, counted from the newest, so that none overlap
  const labelWidth = textWidth(group(ordered.at(-1).height)) + 10;
  const every = Math.max(1, Math.ceil(labelWidth / slot));
  const valueFits = slot >= textWidth(group(max)) + 2;
  const bars = svg("g", { class: "bars" });
  ordered.forEach((b, i) => {
    const cx = left + slot * (i + 0.5);
    const barTop = b.txs ? Math.min(y(b.txs), floor - 1) : floor;
    const g = svg("g", {
      class: "bar bar-tx", "data-height": b.height, "data-hash": b.hash, "data-count": b.txs,
    },
    svg("title", {},
      `Block ${group(b.height)}: ${group(b.txs)} transaction${b.txs === 1 ? "" : "s"}`),
    svg("rect", {
      x: cx - barWidth / 2, y: barTop, width: barWidth, height: floor - barTop, rx: 1,
    }));
    if (valueFits) {
      g.append(svg("text", {
        class: "value", x: cx, y: barTop - 4, "text-anchor": "middle",
      }, group(b.txs)));
    }
    if ((ordered.length - 1 - i) % every === 0) {
      g.append(svg("text", {
        class: "tick height", x: cx, y: floor + 16, "text-anchor": "middle",
      }, group(b.height)));
    }
    bars.append(g);
  });
  root.append(bars,
    svg("line", { class: "axis", x1: left, x2: width - right, y1: floor, y2: floor }));
  return root;
}

function blocksTable(blocks) {
  return dataTable("Transactions per block", ["Block height", "Transactions"],
    blocks.map((b) => [html("a", { href: `#/block/${b.hash}` }, group(b.height)), group(b.txs)]),
    "No blocks yet.");
}

// --- figures, sizing and the interface -----------------------------------------------------------

const openTables = new Set(); // which charts' "Show the figures" the reader left open

function dataTable(caption, columns, rows, empty) {
  const body = html("tbody", {});
  for (const row of rows) {
    body.append(html("tr", {}, html("td", {}, row[0]), html("td", { class: "num" }, row[1])));
  }
  if (!rows.length) body.append(html("tr", {}, html("td", { colspan: 2, class: "empty" }, empty)));
  return html("div", { class: "table-box" }, html("table", { class: "chart-table" },
    html("caption", { class: "visually-hidden" }, caption),
    html("thead", {}, html("tr", {}, ...columns.map((c, i) =>
      html("th", { scope: "col", class: i ? "num" : null }, c)))),
    body));
}

const boxes = new Map(); // a chart's box -> {kind, draw, data, width, seen, born}: observed ones
const UNSEEN_MS = 30000; // a box built but never put on the page (a refresh lost a race) is dropped
const widths = { fees: 420, blocks: 640 }; // the last width each chart was drawn at

function redraw(box, width) {
  const chart = boxes.get(box);
  if (!chart || width === chart.width) return;
  chart.width = width;
  widths[chart.kind] = width;
  box.replaceChildren(chart.draw(width, chart.data));
}

// Redrawn in the next animation frame, not in the observer's callback: a redraw changes the box's
// height, and a size change inside the callback is reported as a "ResizeObserver loop" error.
const pending = new Map(); // box -> the width to draw it at
const observer = typeof ResizeObserver === "function"
  ? new ResizeObserver((entries) => {
    for (const entry of entries) {
      const box = entry.target;
      if (!box.isConnected) {
        forget(box);
      } else if (entry.contentRect.width >= MIN_WIDTH) {
        const chart = boxes.get(box);
        if (chart) chart.seen = true;
        if (!pending.size) requestAnimationFrame(drawPending);
        pending.set(box, Math.floor(entry.contentRect.width));
      }
    }
  })
  : null;

function drawPending() {
  for (const [box, width] of pending) if (box.isConnected) redraw(box, width);
  pending.clear();
}

function forget(box) {
  observer?.unobserve(box);
  boxes.delete(box);
  pending.delete(box);
}

/** Stops observing the boxes that left the page, or never reached it; keeps those on their way. */
function sweep() {
  const now = Date.now();
  for (const [box, chart] of boxes) {
    if (!box.isConnected && (chart.seen || now - chart.born > UNSEEN_MS)) forget(box);
  }
}

function figure(kind, id, caption, note, draw, data, table) {
  const width = widths[kind];
  const box = html("div", { class: "chart-box" }, draw(width, data));
  boxes.set(box, { kind, draw, data, width, seen: false, born: Date.now() });
  observer?.observe(box);
  const details = html("details", { class: "chart-data" },
    html("summary", {}, "Show the figures"), table);
  details.open = openTables.has(kind);
  details.addEventListener("toggle", () => {
    if (details.open) openTables.add(kind);
    else openTables.delete(kind);
  });
  return html("figure", { class: "chart", id },
    html("figcaption", {}, caption, " ", html("span", { class: "chart-note" }, note)),
    box, details);
}

function poolNote(pool) {
  const n = pool.count ?? 0;
  return `${group(n)} transaction${n === 1 ? "" : "s"}, ${group(pool.bytes ?? 0)} B`;
}

function blocksNote(blocks) {
  if (!blocks.length) return "";
  if (blocks.length === 1) return `block ${group(blocks[0].height)}`;
  return `blocks ${group(blocks.at(-1).height)}${EN_DASH}${group(blocks[0].height)}`;
}

async function render(mempool, newest) {
  const blocks = await lastBlocks(newest);
  sweep();
  const bands = feeBands(mempool);
  const pool = { count: mempool?.count, bytes: mempool?.bytes };
  return html("section", { id: "charts", class: "charts", "aria-label": "Charts" },
    figure("fees", "fee-chart", "Fee rates in the mempool", poolNote(pool), drawFees,
      { bands, pool }, feeTable(bands)),
    figure("blocks", "blocks-chart", "Transactions per block", blocksNote(blocks), drawBlocks,
      { blocks }, blocksTable(blocks)));
}

async function update(mempool, newest) {
  const section = await render(mempool, newest);
  const old = document.getElementById("charts");
  if (!old) return false;
  old.replaceWith(section);
  return true;
}

globalThis.TallyCharts = Object.freeze({ render, update, CHART_BLOCKS });
