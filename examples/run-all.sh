#!/usr/bin/env bash
# Runs every example against the embedded server, each bounded by `timeout 120`, then a scripted
# session with the `ds` command line (the `ds-cli` crate's binary: serve on a free port; create,
# append, read, tail, head, close, delete; --help; exit codes checked). Exits non-zero if
# anything fails. CI calls it.
#
#   examples/run-all.sh            # from anywhere in the repository
#
# Set DS_URL to run the examples against a real server instead (the CLI session always uses
# its own `ds serve`).
set -uo pipefail
cd "$(dirname "$0")/.."

BOUND=120
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/debug/examples"
LOGS="$(mktemp -d)"
FAILED=()
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$LOGS"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    FAILED+=("$*")
}

echo "== building the examples and the ds command line"
cargo build -q -p ds-examples --examples || {
    echo "FAIL: the examples do not build" >&2
    exit 1
}
cargo build -q -p ds-cli || {
    echo "FAIL: the ds command line (ds-cli) does not build" >&2
    exit 1
}

echo "== examples"
for example in quickstart ai_tokens change_feed event_sourcing blocking custom_runtime webhook_receiver simulation; do
    start=$(date +%s%N)
    if timeout "$BOUND" "$BIN/$example" >"$LOGS/$example.log" 2>&1; then
        printf '  ok    %-16s %6d ms  %s\n' "$example" $((($(date +%s%N) - start) / 1000000)) \
            "$(tail -n 1 "$LOGS/$example.log")"
    else
        code=$?
        [[ $code -eq 124 ]] && why="timed out after ${BOUND}s" || why="exit code $code"
        fail "example $example: $why"
        sed 's/^/      /' "$LOGS/$example.log" | tail -n 40 >&2
    fi
done

echo "== ds command-line session"
DS="$TARGET_DIR/debug/ds"
OUT="$LOGS/out"
ERR="$LOGS/err"

# expect CODE DESCRIPTION -- COMMAND...: runs COMMAND (bounded), checks its exit code.
expect() {
    local want=$1 what=$2
    shift 3
    timeout 30 "$@" >"$OUT" 2>"$ERR"
    local got=$?
    if [[ $got -ne $want ]]; then
        fail "ds $what: exit code $got, expected $want"
        sed 's/^/      stderr: /' "$ERR" >&2
    else
        printf '  ok    %-44s exit %d\n' "$what" "$got"
    fi
}

# output_is DESCRIPTION EXPECTED: checks the last command's stdout.
output_is() {
    local actual
    actual=$(cat "$OUT")
    if [[ "$actual" != "$2" ]]; then
        fail "ds $1: stdout was [$actual], expected [$2]"
    fi
}

unset DS_URL
timeout 300 "$DS" serve --port 0 --long-poll-ms 500 >"$LOGS/serve.out" 2>"$LOGS/serve.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do
    [[ -s "$LOGS/serve.out" ]] && break
    sleep 0.1
