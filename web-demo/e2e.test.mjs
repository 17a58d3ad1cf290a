// End-to-end test of the web demo: the dashboard in headless Chromium, the packed npm package
// installed into web-demo/node_modules, a real relay (`quantdb serve`) on the mock upstream.
//
//   scripts/build-pkg.sh && cargo build -p quantdb-cli -p mock-upstream
//   node --test web-demo/e2e.test.mjs
//
// The steps run in order and build on each other: quotes appear over the relay's push stream, a
// reload paints them from IndexedDB without a request of the page's, stopping the upstream
// server turns the rows stale, a bad symbol gets an error row; then the history chart: a
// selected row's candles are the mock's bars, adjusted as its factors say, switching the
// adjustment costs no request, a reload paints the chart with no history request, a history
// outage shows a message; then the push: the mock's prices move and the rows (and today's
// candle) follow with no reload and no request, the changed cells flash; stopping the relay
// turns the connection indicator to reconnecting, then offline, and a relay started again on
// its address brings it back live; after a reload the stream's first quotes replace the
// cache's without flashing; a relay at its stream limit refuses a second page, which says why.
// A screenshot with the chart goes to artifacts/web-demo.png.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { startStaticServer } from "../scripts/static-server.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WEB_DEMO = path.join(ROOT, "web-demo");
const QUANTDB_BIN = path.join(ROOT, "target/debug/quantdb");
const MOCK_BIN = path.join(ROOT, "target/debug/mock_upstream");
const SCREENSHOT = path.join(ROOT, "artifacts/web-demo.png");
// playwright-core is a dependency of the scripts (scripts/package.json).
const { chromium } = createRequire(path.join(ROOT, "scripts/package.json"))("playwright-core");

/**
 * The relay's TTL (it polls the mock this often for the streams), and the page's in the steps
 * that wait for quotes to expire.
 */
const SHORT_TTL = 2;
/** The page's TTL in the steps that must not see quotes expire. */
const LONG_TTL = 600;
/** Longest wait for a condition on the page, in milliseconds. */
const WAIT_MS = 20_000;
const DEFAULT_SYMBOLS = ["sh600000", "sz000001", "sz300750", "sh601318", "sh000001"];
/**
 * The relay and every page run on one clock that started on a Monday at 10:00 (continuous
 * trading) when this file loaded, and runs: TTLs expire as the steps need, and no session
 * boundary of the real time of day falls between two steps.
 */
const CLOCK_START_TEXT = "2026-11-30T10:00:00+08:00";
const CLOCK_START = Date.parse(CLOCK_START_TEXT);
/** The exchange's date on the shared clock (the steps take minutes, not 14 hours). */
const TODAY = "2026-11-30";
const CLOCK_OFFSET_MS = CLOCK_START - Date.now();
/** The shared clock's time now, for a process or a page that starts now. */
const clockNow = () => new Date(Date.now() + CLOCK_OFFSET_MS).toISOString();


const cleanups = [];
let mock;
let relay;
let relayCacheDir;
let web;
let browser;
let page;
const pageErrors = [];
/** Every request of the page to the relay: `{ path, symbols }`. */
const relayRequests = [];

// --- Setup ------------------------------------------------------------------------------

function requireFile(file, hint) {
  if (!fs.existsSync(file)) {
    throw new Error(`${path.relative(ROOT, file)} is missing: ${hint}`);
  }
}

/**
 * Installs the packed package into web-demo/node_modules as a user would, and with it the
 * page's dependencies of web-demo/package.json (lightweight-charts).
 */
function installPackage() {
  const cargoToml = fs.readFileSync(path.join(ROOT, "Cargo.toml"), "utf8");
  const version = /^version = "(.*)"$/m.exec(cargoToml)[1];
  const tarball = path.join(ROOT, `artifacts/quantdb-${version}.tgz`);
  requireFile(tarball, "build it with scripts/build-pkg.sh");
  execFileSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefer-offline", tarball], {
    cwd: WEB_DEMO,
    stdio: ["ignore", "ignore", "inherit"],
  });
}

/**
 * Starts `bin` and resolves with `{ url, stop }` once it prints `prefix URL` on stdout; rejects
 * with what it printed if it exits or takes too long. `stop()` sends SIGTERM and waits for
 * the exit.
 */
function startServer(bin, args, prefix, env = {}) {
  const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
    }
    await exited;
  };
  const ready = new RegExp(`^${prefix} (\\S+)$`, "m");
  let output = "";
  const collect = (chunk) => (output += chunk);
  return new Promise((resolve, reject) => {
    const failed = (why) => {
      clearTimeout(timer);
      stop().then(() => reject(new Error(`${path.basename(bin)} ${why}:\n${output}`)));
    };
    const timer = setTimeout(() => failed("did not start in time"), WAIT_MS);
    const onExit = (code) => failed(`exited with ${code}`);
    child.once("exit", onExit);
    child.stderr.on("data", collect);
    child.stdout.on("data", (chunk) => {
      collect(chunk);
      const match = ready.exec(output);
      if (match) {
        clearTimeout(timer);
        child.off("exit", onExit);
        // Started: keep draining its output so that it never blocks on a full pipe.
        child.stdout.removeAllListeners("data").resume();
        child.stderr.removeAllListeners("data").resume();
        resolve({ url: match[1], stop });
      }
    });
  });
}

