// Checks the packed npm package as a user gets it: installs the tarball into a scratch app,
// resolves its `exports` in Node, loads it in headless Chromium against the mock upstream, and
// compares the browser's objects with the native CLI's `--json` output field for field.
//
// usage: QUANTDB_MOCK_URL=http://127.0.0.1:PORT node scripts/check-pkg.mjs TARBALL QUANTDB_BIN
import { spawnSync, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { startStaticServer } from "./static-server.mjs";

const [tarball, quantdbBin] = process.argv.slice(2).map((p) => path.resolve(p));
const mock = process.env.QUANTDB_MOCK_URL;
if (!tarball || !quantdbBin || !mock) {
  console.error("usage: QUANTDB_MOCK_URL=URL node scripts/check-pkg.mjs TARBALL QUANTDB_BIN");
  process.exit(2);
}
/** Both clients run on a clock stopped here, so their fetch times are equal. */
const NOW = "2026-11-30T10:00:00+08:00";
const SYMBOLS = ["600000", "000001", "300750", "sh000001", "bj430017", "000097", "bad!", "603999"];
const failures = [];
const check = (ok, what) => {
  console.log(`[pkg-check] ${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};

// 1. Install the tarball like a user would.
const app = fs.mkdtempSync(path.join(os.tmpdir(), "quantdb-pkg-"));
fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], { cwd: app, stdio: "inherit" });
const pkgDir = path.join(app, "node_modules", "quantdb");

// 2. The exports map resolves, and the public types name real shapes, never `any`.
const resolve = (spec) =>
  execFileSync("node", ["--input-type=module", "-e", `console.log(import.meta.resolve(${JSON.stringify(spec)}))`], { cwd: app })
    .toString()
    .trim();
check(resolve("quantdb").endsWith("/node_modules/quantdb/web/quantdb.js"), "`quantdb` resolves to the web build");
check(resolve("quantdb/bundler").endsWith("/node_modules/quantdb/bundler/quantdb.js"), "`quantdb/bundler` resolves");
const dts = fs.readFileSync(path.join(pkgDir, "web", "quantdb.d.ts"), "utf8");
const publicTypes = dts.split("export type InitInput")[0];
check(!/\bany\b/.test(publicTypes), "no `any` in the public TypeScript types");
for (const sig of [
  "getRealtimeDataBatch(symbols: string[], options?: FetchOptions | null): Promise<BatchEntry[]>",
  "getCachedBatch(symbols: string[]): Promise<Quote[]>",
  "cacheStats(): CacheStats",
  "flush(): Promise<void>",
  "static open(options?: OpenOptions | null): Promise<QuantDB>",
  "persistent_pending: number",
]) {
  check(dts.includes(sig), `types declare ${sig}`);
}

// 3. A page that imports the package by name and asks for quotes.
fs.writeFileSync(
  path.join(app, "index.html"),
  `<!doctype html><meta charset="utf-8">
<script type="importmap">{"imports":{"quantdb":"/node_modules/quantdb/web/quantdb.js"}}</script>
<script type="module">
import init, { QuantDB } from "quantdb";
try {
  await init();
  const url = ${JSON.stringify(mock)};
  const db = await QuantDB.open({ sinaUrl: url, tencentUrl: url, eastmoneyUrl: url, persistent: false, now: ${JSON.stringify(NOW)} });
  const batch = await db.getRealtimeDataBatch(${JSON.stringify(SYMBOLS)});
  const warm = await db.getRealtimeDataBatch(${JSON.stringify(SYMBOLS)});
  const cached = await db.getCachedBatch(${JSON.stringify(SYMBOLS)});
  const one = await db.getRealtimeData(${JSON.stringify(SYMBOLS[0])});
  let rejected = null;
  try { await db.getRealtimeData("nope"); } catch (e) { rejected = { code: e.code, isError: e instanceof Error }; }
  await db.flush();
  window.result = { batch, warm, cached, one, stats: db.cacheStats(), rejected };
} catch (e) {
  window.result = { failed: String(e) };
}
</script>`,
);
const server = await startStaticServer(app);
const page_url = `${server.url}/index.html`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let result;
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.log(`[page] ${m.text()}`));
  await page.goto(page_url);
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 30000 });
  result = await page.evaluate(() => window.result);
} finally {
  await browser.close();
  await server.close();
}
check(!result.failed, `the package loads and answers in Chromium${result.failed ? ": " + result.failed : ""}`);
if (!result.failed) {
  check(result.rejected?.code === "invalid_symbol" && result.rejected.isError, "a bad symbol rejects with an Error carrying .code");
  check(result.stats.upstream_requests >= 1 && result.stats.persistent_enabled === false, "cacheStats() is a plain object");

  // 4. The native CLI on the same mock data: the same fields, the same values.
  const env = { ...process.env, QUANTDB_SINA_URL: mock, QUANTDB_TENCENT_URL: mock, QUANTDB_EASTMONEY_URL: mock, QUANTDB_NOW: NOW };
  const cli = spawnSync(quantdbBin, ["--memory-only", "quote", "--json", ...SYMBOLS], { env });
  const native = JSON.parse(cli.stdout.toString());
  const browserList = result.batch;
  check(native.length === browserList.length && native.length === SYMBOLS.length, `both answer ${SYMBOLS.length} entries`);
  native.forEach((n, i) => {
    const b = browserList[i] ?? {};
    const nk = Object.keys(n).join(",");
    const bk = Object.keys(b).join(",");
    check(nk === bk, `${SYMBOLS[i]}: same fields in the same order (${nk})`);
    // The mock stamps quote_time with its own clock, a second or so apart between the runs.
    const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$/;
    const diffs = Object.keys(n).filter((k) =>
      k === "quote_time" ? !(n[k] === b[k] || (iso.test(n[k]) && iso.test(b[k]))) : JSON.stringify(n[k]) !== JSON.stringify(b[k]),
    );
    check(diffs.length === 0, `${SYMBOLS[i]}: same values${diffs.length ? " (differs: " + diffs.map((k) => `${k} ${JSON.stringify(n[k])} vs ${JSON.stringify(b[k])}`).join(", ") + ")" : ""}`);
  });

  // 5. Answers from memory are the same objects, but for where they came from.
  const fromMemory = (q) => ("error" in q ? q : { ...q, cache_hit: true, cache_source: "memory" });
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b) && Object.keys(a).join() === Object.keys(b).join();
  check(result.warm.every((q, i) => same(q, fromMemory(browserList[i]))), "a warm batch from memory has the same entries");
  const quotes = browserList.filter((q) => !("error" in q));
  check(result.cached.length === quotes.length && result.cached.every((q, i) => same(q, fromMemory(quotes[i]))), "getCachedBatch has the same quotes");
  check(same(result.one, fromMemory(browserList[0])), "getRealtimeData has the same quote");
}
fs.rmSync(app, { recursive: true, force: true });
console.log(`pkg-check: ${failures.length === 0 ? "all checks passed" : failures.length + " checks failed"}`);
process.exit(failures.length === 0 ? 0 : 1);
