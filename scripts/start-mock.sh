#!/usr/bin/env bash
# Starts the mock upstream in the background on a free port (extra arguments are passed on,
# e.g. --cors). Prints the base URL on stdout; the PID is in $MOCK_PID_FILE when given.
# Meant to be sourced-free: callers read the URL and kill the PID when done.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p mock-upstream
log=$(mktemp)
target/debug/mock_upstream --port 0 "$@" >"$log" 2>&1 &
pid=$!
[ -n "${MOCK_PID_FILE:-}" ] && echo "$pid" >"$MOCK_PID_FILE"
for _ in $(seq 1 100); do
  url=$(sed -n 's/^mock upstream listening on //p' "$log")
  if [ -n "$url" ]; then
    echo "$url"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
echo "mock upstream did not start:" >&2
cat "$log" >&2
exit 1
