#!/usr/bin/env bash
# The web demo, offline: builds the npm package when its sources changed, installs it into
# web-demo/ with the page's dependencies (web-demo/package.json: lightweight-charts, from the
# npm cache when it has it), starts the mock upstream, a relay in front of it (with a
# temporary cache dir) and a static server for the page, prints the dashboard's URL, and stops
# them all on Ctrl-C. The mock runs on the real time (only the tests stop its clock); its
# prices move every TICK_SECS (the mock's tick; 0 keeps them still), and the relay pushes them
# to the page once per its TTL window (RELAY_TTL_SECS, both TTLs; default the relay's own,
# 30 s in sessions and 60 s outside them; no poll at all on a day the exchange is closed).
# Ports: MOCK_PORT (18080), RELAY_PORT (8650), WEB_PORT (8000).
set -euo pipefail
cd "$(dirname "$0")/.."
MOCK_PORT=${MOCK_PORT:-18080}
RELAY_PORT=${RELAY_PORT:-8650}
WEB_PORT=${WEB_PORT:-8000}
TICK_SECS=${TICK_SECS:-5}
RELAY_TTL_SECS=${RELAY_TTL_SECS:-}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
tarball=artifacts/quantdb-$version.tgz
if [ ! -f "$tarball" ] || [ -n "$(find src pkg-template Cargo.toml Cargo.lock -newer "$tarball" -print -quit)" ]; then
  scripts/build-pkg.sh
fi
# Idempotent: a second run finds everything installed.
(cd web-demo && npm install --no-save --no-audit --no-fund --prefer-offline "../$tarball" >/dev/null)
cargo build -q -p quantdb-cli -p mock-upstream

workdir=$(mktemp -d)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start NAME PREFIX COMMAND...: runs COMMAND in the background and waits for its stdout line
# "PREFIX URL"; sets $url.
start() {
  local name=$1 prefix=$2 log=$workdir/$1.log
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 100); do
    url=$(sed -n "s|^$prefix ||p" "$log")
    if [ -n "$url" ]; then
      return 0
    fi
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$log" >&2
  return 1
}

start mock "mock upstream listening on" target/debug/mock_upstream --port "$MOCK_PORT"
mock=$url
export QUANTDB_SINA_URL=$mock QUANTDB_TENCENT_URL=$mock QUANTDB_EASTMONEY_URL=$mock
ttl_args=()
if [ -n "$RELAY_TTL_SECS" ]; then
  ttl_args=(--ttl-trading-secs "$RELAY_TTL_SECS" --ttl-closed-secs "$RELAY_TTL_SECS")
fi
start relay "quantdb relay listening on" target/debug/quantdb --cache-dir "$workdir/cache" "${ttl_args[@]}" serve --port "$RELAY_PORT"
relay=$url
if [ "$TICK_SECS" != 0 ]; then
  # The market moves: the mock's tick goes up by one every TICK_SECS.
  node -e '
    const [url, secs] = process.argv.slice(1);
    let tick = 0;
    setInterval(() => {
      tick += 1;
      fetch(`${url}/__mock/config`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ tick }) })
        .catch(() => process.exit(0));
    }, Number(secs) * 1000);
  ' "$mock" "$TICK_SECS" &
  pids+=("$!")
fi
start web "static server listening on" node scripts/static-server.mjs web-demo "$WEB_PORT"
web=$url

echo "mock upstream  $mock (prices move every ${TICK_SECS} s; 0: never)"
echo "relay          $relay"
echo
echo "dashboard      $web/?relay=$relay"
echo
echo "Ctrl-C stops everything."
wait
