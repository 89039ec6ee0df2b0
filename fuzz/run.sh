#!/usr/bin/env bash
# Replays the committed seed corpus and crash inputs of the fuzz targets as ordinary tests, then
# fuzzes every target for a while, on stable. CI calls it; so can you.
#
#   DS_FUZZ_SECONDS   seconds per target (default 30; 0: only the tests)
#   DS_SKIP_FUZZ=1    only the tests (same as DS_FUZZ_SECONDS=0)
#   DS_FUZZ_TARGETS   space-separated targets to fuzz (default: all of `cargo fuzz list`, that is
#                     every [[bin]] of fuzz/Cargo.toml, the subscription targets webhook_signature,
#                     subscription_bodies and worker_script included)
#   DS_FUZZ_JOBS      targets fuzzed at once (default 1)
#   DS_FUZZ_ARGS      extra libFuzzer arguments (e.g. "-max_len=8192")
#
# `cargo fuzz run -s none` needs no nightly (no sanitizer; panics and aborts are caught). New
# corpus entries go to fuzz/work/<target>/ (not committed); the committed seeds in
# fuzz/corpus/<target>/ are read only. A crash leaves its input in fuzz/artifacts/<target>/:
# fix it in ds-proto with a unit test, copy the input to fuzz/regressions/<target>/, and
# `cargo test --manifest-path fuzz/Cargo.toml` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${DS_FUZZ_SECONDS:-30}"
[[ "${DS_SKIP_FUZZ:-}" == 1 ]] && seconds=0
jobs="${DS_FUZZ_JOBS:-1}"
extra=(${DS_FUZZ_ARGS:-})

echo "== fuzz: seed corpus and regressions as tests (stable)"
cargo test --manifest-path fuzz/Cargo.toml

if [[ "$seconds" == 0 ]]; then
  echo "== fuzz: not fuzzing (DS_FUZZ_SECONDS=0 or DS_SKIP_FUZZ=1)"
  exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

targets="${DS_FUZZ_TARGETS:-$(cargo fuzz list)}"
echo "== fuzz: building ($(echo $targets | wc -w) targets, ${seconds}s each)"
if [[ -z "${DS_FUZZ_TARGETS:-}" ]]; then
  cargo fuzz build -s none -a 2>&1 | tail -n 3
else
  for t in $targets; do cargo fuzz build -s none -a "$t" 2>&1 | tail -n 1; done
fi

fuzz_one() {
  local t="$1"
  mkdir -p "fuzz/work/$t" "fuzz/corpus/$t"
  local dict=()
  [[ -f "fuzz/dicts/$t.dict" ]] && dict=("-dict=fuzz/dicts/$t.dict")
  # -s none: stable toolchain; -a: debug assertions (overflow checks) in the fuzzed code.
  local rc=0
  cargo fuzz run -s none -a "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" "${extra[@]}" >"fuzz/work/$t.log" 2>&1 || rc=$?
  echo "$rc" >"fuzz/work/$t.rc"
}

failed=()
running=0
pids=()
for t in $targets; do
  fuzz_one "$t" &
  pids+=($!)
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then :; fi
done

for t in $targets; do
  log="fuzz/work/$t.log"
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  speed=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)
  stats="${runs:-?} runs, ${speed:-?} exec/s, $cov"
  if [[ "$(cat "fuzz/work/$t.rc" 2>/dev/null)" != 0 ]] || grep -qE 'Test unit written to|panicked at' "$log"; then
    failed+=("$t")
    echo "== fuzz: $t FAILED ($stats)"
    grep -E 'panicked at|Test unit written to|^Failing input|cargo fuzz run' "$log" | head -n 8 | sed 's/^/   /'
  else
    echo "== fuzz: $t ok: $stats"
  fi
done

if ((${#failed[@]})); then
  echo "== fuzz: crashes in: ${failed[*]} (logs in fuzz/work/, inputs in fuzz/artifacts/)" >&2
  exit 1
fi