async function mockGet(route) {
  const res = await fetch(`${mock.url}${route}`);
  assert.equal(res.status, 200, `GET ${route}`);
  return res.json();
}

async function mockPost(route, body) {
  const res = await fetch(`${mock.url}${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, `POST ${route}`);
  return res.json();
}

/**
 * Starts the mock upstream on `port` (0: any free port), its clock stopped where the shared
 * clock started: the history's today is the relay's and the pages'.
 */
async function startMock(port) {
  const args = ["--port", String(port), "--now", CLOCK_START_TEXT];
  const started = await startServer(MOCK_BIN, args, "mock upstream listening on");
  cleanups.push(started.stop);
  return started;
}

/**
 * Starts the relay on `port` (0: any free port) in front of the mock, on the shared clock, with
 * its cache in `relayCacheDir` (a restart finds what it cached).
 */
async function startRelay(port) {
  const ttl = String(SHORT_TTL);
  const started = await startServer(
    QUANTDB_BIN,
    // A fixed staleness bound: it does not hang on the calendar.
    ["--cache-dir", relayCacheDir, "--ttl-trading-secs", ttl, "--ttl-closed-secs", ttl, "--max-stale-secs", "3600",
     "serve", "--port", String(port)],
    "quantdb relay listening on",
    {
      QUANTDB_SINA_URL: mock.url, QUANTDB_TENCENT_URL: mock.url, QUANTDB_EASTMONEY_URL: mock.url,
      QUANTDB_CLOCK_START: clockNow(),
    },
  );
  cleanups.push(started.stop);
  return started;
}

/** The page's requests to the relay for quotes or history: all but its push stream. */
const pageRequests = () => relayRequests.filter((r) => r.path !== "/api/v1/stream").length;
/** The push streams the page opened (the browser's reconnections included), with their symbols. */
const streams = () => relayRequests.filter((r) => r.path === "/api/v1/stream");

before(async () => {
  const build = "build it with `cargo build -p quantdb-cli -p mock-upstream`";
  requireFile(QUANTDB_BIN, build);
  requireFile(MOCK_BIN, build);
  installPackage();

  mock = await startMock(0);
  relayCacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "quantdb-e2e-cache-"));
  cleanups.push(() => fs.rmSync(relayCacheDir, { recursive: true, force: true }));
  relay = await startRelay(0);
  web = await startStaticServer(WEB_DEMO);
  cleanups.push(web.close);

  // A fresh profile each run (playwright makes a temporary one).
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  cleanups.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  await context.addInitScript(recordPageChanges);
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("pageerror", (err) => pageErrors.push(err.message));
  // The relay keeps its address across a restart (step k).
  const relayOrigin = new URL(relay.url).origin;
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.origin === relayOrigin) {
      relayRequests.push({ path: url.pathname, symbols: url.searchParams.get("symbols") });
    }
  });
});

after(async () => {
  // In reverse order of starting; every step runs even when an earlier one fails.
  for (const cleanup of cleanups.reverse()) {
    await Promise.resolve()
      .then(cleanup)
      .catch((err) => console.error(`cleanup: ${err.message}`));
  }
});

// --- The page ---------------------------------------------------------------------------

/**
 * Runs in the page before its scripts. Records each state the quote status takes, with the
 * rows shown at that moment, so a test can tell what was painted before the first answer
 * (`statusLog`); each flash of a cell (`flashLog`: symbol, field, direction, the text then);
 * each state of the connection indicator (`connectionLog`).
 */
function recordPageChanges() {
  window.statusLog = [];
  window.flashLog = [];
  window.connectionLog = [];
  const flashOf = (className) => /\bflash-(up|down)\b/.exec(className ?? "")?.[1];
  new MutationObserver((records) => {
    const status = document.getElementById("quote-status");
    const last = window.statusLog.at(-1);
    if (status && status.dataset.state !== last?.state) {
      const rows = [...document.querySelectorAll("#quotes tbody tr[data-symbol]")];
      window.statusLog.push({
        state: status.dataset.state,
        rows: rows.map((tr) => ({ symbol: tr.dataset.symbol, state: tr.dataset.state, source: tr.dataset.source })),
      });
    }
    // What a record left is the next record's old value for that element and attribute, or the
    // value now (the records of a batch all come after the changes).
    const after = (i) => {
      const { target, attributeName } = records[i];
      const next = records.slice(i + 1).find((r) => r.target === target && r.attributeName === attributeName);
      return next ? next.oldValue : target.getAttribute(attributeName);
    };
    records.forEach((record, i) => {
      const target = record.target;
      if (record.attributeName === "data-connection" && after(i) !== record.oldValue) {
        window.connectionLog.push(after(i));
      }
      // A cell's flash begins where its class gets flash-up or flash-down.
      const flash = record.attributeName === "class" && target.dataset?.field ? flashOf(after(i)) : undefined;
      if (flash && !flashOf(record.oldValue)) {
        window.flashLog.push({
          symbol: target.closest("tr")?.dataset.symbol,
          field: target.dataset.field,
          flash,
          text: target.textContent,
        });
      }
    });
  }).observe(document, {
    subtree: true,
    attributes: true,
    attributeOldValue: true,
    attributeFilter: ["data-state", "data-connection", "class"],
  });
}

function pageUrl(ttl) {
  const query = new URLSearchParams({ relay: relay.url, ttl: String(ttl), db: "quantdb-e2e", clockStart: clockNow() });
  return `${web.url}/?${query}`;
}

/** Waits until the page has applied `count` answers (pushed or asked) since it loaded. */
async function waitForUpdates(count) {
  await page.waitForFunction(
    (n) => Number(document.getElementById("quote-status").dataset.updates) >= n,
    count,
  );
}

/** Waits until the connection indicator says `state`. */
async function waitForConnection(state) {
  await page.waitForSelector(`#connection[data-connection="${state}"]`);
}

/** Waits until every row with a symbol of `prices` shows its price. */
async function waitForPrices(prices) {
  await page.waitForFunction(
    (want) =>
      Object.entries(want).every(([symbol, price]) => {
        const td = document.querySelector(`tr[data-symbol="${symbol}"] [data-field="price"]`);
        return td !== null && Number(td.textContent) === price;
      }),
    prices,
  );
}

/** Waits until every row is in `state`, and there are `count` rows. */
async function waitForRows(state, count) {
  await page.waitForFunction(
    ([s, n]) => {
      const rows = document.querySelectorAll("#quotes tbody tr[data-symbol]");
      return rows.length === n && [...rows].every((tr) => tr.dataset.state === s);
    },
    [state, count],
  );
}

/** Every row as the page shows it: symbol, state, source and the text of each field. */
function readRows() {
  return page.$$eval("#quotes tbody tr[data-symbol]", (trs) =>
    trs.map((tr) => ({
      symbol: tr.dataset.symbol,
      state: tr.dataset.state,
      source: tr.dataset.source ?? null,
      code: tr.dataset.code ?? null,
      badges: [...tr.querySelectorAll(".badge")].map((b) => b.textContent),
      fields: Object.fromEntries([...tr.querySelectorAll("[data-field]")].map((td) => [td.dataset.field, td.textContent])),
      priceClass: tr.querySelector('[data-field="price"]')?.className ?? null,
    })),
  );
}

async function addSymbol(text, { pressEnter }) {
  await page.fill("#symbol-input", text);
  if (pressEnter) {
    await page.press("#symbol-input", "Enter");
  } else {
    await page.click("#add-button");
  }
}

// --- The history chart --------------------------------------------------------------------

/** The first day of each range of the chart, from TODAY. */
const RANGE_START = {
  "1M": "2026-10-30", "3M": "2026-08-30", "6M": "2026-05-30",
  "1Y": "2025-11-30", "3Y": "2023-11-30", "5Y": "2021-11-30",
};
/** Ranges drawn in weekly candles. */
const WEEKLY = new Set(["3Y", "5Y"]);
const CHART_KEY = "quantdb-dashboard.chart";

/** The mock's requests to its history endpoints (kline and factors), per endpoint. */
const historyCounts = async () => (await mockGet("/__mock/stats")).history;
const klineRequests = (h) => h.eastmoney_kline + h.tencent_kline + h.sina_kline;

/** The chart's test hooks (see history-chart.js): its state, selection and what it draws. */
const readChart = () => page.$eval("#history-chart", (el) => ({ ...el.dataset }));

/** Waits until the chart's hooks have the values of `want` (like `{ state: "ok" }`). */
async function waitForChart(want) {
  await page.waitForFunction(
    (w) => {
      const shown = document.getElementById("history-chart").dataset;
      return Object.entries(w).every(([name, value]) => shown[name] === value);
    },
    want,
  );
  return readChart();
}

/** The mock's truth for `key`: its raw daily bars up to today (today's included), its factors. */
const truthOf = (key) => mockGet(`/__mock/history/${key}`);

/** The cumulative hfq factor on `date`: the last published on or before it, else 1. */
function factorOn(truth, date) {
  const dated = truth.factors.filter((f) => f.date <= date).sort((a, b) => a.date.localeCompare(b.date));
  return dated.at(-1)?.factor ?? 1;
}

/** A bar's close adjusted: raw for none, raw × F(d) for hfq, raw × F(d) / F(latest) for qfq. */
function adjustedClose(truth, bar, adjust) {
  const f = factorOn(truth, bar.date);
  return { none: bar.close, hfq: bar.close * f, qfq: (bar.close * f) / factorOn(truth, "9999-12-31") }[adjust];
}

function mondayOf(date) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
  return d.toISOString().slice(0, 10);
}

