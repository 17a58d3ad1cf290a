// The npm package's speed in headless Chromium, measured inside the page with performance.now():
// a 100-symbol batch warm from memory, the reload paint (a new client on the same IndexedDB
// database and getCachedBatch), and a cold 100-symbol batch against the mock upstream with no
// latency (persistent tier off and on). Prints a table of medians.
//
// usage: node scripts/bench-browser.mjs [--short] [TARBALL]
//   TARBALL defaults to artifacts/quantdb-<version>.tgz (scripts/build-pkg.sh makes it).
//   The mock upstream is QUANTDB_MOCK_URL (started with --cors --no-referer-check), or one this
//   script starts with scripts/start-mock.sh. --short runs a few iterations (a smoke test).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
const short = args.includes("--short");
const version = /^version = "(.*)"$/m.exec(fs.readFileSync(path.join(ROOT, "Cargo.toml"), "utf8"))[1];
const tarball = path.resolve(args.find((a) => !a.startsWith("--")) ?? path.join(ROOT, `artifacts/quantdb-${version}.tgz`));
if (!fs.existsSync(tarball)) {
  console.error(`${tarball} is missing: build it with scripts/build-pkg.sh`);
  process.exit(2);
}
const N = short ? { warm: 50, reload: 3, cold: 3 } : { warm: 2000, reload: 40, cold: 40 };

const cleanups = [];
async function cleanup() {
  for (const step of cleanups.reverse()) {
    await Promise.resolve().then(step).catch((e) => console.error(`cleanup: ${e.message}`));
  }
}

// The mock upstream: the caller's, or our own.
let mock = process.env.QUANTDB_MOCK_URL;
if (!mock) {
  const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "quantdb-bench-")), "pid");
  mock = execFileSync(path.join(ROOT, "scripts/start-mock.sh"), ["--cors", "--no-referer-check"], {
    env: { ...process.env, MOCK_PID_FILE: pidFile },
    stdio: ["ignore", "pipe", "inherit"],
  })
    .toString()
    .trim();
  cleanups.push(() => process.kill(Number(fs.readFileSync(pidFile, "utf8"))));
}
const configure = (config) =>
  fetch(`${mock}/__mock/config`, { method: "POST", body: JSON.stringify(config) }).then((r) => {
    if (r.status !== 200) throw new Error(`mock config: HTTP ${r.status}`);
  });
await configure({ latency_ms: 0, failure_rate: 0.0, down: [], tick: 0 });

// The package as a user installs it.
const app = fs.mkdtempSync(path.join(os.tmpdir(), "quantdb-bench-app-"));
cleanups.push(() => fs.rmSync(app, { recursive: true, force: true }));
fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "bench", private: true, type: "module" }));
execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], { cwd: app, stdio: ["ignore", "ignore", "inherit"] });

// 100 stocks the mock lists (sh600000..sh600099).
const SYMBOLS = Array.from({ length: 100 }, (_, i) => `sh${600000 + i}`);

/** Runs in the page: every scenario, its timings in milliseconds. */
const PAGE_SCRIPT = `
import init, { QuantDB } from "quantdb";
const mock = ${JSON.stringify(mock)};
const SYMBOLS = ${JSON.stringify(SYMBOLS)};
const upstream = { sinaUrl: mock, tencentUrl: mock, eastmoneyUrl: mock };
// Every client runs on one clock that started on a Monday at 10:00 when the page loaded, so
// that the real time of day (a session boundary, a closed market's TTL) never changes a run.
const CLOCK_OFFSET_MS = Date.parse("2026-11-30T10:00:00+08:00") - Date.now();
const clock = () => ({ clockStart: new Date(Date.now() + CLOCK_OFFSET_MS).toISOString() });
let serial = 0;
const dbName = () => "quantdb-bench-" + Date.now() + "-" + serial++;
const deleteDb = (name) => new Promise((resolve) => {
  const r = indexedDB.deleteDatabase(name);
  r.onsuccess = r.onerror = r.onblocked = () => resolve();
});
const expect = (ok, what) => { if (!ok) throw new Error(what); };
const allFrom = (list, source) => list.length === SYMBOLS.length && list.every((q) => q.cache_source === source);

window.scenarios = {
  async warm(n) {
    const name = dbName();
    const db = await QuantDB.open({ ...upstream, ...clock(), dbName: name });
    expect(allFrom(await db.getRealtimeDataBatch(SYMBOLS), "network"), "the first batch is fetched");
    await db.flush();
    // The first calls run before the engine's code is compiled at its best tier.
    const first = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await db.getRealtimeDataBatch(SYMBOLS);
      first.push(performance.now() - t);
    }
    for (let i = 0; i < 20; i++) await db.getRealtimeDataBatch(SYMBOLS);
    const reads = db.cacheStats().persistent_reads;
    const times = [];
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const list = await db.getRealtimeDataBatch(SYMBOLS);
      times.push(performance.now() - t);
      if (i === 0) expect(allFrom(list, "memory"), "warm batches come from memory");
    }
    const mean = (performance.now() - start) / n;
    expect(db.cacheStats().persistent_reads === reads, "a memory hit reads no IndexedDB");
    db.free();
    await deleteDb(name);
    return { first, times, mean };
  },
  async reload(n) {
    const name = dbName();
    const first = await QuantDB.open({ ...upstream, ...clock(), dbName: name });
    await first.getRealtimeDataBatch(SYMBOLS);
    await first.flush();
    first.free();
    const open = [], paint = [], batch = [];
    for (let i = 0; i < n; i++) {
      let t = performance.now();
      const db = await QuantDB.open({ ...upstream, ...clock(), dbName: name });
      open.push(performance.now() - t);
      t = performance.now();
      const cached = await db.getCachedBatch(SYMBOLS);
      paint.push(performance.now() - t);
      expect(allFrom(cached, "disk"), "the reload paints every row from IndexedDB");
      db.free();
      const fresh = await QuantDB.open({ ...upstream, ...clock(), dbName: name });
      t = performance.now();
      const list = await fresh.getRealtimeDataBatch(SYMBOLS);
      batch.push(performance.now() - t);
      expect(allFrom(list, "disk"), "a new client answers from IndexedDB");
      fresh.free();
    }
    await deleteDb(name);
    return { open, paint, batch };
  },
  async cold(n, persistent) {
    const times = [];
    for (let i = 0; i < n; i++) {
      const name = dbName();
      const db = await QuantDB.open({ ...upstream, ...clock(), dbName: name, persistent });
      const t = performance.now();
      const list = await db.getRealtimeDataBatch(SYMBOLS);
      times.push(performance.now() - t);
      expect(allFrom(list, "network"), "a cold batch is fetched");
      await db.flush();
      db.free();
      if (persistent) await deleteDb(name);
    }
    return { times };
  },
};
await init();
window.ready = true;
`;

