// The dashboard: a watchlist of A-share quotes through a quantdb relay, cached in memory and
// IndexedDB by the quantdb package. On load it paints what the cache holds at once, then
// refreshes, and refreshes again every TTL. Selecting a row opens its chart under the table
// (history-chart.js), again on the next load.
//
// Page URL options: ?relay=URL (default http://127.0.0.1:8650), ttl=SECONDS (both TTLs),
// db=NAME (the IndexedDB database), clockStart=TIME (a testing aid: the client's clock reads
// this RFC 3339 instant when the page opens it, then runs).
import init, { QuantDB } from "quantdb";
import { exchangeDate, localClock } from "./format.js";
import { HistoryChart, loadSelection } from "./history-chart.js";
import { renderTable, rowState } from "./quote-table.js";
import { renderStats } from "./stats-panel.js";
import { loadWatchlist, parseInput, quoteKey, saveWatchlist } from "./watchlist.js";

const DEFAULT_RELAY = "http://127.0.0.1:8650";
const DEFAULT_DB = "quantdb-dashboard";
/** The auto-refresh never runs more often than this, whatever the TTL. */
const MIN_INTERVAL_SECONDS = 1;

const ui = {
  tbody: document.querySelector("#quotes tbody"),
  status: document.getElementById("refresh-status"),
  form: document.getElementById("add-form"),
  input: document.getElementById("symbol-input"),
  message: document.getElementById("add-message"),
  refreshButton: document.getElementById("refresh-now"),
  fatal: document.getElementById("fatal"),
  chartPanel: document.getElementById("chart-panel"),
};

let db = null;
/** The chart of the selected row, once the client is open. */
let chart = null;
/** The page's clock less the system's: `clockStart` moves it as it moves the client's. */
let clockOffsetMs = 0;
let watchlist = loadWatchlist();
/** key -> { key, quote, error }, for every key in the watchlist. */
const rows = new Map(watchlist.map((key) => [key, newRow(key)]));
let refreshCount = 0;
let refreshTimer = null;
/** Refreshes run one after another: an add during a refresh queues another. */
let refreshQueue = Promise.resolve();

function newRow(key) {
  return { key, quote: null, error: null };
}

/** QuantDB.open options from the page URL. */
function openOptions(search) {
  const params = new URLSearchParams(search);
  const options = { relayUrl: params.get("relay") || DEFAULT_RELAY, dbName: params.get("db") || DEFAULT_DB };
  const ttl = params.get("ttl");
  if (ttl !== null) {
    const seconds = Number(ttl);
    if (!Number.isInteger(seconds) || seconds < 1) {
      throw new Error(`ttl must be a whole number of seconds, at least 1 (got "${ttl}")`);
    }
    options.ttlTradingSeconds = seconds;
    options.ttlClosedSeconds = seconds;
  }
  const clockStart = params.get("clockStart");
  if (clockStart !== null) {
    options.clockStart = clockStart;
  }
  return options;
}

function render() {
  const selected = chart?.symbol ?? null;
  renderTable(ui.tbody, watchlist.map((key) => rows.get(key)), { onRemove: removeSymbol, onSelect: selectSymbol, selected });
  chart?.update(rows.get(selected)?.quote ?? null);
}

/** The exchange's date now, on the page's clock. */
function today() {
  return exchangeDate(Date.now() + clockOffsetMs);
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.dataset.refreshes = String(refreshCount);
  ui.status.textContent = text;
}

function showFatal(text) {
  ui.fatal.textContent = text;
  ui.fatal.hidden = false;
  setStatus("failed", "Not connected");
}

// --- The watchlist ----------------------------------------------------------------------

function forget(key) {
  watchlist = watchlist.filter((k) => k !== key);
  rows.delete(key);
}

/** Renames `key` to `canonical`, keeping its place in the watchlist and its row. */
function rename(key, canonical) {
  const row = rows.get(key);
  rows.delete(key);
  row.key = canonical;
  rows.set(canonical, row);
  watchlist = watchlist.map((k) => (k === key ? canonical : k));
  if (chart?.symbol === key) {
    chart.select(canonical);
  }
}

function addSymbols(text) {
  const keys = parseInput(text);
  const repeated = keys.filter((key) => rows.has(key));
  const fresh = [...new Set(keys.filter((key) => !rows.has(key)))];
  ui.message.textContent = repeated.length ? `Already in the watchlist: ${repeated.join(", ")}` : "";
  if (fresh.length === 0) {
    return;
  }
  for (const key of fresh) {
    watchlist.push(key);
    rows.set(key, newRow(key));
  }
  saveWatchlist(watchlist);
  render();
  refresh();
}

function removeSymbol(key) {
  forget(key);
  saveWatchlist(watchlist);
  if (chart?.symbol === key) {
    chart.close();
  }
  render();
}

function selectSymbol(key) {
  chart?.select(key);
}

// --- Quotes -----------------------------------------------------------------------------

