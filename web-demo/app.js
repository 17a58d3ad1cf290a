// The dashboard: a watchlist of A-share quotes through a quantdb relay, cached in memory and
// IndexedDB by the quantdb package. On load it paints what the cache holds at once, then
// subscribes to the watchlist on the relay's push stream (`db.subscribe`): the relay sends each
// symbol's current quote, then a quote whenever one changes, and the rows follow in place
// (changed cells flash). Adding or removing a symbol subscribes again to the new list.
// "Refresh now" asks the relay for the whole watchlist at once, past every cache. Selecting a
// row opens its chart under the table (history-chart.js), again on the next load; its
// candle for today follows the row's quote.
//
// The connection indicator (#connection, `data-connection`):
//   connecting    the page is opening the stream
//   live          the stream is open: quotes come as they change
//   reconnecting  the stream dropped, the browser is reconnecting (the relay stream resumes
//                 where it left off)
//   offline       reconnecting for OFFLINE_AFTER_MS already, or the relay refused the stream
//                 (then the page subscribes again every RESUBSCRIBE_MS); the rows keep the
//                 last quotes
//   idle          nothing to follow (an empty watchlist, or only invalid symbols)
//
// Page URL options: ?relay=URL (default http://127.0.0.1:8650), ttl=SECONDS (both TTLs of the
// page's cache), db=NAME (the IndexedDB database), clockStart=TIME (a testing aid: the client's
// clock reads this RFC 3339 instant when the page opens it, then runs).
import init, { QuantDB } from "quantdb";
import { exchangeDate, localClock } from "./format.js";
import { HistoryChart, loadSelection } from "./history-chart.js";
import { renderTable, rowState } from "./quote-table.js";
import { renderStats } from "./stats-panel.js";
import { loadWatchlist, parseInput, quoteKey, saveWatchlist } from "./watchlist.js";

const DEFAULT_RELAY = "http://127.0.0.1:8650";
const DEFAULT_DB = "quantdb-dashboard";
/** A stream reconnecting this long shows as offline. */
const OFFLINE_AFTER_MS = 10_000;
/** After the relay refused or ended the stream for good, the page subscribes again this late. */
const RESUBSCRIBE_MS = 15_000;
/** Watchlist edits this close together make one new subscription. */
const RESUBSCRIBE_DELAY_MS = 50;
/** The statistics panel is painted this often, and after every update. */
const STATS_EVERY_MS = 2_000;

const ui = {
  tbody: document.querySelector("#quotes tbody"),
  status: document.getElementById("quote-status"),
  connection: document.getElementById("connection"),
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
let watchlist = [];
/** key -> { key, quote, error, source }, for every key in the watchlist. */
const rows = new Map();
/** Answers applied (pushed, or asked with "refresh now") since the page loaded. */
let updates = 0;
/** When the last answer came (Date.now()), or null. */
let lastUpdate = null;
let renderPending = false;
/** "Refresh now" runs one at a time. */
let refreshQueue = Promise.resolve();

/** The open subscription, the symbols it follows ("a,b,c"), and its number. */
const live = {
  subscription: null,
  symbols: null,
  generation: 0,
  /** A new subscription due (after a watchlist edit, or a refused stream). */
  timer: null,
  /** A reconnecting stream turns offline when this fires. */
  offlineTimer: null,
};

function newRow(key) {
  return { key, quote: null, error: null, source: null };
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

/** Paints the table, the status and the statistics once, on the next frame, however many answers came. */
function scheduleRender() {
  if (renderPending) {
    return;
  }
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    render();
    report();
  });
}

/** The exchange's date now, on the page's clock. */
function today() {
  return exchangeDate(Date.now() + clockOffsetMs);
}

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.dataset.updates = String(updates);
  ui.status.textContent = text;
}

function showFatal(text) {
  ui.fatal.textContent = text;
  ui.fatal.hidden = false;
  setStatus("failed", "Not connected");
}

function paintStats() {
  if (db) {
    renderStats(db.cacheStats());
  }
}

/** The status line from the rows, once an answer came: ok, partial or failed, and the counts. */
function report() {
  paintStats();
  if (lastUpdate === null) {
    return; // still what the cache paint said
  }
  const counts = { ok: 0, stale: 0, error: 0, loading: 0 };
  for (const key of watchlist) {
    counts[rowState(rows.get(key))] += 1;
  }
  const failed = counts.stale + counts.error;
  const state = failed === 0 ? "ok" : counts.ok === 0 ? "failed" : "partial";
  const detail = [
    `${counts.ok} ok`,
    counts.stale && `${counts.stale} stale`,
    counts.error && `${counts.error} error`,
    counts.loading && `${counts.loading} loading`,
  ]
    .filter(Boolean)
    .join(", ");
  setStatus(state, `Updated ${localClock(new Date(lastUpdate))}: ${detail}`);
}

