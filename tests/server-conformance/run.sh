#!/usr/bin/env bash
# Runs the official Durable Streams server conformance suite (npm
# @durable-streams/server-conformance-tests, pinned in package.json) against the embedded server
# (tests/src/bin/ds-embedded-server.rs, which serves ds-proto's in-memory model).
#
# Exits non-zero when a test fails that known-failures.txt does not list (each listed test is a
# defect of the suite, with the reason), or when a listed test passes (so the list stays true).
#
# Environment:
#   DS_CONFORMANCE_URL   test this server instead of starting the embedded one
#   DS_CONFORMANCE_LONG_POLL_MS
#                        the long-poll timeout given to the embedded server (default 1000)
#   DS_CONFORMANCE_FILTER
#                        only run tests whose name matches this pattern (vitest -t)
#   DS_CONFORMANCE_SUBSCRIPTIONS
#                        0: skip the suite's subscription tests ("Reserved subscription APIs",
#                        run by default: the embedded server implements PROTOCOL.md 6 and 7)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$HERE"

LONG_POLL_MS=${DS_CONFORMANCE_LONG_POLL_MS:-1000}
WORK=$(mktemp -d)
SERVER_PID=""
VITEST_PID=""
cleanup() {
  if [ -n "$VITEST_PID" ] && kill -0 "$VITEST_PID" 2>/dev/null; then
    kill "$VITEST_PID" 2>/dev/null || true
    wait "$VITEST_PID" 2>/dev/null || true
  fi
  if [ -n "$SERVER_PID" ]; then
    exec 3>&- 2>/dev/null || true # closing its stdin stops the server...
    kill "$SERVER_PID" 2>/dev/null || true # ...and so does this, if it hangs
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -d node_modules/@durable-streams/server-conformance-tests ] || [ ! -d node_modules/vitest ]; then
  echo "installing the conformance suite (npm ci) into $HERE/node_modules"
  npm ci --no-audit --no-fund --loglevel=error
fi

URL=${DS_CONFORMANCE_URL:-}
if [ -z "$URL" ]; then
  (cd "$ROOT" && cargo build -q -p ds-tests --bin ds-embedded-server)
  TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
  # The server runs until its stdin closes: give it a fifo whose write end (fd 3) we hold.
  mkfifo "$WORK/stdin"
  "$TARGET_DIR/debug/ds-embedded-server" --port 0 --long-poll-timeout-ms "$LONG_POLL_MS" \
    <"$WORK/stdin" >"$WORK/url" 2>"$WORK/server.log" &
  SERVER_PID=$!
  exec 3>"$WORK/stdin"
  for _ in $(seq 1 100); do
    URL=$(head -n1 "$WORK/url" 2>/dev/null || true)
    [ -n "$URL" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -z "$URL" ]; then
    echo "ds-embedded-server did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
  fi
fi
echo "running the server conformance suite against $URL"

FILTER_ARGS=()
if [ -n "${DS_CONFORMANCE_FILTER:-}" ]; then
  FILTER_ARGS=(-t "$DS_CONFORMANCE_FILTER")
fi
# In the background, so that a signal to this script runs the traps at once.
DS_CONFORMANCE_URL="$URL" ./node_modules/.bin/vitest run --config vitest.config.mjs \
  --reporter=dot --reporter=json --outputFile.json="$WORK/results.json" "${FILTER_ARGS[@]}" &
VITEST_PID=$!
VITEST_STATUS=0
wait "$VITEST_PID" || VITEST_STATUS=$?
VITEST_PID=""

if [ ! -s "$WORK/results.json" ]; then
  echo "vitest wrote no results (exit $VITEST_STATUS)" >&2
  exit 1
fi
node "$HERE/check-results.mjs" "$WORK/results.json" "$HERE/known-failures.txt"