/** The truth's bars a range shows: each day from its start to today, or each ISO week's last. */
function truthCandles(truth, range) {
  const bars = truth.bars.filter((b) => b.date >= RANGE_START[range] && b.date <= TODAY);
  if (!WEEKLY.has(range)) {
    return bars;
  }
  const weeks = new Map();
  for (const bar of bars) {
    weeks.set(mondayOf(bar.date), bar);
  }
  return [...weeks.values()];
}

function assertPrice(actual, expected, what) {
  assert.ok(Math.abs(actual - expected) <= 1e-5 * Math.max(1, Math.abs(expected)), `${what}: ${actual}, expected ${expected}`);
}

/**
 * The chart shows `key` with `adjust` over `range`: one candle per bar (week) of the mock's in
 * the range, today's last, the first and last closes adjusted as the mock's factors say.
 */
async function assertChartIsTruth(chart, key, adjust, range) {
  const truth = await truthOf(key);
  const candles = truthCandles(truth, range);
  assert.equal(chart.symbol, key);
  assert.equal(chart.adjust, adjust);
  assert.equal(chart.range, range);
  assert.equal(chart.period, WEEKLY.has(range) ? "weekly" : "daily");
  assert.deepEqual([chart.start, chart.end], [RANGE_START[range], TODAY]);
  assert.equal(Number(chart.bars), candles.length, `${key} ${range}: the mock's bars in the range`);
  assert.equal(chart.firstDate, candles[0].date, "first candle");
  assert.equal(chart.lastDate, candles.at(-1).date, "last candle");
  assert.equal(chart.lastDate, TODAY, "the last candle is today's");
  assertPrice(Number(chart.firstClose), adjustedClose(truth, candles[0], adjust), `${key} ${adjust} first close`);
  assertPrice(Number(chart.lastClose), adjustedClose(truth, candles.at(-1), adjust), `${key} ${adjust} last close`);
  return truth;
}