done
URL=$(head -n 1 "$LOGS/serve.out")
if [[ "$URL" != http://127.0.0.1:* ]]; then
    fail "ds serve did not print its URL"
    cat "$LOGS/serve.err" >&2
else
    echo "  server at $URL"
    export DS_URL="$URL"

    # A text stream: lines in, lines out.
    expect 0 "create notes" -- "$DS" create notes --content-type text/plain
    output_is "create notes" "$URL/v1/stream/notes"
    expect 0 "create notes again (same config)" -- "$DS" create notes --content-type text/plain
    expect 3 "create notes as JSON (conflict)" -- "$DS" create notes --content-type application/json
    expect 0 "append from stdin" -- bash -c "printf 'one\ntwo\n' | '$DS' append notes"
    expect 0 "append from arguments" -- "$DS" append notes three four
    expect 0 "read notes" -- "$DS" read notes
    output_is "read notes" "$(printf 'one\ntwo\nthree\nfour')"
    expect 0 "read notes --offsets" -- "$DS" read notes --offsets
    grep -q "$(printf '\t')" "$OUT" || fail "ds read --offsets printed no offset"
    expect 0 "tail notes --for 1 (bounded)" -- "$DS" tail notes --for 1
    output_is "tail notes" "$(printf 'one\ntwo\nthree\nfour')"
    expect 0 "head notes" -- "$DS" head notes
    grep -qx "content-type: text/plain" "$OUT" || fail "ds head: no content type"
    grep -qx "closed: false" "$OUT" || fail "ds head: not 'closed: false'"
    expect 0 "close notes" -- "$DS" close notes
    expect 3 "append to the closed stream" -- "$DS" append notes five
    expect 0 "head notes (closed)" -- "$DS" head notes
    grep -qx "closed: true" "$OUT" || fail "ds head: not 'closed: true' after close"
    expect 0 "tail notes (closed: ends by itself)" -- "$DS" tail notes
    expect 0 "delete notes" -- "$DS" delete notes
    expect 2 "head notes (deleted)" -- "$DS" head notes
    expect 2 "read notes (deleted)" -- "$DS" read notes

    # A JSON stream, tailed live over SSE while a writer appends and closes it.
    expect 0 "create events (JSON)" -- "$DS" create events --content-type application/json
    timeout 30 "$DS" tail events --sse >"$LOGS/tail.out" 2>"$LOGS/tail.err" &
    TAIL_PID=$!
    sleep 0.5
    expect 4 "append invalid JSON" -- "$DS" append events '{"n":1}' 'not json'
    expect 0 "append JSON lines and close" -- \
        bash -c "printf '{\"n\":1}\n{\"n\":2}\n' | '$DS' append events --close"
    wait "$TAIL_PID"
    code=$?
    if [[ $code -ne 0 ]]; then
        fail "ds tail --sse: exit code $code, expected 0 at the end of the stream"
        sed 's/^/      stderr: /' "$LOGS/tail.err" >&2
    elif [[ "$(cat "$LOGS/tail.out")" != "$(printf '{"n":1}\n{"n":2}')" ]]; then
        fail "ds tail --sse: printed [$(cat "$LOGS/tail.out")]"
    else
        printf '  ok    %-44s exit 0\n' "tail --sse followed the writer to EOF"
    fi

    # Subscriptions: create, re-confirm, read, link a stream, delete.
    expect 0 "create wake (JSON)" -- "$DS" create wake --content-type application/json
    expect 0 "sub create s1 (pull-wake)" -- "$DS" sub create s1 --pull-wake wake --pattern 'orders/*'
    expect 0 "sub create s1 again (same config)" -- "$DS" sub create s1 --pull-wake wake --pattern 'orders/*'
    expect 3 "sub create s1 with another pattern" -- "$DS" sub create s1 --pull-wake wake --pattern 'other/*'
    expect 0 "sub add s1 a/b" -- "$DS" sub add s1 a/b
    expect 0 "sub get s1" -- "$DS" sub get s1
    grep -q '"wake_stream": "wake"' "$OUT" || fail "ds sub get: no wake stream"
    expect 0 "sub remove s1 a/b" -- "$DS" sub remove s1 a/b
    expect 0 "sub delete s1" -- "$DS" sub delete s1
    expect 2 "sub get s1 (deleted)" -- "$DS" sub get s1
    expect 2 "work on a missing subscription" -- "$DS" work s1 --worker w1

    # Help, usage errors and unreachable servers.
    expect 0 "--help" -- "$DS" --help
    grep -q "Exit codes: 0 ok, 1 usage" "$OUT" || fail "ds --help: no exit codes"
    for command in serve create append read tail head close delete; do
        grep -qE "^  $command " "$OUT" || fail "ds --help: no $command command"
    done
    expect 0 "tail --help" -- "$DS" tail --help
    grep -q -- "--sse" "$OUT" || fail "ds tail --help: no --sse"
    expect 1 "no command (usage error)" -- "$DS"
    expect 1 "unknown command" -- "$DS" frobnicate notes
    expect 1 "missing STREAM" -- "$DS" read
    expect 1 "unknown option" -- "$DS" read events --bogus
    expect 1 "--sse with --long-poll" -- "$DS" tail events --sse --long-poll
    expect 1 "not a number" -- "$DS" tail events --for soon
    expect 2 "head of a stream that never existed" -- "$DS" head nowhere
    expect 4 "unreachable server" -- "$DS" --url http://127.0.0.1:9 head notes
fi

echo
if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo "${#FAILED[@]} failure(s):" >&2
    printf '  %s\n' "${FAILED[@]}" >&2
    exit 1
fi
echo "all examples passed"
