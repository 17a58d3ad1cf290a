#!/usr/bin/env bash
# Runs every test. Installs what it needs first (idempotent: scripts/install-toolchain.sh),
# then: format and lint checks (native and wasm32), the API docs (warnings denied), the
# native tests (unit, integration against the mock upstream, CLI, doc tests, benchmarks in
# test mode), the browser tests in headless Chromium, the packed npm package in Chromium
# against the native CLI, and every fuzz target for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-toolchain.sh
echo "[test] format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy -p quantdb --lib -- -D warnings     # the lean library: no optional feature
cargo clippy -p quantdb --all-targets --target wasm32-unknown-unknown -- -D warnings
echo "[test] docs"
RUSTDOCFLAGS="-D warnings" cargo doc -p quantdb --no-deps --lib --all-features
RUSTDOCFLAGS="-D warnings" cargo doc -p quantdb --no-deps --lib --target wasm32-unknown-unknown
echo "[test] native"
cargo test --workspace --all-features --all-targets
cargo test --workspace --all-features --doc
echo "[test] load (short: the relay against nginx for 1 s a case; 1,000 push subscribers over three relays on Redis, two price moves; the README's figures come from long runs)"
cargo build -q -p quantdb-cli -p mock-upstream
BIN_DIR=target/debug scripts/relay-bench.py 1 8
(ulimit -n 4096 && BIN_DIR=target/debug scripts/push-fleet.py 1000 2 2)
echo "[test] browser"
scripts/test-browser.sh
echo "[test] fuzz (short: every target for a few seconds; long campaigns: scripts/fuzz.sh SECONDS)"
scripts/fuzz.sh --short
echo "[test] all passed"