async function pressed(group) {
  return page.$$eval(`#${group} button[aria-pressed="true"]`, (buttons) => buttons.map((b) => b.textContent));
}

// --- Steps ------------------------------------------------------------------------------

/** Quotes shown at the end of step a, to compare with later steps. */
let firstRows;

test("a. added symbols show the mock's quotes, pushed by the relay", async () => {
  // The relay and the page run on the shared clock, whatever the time of day.
  const relayStats = await (await fetch(`${relay.url}/api/v1/stats`)).json();
  assert.equal(relayStats.market_phase, "trading", "the relay runs on the shared clock");
  await page.goto(pageUrl(LONG_TTL));
  await waitForUpdates(1);
  await waitForRows("ok", DEFAULT_SYMBOLS.length);
  await waitForConnection("live");
  assert.equal(await page.textContent("#connection"), "live");
  assert.equal(await page.textContent('[data-stat="market_phase"]'), "trading 交易中", "the page too");

  // Typed in other spellings, added with Enter and with the button: the rows take the
  // canonical names, the page subscribes again with them, and their first quotes come over
  // the stream.
  await addSymbol("000097", { pressEnter: true });
  await page.waitForSelector('tr[data-symbol="sz000097"][data-state="ok"]');
  assert.equal(await page.getAttribute('tr[data-symbol="sz000097"]', "data-source"), "push");
  await addSymbol("430017.BJ", { pressEnter: false });
  await page.waitForSelector('tr[data-symbol="bj430017"][data-state="ok"]');
  assert.equal(await page.getAttribute('tr[data-symbol="bj430017"]', "data-source"), "push");
  assert.deepEqual(
    streams().map((r) => r.symbols),
    [5, 6, 7].map((n) => [...DEFAULT_SYMBOLS, "sz000097", "bj430017"].slice(0, n).join(",")),
    "one stream, then one more for each watchlist edit",
  );
  assert.equal(pageRequests(), 0, "every quote came over the stream: the page asked for none");

  firstRows = await readRows();
  assert.deepEqual(
    firstRows.map((r) => r.symbol),
    [...DEFAULT_SYMBOLS, "sz000097", "bj430017"],
  );
  for (const key of ["sh600000", "sh000001", "sz000097", "bj430017"]) {
    const expected = await mockGet(`/__mock/quote/${key}`);
    const row = firstRows.find((r) => r.symbol === key);
    assert.equal(row.fields.name, expected.name, `${key} name`);
    assert.equal(Number(row.fields.price), expected.price, `${key} price`);
    const change = expected.price - expected.prev_close;
    const direction = Math.abs(change) < 1e-9 ? "flat" : change > 0 ? "up" : "down";
    assert.match(row.priceClass, new RegExp(`\\b${direction}\\b`), `${key} is coloured ${direction}`);
  }
  assert.deepEqual(
    await page.evaluate(() => JSON.parse(localStorage.getItem("quantdb-dashboard.watchlist"))),
    firstRows.map((r) => r.symbol),
    "the watchlist is saved",
  );
});

