// The dashboard: a watchlist of A-share quotes through a quantdb relay, cached in memory and
// IndexedDB by the quantdb package. On load it paints what the cache holds at once, then
// refreshes, and refreshes again every TTL.
//
// Page URL options: ?relay=URL (default http://127.0.0.1:8650), ttl=SECONDS (both TTLs),
// db=NAME (the IndexedDB database).
import init, { QuantDB } from "quantdb";
import { localClock } from "./format.js";
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
};

let db = null;
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
  return options;
}

function render() {
  renderTable(ui.tbody, watchlist.map((key) => rows.get(key)), removeSymbol);
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

/**
 * The row for `key` once its quote says its canonical form is `canonical`: the key is renamed
 * in place, or dropped when the canonical form is listed already.
 */
function adopt(key, canonical) {
  if (key === canonical) {
    return rows.get(key);
  }
  if (rows.has(canonical)) {
    forget(key);
  } else {
    const row = rows.get(key);
    rows.delete(key);
    row.key = canonical;
    rows.set(canonical, row);
    watchlist = watchlist.map((k) => (k === key ? canonical : k));
  }
  return rows.get(canonical);
}

function addSymbols(text) {
  const fresh = parseInput(text).filter((key) => !rows.has(key));
  const repeated = parseInput(text).filter((key) => rows.has(key));
  ui.message.textContent = repeated.length ? `Already in the watchlist: ${repeated.join(", ")}` : "";
  if (fresh.length === 0) {
    return;
  }
  for (const key of new Set(fresh)) {
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
  render();
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
  setStatus("cached", `Showing ${cached.length} cached quotes, refreshing…`);
}

/**
 * Pairs each asked symbol with its batch entry. The batch has one entry per distinct symbol,
 * in request order; when two spellings of one symbol were asked (`600000`, `sh600000`) it has
 * fewer, and the later spelling gets none (undefined).
 */
function pairEntries(symbols, entries) {
  if (entries.length === symbols.length) {
    return symbols.map((key, i) => [key, entries[i]]);
  }
  const byKey = new Map(entries.map((e) => [("error" in e ? e.symbol.toLowerCase() : quoteKey(e)), e]));
  return symbols.map((key) => [key, byKey.get(key)]);
}

async function fetchBatch(symbols) {
  try {
    return await db.getRealtimeDataBatch(symbols);
  } catch (err) {
    // The batch itself failed (it normally answers per symbol): every symbol failed alike.
    return symbols.map((symbol) => ({ symbol, error: err.message, code: err.code ?? "error" }));
  }
}

function applyEntries(symbols, entries) {
  const dropped = [];
  for (const [key, entry] of pairEntries(symbols, entries)) {
    if (!rows.has(key)) {
      continue; // removed while the batch was in flight
    }
    if (!entry) {
      dropped.push(key);
      forget(key);
    } else if ("error" in entry) {
      rows.get(key).error = { message: entry.error, code: entry.code };
    } else {
      const row = adopt(key, quoteKey(entry));
      row.quote = entry;
      row.error = null;
    }
  }
  if (dropped.length) {
    ui.message.textContent = `Already in the watchlist: ${dropped.join(", ")}`;
  }
  saveWatchlist(watchlist);
}

function reportRefresh() {
  const counts = { ok: 0, stale: 0, error: 0 };
  for (const row of rows.values()) {
    counts[rowState(row)] = (counts[rowState(row)] ?? 0) + 1;
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
      applyEntries(symbols, await fetchBatch(symbols));
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
  let options;
  try {
    options = openOptions(location.search);
    document.getElementById("relay-url").textContent = options.relayUrl;
    await init();
    db = await QuantDB.open(options);
  } catch (err) {
    showFatal(`Could not start: ${err.message}`);
    return;
  }
  try {
    await paintFromCache();
  } catch (err) {
    setStatus("loading", `Cache unreadable (${err.message}), refreshing…`);
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
