#!/usr/bin/env bash
# The browser tests: the wasm32 build in headless Chromium against the mock upstream (CORS on;
# the Referer check off, as a CORS proxy in front of Sina would add the Referer), with real
# fetch and real IndexedDB; then the packed npm package, loaded by a page in Chromium and
# compared field for field with the native CLI on the same mock data, and its benchmark in
# short mode; then the web demo end to end against the mock upstream and the relay.
set -euo pipefail
cd "$(dirname "$0")/.."
pidfile=$(mktemp)
trap 'kill "$(cat "$pidfile")" 2>/dev/null || true' EXIT
url=$(MOCK_PID_FILE=$pidfile scripts/start-mock.sh --cors --no-referer-check)
echo "[browser] mock upstream at $url"
export QUANTDB_MOCK_URL=$url
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-120}
cargo test -p quantdb --target wasm32-unknown-unknown --tests

scripts/build-pkg.sh
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
cargo build -q -p quantdb-cli -p mock-upstream
node scripts/check-pkg.mjs "artifacts/quantdb-$version.tgz" target/debug/quantdb
# The package's speed in Chromium, a few iterations so that the benchmark keeps working
# (full run: node scripts/bench-browser.mjs).
node scripts/bench-browser.mjs --short "artifacts/quantdb-$version.tgz"
# The dashboard end to end: mock upstream, relay, page, in Chromium (screenshot in artifacts/).
node --test web-demo/e2e.test.mjs