test("b. a reload within the TTL paints from IndexedDB with no request", async () => {
  // (The upstream's request count says nothing here: the relay polls it for the page's
  // stream. What counts is that the page asks the relay for nothing.)
  const requestsBefore = pageRequests();
  // A reload, with the shared clock's time now.
  await page.goto(pageUrl(LONG_TTL));
  await waitForUpdates(1);
  // The stream's first answers: every row's current quote.
  await page.waitForFunction(
    (n) => document.querySelectorAll('#quotes tbody tr[data-state="ok"][data-source="push"]').length === n,
    firstRows.length,
  );

  const log = await page.evaluate(() => window.statusLog);
  const cachedPaint = log.find((entry) => entry.state === "cached");
  assert.ok(cachedPaint, `the page painted from the cache first (status log: ${JSON.stringify(log)})`);
  assert.ok(
    log.indexOf(cachedPaint) < log.findIndex((entry) => entry.state === "ok"),
    "the cache paint came before the stream's quotes",
  );
  assert.deepEqual(
    cachedPaint.rows,
    firstRows.map((r) => ({ symbol: r.symbol, state: "ok", source: "disk" })),
    "every row was painted from IndexedDB (the pushed quotes of step a included)",
  );

  const rows = await readRows();
  assert.deepEqual(
    rows.map((r) => [r.symbol, r.state, r.fields.price]),
    firstRows.map((r) => [r.symbol, "ok", r.fields.price]),
  );
  assert.equal(pageRequests(), requestsBefore, "no request of the page's");
  assert.equal(await page.textContent('[data-stat="upstream_requests"]'), "0", "the page's statistics say so");
  assert.deepEqual(await page.evaluate(() => window.flashLog), [], "the same prices again: nothing flashed");
});

test("c. when the upstream server stops, the relay pushes stale quotes and rows say so", async () => {
  await page.goto(pageUrl(SHORT_TTL));
  await waitForUpdates(1);
  await waitForRows("ok", firstRows.length);
  await waitForConnection("live");
  const requestsBefore = pageRequests();

  await mock.stop();
  // The relay polls every TTL; once its quotes expire and the upstream fails, its batch
  // answers the last quotes marked stale, which differ from the quotes pushed (stale is part
  // of a change), so it pushes them, and the rows say so.
  await waitForRows("stale", firstRows.length);

  const rows = await readRows();
  for (const [i, row] of rows.entries()) {
    assert.equal(row.fields.price, firstRows[i].fields.price, `${row.symbol} keeps its price`);
    assert.equal(row.fields.name, firstRows[i].fields.name, `${row.symbol} keeps its name`);
    assert.ok(row.badges.includes("stale"), `${row.symbol} has a stale badge`);
    assert.equal(row.source, "push", `${row.symbol} came over the stream`);
  }
  assert.equal(await page.getAttribute("#quote-status", "data-state"), "failed");
  assert.equal(await page.getAttribute("#connection", "data-connection"), "live", "the relay itself is there");
  assert.equal(pageRequests(), requestsBefore, "pushed, not asked");
  assert.equal(await page.isHidden("#fatal"), true, "no fatal error");
});

test("d. a bad symbol gets an error row, the other rows stay", async () => {
  // The upstream server comes back on its old address, where the relay looks for it.
  mock = await startMock(new URL(mock.url).port);
  const streamsBefore = streams().length;
  const requestsBefore = pageRequests();
  await addSymbol("abc", { pressEnter: true });
  await page.waitForSelector('tr[data-symbol="abc"][data-state="error"]');
  // Upstreams are back: the relay's next poll pushes the other rows' fresh quotes.
  await page.waitForFunction(
    (n) => document.querySelectorAll('#quotes tbody tr[data-state="ok"]').length === n,
    firstRows.length,
  );

  const rows = await readRows();
  assert.deepEqual(
    rows.map((r) => r.symbol),
    [...firstRows.map((r) => r.symbol), "abc"],
  );
  const bad = rows.at(-1);
  assert.equal(bad.code, "invalid_symbol");
  assert.match(bad.fields.error, /abc/);
  for (const [i, row] of rows.slice(0, -1).entries()) {
    assert.equal(row.state, "ok", `${row.symbol} stays`);
    assert.equal(row.fields.price, firstRows[i].fields.price, `${row.symbol} price`);
  }
  // No symbol at all: told by the package, never asked, never followed.
  assert.equal(pageRequests(), requestsBefore, "abc was not asked");
  assert.equal(streams().length, streamsBefore, "the stream follows the same symbols");
  assert.equal(await page.getAttribute("#quote-status", "data-state"), "partial");
});