// Served cross-origin isolated, so performance.now() is precise to a few microseconds rather
// than 100 (the mock upstream sends CORS headers, which is all COEP asks of a fetch).
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  const headers = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp", "cache-control": "no-store" };
  if (url.pathname === "/" || url.pathname === "/index.html") {
    res.writeHead(200, { ...headers, "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">{"imports":{"quantdb":"/node_modules/quantdb/web/quantdb.js"}}</script>
<script type="module">${PAGE_SCRIPT}</script>`);
    return;
  }
  const file = path.join(app, path.normalize(url.pathname));
  if (!url.pathname.startsWith("/node_modules/quantdb/") || !file.startsWith(app) || !fs.existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  const type = file.endsWith(".wasm") ? "application/wasm" : "text/javascript; charset=utf-8";
  res.writeHead(200, { ...headers, "content-type": type });
  fs.createReadStream(file).pipe(res);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
cleanups.push(() => new Promise((resolve) => (server.close(() => resolve()), server.closeAllConnections())));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => (x < 1 ? x.toFixed(3) : x.toFixed(2)).padStart(8);

let failed = false;
try {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  cleanups.push(() => browser.close());
  const page = await browser.newPage();
  page.on("console", (m) => console.log(`[page] ${m.text()}`));
  page.on("pageerror", (e) => console.log(`[page] ${e.message}`));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30000 });
  const isolated = await page.evaluate(() => crossOriginIsolated);
  const run = (name, ...a) => page.evaluate(([name, a]) => window.scenarios[name](...a), [name, a]);

  const warm = await run("warm", N.warm);
  const reload = await run("reload", N.reload);
  const coldOff = await run("cold", N.cold, false);
  const coldOn = await run("cold", N.cold, true);
  const rows = [
    [`getRealtimeDataBatch, warm from memory (mean ${warm.mean.toFixed(3)} ms)`, warm.times, "< 0.5"],
    ["  the same, its first 10 calls after the page loaded", warm.first, ""],
    ["reload: QuantDB.open on the same database", reload.open, ""],
    ["reload: getCachedBatch from IndexedDB (the paint)", reload.paint, "< 20"],
    ["reload: getRealtimeDataBatch from IndexedDB", reload.batch, ""],
    ["cold getRealtimeDataBatch, 0 ms mock, persistent off", coldOff.times, "< 40"],
    ["cold getRealtimeDataBatch, 0 ms mock, persistent on", coldOn.times, "< 40"],
  ];
  console.log(`\nquantdb ${version} in Chromium, 100 symbols, medians in ms${short ? " (--short)" : ""}; timer ${isolated ? "precise (cross-origin isolated)" : "coarse (100 us)"}\n`);
  console.log(`${"what".padEnd(72)} ${"runs".padStart(5)} ${"median".padStart(8)} ${"target".padStart(7)}`);
  for (const [what, times, target] of rows) {
    console.log(`${what.padEnd(72)} ${String(times.length).padStart(5)} ${ms(median(times))} ${target.padStart(7)}`);
  }
} catch (e) {
  console.error(`bench-browser: ${e.message}`);
  failed = true;
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
