#!/usr/bin/env bash
# Builds the npm package into pkg/ (the library as a cdylib for wasm32, web and bundler builds
# from wasm-bindgen, plus pkg-template/), packs it into artifacts/quantdb-<version>.tgz, and
# prints the .wasm size raw and gzipped. The library is an rlib for Rust dependents; the
# cdylib is asked for here only (`cargo rustc --crate-type cdylib`).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
rm -rf pkg
cargo rustc -q -p quantdb --lib --crate-type cdylib --target wasm32-unknown-unknown --profile wasm-release
wasm=target/wasm32-unknown-unknown/wasm-release/quantdb.wasm
for target in web bundler; do
  wasm-bindgen --target "$target" --out-dir "pkg/$target" --out-name quantdb "$wasm"
done
# Size: wasm-opt from the npm package binaryen (scripts/package.json), same bytes for both builds.
opt=scripts/node_modules/.bin/wasm-opt
for target in web bundler; do
  "$opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    "pkg/$target/quantdb_bg.wasm" -o "pkg/$target/quantdb_bg.wasm"
done
node -e '
  const fs = require("fs");
  const p = JSON.parse(fs.readFileSync("pkg-template/package.json", "utf8"));
  p.version = process.argv[1];
  fs.writeFileSync("pkg/package.json", JSON.stringify(p, null, 2) + "\n");
' "$version"
cp pkg-template/README.md pkg-template/LICENSE pkg/
mkdir -p artifacts
(cd pkg && npm pack --silent --pack-destination ../artifacts >/dev/null)
raw=$(stat -c %s pkg/web/quantdb_bg.wasm)
gz=$(gzip -9 -c pkg/web/quantdb_bg.wasm | wc -c)
echo "[pkg] artifacts/quantdb-$version.tgz"
echo "[pkg] quantdb_bg.wasm: $raw bytes raw, $gz bytes gzipped"
