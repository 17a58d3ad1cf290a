#!/usr/bin/env bash
# Installs everything the tests need, idempotently: the wasm32 target, Debian's Chromium and
# ChromeDriver, Debian's redis-server, openssl, wrk and nginx-light, wasm-bindgen-cli at the version Cargo.lock expects, cargo-fuzz, and the
# npm tools of scripts/package.json (playwright-core, binaryen's wasm-opt). Each step is
# skipped when already in place at the right version.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
CARGO_FUZZ_VERSION=0.13.2

log() { printf '[install] %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# Chromium and its driver for the browser tests; a Chinese font so screenshots show names;
# redis-server for the relays that share a cache (openssl makes the certificates of its TLS
# test); wrk and nginx for the relay's load benchmark.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
   || ! dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 || ! command -v redis-server >/dev/null \
   || ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v openssl >/dev/null; then
  log "installing chromium, chromium-driver, fonts-wqy-zenhei, redis-server, wrk, nginx-light and openssl (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver fonts-wqy-zenhei redis-server wrk nginx-light openssl >/dev/null
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# The fuzzer driver (scripts/fuzz.sh; libFuzzer through libfuzzer-sys, on stable with
# RUSTC_BOOTSTRAP=1 for its -Z flags).
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install -q cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force
fi
for tool in node npm gzip c++; do
  command -v "$tool" >/dev/null || { echo "[install] $tool is missing" >&2; exit 1; }
done
if [ ! -x scripts/node_modules/.bin/wasm-opt ] || [ ! -d scripts/node_modules/playwright-core ] \
   || [ scripts/package-lock.json -nt scripts/node_modules/.package-lock.json ]; then
  log "installing npm tools (playwright-core, binaryen) into scripts/node_modules"
  (cd scripts && npm ci --no-audit --no-fund --loglevel=error)
fi
log "toolchain ready"