test("e. selecting a row shows its chart: 6 months of the mock's daily bars, qfq", async () => {
  const before = await historyCounts();
  await page.click('tr[data-symbol="sh600000"] td.name');
  const chart = await waitForChart({ state: "ok", symbol: "sh600000" });
  await assertChartIsTruth(chart, "sh600000", "qfq", "6M");
  assert.equal(chart.source, "network");
  assert.equal(await page.getAttribute('tr[data-symbol="sh600000"]', "aria-selected"), "true");
  assert.deepEqual(await pressed("chart-adjust"), ["qfq 前复权"]);
  assert.deepEqual(await pressed("chart-range"), ["6M"]);

  // The header: the name, the last close, coloured as the day went.
  const quote = await mockGet("/__mock/quote/sh600000");
  assert.equal(await page.textContent('[data-chart="name"]'), quote.name);
  assert.equal(await page.textContent('[data-chart="close"]'), Number(chart.lastClose).toFixed(2));
  const change = quote.price - quote.prev_close;
  const direction = Math.abs(change) < 1e-9 ? "flat" : change > 0 ? "up" : "down";
  assert.match(await page.getAttribute('[data-chart="close"]', "class"), new RegExp(`\\b${direction}\\b`));

  const after = await historyCounts();
  assert.ok(klineRequests(after) > klineRequests(before), "the bars were fetched");
  assert.equal(after.sina_factors - before.sina_factors, 1, "the factors were fetched once");
  assert.deepEqual(
    await page.evaluate((key) => JSON.parse(localStorage.getItem(key)), CHART_KEY),
    { symbol: "sh600000", adjust: "qfq", range: "6M" },
    "the selection is saved",
  );
});

test("f. hfq and none reprice the same candles with no history request", async () => {
  const before = await historyCounts();
  const qfq = await readChart();

  await page.click('#chart-adjust button[data-adjust="hfq"]');
  const hfq = await waitForChart({ state: "ok", adjust: "hfq" });
  await assertChartIsTruth(hfq, "sh600000", "hfq", "6M");
  assert.notEqual(hfq.lastClose, qfq.lastClose, "hfq prices are not qfq's");
  assert.equal(hfq.source, "cache");

  await page.click('#chart-adjust button[data-adjust="none"]');
  const none = await waitForChart({ state: "ok", adjust: "none" });
  await assertChartIsTruth(none, "sh600000", "none", "6M");
  assert.equal(none.source, "cache");
  assert.deepEqual(await pressed("chart-adjust"), ["none 不复权"]);

  // The relay pushes quotes meanwhile, and the chart follows them: that costs no history
  // request either.
  assert.deepEqual(await historyCounts(), before, "no kline request, and the factors were not asked again");
});

test("g. Enter and Space on a focused row select it; 3Y is drawn in weekly candles", async () => {
  await page.focus('tr[data-symbol="sz300750"]');
  await page.keyboard.press("Enter");
  let chart = await waitForChart({ state: "ok", symbol: "sz300750" });
  await assertChartIsTruth(chart, "sz300750", "none", "6M");

  await page.click('#chart-range button[data-range="3Y"]');
  chart = await waitForChart({ state: "ok", range: "3Y" });
  await assertChartIsTruth(chart, "sz300750", "none", "3Y");

  await page.focus('tr[data-symbol="sh600000"]');
  await page.keyboard.press("Space");
  await waitForChart({ state: "ok", symbol: "sh600000" });
  await page.click('#chart-adjust button[data-adjust="qfq"]');
  chart = await waitForChart({ state: "ok", adjust: "qfq" });
  await assertChartIsTruth(chart, "sh600000", "qfq", "3Y");
  assert.equal(await page.getAttribute('tr[data-symbol="sz300750"]', "aria-selected"), "false");
});

test("h. a reload opens the chart again, painted from IndexedDB with no history request", async () => {
  const shown = await readChart();
  const before = await historyCounts();
  await page.goto(pageUrl(LONG_TTL));
  const chart = await waitForChart({ state: "ok", symbol: "sh600000", adjust: "qfq", range: "3Y" });
  await waitForUpdates(1);
  for (const field of ["period", "start", "end", "bars", "firstDate", "lastDate", "firstClose", "lastClose"]) {
    assert.equal(chart[field], shown[field], field);
  }
  assert.equal(chart.source, "cache");
  assert.equal(await page.getAttribute('tr[data-symbol="sh600000"]', "aria-selected"), "true");
  assert.deepEqual([await pressed("chart-adjust"), await pressed("chart-range")], [["qfq 前复权"], ["3Y"]]);
  assert.deepEqual(await historyCounts(), before, "no history request");
});

test("i. when no upstream answers for history, the chart says so", async () => {
  await mockPost("/__mock/config", { down: ["eastmoney", "tencent", "sina"] });
  try {
    // Never charted: its bars are not cached.
    await page.click('tr[data-symbol="sz000001"] td.name');
    const chart = await waitForChart({ state: "error", symbol: "sz000001" });
    // The relay answers 502 with the code upstream_unavailable, and its client keeps it.
    const message = await page.textContent("#chart-message");
    assert.equal(chart.code, "upstream_unavailable", message);
    assert.equal(await page.isVisible("#chart-message"), true);
    assert.match(message, /sz000001/);
    assert.ok(message.includes(`(${chart.code})`), message);
    assert.equal(await page.isVisible("#history-chart"), false, "no empty chart under the message");
  } finally {
    await mockPost("/__mock/config", { down: [] });
  }
});

/** The watchlist's symbols with quotes (all but abc, step d). */
const quoted = () => firstRows.map((r) => r.symbol);

