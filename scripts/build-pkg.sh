#!/usr/bin/env bash
# Builds the npm package into pkg/ (web and bundler builds from wasm-pack, plus pkg-template/),
# packs it into artifacts/quantdb-<version>.tgz, and prints the .wasm size raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
rm -rf pkg
for target in web bundler; do
  wasm-pack build --profile wasm-release --target "$target" --out-dir "pkg/$target" --out-name quantdb --no-pack
  rm -f "pkg/$target/.gitignore" "pkg/$target/README.md" "pkg/$target/LICENSE"
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