/** What the cache holds for the watchlist, fresh or not, painted before any network answer. */
async function paintFromCache() {
  const cached = await db.getCachedBatch(watchlist);
  for (const quote of cached) {
    const row = rows.get(quoteKey(quote));
    if (row) {
      row.quote = quote;
    }
  }
  render();
  setStatus("cached", cached.length ? `Showing ${cached.length} cached quotes, refreshing…` : "Fetching quotes…");
}

async function fetchBatch(symbols) {
  try {
    return await db.getRealtimeDataBatch(symbols);
  } catch (err) {
    // The batch itself failed (it normally answers per symbol): every symbol failed alike.
    return symbols.map((symbol) => ({ symbol, error: err.message, code: err.code ?? "error" }));
  }
}

/**
 * One batch entry per symbol of `symbols`. The batch answers once per distinct symbol, in
 * request order, so it is one to one unless two spellings of one symbol were asked (`600000`
 * and `sh600000`, before the first was answered and renamed); then each symbol is asked
 * alone, from the cache the batch has just filled, to know which entry is whose.
 */
async function entriesFor(symbols) {
  const entries = await fetchBatch(symbols);
  if (entries.length === symbols.length) {
    return entries;
  }
  return Promise.all(symbols.map(async (symbol) => (await fetchBatch([symbol]))[0]));
}

function applyEntries(symbols, entries) {
  const repeated = [];
  symbols.forEach((key, i) => {
    const entry = entries[i];
    if (!rows.has(key)) {
      return; // removed while the batch was in flight
    }
    if ("error" in entry) {
      Object.assign(rows.get(key), { quote: null, error: { message: entry.error, code: entry.code } });
      return;
    }
    // Stored from now on as `sh600000`, or dropped if listed already under that name.
    const canonical = quoteKey(entry);
    if (key !== canonical && rows.has(canonical)) {
      repeated.push(key);
      forget(key);
    } else if (key !== canonical) {
      rename(key, canonical);
    }
    Object.assign(rows.get(canonical), { quote: entry, error: null });
  });
  if (repeated.length) {
    ui.message.textContent = `Already in the watchlist: ${repeated.join(", ")}`;
  }
  saveWatchlist(watchlist);
}

function reportRefresh() {
  const counts = { ok: 0, stale: 0, error: 0, loading: 0 };
  for (const row of rows.values()) {
    counts[rowState(row)] += 1;
  }
  const failed = counts.stale + counts.error;
  const state = failed === 0 ? "ok" : counts.ok === 0 ? "failed" : "partial";
  const detail = [`${counts.ok} ok`, counts.stale && `${counts.stale} stale`, counts.error && `${counts.error} error`]
    .filter(Boolean)
    .join(", ");
  setStatus(state, `Last refresh ${localClock()}: ${detail}`);
}

async function runRefresh() {
  clearTimeout(refreshTimer);
  let interval = MIN_INTERVAL_SECONDS;
  try {
    const symbols = [...watchlist];
    if (symbols.length) {
      applyEntries(symbols, await entriesFor(symbols));
      render();
    }
    const stats = db.cacheStats();
    renderStats(stats);
    interval = Math.max(stats.ttl_seconds, MIN_INTERVAL_SECONDS);
    refreshCount += 1;
    reportRefresh();
  } catch (err) {
    refreshCount += 1;
    setStatus("failed", `Refresh failed at ${localClock()}: ${err.message}`);
  }
  refreshTimer = setTimeout(refresh, interval * 1000);
}

function refresh() {
  refreshQueue = refreshQueue.then(runRefresh);
  return refreshQueue;
}

// --- Start ------------------------------------------------------------------------------

async function start() {
  render();
  setStatus("loading", "Loading…");
  try {
    const options = openOptions(location.search);
    document.getElementById("relay-url").textContent = options.relayUrl;
    if (options.clockStart) {
      clockOffsetMs = Date.parse(options.clockStart) - Date.now();
    }
    await init();
    db = await QuantDB.open(options);
  } catch (err) {
    showFatal(`Could not start: ${err.message}`);
    return;
  }
  // Quotes go to IndexedDB behind the answers: finish the writes as the page goes, so that the
  // next load paints them (best effort: the browser need not wait for the promise).
  addEventListener("pagehide", () => {
    db.flush().catch(() => {});
  });
  try {
    await paintFromCache();
  } catch (err) {
    setStatus("loading", `Cache unreadable (${err.message}), refreshing…`);
  }
  // The chart selected last time: its bars up to yesterday are in the client's cache, so it
  // is painted from there, with no request.
  chart = new HistoryChart(ui.chartPanel, { db, today, onChange: render });
  const saved = loadSelection();
  if (saved && rows.has(saved.symbol)) {
    chart.show(saved);
  }
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    addSymbols(ui.input.value);
    ui.input.value = "";
  });
  ui.refreshButton.addEventListener("click", () => refresh());
  ui.form.querySelector("fieldset").disabled = false;
  ui.refreshButton.disabled = false;
  await refresh();
}

start();
