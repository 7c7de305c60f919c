#!/usr/bin/env bash
# Hunts the netvm-core crash once seen in the benchmark matrix (3 NFs, zero-copy, memif ports,
# max rate): runs that setup REPS times (benches/configs/crash-hunt.json, via netvm-bench) with
# core dumps enabled, then reports every run whose core died by a signal and the core files.
# Usage (as root): scripts/crash-hunt.sh [REPS]     (default: the config's 15)
# Leaves: $OUT (default /tmp/netvm-crash-hunt) with the results and cores/ with any core dumps.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-}
OUT=${OUT:-/tmp/netvm-crash-hunt}
cargo build --release -q --workspace
rm -rf "$OUT"; mkdir -p "$OUT/cores"
cfg="$OUT/config.json"
if [ -n "$REPS" ]; then
  python3 -c "import json,sys; c=json.load(open('benches/configs/crash-hunt.json')); c['repetitions']=int(sys.argv[1]); json.dump(c,open(sys.argv[2],'w'))" "$REPS" "$cfg"
else
  cp benches/configs/crash-hunt.json "$cfg"
fi
old_pattern=$(cat /proc/sys/kernel/core_pattern)
restore() { echo "$old_pattern" > /proc/sys/kernel/core_pattern; }
trap restore EXIT
echo "$OUT/cores/core.%e.%p" > /proc/sys/kernel/core_pattern
ulimit -c unlimited
target/release/netvm-bench run "$cfg" --out "$OUT/results" --no-progress 2>&1 | tee "$OUT/run.log" || true
crashes=$(grep -c 'exited with signal' "$OUT/run.log" || true)
runs=$(ls "$OUT/results/raw" 2>/dev/null | wc -l)
echo "crash-hunt: $runs runs recorded, $crashes core deaths by signal"
ls -l "$OUT/cores"
for c in "$OUT"/cores/core.netvm-core.*; do
  [ -e "$c" ] || continue
  echo "== $c"
  gdb -batch -ex bt -ex 'thread apply all bt 8' target/release/netvm-core "$c" 2>/dev/null | head -80 || true
done