/** The mock's price now of every quoted symbol: `{ sh600000: 9.07, ... }`. */
async function mockPrices() {
  const prices = {};
  for (const key of quoted()) {
    prices[key] = (await mockGet(`/__mock/quote/${key}`)).price;
  }
  return prices;
}

/** Waits until every quoted row is in `state` (abc stays an error). */
async function waitForQuoted(state) {
  await page.waitForFunction(
    ([keys, s]) => keys.every((key) => document.querySelector(`tr[data-symbol="${key}"]`)?.dataset.state === s),
    [quoted(), state],
  );
}

test("j. the rows follow the mock's prices with no reload and no request; changed cells flash", async () => {
  // Today's candle of the selected row follows its quote: raw prices, where it is the quote's.
  await page.click('tr[data-symbol="sh600000"] td.name');
  await waitForChart({ state: "ok", symbol: "sh600000" });
  await page.click('#chart-adjust button[data-adjust="none"]');
  await page.click('#chart-range button[data-range="1M"]');
  await waitForChart({ state: "ok", adjust: "none", range: "1M" });
  await waitForQuoted("ok");
  // The statistics panel is painted every 2 s: it catches up with the chart's requests.
  await page.waitForTimeout(2_500);
  const before = await readRows();
  const old = Object.fromEntries(before.map((r) => [r.symbol, Number(r.fields.price)]));
  const requestsBefore = pageRequests();
  const streamsBefore = streams().length;
  const statBefore = await page.textContent('[data-stat="upstream_requests"]');
  // Anything set on the page now would be gone after a reload.
  await page.evaluate(() => {
    window.flashLog = [];
    window.notReloaded = true;
  });

  const tick = (await mockGet("/__mock/config")).tick + 1;
  await mockPost("/__mock/config", { tick });
  const prices = await mockPrices();
  // Every price moves with the tick but a suspended stock's (sz000097): it must not flash.
  const moved = quoted().filter((key) => prices[key] !== old[key]);
  assert.deepEqual(quoted().filter((key) => !moved.includes(key)), ["sz000097"], "the prices that did not move");
  // The relay polls every 2 s on the shared clock, and pushes what changed.
  await waitForPrices(prices);

  const rows = await readRows();
  for (const key of quoted()) {
    const row = rows.find((r) => r.symbol === key);
    const quote = await mockGet(`/__mock/quote/${key}`);
    assert.equal(row.state, "ok", key);
    assert.equal(row.source, "push", `${key} was pushed`);
    const change = quote.price - quote.prev_close;
    const direction = Math.abs(change) < 1e-9 ? "flat" : change > 0 ? "up" : "down";
    assert.match(row.priceClass, new RegExp(`\\b${direction}\\b`), `${key} is coloured ${direction}`);
  }
  assert.equal(await page.evaluate(() => window.notReloaded), true, "no reload");
  assert.equal(pageRequests(), requestsBefore, "the page asked for nothing: the quotes were pushed");
  assert.equal(streams().length, streamsBefore, "on the stream it had open");
  await page.waitForFunction((text) => document.querySelector('[data-stat="upstream_requests"]').textContent === text, statBefore);

  // Every moved price flashed once, red up or green down, with its new text; only the price,
  // change and % cells flash.
  const flashes = await page.evaluate(() => window.flashLog);
  const priceFlashes = flashes.filter((f) => f.field === "price");
  assert.deepEqual(
    priceFlashes.map((f) => [f.symbol, f.flash, Number(f.text)]).sort(),
    moved.map((key) => [key, prices[key] > old[key] ? "up" : "down", prices[key]]).sort(),
    "the moved prices flashed",
  );
  assert.ok(!flashes.some((f) => f.symbol === "sz000097"), "the suspended stock did not flash");
  for (const f of flashes) {
    assert.ok(["price", "change", "change_percent"].includes(f.field), `only price, change and % flash: ${f.field}`);
  }
  // The class goes when the animation ends.
  await page.waitForFunction(() => document.querySelectorAll("#quotes .flash-up, #quotes .flash-down").length === 0);

  // Today's candle is the pushed quote: the mock's bar for today at the new tick.
  const chart = await waitForChart({ state: "ok", symbol: "sh600000", lastClose: String(prices.sh600000) });
  await assertChartIsTruth(chart, "sh600000", "none", "1M");

  // "Refresh now": one request for the watchlist, answered past the caches.
  await page.click("#refresh-now");
  await page.waitForFunction(
    (n) => document.querySelectorAll('#quotes tbody tr[data-state="ok"][data-source="network"]').length === n,
    quoted().length,
  );
  assert.equal(pageRequests(), requestsBefore + 1, "one batch request");
  assert.deepEqual(
    Object.fromEntries((await readRows()).filter((r) => r.state === "ok").map((r) => [r.symbol, Number(r.fields.price)])),
    prices,
  );
});