// --- The watchlist ----------------------------------------------------------------------

/**
 * A watchlist key for `input`: its canonical form (`sz000001`), or the input itself with an
 * error when it is no symbol (the row says why; it is never asked).
 */
function keyOf(input) {
  try {
    return { key: QuantDB.normalizeSymbol(input) };
  } catch (err) {
    return { key: input, error: { message: err.message, code: err.code ?? "invalid_symbol" } };
  }
}

/** The watchlist saved last time, in canonical form, with a row for each symbol. */
function loadRows() {
  const seen = new Set();
  for (const input of loadWatchlist()) {
    const { key, error } = keyOf(input);
    if (!seen.has(key)) {
      seen.add(key);
      rows.set(key, { ...newRow(key), error: error ?? null });
    }
  }
  watchlist = [...seen];
  saveWatchlist(watchlist);
}

function addSymbols(text) {
  const fresh = [];
  const repeated = [];
  for (const input of parseInput(text)) {
    const { key, error } = keyOf(input);
    if (fresh.includes(key)) {
      continue; // twice in the same text
    }
    if (rows.has(key)) {
      repeated.push(input);
      continue;
    }
    watchlist.push(key);
    rows.set(key, { ...newRow(key), error: error ?? null });
    fresh.push(key);
  }
  ui.message.textContent = repeated.length ? `Already in the watchlist: ${repeated.join(", ")}` : "";
  if (fresh.length === 0) {
    return;
  }
  saveWatchlist(watchlist);
  render();
  report();
  resubscribe();
}

function removeSymbol(key) {
  watchlist = watchlist.filter((k) => k !== key);
  rows.delete(key);
  saveWatchlist(watchlist);
  if (chart?.symbol === key) {
    chart.close();
  }
  render();
  report();
  resubscribe();
}

function selectSymbol(key) {
  chart?.select(key);
}

// --- Quotes -----------------------------------------------------------------------------

/** The watchlist's symbols the relay can answer: all but those that are no symbol. */
function followed() {
  return watchlist.filter((key) => rows.get(key).error?.code !== "invalid_symbol");
}

/** What the cache holds for the watchlist, fresh or not, painted before any network answer. */
async function paintFromCache() {
  const cached = await db.getCachedBatch(followed());
  for (const quote of cached) {
    const row = rows.get(quoteKey(quote));
    if (row) {
      Object.assign(row, { quote, error: null, source: quote.cache_source });
    }
  }
  render();
  setStatus("cached", cached.length ? `Showing ${cached.length} cached quotes, connecting…` : "Connecting…");
}

/** A quote the relay pushed: its row shows it. */
function onQuote(quote) {
  const row = rows.get(quoteKey(quote));
  if (row) {
    Object.assign(row, { quote, error: null, source: "push" });
    answered();
  }
}

/** A symbol's error the relay pushed (no upstream answered and nothing cached, an unknown code). */
function onSymbolError(entry) {
  const row = rows.get(entry.symbol) ?? rows.get(entry.input);
  if (row) {
    Object.assign(row, { quote: null, error: { message: entry.error, code: entry.code } });
    answered();
  }
}

function answered() {
  updates += 1;
  lastUpdate = Date.now();
  scheduleRender();
}

/** "Refresh now": the whole watchlist from the relay, past the caches. */
async function runRefresh() {
  const symbols = followed();
  if (symbols.length === 0) {
    return;
  }
  let entries;
  try {
    entries = await db.getRealtimeDataBatch(symbols, { forceRefresh: true });
  } catch (err) {
    // The batch itself failed (it normally answers per symbol): every symbol failed alike.
    entries = symbols.map((symbol) => ({ symbol, input: symbol, error: err.message, code: err.code ?? "error" }));
  }
  // One entry per symbol, in order: the symbols are distinct and canonical.
  symbols.forEach((key, i) => {
    const row = rows.get(key);
    const entry = entries[i];
    if (!row || !entry) {
      return; // removed meanwhile
    }
    if ("error" in entry) {
      Object.assign(row, { quote: null, error: { message: entry.error, code: entry.code } });
    } else if (!row.quote || Date.parse(entry.timestamp) >= Date.parse(row.quote.timestamp)) {
      // (A quote pushed while the batch was on its way may be newer.)
      Object.assign(row, { quote: entry, error: null, source: entry.cache_source });
    }
  });
  updates += 1;
  lastUpdate = Date.now();
  render();
  report();
}

