#!/usr/bin/env bash
# Side-by-side timing of quantdb and easyquotation (the most used Python quote library, from
# PyPI) on the repo's mock upstream (Sina format, 50 ms latency by default), in one run:
# 4 symbols, 100 symbols and the whole market (~5,500), cold and warm. Prints a Markdown table
# of median times, upstream requests per call and the ratio.
#
#   scripts/compare.sh [--runs N] [--latency-ms N]
#
# Builds examples/compare.rs and the mock (release, mock-upstream/), starts one mock on a free port, installs
# easyquotation into a temporary virtual environment (the only network use: PyPI) and runs
# both drivers (examples/compare.rs, scripts/compare_easyquotation.py) against that mock.
set -euo pipefail
cd "$(dirname "$0")/.."

EASYQUOTATION_VERSION=0.7.7
runs=7
latency=50
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --latency-ms) latency=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d)
mock_pid=
cleanup() {
  if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "[compare] building (release)" >&2
cargo build --release -q -p mock-upstream
cargo build --release -q -p quantdb --example compare
bin=${CARGO_TARGET_DIR:-target}/release

echo "[compare] installing easyquotation==$EASYQUOTATION_VERSION into a temporary venv" >&2
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "easyquotation==$EASYQUOTATION_VERSION"

"$bin/mock_upstream" --port 0 --latency-ms "$latency" --no-referer-check >"$tmp/mock.log" 2>&1 &
mock_pid=$!
url=
for _ in $(seq 1 100); do
  url=$(sed -n 's/^mock upstream listening on //p' "$tmp/mock.log")
  [ -n "$url" ] && break
  kill -0 "$mock_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "mock upstream did not start:" >&2
  cat "$tmp/mock.log" >&2
  exit 1
fi
echo "[compare] mock upstream at $url, ${latency} ms latency, $runs runs a case" >&2

"$bin/examples/compare" --print-keys >"$tmp/keys.txt"
echo "[compare] easyquotation" >&2
"$tmp/venv/bin/python" scripts/compare_easyquotation.py --url "$url" --keys "$tmp/keys.txt" \
  --runs "$runs" >"$tmp/results.jsonl"
echo "[compare] quantdb" >&2
"$bin/examples/compare" --url "$url" --runs "$runs" >>"$tmp/results.jsonl"

"$tmp/venv/bin/python" - "$tmp/results.jsonl" "$latency" "$runs" <<'EOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["case"], {})[r["tool"]] = r
market = rows["market cold"]["quantdb"]["symbols"]
labels = {
    "4 cold": "4 symbols, cold", "4 warm": "4 symbols, warm",
    "100 cold": "100 symbols, cold", "100 warm": "100 symbols, warm",
    "market cold": f"market ({market}), cold", "market warm": f"market ({market}), warm",
    "market restart": f"market ({market}), new client, warm cache dir",
}
print(f"Sina format, mock upstream at {sys.argv[2]} ms latency, median of {sys.argv[3]} runs\n")
print("| case | easyquotation median ms | quantdb median ms | ratio (easyquotation / quantdb) "
      "| requests each (easyquotation / quantdb) |")
print("|---|---:|---:|---:|---:|")
def num(v):  # 3 significant figures at least, no more decimals than needed
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
for case, label in labels.items():
    eq, qdb = rows[case]["easyquotation"], rows[case]["quantdb"]
    ratio = eq["median_ms"] / qdb["median_ms"] if qdb["median_ms"] > 0 else float("inf")
    print(f"| {label} | {num(eq['median_ms'])} | {num(qdb['median_ms'])} | {num(ratio)}x "
          f"| {eq['requests']} / {qdb['requests']} |")
    for r in (eq, qdb):
        if r["quotes"] != r["symbols"]:
            print(f"\nwarning: {r['tool']} returned {r['quotes']} quotes for "
                  f"{r['symbols']} symbols in '{label}'")
qb = rows["4 cold"]["quantdb"].get("build_ms")
print(f"\nquantdb client build (not timed above): median {num(qb)} ms. easyquotation "
      "has no cache: its warm and new-client rows fetch everything again.")
EOF
