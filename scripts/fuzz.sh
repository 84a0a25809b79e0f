#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, CMake option RECUR_FUZZ, clang++ in build-fuzz/) and runs each for a
# bounded time from its seed corpus (tests/fuzz/corpus/<target>/); any crash, leak, timeout or sanitizer report fails.
# Usage: scripts/fuzz.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
CXX=clang++-14 cmake -S . -B build-fuzz -DRECUR_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
nice -n 10 cmake --build build-fuzz -j2 > /dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in safetensors config train_state serve_request http_body gguf shard shard_manifest tokenizer; do
  mkdir -p "$work/$target"  # new inputs go here, so the checked-in seeds stay small
  if ! build-fuzz/fuzz_$target -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$work/" "$work/$target" "tests/fuzz/corpus/$target" > "$work/$target.log" 2>&1; then
    tail -40 "$work/$target.log"
    echo "fuzz: fuzz_$target failed; the input is in $work (kept)"
    trap - EXIT
    exit 1
  fi
  runs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/$target.log" | grep -o '[0-9]*$')"
  echo "fuzz: fuzz_$target: $runs executions in ${seconds}s, 0 crashes"
done