function refresh() {
  if (ui.connection.dataset.connection === "offline") {
    live.symbols = null; // a new stream, without waiting
    subscribe();
  }
  refreshQueue = refreshQueue.then(runRefresh).catch((err) => setStatus("failed", `Refresh failed: ${err.message}`));
  return refreshQueue;
}

// --- The push stream --------------------------------------------------------------------

const CONNECTION_TEXT = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  offline: "offline",
  idle: "idle",
};

function setConnection(state, reason) {
  if (ui.connection.dataset.connection === state && !reason) {
    return;
  }
  const since = localClock();
  const titles = {
    connecting: "Opening the relay's stream.",
    live: "The relay's stream is open: quotes come as they change.",
    reconnecting: `The relay's stream dropped at ${since}: reconnecting.`,
    offline: reason
      ? `The relay refused the stream at ${since} (${reason.code}): ${reason.error}. The rows show the last quotes; the page tries again.`
      : `No stream from the relay since ${since}: the rows show the last quotes; the page keeps trying.`,
    idle: "Nothing to follow: add a symbol.",
  };
  ui.connection.dataset.connection = state;
  ui.connection.dataset.reason = reason?.code ?? "";
  ui.connection.textContent = CONNECTION_TEXT[state];
  ui.connection.title = titles[state];
}

function onStatus(status, reason) {
  if (status === "live") {
    clearTimeout(live.offlineTimer);
    live.offlineTimer = null;
    setConnection("live");
  } else if (status === "reconnecting") {
    // The browser retries every few seconds, each failure saying "reconnecting" again.
    if (ui.connection.dataset.connection !== "offline") {
      setConnection("reconnecting");
    }
    live.offlineTimer ??= setTimeout(() => setConnection("offline"), OFFLINE_AFTER_MS);
  } else if (status === "closed") {
    // Not ours (that one is not reported): the relay refused the stream (`reason` says why),
    // or the browser gave up.
    clearTimeout(live.offlineTimer);
    live.offlineTimer = null;
    setConnection("offline", reason);
    live.symbols = null;
    clearTimeout(live.timer);
    live.timer = setTimeout(subscribe, RESUBSCRIBE_MS);
  }
}

function unsubscribe() {
  live.generation += 1; // from now on its callbacks are dropped
  const old = live.subscription;
  live.subscription = null;
  live.symbols = null;
  if (old) {
    old.close();
    old.free?.();
  }
}

/**
 * Follows the watchlist on the relay's stream, unless the open subscription follows these
 * symbols already. Never from inside one of the subscription's callbacks (it may be freed).
 */
function subscribe() {
  clearTimeout(live.timer);
  live.timer = null;
  const symbols = followed();
  if (live.subscription && live.symbols === symbols.join(",")) {
    return;
  }
  unsubscribe();
  if (symbols.length === 0) {
    clearTimeout(live.offlineTimer);
    live.offlineTimer = null;
    setConnection("idle");
    return;
  }
  if (ui.connection.dataset.connection === "idle") {
    setConnection("connecting");
  }
  const generation = live.generation;
  const current = () => generation === live.generation;
  try {
    live.subscription = db.subscribe(symbols, (quote) => current() && onQuote(quote), {
      onError: (entry) => current() && onSymbolError(entry),
      onStatus: (status, reason) => current() && onStatus(status, reason),
    });
    live.symbols = symbols.join(",");
  } catch (err) {
    setConnection("offline");
    ui.connection.title = `Could not open the relay's stream: ${err.message}`;
    live.timer = setTimeout(subscribe, RESUBSCRIBE_MS);
  }
}

/** Subscribes again shortly (a watchlist edit: several at once make one subscription). */
function resubscribe() {
  clearTimeout(live.timer);
  live.timer = setTimeout(subscribe, RESUBSCRIBE_DELAY_MS);
}

// --- Start ------------------------------------------------------------------------------

async function start() {
  setStatus("loading", "Loading…");
  setConnection("connecting");
  try {
    const options = openOptions(location.search);
    document.getElementById("relay-url").textContent = options.relayUrl;
    if (options.clockStart) {
      clockOffsetMs = Date.parse(options.clockStart) - Date.now();
    }
    await init();
    loadRows();
    render();
    db = await QuantDB.open(options);
  } catch (err) {
    showFatal(`Could not start: ${err.message}`);
    setConnection("offline");
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
    setStatus("loading", `Cache unreadable (${err.message}), connecting…`);
  }
  paintStats();
  setInterval(paintStats, STATS_EVERY_MS);
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
  subscribe();
}

start();