test("k. the indicator says when the relay goes away, and it comes back live", async () => {
  assert.equal(await page.getAttribute("#connection", "data-connection"), "live");
  const shown = await readRows();
  await page.evaluate(() => {
    window.connectionLog = [];
  });

  await relay.stop();
  // The stream ends with the relay: the browser reconnects every 3 s (the relay's advice), in
  // vain; after 10 s of that the page says offline.
  await waitForConnection("reconnecting");
  await waitForConnection("offline");
  assert.deepEqual(await page.evaluate(() => window.connectionLog), ["reconnecting", "offline"]);
  assert.equal(await page.textContent("#connection"), "offline");
  assert.deepEqual(
    (await readRows()).map((r) => [r.symbol, r.state, r.fields.price]),
    shown.map((r) => [r.symbol, r.state, r.fields.price]),
    "the rows keep the last quotes",
  );

  // The relay starts again on its old address, where the page's stream looks for it: the
  // browser's next attempt connects, and the quotes move again.
  relay = await startRelay(new URL(relay.url).port);
  await waitForConnection("live");
  assert.deepEqual(await page.evaluate(() => window.connectionLog), ["reconnecting", "offline", "live"]);
  await mockPost("/__mock/config", { tick: (await mockGet("/__mock/config")).tick + 1 });
  await waitForPrices(await mockPrices());
  await waitForQuoted("ok");
  for (const row of await readRows()) {
    assert.equal(row.state, row.symbol === "abc" ? "error" : "ok", row.symbol);
  }
});

test("l. after a reload, the stream's newer quotes replace the cache's without flashing", async () => {
  const shown = Object.fromEntries((await readRows()).filter((r) => r.state === "ok").map((r) => [r.symbol, Number(r.fields.price)]));
  // The page goes (its stream with it), the prices move meanwhile, and it comes back.
  await page.goto("about:blank");
  await mockPost("/__mock/config", { tick: (await mockGet("/__mock/config")).tick + 1 });
  const prices = await mockPrices();
  // Until the relay's cache has them (its quotes of the old tick expire within its TTL), so
  // that the stream's first quotes are the new ones.
  const relayHasMoved = async () => {
    const entries = await (await fetch(`${relay.url}/api/v1/realtime?symbols=${quoted().join(",")}`)).json();
    return entries.every((q) => q.current_price === prices[q.exchange.toLowerCase() + q.symbol]);
  };
  const deadline = Date.now() + WAIT_MS;
  while (!(await relayHasMoved())) {
    assert.ok(Date.now() < deadline, "the relay did not see the new prices in time");
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await page.goto(pageUrl(LONG_TTL));
  await waitForPrices(prices);

  const cachedPaint = (await page.evaluate(() => window.statusLog)).find((entry) => entry.state === "cached");
  assert.ok(cachedPaint, "the cache painted first");
  assert.deepEqual(
    cachedPaint.rows.filter((r) => r.symbol !== "abc").map((r) => [r.symbol, r.source]),
    quoted().map((key) => [key, "disk"]),
  );
  assert.ok(quoted().some((key) => prices[key] !== shown[key]), "the prices moved while the page was away");
  assert.deepEqual(await page.evaluate(() => window.flashLog), [], "the first quotes after the cache's do not flash");
});

test("m. a relay at its stream limit says why it refused the page's stream", async () => {
  // A relay that serves one stream, and that one taken.
  const full = await startServer(
    QUANTDB_BIN,
    ["--memory-only", "serve", "--port", "0", "--max-streams", "1"],
    "quantdb relay listening on",
    {
      QUANTDB_SINA_URL: mock.url, QUANTDB_TENCENT_URL: mock.url, QUANTDB_EASTMONEY_URL: mock.url,
      QUANTDB_CLOCK_START: clockNow(),
    },
  );
  cleanups.push(full.stop);
  const held = new AbortController();
  const taken = await fetch(`${full.url}/api/v1/stream?symbols=600000`, { signal: held.signal });
  assert.equal(taken.status, 200);
  const other = await page.context().newPage();
  other.setDefaultTimeout(WAIT_MS);
  try {
    const query = new URLSearchParams({ relay: full.url, ttl: String(LONG_TTL), db: "quantdb-e2e-full", clockStart: clockNow() });
    await other.goto(`${web.url}/?${query}`);
    // The same watchlist (the page keeps it per origin): its stream is refused.
    await other.waitForSelector('#connection[data-connection="offline"][data-reason="too_many_streams"]');
    assert.match(await other.getAttribute("#connection", "title"), /as many streams open as it serves/);
  } finally {
    held.abort();
    await other.close();
    await full.stop();
  }
});

test("n. screenshot with the chart, and no script error on the page", async () => {
  await page.click('tr[data-symbol="sh600000"] td.name');
  await waitForChart({ state: "ok", symbol: "sh600000" });
  await waitForConnection("live");
  // Not in the middle of a flash.
  await page.waitForFunction(() => document.querySelectorAll("#quotes .flash-up, #quotes .flash-down").length === 0);
  // The chart paints on the next animation frame.
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.ok(fs.statSync(SCREENSHOT).size > 0);
  assert.deepEqual(pageErrors, []);
});
