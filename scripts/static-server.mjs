// A small static file server for the browser checks and the web demo: serves one directory
// on 127.0.0.1, `index.html` for directory paths, nothing outside the directory.
//
// As a module: `const { url, close } = await startStaticServer(rootDir, { port })`.
// As a command: `node scripts/static-server.mjs DIR [PORT]` serves until SIGINT/SIGTERM and
// prints `static server listening on http://127.0.0.1:PORT` once bound (PORT 0 picks one).
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const CONTENT_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/**
 * What a request path names under `root`: `{ file }`, `{ redirect }` for a directory asked
 * without its trailing slash (so that relative URLs in its index.html resolve), or `{}` when
 * it is outside `root` or missing.
 */
function lookup(root, urlPath) {
  const target = path.resolve(root, "." + decodeURIComponent(urlPath));
  if (target !== root && !target.startsWith(root + path.sep)) {
    return {};
  }
  const stat = fs.statSync(target, { throwIfNoEntry: false });
  if (stat?.isDirectory()) {
    return urlPath.endsWith("/") ? lookup(root, urlPath + "index.html") : { redirect: urlPath + "/" };
  }
  return stat?.isFile() ? { file: target } : {};
}

function handle(root, req, res) {
  const url = new URL(req.url, "http://localhost");
  let found;
  try {
    found = lookup(root, url.pathname);
  } catch {
    found = {}; // a malformed %-escape
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405).end();
  } else if (found.redirect) {
    res.writeHead(301, { location: found.redirect + url.search }).end();
  } else if (!found.file) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
  } else {
    res.writeHead(200, {
      "content-type": CONTENT_TYPES[path.extname(found.file)] ?? "application/octet-stream",
      // Edited files show on the next reload.
      "cache-control": "no-store",
    });
    if (req.method === "HEAD") {
      res.end();
    } else {
      fs.createReadStream(found.file).pipe(res);
    }
  }
}

/**
 * Serves `rootDir` on 127.0.0.1 at `port` (0: a free one).
 * @returns {Promise<{url: string, close: () => Promise<void>}>} `url` has no trailing slash.
 */
export async function startStaticServer(rootDir, { port = 0 } = {}) {
  const root = path.resolve(rootDir);
  const server = http.createServer((req, res) => handle(root, req, res));
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Browsers keep idle connections open; they must not hold the shutdown.
        server.closeAllConnections();
      }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [dir, port = "0"] = process.argv.slice(2);
  if (!dir || !/^\d+$/.test(port)) {
    console.error("usage: node scripts/static-server.mjs DIR [PORT]");
    process.exit(2);
  }
  const { url, close } = await startStaticServer(dir, { port: Number(port) });
  console.log(`static server listening on ${url}`);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => close().then(() => process.exit(0)));
  }
}
